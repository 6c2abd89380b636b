"""The Dagster layer: thin assets, checks, sensors and jobs over the lerobot_assets library.

Import `defs` from `lerobot_assets.defs.definitions` (this package's modules import dagster; the
rest of lerobot_assets does not).
"""
