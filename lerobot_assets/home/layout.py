"""The data home: where it is, and where everything lives under it."""

import os
from dataclasses import dataclass
from pathlib import Path

from lerobot_assets.home.keys import parse_session_key

HOME_ENV = "LEROBOT_ASSETS_HOME"
DEFAULT_HOME = ".demo_home"
MANIFEST = "manifest.json"
MERGED_DATASET = "lerobot_dataset"


def default_home() -> str:
    """The data home when none is given: $LEROBOT_ASSETS_HOME, else `.demo_home` in the working
    directory (where `make demo` puts it). Every command, resource and query session uses this one."""
    return os.environ.get(HOME_ENV) or str(Path.cwd() / DEFAULT_HOME)


def is_remote_url(url: str) -> bool:
    """A data home in object storage (s3://, gs://, az://, memory://...), not a local path or file://."""
    return "://" in url and not url.startswith("file://")


@dataclass(frozen=True)
class HomeLayout:
    """Where everything lives under a data home (a local directory)."""

    root: Path

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def imports(self) -> Path:
        return self.root / "imports"

    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    @property
    def raw_root(self) -> Path:
        return self.root / "raw"

    @property
    def sessions_root(self) -> Path:
        return self.root / "sessions"

    @property
    def datasets_root(self) -> Path:
        return self.root / "datasets"

    @property
    def previews(self) -> Path:
        return self.root / "previews"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def catalog(self) -> Path:
        return self.root / "catalog"

    @property
    def checks(self) -> Path:
        return self.root / "checks"

    def raw(self, session: str) -> Path:
        return self.raw_root / session

    def session(self, session: str) -> Path:
        return self.sessions_root / session

    def session_check(self, session: str) -> Path:
        """The latest validation record of a session's dataset (see home.validation)."""
        return self.checks / f"{session}.json"

    def dataset(self, name: str = MERGED_DATASET) -> Path:
        return self.datasets_root / name

    def inbox_folder(self, session: str) -> Path:
        key = parse_session_key(session)
        if key.kind != "inbox":
            raise ValueError(f"{session} is not an inbox session")
        return self.inbox / key.name
