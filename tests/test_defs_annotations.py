"""`annotated_dataset` on a real Dagster instance: downstream of curated_dataset, its blocking
validator check, its metadata (rows per style, episodes, VLM calls, a preview image), and a failing
check on a dataset whose annotations break a rule."""

import json
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
from test_defs_support import check_metadata, checks, metadata, resources

from lerobot_assets.annotate.schema import to_arrow
from lerobot_assets.defs.annotations.assets import annotated_dataset
from lerobot_assets.defs.annotations.checks import annotated_dataset_valid
from lerobot_assets.home import HomeLayout
from lerobot_assets.sources.pusht.config import PushTSourceConfig
from lerobot_assets.sources.pusht.record import record_pusht


def test_annotated_dataset_asset_and_check(instance: dg.DagsterInstance, home: Path) -> None:
    from lerobot_assets.defs.definitions import defs

    # lineage: curated_dataset -> annotated_dataset
    graph = defs.resolve_asset_graph()
    assert dg.AssetKey("curated_dataset") in graph.get(dg.AssetKey("annotated_dataset")).parent_keys

    layout = HomeLayout(home)
    record_pusht(layout.dataset("curated_dataset"), PushTSourceConfig(seed=2, episodes=2, max_steps=50, top_camera=False))
    result = dg.materialize([annotated_dataset, annotated_dataset_valid], instance=instance, resources=resources(home), raise_on_error=False)
    assert result.success
    assert checks(result) == {"annotated_dataset_valid": True}
    meta = metadata(result, "annotated_dataset")
    assert meta["episodes_covered"] == 2 and meta["vlm_calls"] == 0 and meta["vlm_calls_from_cache"] == 0
    assert set(meta["rows_per_style"]) == {"subtask", "plan", "memory", "task_aug", "interjection", "speech", "vqa"}
    assert "data:image/png;base64," in meta["preview"] and Path(meta["preview_path"]).is_file()
    out = layout.dataset("annotated_dataset")
    assert json.loads((out / "meta/info.json").read_text())["features"]["language_persistent"]["dtype"] == "language"

    # A broken row (an interjection with no speech atom or plan at its time) fails the blocking check.
    path = next(out.glob("data/*/*.parquet"))
    table = pq.read_table(path)
    events = table.column("language_events").to_pylist()
    events[3] = [{"role": "user", "content": "stop", "style": "interjection", "camera": None, "tool_calls": None}]
    i = table.schema.get_field_index("language_events")
    table = table.set_column(i, table.schema.field(i), to_arrow("language_events", events))
    pq.write_table(table, path)
    again = dg.materialize([annotated_dataset, annotated_dataset_valid], instance=instance, resources=resources(home), raise_on_error=False,
                           selection=dg.AssetSelection.checks_for_assets("annotated_dataset"))
    assert checks(again) == {"annotated_dataset_valid": False}
    assert "interjection_without_speech" in check_metadata(again, "annotated_dataset_valid")["problems"]
