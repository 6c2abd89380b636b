"""The asset graph's lineage as a reviewed snapshot: every asset key with its upstream keys, and every
check with its asset. A lineage change fails here until tests/snapshots/lineage.txt is updated with
it, so it shows in review.

Update after an intended change: LINEAGE_SNAPSHOT_UPDATE=1 pytest tests/test_lineage_snapshot.py
"""

import os
from pathlib import Path

import dagster as dg

SNAPSHOT = Path(__file__).parent / "snapshots" / "lineage.txt"


def lineage(defs: dg.Definitions) -> str:
    graph = defs.resolve_asset_graph()
    lines = []
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        parents = sorted(p.to_user_string() for p in node.parent_keys)
        partitioned = " [partitioned]" if node.partitions_def is not None else ""
        lines.append(f"{key.to_user_string()}{partitioned} <- {', '.join(parents) or '-'}")
    for check in sorted(graph.asset_check_keys, key=lambda c: (c.asset_key.to_user_string(), c.name)):
        lines.append(f"check {check.asset_key.to_user_string()}:{check.name}")
    return "\n".join(lines) + "\n"


def test_lineage_matches_the_snapshot() -> None:
    from definitions import defs

    dg.Definitions.validate_loadable(defs)
    got = lineage(defs)
    if os.environ.get("LINEAGE_SNAPSHOT_UPDATE"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(got)
    assert got == SNAPSHOT.read_text(), f"the asset graph's lineage changed; review and update {SNAPSHOT} (see this module's docstring)"
