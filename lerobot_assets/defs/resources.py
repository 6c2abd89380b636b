"""Resources: where data lives (the data home), how cameras are encoded, what the simulator records,
and the SQL models' vars.

All four are pydantic (Dagster's ConfigurableResource), so each can be changed per run from the
launchpad or a run config (`resources: {home: {config: {root: ...}}}`) without touching code.
"""

from pathlib import Path
from typing import Any, Optional

import dagster as dg
from pydantic import Field

from lerobot_assets.home.layout import DEFAULT_HOME, HOME_ENV, HomeLayout, default_home


class DataHome(dg.ConfigurableResource):
    """The directory every asset writes under (inbox/, raw/, sessions/, datasets/, previews/, catalog/).

    `root` is resolved through fsspec, so a URL (`file:///...`, `s3://bucket/prefix`) is understood;
    the writer and the merge tool work on local files, so assets that write datasets need a local
    home and say so clearly for a remote one (the inbox sensor lists any fsspec filesystem).
    """

    root: Optional[str] = Field(
        default=None,
        description=f"data home path or URL; default ${HOME_ENV}, else ./{DEFAULT_HOME}",
    )

    def url(self) -> str:
        return self.root or default_home()

    def filesystem(self) -> tuple[Any, str]:
        """(fsspec filesystem, path inside it) of the home."""
        import fsspec.core

        url = self.url()
        if "://" not in url:
            url = str(Path(url).expanduser().resolve())
        return fsspec.core.url_to_fs(url)

    def is_local(self) -> bool:
        fs, _ = self.filesystem()
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        return protocol in ("file", "local")

    def layout(self) -> HomeLayout:
        fs, path = self.filesystem()
        if not self.is_local():
            raise NotImplementedError(
                f"data home {self.url()!r} is on {type(fs).__name__}: datasets are written and merged on a "
                f"local filesystem; point `home.root` at a local directory (sync it to remote storage after)"
            )
        layout = HomeLayout(Path(path))
        layout.root.mkdir(parents=True, exist_ok=True)
        return layout


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
