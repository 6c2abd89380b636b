"""Fuzzing the MP4 parser: mutated and truncated real headers, and random bytes, must either parse
or raise ValueError — never hang, never raise anything else, never allocate beyond the input."""

from __future__ import annotations

import io
import struct
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lerobot_assets.byteindex import parse_mp4
from lerobot_assets.byteindex.testing import sample_media

FIXTURE_VIDEO = Path(__file__).parent / "fixtures/lerobot-v3-tiny/videos/observation.images.front/chunk-000/file-000.mp4"
FUZZ = settings(
    max_examples=150,
    deadline=2000,  # ms per example; a parse takes ~1 ms, so this only catches hangs
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
INTERESTING_U32 = [0, 1, 7, 8, 9, 16, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF]
MAX_PEAK_BYTES = 64 << 20


def _headers() -> list[bytes]:
    media = sample_media()
    out = []
    for name in ("h264", "av1", "h264_nofs"):
        data = media[name].path.read_bytes()
        info = parse_mp4(data)
        # faststart: the header prefix; non-faststart: the whole (small) file, moov at the end
        out.append(data[: info.header_ranges[0][1]] if info.faststart else data)
    if FIXTURE_VIDEO.exists():
        data = FIXTURE_VIDEO.read_bytes()
        out.append(data[: parse_mp4(data).header_ranges[0][1]])
    return out


HEADERS = _headers()


def check(data: bytes) -> None:
    """Parse from bytes and from a file object; only success or ValueError is allowed."""
    tracemalloc.start()
    try:
        for source in (lambda: data, lambda: io.BytesIO(data)):
            try:
                info = parse_mp4(source())
            except ValueError:
                continue
            s = info.samples
            n = len(s)
            assert s.offset.shape == s.size.shape == s.dts.shape == s.keyframe.shape == (n,)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MAX_PEAK_BYTES, f"parser allocated {peak} bytes for a {len(data)}-byte input"


@FUZZ
@given(
    header=st.sampled_from(range(len(HEADERS))),
    mutations=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_fuzz_byte_mutations(header, mutations):
    data = bytearray(HEADERS[header])
    for pos, value in mutations:
        data[pos % len(data)] = value
    check(bytes(data))


@FUZZ
@given(
    header=st.sampled_from(range(len(HEADERS))),
    fields=st.lists(
        st.tuples(st.integers(min_value=0), st.sampled_from(INTERESTING_U32) | st.integers(0, 0xFFFFFFFF)),
        min_size=1,
        max_size=4,
    ),
)
def test_fuzz_u32_fields(header, fields):
    """Box sizes, entry counts and sample counts are 32-bit big-endian words at 4-byte-aligned
    positions in these files; overwrite some with boundary values."""
    data = bytearray(HEADERS[header])
    for pos, value in fields:
        at = (pos % (len(data) // 4)) * 4
        struct.pack_into(">I", data, at, value)
    check(bytes(data))


@FUZZ
@given(header=st.sampled_from(range(len(HEADERS))), cut=st.integers(min_value=0))
def test_fuzz_truncation(header, cut):
    data = HEADERS[header]
    check(data[: cut % (len(data) + 1)])


@FUZZ
@given(data=st.binary(max_size=4096))
def test_fuzz_random_bytes(data):
    check(data)


@FUZZ
@given(
    boxes=st.lists(
        st.tuples(
            st.sampled_from([b"ftyp", b"moov", b"mdat", b"free", b"trak", b"stbl", b"\x00\x00\x00\x00"]),
            st.sampled_from([0, 1, 8, 16, 24, 0xFFFFFFFF]) | st.integers(0, 512),
            st.binary(max_size=64),
        ),
        max_size=6,
    )
)
def test_fuzz_random_box_sequences(boxes):
    data = b"".join(struct.pack(">I4s", size, kind) + body for kind, size, body in boxes)
    check(data)


@pytest.mark.parametrize("value", [0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF, 1 << 62])
def test_absurd_largesize_is_rejected_without_allocating(value):
    data = struct.pack(">I4sQ", 1, b"moov", value) + b"\x00" * 64
    with pytest.raises(ValueError):
        parse_mp4(data)
    with pytest.raises(ValueError, match="claims"):
        parse_mp4(io.BytesIO(data))
