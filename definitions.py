"""The Dagster code location: `defs` assembles the asset graph (see lerobot_assets/defs/).

`dagster dev` (from the repo root; pyproject's [tool.dagster] and workspace.yaml point here) and
`dagster asset materialize -m definitions --select ...` load this module.
"""

from lerobot_assets.defs.definitions import defs

__all__ = ["defs"]
