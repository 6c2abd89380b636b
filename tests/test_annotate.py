"""Annotations with the `sim` backend on recorded PushT episodes: LeRobot 0.6.1's column types and
semantics, agreement with the simulation (physics contacts on replay, pixels of the decoded video),
the validator's rules, staging and resume, subsets, and the edit tools carrying the columns."""

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tools_support import tree_digest

from lerobot_assets.annotate import (
    AnnotateConfig,
    AnnotationValidationError,
    SimBackend,
    active_at,
    annotate_dataset,
    emitted_at,
    nth_next,
    nth_prev,
    parse_episodes,
    validate_annotations,
)
from lerobot_assets.annotate.backends.sim import WORKSPACE, contact_frames, runs
from lerobot_assets.annotate.episodes import Camera, iter_episodes
from lerobot_assets.annotate.modules import spans_from_rows
from lerobot_assets.annotate.resolve import AmbiguousResolverError
from lerobot_assets.annotate.schema import from_arrow_rows
from lerobot_assets.annotate.validator import RULES, validate_episode
from lerobot_assets.checks.validate import validate_dataset
from lerobot_assets.sources.pusht.config import PushTSourceConfig
from lerobot_assets.sources.pusht.env import make_env
from lerobot_assets.sources.pusht.record import record_pusht
from lerobot_assets.tools.delete import delete_episodes
from lerobot_assets.tools.merge import merge_datasets
from lerobot_assets.tools.recompute_stats import recompute_stats
from lerobot_assets.tools.split import split_dataset
from lerobot_assets.video.decode import decode_frames

# Seeds 2-4: on seed 1 the block drifts for two steps (frames 14-16) while gym-pusht reports no
# contact point, so the motion-based contact phases differ from the physics' count there.
SOURCE = PushTSourceConfig(seed=2, episodes=3, max_steps=100, top_camera=True)
TOP = "observation.images.top"

# LeRobot 0.6.1's canonical types (datasets/language.py), written out: the oracle for our writer.
ROW_FIELDS = [
    pa.field("role", pa.string(), nullable=False),
    pa.field("content", pa.string()),
    pa.field("style", pa.string()),
    pa.field("timestamp", pa.float32(), nullable=False),
    pa.field("camera", pa.string()),
    pa.field("tool_calls", pa.list_(pa.json_())),
]
PERSISTENT_TYPE = pa.list_(pa.struct(ROW_FIELDS))
EVENTS_TYPE = pa.list_(pa.struct([f for f in ROW_FIELDS if f.name != "timestamp"]))


