"""lerobot-assets: LeRobot v3.0 datasets as a declarative Dagster asset graph.

The sub-packages other than `defs` form a plain library with no Dagster import.
"""

__version__ = "0.1.0"
