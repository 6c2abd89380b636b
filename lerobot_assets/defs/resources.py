"""Resources: where data lives (the data home), how cameras are encoded, what the simulator records,
and the SQL models' vars.

All four are pydantic (Dagster's ConfigurableResource), so each can be changed per run from the
launchpad or a run config (`resources: {home: {config: {root: ...}}}`) without touching code.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import dagster as dg
from pydantic import Field

from lerobot_assets.home.layout import DEFAULT_HOME, HOME_ENV, HomeLayout, default_home, is_remote_url
from lerobot_assets.home.remote import CACHE_ENV, LOCAL_ENV, PublishConflict, RemoteHome, home_filesystem
from lerobot_assets.home.workspace import HomeWorkspace, open_workspace

# Attempts of a step whose publication lost a race to another step's (see DataHome.workspace).
CONFLICT_RETRIES = 3


class DataHome(dg.ConfigurableResource):
    """Where every asset reads and writes (inbox/, raw/, sessions/, datasets/, previews/, checks/, ...):
    a local directory, or an fsspec URL (`s3://bucket/prefix`, `gs://...`, `az://...`).

    Steps use it through `workspace()`: on a local home that is the home itself; on a remote home it is
    a local scratch directory that pulls its inputs and publishes its outputs as pointer-published
    versions when the step succeeds (lerobot_assets.home.remote). The DuckDB catalog of a remote home
    is a local file under `local_dir`.
    """

    root: Optional[str] = Field(
        default=None,
        description=f"data home path or URL; default ${HOME_ENV}, else ./{DEFAULT_HOME}",
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec options of a remote home, e.g. {endpoint_url: ...}; the S3 endpoint also comes from $AWS_ENDPOINT_URL",
    )
    local_dir: Optional[str] = Field(
        default=None,
        description=f"remote homes: this machine's workspaces, version cache and catalog (default ${LOCAL_ENV} or ~/.cache/lerobot-assets)",
    )
    cache_max_gb: Optional[float] = Field(
        default=None,
        gt=0,
        description=f"remote homes: size of this machine's version cache, least recently used dropped first (default ${CACHE_ENV} or 20 GiB)",
    )

    def url(self) -> str:
        return self.root or default_home()

    def _cache_max_bytes(self) -> Optional[int]:
        return int(self.cache_max_gb * 2**30) if self.cache_max_gb is not None else None

    def is_remote(self) -> bool:
        return is_remote_url(self.url())

    def filesystem(self) -> tuple[Any, str]:
        """(fsspec filesystem, path inside it) of the home."""
        import fsspec.core

        if self.is_remote():
            return home_filesystem(self.url(), self.storage_options)
        url = self.url()
        if "://" not in url:
            url = str(Path(url).expanduser().resolve())
        return fsspec.core.url_to_fs(url)

    def is_local(self) -> bool:
        return not self.is_remote()

    def remote(self) -> RemoteHome:
        return RemoteHome(
            self.url(), storage_options=self.storage_options, local_dir=self._local_dir(), cache_max_bytes=self._cache_max_bytes()
        )

    def _local_dir(self) -> Optional[Path]:
        return Path(self.local_dir).expanduser().resolve() if self.local_dir else None

    def layout(self) -> HomeLayout:
        """The layout of a local home, used in place. Steps use `workspace()`, which also serves a remote one."""
        if self.is_remote():
            raise ValueError(f"data home {self.url()!r} is remote: use DataHome.workspace() for a local view of it")
        layout = HomeLayout(Path(self.url().removeprefix("file://")).expanduser().resolve())
        layout.root.mkdir(parents=True, exist_ok=True)
        return layout

    @contextmanager
    def workspace(self, name: str, log: Optional[Callable[[str], None]] = None) -> Iterator[HomeWorkspace]:
        """A step's view of the home (see lerobot_assets.home.workspace); `name` labels its scratch
        directory, `log` gets a line with the bytes moved."""
        try:
            with open_workspace(
                self.url(), name, storage_options=self.storage_options, local_dir=self._local_dir(),
                cache_max_bytes=self._cache_max_bytes(),
            ) as ws:
                yield ws
        except PublishConflict as e:
            # Another step published the same directory meanwhile (nothing of this one was): run this
            # step again on top of that version, rather than fail the run.
            raise dg.RetryRequested(max_retries=CONFLICT_RETRIES, seconds_to_wait=1) from e
        t = getattr(ws, "transfer", None)  # a remote workspace's byte counts (a local one moves none)
        if t is not None and log is not None:
            log(
                f"remote home {self.url()}: uploaded {t.uploaded} B in {t.files_uploaded} files, downloaded "
                f"{t.downloaded} B in {t.files_downloaded} files, copied on the server {t.server_copied} B in "
                f"{t.files_copied} files, {t.cache_hits} cached versions reused"
            )

    @contextmanager
    def pulled(self, rel: str, name: str) -> Iterator[Path]:
        """A local path of `rel` (e.g. `datasets/lerobot_dataset`) for reading only."""
        with self.workspace(name) as ws:
            ws.pull(rel)
            yield ws.layout.root / rel

    def catalog(self, **kwargs: Any) -> Any:
        """The SQL catalog over this home (its DuckDB file on local disk for a remote home)."""
        from lerobot_assets.sql import Catalog

        if self.is_remote():
            return Catalog(self.url(), storage_options=self.storage_options, path=self.remote().catalog_path, **kwargs)
        return Catalog(self.layout().root, **kwargs)


class VideoEncoderResource(dg.ConfigurableResource):
    """Camera encoding of session datasets. Unset fields take the encoder's defaults (LeRobot's:
    libsvtav1, yuv420p, g=2, crf=30, preset=12), which the merged dataset's info.json then records."""

    vcodec: Optional[str] = Field(default=None, description="libsvtav1 (default), libx264, libx265, ...")
    pix_fmt: Optional[str] = None
    g: Optional[int] = Field(default=None, description="GOP size (keyframe interval)")
    crf: Optional[int] = None
    preset: Optional[str] = Field(default=None, description="a number, or a name for x264/x265 (e.g. veryfast)")
    fast_decode: Optional[int] = None
    extra_options: dict[str, str] = Field(default_factory=dict)
    encoder_threads: Optional[int] = Field(default=None, description="threads per camera encoder (None: encoder default)")

    def config(self) -> Any:
        from lerobot_assets.video.config import VideoEncoderConfig

        kwargs: dict[str, Any] = {
            k: v for k in ("vcodec", "pix_fmt", "g", "crf", "fast_decode") if (v := getattr(self, k)) is not None
        }
        if self.preset is not None:
            # info.json records LeRobot's numeric presets as numbers.
            kwargs["preset"] = int(self.preset) if self.preset.lstrip("-").isdigit() else self.preset
        if self.extra_options:
            kwargs["extra_options"] = dict(self.extra_options)
        return VideoEncoderConfig(**kwargs)


