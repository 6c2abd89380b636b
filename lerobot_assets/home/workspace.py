"""One way for a step to use a data home, local or remote: `open_workspace(...)` yields an object with
`layout` (a HomeLayout on local disk), `pull(rel)` (make a path of the home present in it) and
`write(rel)` (publish it when the step succeeds).

On a local home the layout is the home itself (its writes are atomic by rename), so pull and write
do nothing; on a remote home it is a scratch directory (see `lerobot_assets.home.remote`).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from lerobot_assets.home.layout import HomeLayout, is_remote_url
from lerobot_assets.home.remote import RemoteHome, check_rel


class HomeWorkspace(Protocol):
    layout: HomeLayout

    def pull(self, rel: str) -> bool: ...

    def children(self, rel: str) -> list[str]: ...

    def write(self, rel: str) -> None: ...

    def publish_all(self) -> None: ...

    def location(self, path: Path) -> str: ...


class LocalWorkspace:
    """A local home used in place."""

    def __init__(self, root: Path) -> None:
        self.layout = HomeLayout(root)
        self.layout.root.mkdir(parents=True, exist_ok=True)

    def pull(self, rel: str) -> bool:
        return (self.layout.root / check_rel(rel)).exists()

    def children(self, rel: str) -> list[str]:
        path = self.layout.root / check_rel(rel)
        return sorted(p.name for p in path.iterdir() if p.is_dir()) if path.is_dir() else []

    def write(self, rel: str) -> None:
        check_rel(rel)

    def publish_all(self) -> None:
        """Nothing to publish: every write already landed in place, atomically."""

    def location(self, path: Path) -> str:
        return str(path)


@contextmanager
def open_workspace(
    url: str,
    name: str,
    *,
    storage_options: dict[str, Any] | None = None,
    local_dir: Path | None = None,
    cache_max_bytes: int | None = None,
) -> Iterator[HomeWorkspace]:
    if not is_remote_url(url):
        yield LocalWorkspace(Path(url[len("file://"):] if url.startswith("file://") else url).expanduser().resolve())
        return
    home = RemoteHome(url, storage_options=storage_options, local_dir=local_dir, cache_max_bytes=cache_max_bytes)
    with home.workspace(name) as ws:
        yield ws
