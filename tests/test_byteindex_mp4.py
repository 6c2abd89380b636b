"""MP4 parser: every sample equals ffprobe's packet (offset, size, pts, dts, keyframe flag), header
ranges and header-only parsing, and malformed input raising ValueError that names the box path."""

from __future__ import annotations

import io
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from lerobot_assets.byteindex import FileSource, Mp4Error, RangesSource, codec_name, parse_mp4
from lerobot_assets.byteindex.testing import sample_media
from lerobot_assets.byteindex.verify import ffprobe_packets

FIXTURE = Path(__file__).parent / "fixtures" / "lerobot-v3-tiny"
FIXTURE_VIDEOS = sorted(FIXTURE.glob("videos/*/chunk-*/file-*.mp4"))
needs_ffprobe = pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe not installed")


def assert_matches_ffprobe(path: Path) -> None:
    info = parse_mp4(open(path, "rb"))
    s = info.samples
    ref = ffprobe_packets(path)
    assert len(s) == len(ref["pos"]) > 0
    np.testing.assert_array_equal(s.offset, ref["pos"])
    np.testing.assert_array_equal(s.size, ref["size"])
    np.testing.assert_allclose(s.pts_s, ref["pts"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(s.dts_s, ref["dts"], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(s.keyframe, ref["key"])


# --------------------------------------------------------------------------- byte surgery helpers

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"}


def box_offsets(data: bytes, path: str) -> tuple[int, int]:
    """(start, end) of the first box at `path` ("moov/trak/mdia/mdhd"), walked independently."""
    start, end = 0, len(data)
    for name in path.split("/"):
        pos = start
        while pos + 8 <= end:
            size, typ = struct.unpack_from(">I4s", data, pos)
            header = 8
            if size == 1:
                size = struct.unpack_from(">Q", data, pos + 8)[0]
                header = 16
            elif size == 0:
                size = end - pos
            if typ == name.encode():
                break
            pos += size
        else:
            raise KeyError(path)
        start, end = pos + header, pos + size
        box_start = pos
    return box_start, end


def patch(data: bytes, offset: int, fmt: str, *values: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


STBL = "moov/trak/mdia/minf/stbl"


@pytest.fixture(scope="module")
def media():
    return sample_media()


@pytest.fixture(scope="module")
def h264(media) -> bytes:
    return media["h264"].path.read_bytes()


# --------------------------------------------------------------------------- the oracle


@needs_ffprobe
@pytest.mark.parametrize("name", ["h264", "h264_nofs", "av1", "av1_nofs", "h264_single"])
def test_samples_match_ffprobe_synthetic(media, name):
    assert_matches_ffprobe(media[name].path)


@needs_ffprobe
@pytest.mark.parametrize("path", FIXTURE_VIDEOS, ids=lambda p: p.parts[-3])
def test_samples_match_ffprobe_lerobot_fixture(path):
    assert_matches_ffprobe(path)


def test_fixture_files_exist():
    assert len(FIXTURE_VIDEOS) == 2


def test_codec_fourcc_and_dimensions(media):
    h = parse_mp4(open(media["h264"].path, "rb"))
    a = parse_mp4(open(media["av1"].path, "rb"))
    assert (h.codec, codec_name(h.codec), h.width, h.height) == ("avc1", "h264", 64, 48)
    assert (a.codec, codec_name(a.codec), a.width, a.height) == ("av01", "av1", 64, 48)
    fx = parse_mp4(open(FIXTURE_VIDEOS[0], "rb"))
    assert fx.codec == "av01" and (fx.width, fx.height) == (128, 96) and fx.timescale == 15360


def test_bframes_have_ctts_and_edit_list(media):
    info = parse_mp4(open(media["h264"].path, "rb"))
    s = info.samples
    assert info.edit_shift == -1024  # two frames of 512 ticks: x264's B-frame delay
    assert np.any(np.diff(s.pts) < 0), "B-frames: presentation order differs from decode order"
    assert s.pts.min() == 0 and s.dts[0] == -1024
    # pts, sorted, is the 30 fps grid of the 90 frames up to a few ticks: the concat demuxer places
    # each part at the previous one's container duration, which need not be a whole frame
    grid = np.arange(90) * 512
    assert np.all(np.diff(np.sort(s.pts)) > 0)
    assert np.abs(np.sort(s.pts) - grid).max() < 32


@needs_ffprobe
def test_largesize_and_size_zero_boxes(tmp_path, h264):
    free_start, _ = box_offsets(h264, "free")
    mdat_start, mdat_end = box_offsets(h264, "mdat")
    assert mdat_start == free_start + 8
    # free(8) + mdat(8-byte header) -> mdat with a 16-byte 64-bit header at the free's offset:
    # the payload offset stays the same, so stco needs no change.
    large = bytearray(h264)
    struct.pack_into(">I4sQ", large, free_start, 1, b"mdat", mdat_end - free_start)
    p = tmp_path / "largesize.mp4"
    p.write_bytes(bytes(large))
    assert_matches_ffprobe(p)
    info = parse_mp4(open(p, "rb"))
    assert info.mdat_ranges == ((mdat_start + 8, mdat_end),)
    assert info.header_ranges == ((0, mdat_start + 8),)

    zero = patch(h264, mdat_start, ">I", 0)  # size 0: the box runs to the end of the file
    p0 = tmp_path / "size0.mp4"
    p0.write_bytes(zero)
    assert_matches_ffprobe(p0)
    assert parse_mp4(open(p0, "rb")).mdat_ranges == ((mdat_start + 8, len(zero)),)


@needs_ffprobe
def test_ctts_version1_negative_offsets(tmp_path, h264):
    """Rewrite ctts as v1 with offsets shifted negative and the edit list compensating: pts must
    stay the same and still equal ffprobe's (signed composition offsets)."""
    data = bytearray(h264)
    ctts_start, _ = box_offsets(h264, f"{STBL}/ctts")
    count = struct.unpack_from(">I", data, ctts_start + 12)[0]
    struct.pack_into(">B", data, ctts_start + 8, 1)  # version 1
    for i in range(count):
        at = ctts_start + 16 + 8 * i + 4
        struct.pack_into(">i", data, at, struct.unpack_from(">I", data, at)[0] - 1024)
    elst_start, _ = box_offsets(h264, "moov/trak/edts/elst")
    assert struct.unpack_from(">B", data, elst_start + 8)[0] == 0
    struct.pack_into(">i", data, elst_start + 16 + 4, 0)  # media_time 1024 -> 0
    p = tmp_path / "ctts_v1.mp4"
    p.write_bytes(bytes(data))
    assert_matches_ffprobe(p)
    before = parse_mp4(h264).samples
    after = parse_mp4(bytes(data)).samples
    np.testing.assert_array_equal(before.pts, after.pts)
    # some composition offsets are negative now; FFmpeg (and so the parser) moves dts one frame
    # earlier so that no frame is presented before it is decoded
    assert after.dts[0] == -512 and after.pts.min() == 0


# --------------------------------------------------------------------------- header ranges / sources


def test_faststart_header_is_a_prefix_and_parses_alone(media):
    path = media["h264"].path
    data = path.read_bytes()
    full = parse_mp4(open(path, "rb"))
    assert full.faststart
    ((start, end),) = full.header_ranges
    assert start == 0 and end == full.mdat_ranges[0][0]  # ftyp + moov + free + mdat header
    header_only = parse_mp4(data[:end], file_size=len(data))
    np.testing.assert_array_equal(header_only.samples.offset, full.samples.offset)
    np.testing.assert_array_equal(header_only.samples.pts, full.samples.pts)
    # without a file size too (the offsets cannot be checked against the end then)
    assert len(parse_mp4(data[: full.moov_range[1]]).samples) == len(full.samples)


def test_non_faststart_header_is_ftyp_plus_trailing_moov(media):
    path = media["h264_nofs"].path
    data = path.read_bytes()
    info = parse_mp4(open(path, "rb"))
    assert not info.faststart
    assert len(info.header_ranges) == 2
    (a0, a1), (b0, b1) = info.header_ranges
    assert a0 == 0 and a1 == info.mdat_ranges[0][0]  # ftyp + free + mdat header
    assert (b0, b1) == info.moov_range and b1 == len(data)
    src = RangesSource([(s, data[s:e]) for s, e in info.header_ranges], size=len(data))
    again = parse_mp4(src)
    np.testing.assert_array_equal(again.samples.offset, info.samples.offset)
    np.testing.assert_array_equal(again.samples.keyframe, info.samples.keyframe)
    assert src.bytes_read <= info.header_bytes + 16 * len(info.top_level)


@pytest.mark.parametrize("name", ["h264", "h264_nofs"])
def test_file_object_parse_reads_only_header_bytes(media, name):
    path = media[name].path
    with open(path, "rb") as f:
        src = FileSource(f)
        info = parse_mp4(src)
    # box headers of each top-level box + the moov itself; never the samples
    assert src.bytes_read <= info.moov_range[1] - info.moov_range[0] + 16 * len(info.top_level)
    assert src.bytes_read < path.stat().st_size / 2


# --------------------------------------------------------------------------- malformed input


def expect_error(data: bytes, path_fragment: str, message_fragment: str = "", **kw) -> Mp4Error:
    with pytest.raises(ValueError) as exc:
        parse_mp4(data, **kw)
    assert isinstance(exc.value, Mp4Error)
    assert path_fragment in str(exc.value), str(exc.value)
    assert message_fragment in str(exc.value), str(exc.value)
    return exc.value


def test_stsz_count_exceeding_box_names_the_path(h264):
    start, _ = box_offsets(h264, f"{STBL}/stsz")
    bad = patch(h264, start + 16, ">I", 0xFFFFFFFF)
    err = expect_error(bad, "moov/trak[0]/mdia/minf/stbl/stsz", "sample count 4294967295 exceeds box size")
    assert str(err).startswith("moov/trak[0]/mdia/minf/stbl/stsz: sample count 4294967295 exceeds box size")


def test_fixed_sample_size_count_bounded_by_file(h264):
    start, _ = box_offsets(h264, f"{STBL}/stsz")
    bad = patch(h264, start + 12, ">II", 1, 0xFFFFFFF0)  # every sample 1 byte, 4e9 of them
    expect_error(bad, "stbl/stsz", "exceeds the file size", file_size=len(h264))
    expect_error(bad, "stbl/stsz", "exceeds the sample limit")


def test_truncated_moov(h264):
    _, moov_end = box_offsets(h264, "moov")
    expect_error(h264[: moov_end - 10], "moov", "truncated")
    with pytest.raises(ValueError, match=r"^moov: box at offset 32 claims \d+ bytes but only \d+ remain in its file"):
        parse_mp4(io.BytesIO(h264[: moov_end - 10]))


def test_truncated_box_header_in_file(h264):
    expect_error(h264[:20], "ftyp", "remain in its file", file_size=20)
    with pytest.raises(ValueError, match="truncated box header"):
        parse_mp4(io.BytesIO(h264[:36]))


def test_child_box_larger_than_parent(h264):
    start, _ = box_offsets(h264, f"{STBL}/stts")
    bad = patch(h264, start, ">I", 0x7FFFFFFF)
    expect_error(bad, "moov/trak[0]/mdia/minf/stbl/stts", "remain in its parent")


def test_box_smaller_than_header(h264):
    start, _ = box_offsets(h264, f"{STBL}/stss")
    expect_error(patch(h264, start, ">I", 4), "stbl/stss", "smaller than its 8-byte header")


@pytest.mark.parametrize(
    ("box", "message"),
    [
        (f"{STBL}/stco", "required box 'stco' (or 'co64') not found"),
        (f"{STBL}/stsz", "required box 'stsz' not found"),
        (f"{STBL}/stts", "required box 'stts' not found"),
        (f"{STBL}/stsc", "required box 'stsc' not found"),
        (f"{STBL}/stsd", "required box 'stsd' not found"),
        ("moov/trak/mdia/mdhd", "required box 'mdhd' not found"),
    ],
)
def test_missing_required_box(h264, box, message):
    start, _ = box_offsets(h264, box)
    bad = patch(h264, start + 4, ">4s", b"zzzz")
    expect_error(bad, "moov/trak[0]", message)


def test_no_video_track(h264):
    start, _ = box_offsets(h264, "moov/trak/mdia/hdlr")
    expect_error(patch(h264, start + 16, ">4s", b"soun"), "moov", "no video track")


def test_missing_moov(h264):
    start, _ = box_offsets(h264, "moov")
    expect_error(patch(h264, start + 4, ">4s", b"junk"), "moov", "not found")


def test_non_monotonic_stss(h264):
    start, _ = box_offsets(h264, f"{STBL}/stss")
    first, second = struct.unpack_from(">II", h264, start + 16)
    expect_error(patch(h264, start + 16, ">II", second, first), "stbl/stss", "not strictly increasing")


def test_stss_out_of_range(h264):
    start, _ = box_offsets(h264, f"{STBL}/stss")
    count = struct.unpack_from(">I", h264, start + 12)[0]
    expect_error(patch(h264, start + 16 + 4 * (count - 1), ">I", 10_000), "stbl/stss", "must lie in 1..90")


def test_stts_total_mismatch(h264):
    start, _ = box_offsets(h264, f"{STBL}/stts")
    n = struct.unpack_from(">I", h264, start + 16)[0]
    expect_error(patch(h264, start + 16, ">I", n + 5), "stbl/stts", "describes 95 samples but stsz has 90")


def test_ctts_total_mismatch(h264):
    start, _ = box_offsets(h264, f"{STBL}/ctts")
    expect_error(patch(h264, start + 16, ">I", 1000), "stbl/ctts", "but stsz has 90")


def test_stsc_describing_more_samples(h264):
    start, _ = box_offsets(h264, f"{STBL}/stsc")
    expect_error(patch(h264, start + 20, ">I", 0xFFFFFFFF), "stbl/stsc", "describes")


def test_stsc_must_start_at_chunk_one(h264):
    start, _ = box_offsets(h264, f"{STBL}/stsc")
    expect_error(patch(h264, start + 16, ">I", 2), "stbl/stsc", "not 1")


def test_sample_beyond_end_of_file(h264):
    start, _ = box_offsets(h264, f"{STBL}/stco")
    expect_error(patch(h264, start + 16, ">I", len(h264)), "stbl", "beyond the end of the file", file_size=len(h264))


def test_entry_count_exceeding_box(h264):
    start, _ = box_offsets(h264, f"{STBL}/stco")
    expect_error(patch(h264, start + 12, ">I", 1 << 30), "stbl/stco", "entry count 1073741824 exceeds box size")


def test_unsupported_versions(h264):
    start, _ = box_offsets(h264, "moov/trak/mdia/mdhd")
    expect_error(patch(h264, start + 8, ">B", 7), "moov/trak[0]/mdia/mdhd", "unsupported version 7")
    start, _ = box_offsets(h264, "moov/trak/edts/elst")
    expect_error(patch(h264, start + 8, ">B", 3), "moov/trak[0]/edts/elst", "unsupported version 3")


def test_zero_timescale(h264):
    start, _ = box_offsets(h264, "moov/trak/mdia/mdhd")
    expect_error(patch(h264, start + 20, ">I", 0), "mdia/mdhd", "timescale is 0")


def test_garbage_and_empty_input():
    for data in (b"", b"\x00" * 7, b"hello world, not an mp4 at all", bytes(range(256)) * 4):
        with pytest.raises(ValueError):
            parse_mp4(data)
    with pytest.raises(ValueError):
        parse_mp4(io.BytesIO(b"\x00\x00\x00\x01mdat\xff\xff\xff\xff\xff\xff\xff\xff"))


# --------------------------------------------------------------------------- hand-built boxes (v1 variants)


def box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full_box(kind: bytes, version: int, *payload: bytes) -> bytes:
    return box(kind, struct.pack(">B3x", version), *payload)


def synthetic_mp4(*, co64: bool = True, stsc_entries=((1, 2), (3, 1)), stss=(1, 4)) -> bytes:
    """A 6-sample video track: mdhd/elst/ctts v1, co64, 2 stsc entries, an empty edit first.

    Chunks: 4 chunks of 2,2,1,1 samples with sizes 10..60 laid out after a 64-bit-size mdat.
    """
    sizes = [10, 20, 30, 40, 50, 60]
    mvhd = full_box(b"mvhd", 0, struct.pack(">III", 0, 0, 1000), b"\x00" * 84)
    tkhd = full_box(b"tkhd", 1, struct.pack(">QQII", 0, 0, 7, 0), b"\x00" * 60, struct.pack(">II", 320 << 16, 240 << 16))
    # an empty edit of 500 ms (movie timescale), then media from tick 600 on
    elst = full_box(b"elst", 1, struct.pack(">I", 2), struct.pack(">QqI", 500, -1, 1 << 16), struct.pack(">QqI", 3000, 600, 1 << 16))
    mdhd = full_box(b"mdhd", 1, struct.pack(">QQIQ", 0, 0, 1200, 7200), b"\x00" * 4)
    hdlr = full_box(b"hdlr", 0, b"\x00" * 4, b"vide", b"\x00" * 12, b"v\x00")
    entry = box(b"hvc1", b"\x00" * 6, struct.pack(">H", 1), b"\x00" * 16, struct.pack(">HH", 320, 240), b"\x00" * 50)
    stsd = full_box(b"stsd", 0, struct.pack(">I", 1), entry)
    stts = full_box(b"stts", 0, struct.pack(">I", 1), struct.pack(">II", 6, 1200))
    ctts = full_box(b"ctts", 1, struct.pack(">I", 3), struct.pack(">Ii", 2, 2400), struct.pack(">Ii", 2, -1200), struct.pack(">Ii", 2, 0))
    stsz = full_box(b"stsz", 0, struct.pack(">II", 0, 6), struct.pack(">6I", *sizes))
    stsc = full_box(b"stsc", 0, struct.pack(">I", len(stsc_entries)), b"".join(struct.pack(">III", f, n, 1) for f, n in stsc_entries))
    stss_box = full_box(b"stss", 0, struct.pack(">I", len(stss)), b"".join(struct.pack(">I", s) for s in stss))

    def build(chunk_offsets: list[int]) -> bytes:
        if co64:
            co = full_box(b"co64", 0, struct.pack(">I", len(chunk_offsets)), b"".join(struct.pack(">Q", o) for o in chunk_offsets))
        else:
            co = full_box(b"stco", 0, struct.pack(">I", len(chunk_offsets)), b"".join(struct.pack(">I", o) for o in chunk_offsets))
        stbl = box(b"stbl", stsd, stts, ctts, stsz, stsc, co, stss_box)
        trak = box(b"trak", tkhd, box(b"edts", elst), box(b"mdia", mdhd, hdlr, box(b"minf", stbl)))
        return box(b"ftyp", b"isom\x00\x00\x02\x00isom") + box(b"moov", mvhd, trak)

    head = build([0, 0, 0, 0])
    payload_start = len(head) + 16
    # chunks of 2,2,1,1 samples (from the stsc entries) are laid out back to back
    offsets = [payload_start, payload_start + 30, payload_start + 100, payload_start + 150]
    head = build(offsets)
    mdat = struct.pack(">I4sQ", 1, b"mdat", 16 + sum(sizes)) + b"\xab" * sum(sizes)
    return head + mdat


def test_hand_built_v1_boxes_co64_and_empty_edit():
    data = synthetic_mp4()
    info = parse_mp4(data, file_size=len(data))
    s = info.samples
    payload = info.mdat_ranges[0][0]
    assert (info.codec, info.width, info.height, info.track_id, info.timescale) == ("hvc1", 320, 240, 7, 1200)
    np.testing.assert_array_equal(s.size, [10, 20, 30, 40, 50, 60])
    np.testing.assert_array_equal(s.offset - payload, [0, 10, 30, 60, 100, 150])
    # empty edit of 500 ms (movie timescale 1000) = 600 media ticks; then media_time 600
    assert info.edit_shift == 600 - 600
    np.testing.assert_array_equal(s.dts, np.arange(6) * 1200)
    np.testing.assert_array_equal(s.pts, np.arange(6) * 1200 + [2400, 2400, -1200, -1200, 0, 0])
    np.testing.assert_array_equal(s.keyframe, [True, False, False, True, False, False])
    assert info.mdat_ranges == ((payload, len(data)),)


def test_hand_built_stco_and_absent_stss_means_all_keyframes():
    data = synthetic_mp4(co64=False, stss=())
    info = parse_mp4(data)
    assert info.samples.keyframe.tolist() == [True] + [False] * 5  # empty stss: only the first
    no_stss = data.replace(b"stss", b"xxxx")
    assert parse_mp4(no_stss).samples.keyframe.all()


def test_hand_built_non_monotonic_stsc():
    data = synthetic_mp4(stsc_entries=((1, 2), (1, 1)))
    expect_error(data, "moov/trak[0]/mdia/minf/stbl/stsc", "first_chunk values are not strictly increasing")


def test_hand_built_stsc_beyond_chunk_count():
    data = synthetic_mp4(stsc_entries=((1, 2), (9, 1)))
    expect_error(data, "stbl/stsc", "refers to chunk 9 but stco has 4 chunks")
