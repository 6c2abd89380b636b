"""Existing LeRobot v3 datasets as a session source: a local path or a Hugging Face Hub repo id.

An import is registered under a name (`register_import`), which becomes the session `import-<name>`.
Resolving it gives a local dataset root: a local path is used in place (never modified); a Hub repo
id is fetched with `huggingface_hub.snapshot_download(repo_type="dataset")` into a directory the
caller chooses (under the data home), so a re-materialization reuses what is already downloaded.
Pure library: no Dagster import.
"""

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lerobot_assets.format.atomic import write_atomic
from lerobot_assets.format.layout import INFO_PATH

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
    to be a v3 dataset root now, so that a typo fails here, naming the path, and not at build time in
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
    """The local root of the dataset `source` names, downloading it from the Hub if needed.

    Raises FileNotFoundError (with what was looked for) when a local path is not a v3 dataset root.
    """
    repo = hub_repo(source, revision)
    if repo is None:
        root = Path(source.removeprefix("file://")).expanduser().resolve()
        if not (root / INFO_PATH).is_file():
            raise FileNotFoundError(f"{root}: not a LeRobot dataset root ({INFO_PATH} is missing)")
        return root
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
        raise FileNotFoundError(f"Hub dataset {repo_id!r} (revision {rev or 'main'}) has no {INFO_PATH}: not a LeRobot v3 dataset")
    return root


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
