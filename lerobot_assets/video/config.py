"""Encoder configuration, validated against the encoders PyAV actually ships.

The defaults are LeRobot's RGB camera defaults (libsvtav1, yuv420p, g=2, crf=30, preset=12,
fast_decode=0), so `info.json` video blocks match datasets LeRobot writes.

FFmpeg range-checks some options only when the encoder opens (libsvtav1) and silently clamps
others (libx264's crf), so an invalid config would otherwise surface deep inside an encoder
thread mid-recording. The ranges below are FFmpeg's option tables (libsvtav1.c, libx264.c,
libx265.c, libaomenc.c) and the x264/x265 preset lists, checked against the PyAV build in use.
"""

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

X26X_PRESETS: tuple[str, ...] = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)

SUPPORTED_VIDEO_BACKENDS: tuple[str, ...] = ("pyav",)

# Stream codec name (info.json `video.codec`) -> the encoder that writes it (LeRobot's aliases).
STREAM_CODEC_ENCODERS: dict[str, str] = {"av1": "libsvtav1", "h264": "libx264", "hevc": "libx265"}


@dataclass(frozen=True)
class _EncoderRules:
    """What one encoder family accepts; `None` range means the option is not validated."""

    crf_range: tuple[int, int] | None
    preset_range: tuple[int, int] | None = None
    preset_names: tuple[str, ...] = ()
    preset_option: str = "preset"
    fast_decode_max: int | None = None
    family: str = "generic"


# Keyed by the encoder's resolved name (`av.codec.Codec("h264", "w").name == "libx264"`).
_RULES: dict[str, _EncoderRules] = {
    "libsvtav1": _EncoderRules(crf_range=(0, 63), preset_range=(-2, 13), fast_decode_max=2, family="svtav1"),
    "libx264": _EncoderRules(crf_range=(0, 51), preset_range=(0, 9), preset_names=X26X_PRESETS, family="x26x"),
    "libx265": _EncoderRules(crf_range=(0, 51), preset_range=(0, 9), preset_names=X26X_PRESETS, family="x26x"),
    "libaom-av1": _EncoderRules(crf_range=(0, 63), preset_range=(0, 8), preset_option="cpu-used", family="aom"),
}


def resolve_encoder(vcodec: str) -> tuple[str, list[str]]:
    """Return (encoder name, supported pixel formats) for `vcodec`, or raise ValueError."""
    import av  # local: keep `import lerobot_assets.video.config` cheap

    try:
        codec = av.codec.Codec(vcodec, "w")
    except Exception:  # UnknownCodecError, or a decoder-only name
        raise ValueError(
            f"vcodec={vcodec!r} is not an encoder available in this PyAV/FFmpeg build; "
            f"known video encoders include: {', '.join(available_video_encoders())}"
        ) from None
    if codec.type != "video":
        raise ValueError(f"vcodec={vcodec!r} is a {codec.type} encoder, not a video encoder")
    formats = [f.name for f in (codec.video_formats or [])]
    return codec.name, formats


def available_video_encoders() -> list[str]:
    """The encoders from our rule table that this PyAV build provides (for error messages)."""
    import av

    names = []
    for name in (*_RULES, "mpeg4"):
        try:
            av.codec.Codec(name, "w")
        except Exception:
            continue
        names.append(name)
    return names