@pytest.fixture(scope="module")
def pusht(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("src") / "pusht"
    record_pusht(root, SOURCE)
    return root


@pytest.fixture(scope="module")
def annotated(pusht: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ann") / "annotated"
    annotate_dataset(pusht, out, SimBackend())
    return out


def _data(root: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in sorted(root.glob("data/*/*.parquet"))])


def _episodes(root: Path) -> dict[int, list[dict]]:
    return {ep.index: ep.persistent + ep.events for ep in iter_episodes(root)}


def _strip(rows: list[dict]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in rows)


def test_column_types_and_info_are_lerobot_061s(annotated: Path) -> None:
    for path in annotated.glob("data/*/*.parquet"):
        schema = pq.read_schema(path)
        assert schema.field("language_persistent").type == PERSISTENT_TYPE
        assert schema.field("language_events").type == EVENTS_TYPE
        assert schema.names[-2:] == ["language_persistent", "language_events"]
        pf = pq.ParquetFile(path)
        assert pf.metadata.num_row_groups == len(set(pq.read_table(path).column("episode_index").to_pylist()))
        hf = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
        assert hf["language_persistent"]["feature"]["timestamp"] == {"dtype": "float32", "_type": "Value"}
        assert hf["language_events"]["feature"]["tool_calls"] == {"feature": {"_type": "Json"}, "_type": "List"}
        assert "timestamp" not in hf["language_events"]["feature"]
    info = json.loads((annotated / "meta/info.json").read_text())
    for key in ("language_persistent", "language_events"):
        assert info["features"][key] == {"dtype": "language", "shape": [1], "names": None}
    say = [t for t in info["tools"] if t["function"]["name"] == "say"]
    assert len(say) == 1 and say[0]["function"]["parameters"]["required"] == ["text"]
    assert "language_persistent" not in json.loads((annotated / "meta/stats.json").read_text())
    assert validate_dataset(annotated).problems == []
    assert validate_annotations(annotated).ok


def test_rows_follow_lerobot_semantics(annotated: Path) -> None:
    table = _data(annotated)
    eps = table.column("episode_index").to_pylist()
    ts = table.column("timestamp").to_pylist()
    pers = table.column("language_persistent").to_pylist()
    events = table.column("language_events").to_pylist()
    styles = set()
    for e in set(eps):
        rows = [i for i, x in enumerate(eps) if x == e]
        first = pers[rows[0]]
        # the episode's whole persistent list on every frame, sorted by (timestamp, style, role)
        assert all(pers[i] == first for i in rows)
        assert first == sorted(first, key=lambda r: (r["timestamp"], r["style"], r["role"]))
        frame_ts = {ts[i] for i in rows}
        assert {r["timestamp"] for r in first} <= frame_ts
        subtasks = [r for r in first if r["style"] == "subtask"]
        assert subtasks[0]["timestamp"] == ts[rows[0]]
        for i in rows:
            # the subtask in force at each frame is the span holding it
            active = active_at(first, ts[i], "subtask")
            assert active == max((r for r in subtasks if r["timestamp"] <= ts[i]), key=lambda r: r["timestamp"])
            for r in events[i]:
                styles.add(r["style"])
                assert (r["camera"] is not None) == (r["style"] == "vqa")
                if r["style"] is None:
                    (call,) = [json.loads(c) for c in r["tool_calls"]]
                    assert r["role"] == "assistant" and r["content"] is None
                    assert call["type"] == "function" and call["function"]["name"] == "say"
                    assert isinstance(call["function"]["arguments"], dict) and call["function"]["arguments"]["text"]
            if any(r["style"] == "interjection" for r in events[i]):
                assert emitted_at(first, events[i], ts[i], style="plan") is not None
                # tool calls come back decoded, as LeRobot's readers return them
                decoded = from_arrow_rows(events[i])
                assert emitted_at(first, decoded, ts[i], role="assistant", tool_name="say") is not None
        assert {r["style"] for r in first} == {"subtask", "plan", "memory", "task_aug"}
    assert styles == {None, "interjection", "vqa"}


def _physics_contacts(root: Path) -> dict[int, np.ndarray]:
    """Replay each episode's recorded actions in gym-pusht: contact during step i when the physics
    reports contact points (`info["n_contacts"]`)."""
    env = make_env(SOURCE.model_copy(update={"top_camera": False}))
    out = {}
    try:
        for ep in iter_episodes(root):
            env.reset(seed=SOURCE.seed + ep.index)
            flags = []
            assert ep.action is not None
            for a in ep.action.astype(np.float32):
                *_, info = env.step(a)
                flags.append(info["n_contacts"] > 0)
            out[ep.index] = np.array(flags)
    finally:
        env.close()
    return out


def test_subtask_boundaries_at_physics_contacts(annotated: Path) -> None:
    truth = _physics_contacts(annotated)
    for ep in iter_episodes(annotated):
        index = {t: i for i, t in enumerate(ep.times)}
        bounds = [index[s.start] for s in spans_from_rows(ep.persistent)][1:]
        phases = runs(truth[ep.index], 1)
        changes = [r[0] for r in phases[1:]]
        assert len(bounds) >= 3
        # every subtask boundary is within one frame of a contact start or end
        for b in bounds:
            assert min(abs(b - c) for c in changes) <= 1, (ep.index, b, changes)
        # every change between two phases of 3+ frames has a boundary within one frame
        for before, after in zip(phases, phases[1:]):
            if before[1] - before[0] >= 3 and after[1] - after[0] >= 3:
                assert min(abs(after[0] - b) for b in bounds) <= 1, (ep.index, after[0], bounds)


def _vqa(root: Path, shape_key: str) -> list[tuple[int, float, str, dict]]:
    out = []
    for ep in iter_episodes(root):
        for r in ep.events:
            if r["style"] == "vqa" and r["role"] == "assistant":
                answer = json.loads(r["content"])
                if shape_key in answer:
                    out.append((ep.index, r["timestamp"], r["camera"], answer))
    return out


def test_vqa_answers_are_the_projected_poses(annotated: Path) -> None:
    eps = {ep.index: ep for ep in iter_episodes(annotated)}
    boxes = _vqa(annotated, "detections")
    points = _vqa(annotated, "point")
    assert boxes and points
    for e, t, cam, answer in boxes:
        ep = eps[e]
        c = next(c for c in ep.cameras if c.key == cam)
        kp = ep.env_state[ep.frame_of(t)].reshape(8, 2) * [c.width / WORKSPACE, c.height / WORKSPACE]
        (block,) = [d for d in answer["detections"] if d["label"] == "T-shaped block"]
        x1, y1, x2, y2 = block["bbox"]
        assert block["bbox_format"] == "xyxy"
        assert np.all((kp[:, 0] >= x1) & (kp[:, 0] <= x2) & (kp[:, 1] >= y1) & (kp[:, 1] <= y2)), (e, t, cam)
        assert x2 - x1 <= np.ptp(kp[:, 0]) + 2 and y2 - y1 <= np.ptp(kp[:, 1]) + 2
    for e, t, cam, answer in points:
        ep = eps[e]
        c = next(c for c in ep.cameras if c.key == cam)
        agent = ep.state[ep.frame_of(t)] * [c.width / WORKSPACE, c.height / WORKSPACE]
        assert np.allclose(answer["point"], agent, atol=0.05)


def test_vqa_boxes_hold_the_block_pixels_of_the_video(annotated: Path) -> None:
    """Oracle independent of the projection formula: the block's gray (LightSlateGray) pixels of the
    decoded top-camera frame lie inside the answered box."""
    eps = {ep.index: ep for ep in iter_episodes(annotated)}
    checked = 0
    for e, t, cam, answer in _vqa(annotated, "detections"):
        if cam != TOP or checked >= 4:
            continue
        path, start = eps[e].videos[TOP]
        frame = decode_frames(path, [start + t], tolerance_s=1e-3, return_uint8=True)[0].permute(1, 2, 0).numpy().astype(int)
        gray = np.abs(frame - [119, 136, 153]).sum(axis=2) < 40
        ys, xs = np.nonzero(gray)
        assert len(xs) > 500
        x1, y1, x2, y2 = next(d["bbox"] for d in answer["detections"] if d["label"] == "T-shaped block")
        inside = (xs >= x1 - 2) & (xs <= x2 + 2) & (ys >= y1 - 2) & (ys <= y2 + 2)
        assert inside.mean() > 0.97, (e, t, inside.mean())
        checked += 1
    assert checked == 4


# -- validator ------------------------------------------------------------------------------


TIMES = [float(np.float32(i / 10)) for i in range(30)]
CAMS = {"observation.images.top": Camera("observation.images.top", 48, 64)}


def _valid() -> dict[str | None, list[dict]]:
    say = {"type": "function", "function": {"name": "say", "arguments": {"text": "ok"}}}
    t1 = TIMES[12]
    box = {"detections": [{"label": "b", "bbox_format": "xyxy", "bbox": [1, 2, 30, 40]}]}
    return {
        "plan": [
            {"role": "assistant", "content": "a", "style": "subtask", "timestamp": 0.0, "camera": None, "tool_calls": None},
            {"role": "assistant", "content": "1. a\n2. b", "style": "plan", "timestamp": 0.0, "camera": None, "tool_calls": None},
            {"role": "assistant", "content": "b", "style": "subtask", "timestamp": t1, "camera": None, "tool_calls": None},
            {"role": "assistant", "content": "1. b", "style": "plan", "timestamp": t1, "camera": None, "tool_calls": None},
            {"role": "assistant", "content": "did a", "style": "memory", "timestamp": t1, "camera": None, "tool_calls": None},
        ],
        "interjections": [
            {"role": "assistant", "content": None, "style": None, "timestamp": 0.0, "camera": None, "tool_calls": [say]},
            {"role": "user", "content": "now b", "style": "interjection", "timestamp": t1, "camera": None, "tool_calls": None},
            {"role": "assistant", "content": None, "style": None, "timestamp": t1, "camera": None, "tool_calls": [say]},
        ],
        "vqa": [
            {"role": "user", "content": "where?", "style": "vqa", "timestamp": TIMES[5], "camera": "observation.images.top", "tool_calls": None},
            {"role": "assistant", "content": json.dumps(box), "style": "vqa", "timestamp": TIMES[5], "camera": "observation.images.top", "tool_calls": None},
            {"role": "user", "content": "where?", "style": "vqa", "timestamp": TIMES[6], "camera": "observation.images.top", "tool_calls": None},
            {"role": "assistant", "content": json.dumps({"label": "a", "point_format": "xy", "point": [3, 4]}), "style": "vqa",
             "timestamp": TIMES[6], "camera": "observation.images.top", "tool_calls": None},
        ],
    }


def _break(rule: str) -> dict[str | None, list[dict]]:
    rows = _valid()
    plan, inter, vqa = rows["plan"], rows["interjections"], rows["vqa"]
    if rule == "unknown_style":
        plan[4]["style"] = "mood"
    elif rule == "module_style":
        inter.append({**plan[1], "timestamp": TIMES[20]})
    elif rule == "camera_rule":
        plan[4]["camera"] = "observation.images.top"
    elif rule == "unknown_camera":
        vqa[0]["camera"] = vqa[1]["camera"] = "observation.images.side"
    elif rule == "timestamp_not_frame":
        vqa[0]["timestamp"] = vqa[1]["timestamp"] = 0.55
    elif rule == "interjection_without_speech":
        del inter[2]
    elif rule == "interjection_without_plan":
        inter[1]["timestamp"] = inter[2]["timestamp"] = TIMES[20]
    elif rule == "vqa_answer_shape":
        vqa[1]["content"] = json.dumps({"answer": "left"})
    elif rule == "vqa_duplicate":
        vqa.append(dict(vqa[0]))
    elif rule == "row_content":
        plan[4]["content"] = None
    elif rule == "speech_atom":
        inter[0]["tool_calls"] = [{"type": "function", "function": {"name": "say", "arguments": json.dumps({"text": "ok"})}}]
    elif rule == "span_coverage":
        plan[0]["timestamp"] = plan[1]["timestamp"] = TIMES[2]
    elif rule == "persistent_duplicate":
        plan.append({**plan[2], "content": "c"})
    elif rule == "bbox_outside_image":
        vqa[1]["content"] = json.dumps({"detections": [{"label": "b", "bbox_format": "xyxy", "bbox": [1, 2, 70, 40]}]})
    elif rule == "keypoint_outside_image":
        vqa[3]["content"] = json.dumps({"label": "a", "point_format": "xy", "point": [3, 49]})
    return rows


def test_validator_accepts_valid_rows() -> None:
    report = validate_episode(7, TIMES, _valid(), CAMS)
    assert report.errors == [] and report.warnings == [] and report.episodes_checked == 1


@pytest.mark.parametrize("rule", sorted(RULES))
def test_validator_names_each_rule(rule: str) -> None:
    report = validate_episode(7, TIMES, _break(rule), CAMS)
    assert rule in report.rules(), [str(i) for i in report.errors]
    issue = next(i for i in report.errors if i.rule == rule)
    assert issue.episode == 7 and f"[{rule}]" in str(issue)
    if rule not in ("span_coverage",):
        assert issue.timestamp is not None


# -- resolvers ------------------------------------------------------------------------------


def test_resolvers_match_lerobot() -> None:
    p = [
        {"role": "assistant", "content": "a", "style": "subtask", "timestamp": 0.0},
        {"role": "assistant", "content": "b", "style": "subtask", "timestamp": 1.0},
        {"role": "assistant", "content": "m", "style": "memory", "timestamp": 1.0},
    ]
    assert active_at(p, 0.5, "subtask")["content"] == "a"
    assert active_at(p, 1.0, "subtask")["content"] == "b"
    assert active_at(p, -1, "subtask") is None
    with pytest.raises(ValueError):
        active_at(p, 0.5, "vqa")
    with pytest.raises(AmbiguousResolverError):
        active_at([*p, {**p[1], "content": "c"}], 2.0, "subtask")
    assert emitted_at(p, [], 1.05, style="memory")["content"] == "m"
    assert emitted_at(p, [], 1.2, style="memory") is None
    ev = [{"role": "user", "content": "q", "style": "vqa", "camera": "c"}, {"role": "assistant", "content": "{}", "style": "vqa", "camera": "c"}]
    assert emitted_at(p, ev, 99.0, style="vqa", role="user")["content"] == "q"
    with pytest.raises(AmbiguousResolverError):
        emitted_at(p, ev, 0.0, style="vqa")
    assert nth_next(p, 0.5, 1, style="subtask")["content"] == "b"
    assert nth_prev(p, 1.0, 1, style="subtask")["content"] == "a"
    assert nth_next(p, -1.0, 1, style="subtask")["content"] == "a"
    assert nth_prev(p, -1.0, 1, style="subtask") is None
    with pytest.raises(ValueError):
        nth_next(p, 0.0, 0)


def test_parse_episodes() -> None:
    assert parse_episodes("0-2,5") == [0, 1, 2, 5]
    assert parse_episodes(None) is None
    with pytest.raises(ValueError, match="bad episode range"):
        parse_episodes("3-1")


# -- runs: staging, resume, subsets, failures -----------------------------------------------


def test_resume_skips_finished_pairs_and_redoes_changed_ones(pusht: Path, tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    first = annotate_dataset(pusht, tmp_path / "a", SimBackend(), staging_dir=staging)
    assert first.resumed == 0
    lines = (staging / "episode_000000/plan.jsonl").read_text().splitlines()
    assert lines and all(json.loads(x) == json.loads(json.dumps(json.loads(x), sort_keys=True)) for x in lines)
    assert list(json.loads(lines[0])) == sorted(json.loads(lines[0]))
    again = annotate_dataset(pusht, tmp_path / "b", SimBackend(), staging_dir=staging)
    assert again.resumed == 9
    # A run killed mid-write leaves rows without their key: that pair is redone, the rest reused.
    (staging / "episode_000001/vqa.key").unlink()
    # A changed VQA rate changes the VQA inputs of every episode, nothing else.
    third = annotate_dataset(pusht, tmp_path / "c", SimBackend(), staging_dir=staging, config=AnnotateConfig(vqa_hz=2.0))
    assert third.resumed == 6
    assert _strip(_episodes(tmp_path / "a")[0]) == _strip(_episodes(tmp_path / "b")[0])
    assert third.rows_per_style["vqa"] > first.rows_per_style["vqa"]


def test_subset_keeps_other_episodes_and_never_writes_the_input(annotated: Path, tmp_path: Path) -> None:
    before = tree_digest(annotated)
    old = _episodes(annotated)
    out = tmp_path / "subset"
    result = annotate_dataset(annotated, out, SimBackend(), episodes=[1], modules=["plan"], config=AnnotateConfig(seed=7, n_task_rephrasings=1))
    assert result.episodes == 1
    assert tree_digest(annotated) == before
    new = _episodes(out)
    assert _strip(new[0]) == _strip(old[0]) and _strip(new[2]) == _strip(old[2])
    # episode 1: new plan rows, its interjection and VQA rows kept
    keep = lambda rows: _strip([r for r in rows if r["style"] not in ("subtask", "plan", "memory", "task_aug")])  # noqa: E731
    assert keep(new[1]) == keep(old[1])
    assert len([r for r in new[1] if r["style"] == "task_aug"]) == 2
    assert validate_annotations(out).ok


def test_validation_failure_writes_nothing(pusht: Path, tmp_path: Path) -> None:
    class OffImage(SimBackend):
        def vqa(self, ep, requests, cfg):  # type: ignore[no-untyped-def]
            return [("where?", {"label": "x", "point_format": "xy", "point": [-5, 3]}) for _ in requests]

    out = tmp_path / "out"
    with pytest.raises(AnnotationValidationError) as err:
        annotate_dataset(pusht, out, OffImage(), modules=["vqa"])
    assert "keypoint_outside_image" in str(err.value) and "episode 0" in str(err.value)
    assert not out.exists()
    with pytest.raises(ValueError, match="unknown camera"):
        annotate_dataset(pusht, out, SimBackend(), config=AnnotateConfig(cameras=("observation.images.side",)))
    with pytest.raises(ValueError, match="overlaps the input"):
        annotate_dataset(pusht, pusht / "inside", SimBackend())


def test_without_sim_state_subtasks_come_from_proprioception(pusht: Path, tmp_path: Path) -> None:
    from lerobot_assets.tools.features import remove_features

    plain = tmp_path / "plain"
    remove_features(pusht, ["observation.environment_state"], plain)
    out = tmp_path / "out"
    result = annotate_dataset(plain, out, SimBackend())
    assert "vqa" not in result.rows_per_style and result.rows_per_style["subtask"] >= 3
    for ep in iter_episodes(out):
        subtasks = spans_from_rows(ep.persistent)
        assert subtasks[0].start == ep.times[0]
        assert {s.text for s in subtasks} <= {"move the arm", "move toward the next position", "hold still", "pause"}


# -- the edit tools and readers ---------------------------------------------------------------


def test_edit_tools_carry_annotations(annotated: Path, tmp_path: Path) -> None:
    old = _episodes(annotated)
    delete_episodes(annotated, [1], tmp_path / "del")
    split_dataset(annotated, {"a": [0], "b": [1, 2]}, tmp_path / "split")
    merge_datasets([("x", annotated), ("y", tmp_path / "del")], tmp_path / "merged")
    recompute_stats(annotated, tmp_path / "stats")
    expect = {
        "del": [0, 2],
        "split/a": [0],
        "split/b": [1, 2],
        "merged": [0, 1, 2, 0, 2],
        "stats": [0, 1, 2],
    }
    for name, sources in expect.items():
        root = tmp_path / name
        got = _episodes(root)
        assert [_strip(got[i]) for i in range(len(sources))] == [_strip(old[s]) for s in sources], name
        for path in root.glob("data/*/*.parquet"):
            assert pq.read_schema(path).field("language_persistent").type == PERSISTENT_TYPE
            assert pq.read_schema(path).field("language_events").type == EVENTS_TYPE
        assert validate_dataset(root).problems == [], name
        assert json.loads((root / "meta/info.json").read_text())["tools"][0]["function"]["name"] == "say"


def test_map_style_reader_returns_language_per_frame(annotated: Path) -> None:
    from lerobot_assets.loading import LeRobotV3Dataset

    ds = LeRobotV3Dataset(annotated)
    table = pq.read_table(sorted(annotated.glob("data/*/*.parquet"))[0])
    for i in (0, 5):
        item = ds[i]
        assert isinstance(item["language_persistent"], list) and isinstance(item["language_events"], list)
        # The stored rows, with tool calls decoded from their JSON text (as LeRobot's Json feature does).
        stored = table.column("language_persistent")[i].as_py()
        assert [m["content"] for m in item["language_persistent"]] == [m["content"] for m in stored]
        for m in item["language_persistent"] + item["language_events"]:
            assert m["tool_calls"] is None or all(isinstance(c, dict) for c in m["tool_calls"])
    with pytest.raises(ValueError, match="language_events.*language feature"):
        LeRobotV3Dataset(annotated, delta_timestamps={"language_events": [0.0]})


def test_streaming_reader_returns_language_per_frame(annotated: Path) -> None:
    from lerobot_assets.loading import LeRobotV3Dataset, StreamingDataset, streaming_collate

    mapped = LeRobotV3Dataset(annotated)
    items = list(StreamingDataset(annotated, shuffle=False))
    assert len(items) == len(mapped)
    for i in (0, len(items) // 2, len(items) - 1):
        assert items[i]["language_persistent"] == mapped[i]["language_persistent"]
        assert items[i]["language_events"] == mapped[i]["language_events"]
    batch = streaming_collate(items[:4])
    assert isinstance(batch["language_persistent"], list) and len(batch["language_persistent"]) == 4


def test_contact_frames_follow_block_motion() -> None:
    kp = np.zeros((6, 16))
    kp[2], kp[3:] = 1.0, 2.0  # the block moves during steps 1 and 2, then rests
    assert contact_frames(kp).tolist() == [False, True, True, False, False, False]


def test_collate_keeps_language_lists() -> None:
    import torch

    from lerobot_assets.annotate.collate import collate_with_language

    row = {"role": "assistant", "content": "a", "style": "subtask", "timestamp": 0.0, "camera": None, "tool_calls": None}
    samples = [
        {"action": torch.zeros(2), "language_persistent": [row], "language_events": []},
        None,
        {"action": torch.ones(2), "language_persistent": [row, row], "language_events": [dict(row, style="vqa")]},
    ]
    batch = collate_with_language(samples)
    assert batch["action"].shape == (2, 2)
    assert batch["language_persistent"] == [[row], [row, row]] and batch["language_events"] == [[], [dict(row, style="vqa")]]
    with pytest.raises(ValueError, match="only some samples"):
        collate_with_language([samples[0], {"action": torch.ones(2)}])


def test_validator_warnings() -> None:
    rows = _valid()
    rows["plan"] = [r for r in rows["plan"] if r["style"] != "plan"]
    rows["plan"][-1]["timestamp"] = TIMES[13]  # memory off the subtask start
    rows["interjections"] = rows["interjections"][:1]
    report = validate_episode(3, TIMES, rows, CAMS)
    assert report.errors == []
    assert {i.rule for i in report.warnings} == {"no_plan", "memory_not_at_subtask"}


def test_lerobot_annotator_types_are_read_and_written_canonical(annotated: Path, tmp_path: Path) -> None:
    """LeRobot's annotator writes inferred types (double timestamps, struct tool calls, null-typed
    columns). Re-annotating one episode of such a dataset keeps the others' rows and writes the
    canonical types."""
    import shutil

    src = tmp_path / "lerobot-written"
    shutil.copytree(annotated, src)
    for path in src.glob("data/*/*.parquet"):
        table = pq.read_table(path)
        pers = [
            [{"role": r["role"], "content": r["content"], "style": r["style"], "timestamp": float(r["timestamp"]), "camera": None, "tool_calls": None} for r in frame]
            for frame in table.column("language_persistent").to_pylist()
        ]
        events = [
            [{"role": r["role"], "content": r["content"], "style": r["style"], "camera": r["camera"],
              "tool_calls": [json.loads(c) for c in r["tool_calls"]] if r["tool_calls"] else None} for r in frame]
            for frame in table.column("language_events").to_pylist()
        ]
        table = table.drop_columns(["language_persistent", "language_events"])
        table = table.append_column("language_persistent", pa.array(pers)).append_column("language_events", pa.array(events))
        assert pa.types.is_float64(table.schema.field("language_persistent").type.value_type.field("timestamp").type)
        assert pa.types.is_null(table.schema.field("language_persistent").type.value_type.field("camera").type)
        pq.write_table(table, path)
    old = _episodes(src)
    out = tmp_path / "out"
    annotate_dataset(src, out, SimBackend(), episodes=[0], modules=["vqa"])
    new = _episodes(out)
    assert _strip(new[1]) == _strip(old[1]) and _strip(new[2]) == _strip(old[2])
    for path in out.glob("data/*/*.parquet"):
        assert pq.read_schema(path).field("language_persistent").type == PERSISTENT_TYPE
        assert pq.read_schema(path).field("language_events").type == EVENTS_TYPE
    assert validate_annotations(out).ok
