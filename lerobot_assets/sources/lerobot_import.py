"""Existing LeRobot v3 datasets as a session source: a local path or a Hugging Face Hub repo id.

An import is registered under a name (`register_import`), which becomes the session `import-<name>`.
Resolving it gives a local dataset root: a local path is used in place (never modified); a Hub repo
id is fetched with `huggingface_hub.snapshot_download(repo_type="dataset")` into a directory the
caller chooses (under the data home), so a re-materialization reuses what is already downloaded.
A LeRobot v2.1 dataset (local or from the Hub) is converted to v3.0 (`tools.convert_v21`) into
`<download_dir>-v3.0` beside the download directory, never in place; the conversion is reused
while the v2.1 input is unchanged (its fingerprint is recorded next to the conversion).
Pure library: no Dagster import.
"""

import json
import logging
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lerobot_assets.format.atomic import write_atomic, write_json_atomic
from lerobot_assets.format.layout import INFO_PATH
from lerobot_assets.tools.convert_v21 import convert_v21, is_v21_root, v21_fingerprint

logger = logging.getLogger(__name__)

# All matched with fullmatch: `$` after match() also accepts a final newline ("name\n" became a
# registry file named with a newline).
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}")
# `owner/name` as the Hub spells repo ids (letters, digits, '-', '_', '.').
_REPO_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")
_HF_URL_RE = re.compile(r"hf://datasets/([^@]+?)(?:@(.+))?/?")


class ImportSpec(BaseModel):
    """One registered import: where the dataset comes from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="session name suffix: letters, digits, '.', '_', '-'")
    source: str = Field(description="a local dataset root, a Hub repo id `owner/name`, or hf://datasets/owner/name[@rev]")
    revision: str | None = Field(None, description="Hub branch, tag or commit (Hub sources only)")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.fullmatch(v):
            raise ValueError(f"import name {v!r} must match {_NAME_RE.pattern}")
        return v

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("source is empty")
        return v.strip()


def hub_repo(source: str, revision: str | None = None) -> tuple[str, str | None] | None:
    """(repo_id, revision) when `source` names a Hub dataset, None when it is a local path."""
    m = _HF_URL_RE.fullmatch(source)
    if m:
        return m.group(1), revision or m.group(2)
    if source.startswith(("/", ".", "~", "file://")) or Path(source).expanduser().exists():
        return None
    if _REPO_ID_RE.fullmatch(source):
        return source, revision
    return None


def checked_source(source: str, revision: str | None = None) -> str:
    """`source` as it is registered: a Hub reference unchanged (it is fetched when the session is
    built); a local path made absolute against the current directory, links resolved, and required
    to be a dataset root (v3, or v2.1 converted when resolved) now, so that a typo fails here, naming the path, and not at build time in
    another working directory.
    """
    if hub_repo(source, revision) is not None:
        return source
    root = Path(source.removeprefix("file://")).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"import source {root}: no such directory (a local dataset root, or a Hub repo id owner/name)")
    if not (root / INFO_PATH).is_file():
        raise FileNotFoundError(f"import source {root}: not a LeRobot dataset root ({INFO_PATH} is missing)")
    return str(root)


def resolve_dataset(
    source: str,
    *,
    download_dir: Path | str,
    revision: str | None = None,
    token: str | bool | None = None,
) -> Path:
    """The local v3 root of the dataset `source` names, downloading it from the Hub if needed and
    converting a v2.1 dataset (see the module docstring).

    Raises FileNotFoundError (with what was looked for) when a local path is not a dataset root.
    """
    repo = hub_repo(source, revision)
    if repo is None:
        root = Path(source.removeprefix("file://")).expanduser().resolve()
        if not (root / INFO_PATH).is_file():
            raise FileNotFoundError(f"{root}: not a LeRobot dataset root ({INFO_PATH} is missing)")
        return _as_v3(root, Path(download_dir))
    repo_id, rev = repo
    # Lazy: huggingface_hub takes ~0.2 s to import and only a Hub source needs it.
    from huggingface_hub import snapshot_download

    target = Path(download_dir)
    target.mkdir(parents=True, exist_ok=True)
    # local_dir keeps a plain copy under the data home (not the HF cache's symlink farm), and
    # snapshot_download skips files already there with the same hash.
    path = snapshot_download(
        repo_id,
        repo_type="dataset",
        revision=rev,
        local_dir=target,
        token=token,
        allow_patterns=["meta/**", "data/**", "videos/**", "README.md"],
    )
    root = Path(str(path))
    if not (root / INFO_PATH).is_file():
        raise FileNotFoundError(f"Hub dataset {repo_id!r} (revision {rev or 'main'}) has no {INFO_PATH}: not a LeRobot dataset")
    return _as_v3(root, target)


def converted_root(download_dir: Path | str) -> Path:
    """Where the v3.0 conversion of a v2.1 import lives: beside `download_dir`, which may hold the
    v2.1 download itself (an edit's output never lies inside its input)."""
    d = Path(download_dir).absolute()
    return d.with_name(f"{d.name}-v3.0")


def _as_v3(root: Path, download_dir: Path) -> Path:
    """`root` itself, or for a v2.1 dataset its v3.0 conversion (made now unless one of exactly this
    input is there). A killed conversion leaves the old one or none (tools.output), and a
    conversion whose stamp is missing or stale is redone."""
    if not is_v21_root(root):
        return root
    out = converted_root(download_dir)
    stamp_path = out.with_name(f"{out.name}.source.json")
    stamp = {"source": str(root), "fingerprint": v21_fingerprint(root)}
    if (out / INFO_PATH).is_file() and stamp_path.is_file():
        try:
            if json.loads(stamp_path.read_text()) == stamp:
                return out
        except (OSError, ValueError):
            pass  # unreadable stamp: convert again
    stamp_path.unlink(missing_ok=True)
    logger.info("%s is a LeRobot v2.1 dataset: converting it to v3.0 into %s", root, out)
    result = convert_v21(root, out, overwrite=True)
    logger.info("%s", result.summary())
    write_json_atomic(stamp_path, stamp)
    return out


def import_spec_path(imports_dir: Path | str, name: str) -> Path:
    return Path(imports_dir) / f"{name}.json"


def register_import(imports_dir: Path | str, spec: ImportSpec) -> Path:
    """Record an import under the data home; returns the registry file. Re-registering overwrites.

    A local source is stored absolute and must be a dataset root (see `checked_source`); nothing is
    written when it is not.
    """
    spec = spec.model_copy(update={"source": checked_source(spec.source, spec.revision)})
    path = import_spec_path(imports_dir, spec.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(spec.model_dump(), indent=2) + "\n"

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    write_atomic(path, write)
    return path


def read_import(imports_dir: Path | str, name: str) -> ImportSpec:
    path = import_spec_path(imports_dir, name)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no import named {name!r} is registered (run the register_import job or "
            f"lerobot_assets.sources.lerobot_import.register_import first)"
        )
    raw: dict[str, Any] = json.loads(path.read_text())
    return ImportSpec.model_validate(raw)