class VideoEncoderConfig(BaseModel):
    """How camera frames are encoded; every field but `vcodec` is recorded in info.json.

    `preset` for libx264/libx265 takes a preset name or its index 0..9 (ultrafast..placebo).
    When `vcodec` is not libsvtav1 and `preset`/`crf` were left at their libsvtav1 defaults
    but are outside the new encoder's range, they fall back to the encoder's own default
    (None) instead of failing, so `VideoEncoderConfig(vcodec="libx264")` just works.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    vcodec: str = "libsvtav1"
    pix_fmt: str = "yuv420p"
    g: int | None = Field(default=2, ge=1)
    crf: int | None = 30
    preset: int | str | None = 12
    fast_decode: int = Field(default=0, ge=0)
    extra_options: dict[str, Any] = Field(default_factory=dict)
    video_backend: str = "pyav"

    @model_validator(mode="after")
    def _check_against_encoder(self) -> "VideoEncoderConfig":
        encoder, formats = resolve_encoder(self.vcodec)
        if formats and self.pix_fmt not in formats:
            raise ValueError(
                f"pix_fmt={self.pix_fmt!r} is not supported by encoder {encoder!r}; allowed: {', '.join(formats)}"
            )
        if self.video_backend not in SUPPORTED_VIDEO_BACKENDS:
            raise ValueError(
                f"video_backend={self.video_backend!r} is not supported; allowed: {', '.join(SUPPORTED_VIDEO_BACKENDS)}"
            )
        rules = _RULES.get(encoder)
        if rules is None:
            return self  # unknown encoder family: options pass through unchecked
        explicit = self.model_fields_set
        crf = self.crf
        if crf is not None and rules.crf_range is not None:
            lo, hi = rules.crf_range
            if not lo <= crf <= hi:
                if "crf" not in explicit:
                    object.__setattr__(self, "crf", None)
                else:
                    raise ValueError(f"crf={crf} is out of range for encoder {encoder!r}; allowed: {lo}..{hi}")
        if self.preset is not None:
            problem = _preset_problem(self.preset, rules)
            if problem is not None:
                if "preset" not in explicit:
                    object.__setattr__(self, "preset", None)
                else:
                    raise ValueError(f"preset={self.preset!r} is invalid for encoder {encoder!r}; allowed: {problem}")
        if rules.fast_decode_max is not None and self.fast_decode > rules.fast_decode_max:
            raise ValueError(
                f"fast_decode={self.fast_decode} is out of range for encoder {encoder!r}; "
                f"allowed: 0..{rules.fast_decode_max}"
            )
        return self

    @property
    def encoder_name(self) -> str:
        """The FFmpeg encoder `vcodec` resolves to (e.g. "h264" -> "libx264")."""
        return resolve_encoder(self.vcodec)[0]

    def codec_options(self, threads: int | None = None) -> dict[str, str]:
        """PyAV `options=` for `add_stream`, as LeRobot builds them; extra_options win.

        `*-params` option strings (svtav1-params, x264-params, x265-params) present in both our
        options and extra_options are joined rather than replaced, so an extra `lp=` does not
        silently drop `fast-decode=`; the encoder applies the later (extra) value on a clash.
        """
        encoder = self.encoder_name
        family = _RULES[encoder].family if encoder in _RULES else "generic"
        opts: dict[str, str] = {}
        if self.g is not None:
            opts["g"] = str(self.g)
        if self.crf is not None:
            opts["crf"] = str(self.crf)
        if self.preset is not None:
            preset_option = _RULES[encoder].preset_option if encoder in _RULES else "preset"
            opts[preset_option] = _preset_value(self.preset, family)
        if family == "svtav1":
            params = [f"fast-decode={self.fast_decode}"]
            if threads is not None:
                params.append(f"lp={threads}")
            opts["svtav1-params"] = ":".join(params)
        else:
            if self.fast_decode > 0:
                opts["tune"] = "fastdecode"
            if threads is not None:
                opts["threads"] = str(threads)
        for key, value in self.extra_options.items():
            value = str(value)
            if key.endswith("-params") and key in opts and opts[key]:
                opts[key] = f"{opts[key]}:{value}" if value else opts[key]
            else:
                opts[key] = value
        return opts

    @classmethod
    def from_info_block(cls, block: dict[str, Any]) -> "VideoEncoderConfig":
        """The config that wrote a feature's info.json video block (to append matching episodes).

        `video.codec` is the stream codec ("av1"), mapped back to the encoder LeRobot uses for
        it; encoder keys missing from the block keep their defaults.
        """
        codec = block.get("video.codec", "av1")
        fields: dict[str, Any] = {"vcodec": STREAM_CODEC_ENCODERS.get(codec, codec)}
        if "video.pix_fmt" in block:
            fields["pix_fmt"] = block["video.pix_fmt"]
        for key in ("g", "crf", "preset", "fast_decode", "video_backend", "extra_options"):
            if f"video.{key}" in block:
                fields[key] = block[f"video.{key}"]
        if fields.get("fast_decode") is None:
            fields.pop("fast_decode", None)
        return cls(**fields)

    def info_fields(self) -> dict[str, Any]:
        """Encoder-derived keys of a feature's info.json video block, in LeRobot's order."""
        return {
            "video.g": self.g,
            "video.crf": self.crf,
            "video.preset": self.preset,
            "video.fast_decode": self.fast_decode,
            "video.video_backend": self.video_backend,
            "video.extra_options": dict(self.extra_options),
        }


def _preset_problem(preset: int | str, rules: _EncoderRules) -> str | None:
    """None when `preset` is acceptable, else a description of what is allowed."""
    allowed_parts = []
    if rules.preset_range is not None:
        allowed_parts.append(f"integers {rules.preset_range[0]}..{rules.preset_range[1]}")
    if rules.preset_names:
        allowed_parts.append("names " + ", ".join(rules.preset_names))
    allowed = " or ".join(allowed_parts) or "any"
    if isinstance(preset, bool):
        return allowed
    if isinstance(preset, int) or (isinstance(preset, str) and preset.lstrip("-").isdigit()):
        value = int(preset)
        if rules.preset_range is None:
            return None
        return None if rules.preset_range[0] <= value <= rules.preset_range[1] else allowed
    if preset in rules.preset_names:
        return None
    return allowed


def _preset_value(preset: int | str, family: str) -> str:
    # x264/x265 accept an index too, but the name is what their logs and docs speak.
    if family == "x26x" and (isinstance(preset, int) or str(preset).isdigit()):
        return X26X_PRESETS[int(preset)]
    return str(preset)


def default_encoder_config() -> VideoEncoderConfig:
    """LeRobot's default RGB camera encoder (libsvtav1, crf 30, g 2, preset 12)."""
    return VideoEncoderConfig()