class SimSourceResource(dg.ConfigurableResource):
    """How PushT sim sessions are recorded (the seeds come from the session name)."""

    max_steps: int = Field(default=300, ge=1, description="an episode ends at success or after this many steps")
    image_size: int = Field(default=96, ge=8, le=1024, description="side of observation.image")
    top_camera: bool = Field(default=True, description="also record the 480x640 observation.images.top")
    expert_noise: float = Field(default=0.0, ge=0.0, description="std (px) of noise on the expert's targets")

    def template(self) -> Any:
        from lerobot_assets.sources.pusht import PushTSourceConfig

        return PushTSourceConfig(
            max_steps=self.max_steps,
            image_size=self.image_size,
            top_camera=self.top_camera,
            expert_noise=self.expert_noise,
        )


class SqlVarsResource(dg.ConfigurableResource):
    """Values of the SQL models' `{{ var() }}`s for the model assets and their data tests (e.g. the
    curation thresholds `curation_min_seconds`, `curation_max_seconds`, `curation_tasks`); unknown
    names are refused when a model runs. Changing a value changes the models' fingerprints, so the
    next run rebuilds them."""

    vars: dict[str, Any] = Field(default_factory=dict, description="var name -> value (number, string, list)")


def default_resources() -> dict[str, Any]:
    return {"home": DataHome(), "encoder": VideoEncoderResource(), "sim": SimSourceResource(), "sql": SqlVarsResource()}
