"""Per-episode statistics and their exact aggregation into dataset statistics.

Numeric features: exact moments and exact quantiles over every frame.
Image/video features: per-channel statistics in [0, 1] from a 256-level histogram of the
(spatially strided) pixels, which merges exactly across episodes, so dataset quantiles are
right for the whole dataset rather than an average of per-episode quantiles.
"""

from lerobot_assets.stats.image import ImageStatsAccumulator, image_stats_from_histogram
from lerobot_assets.stats.merge import merge_moments
from lerobot_assets.stats.numeric import QUANTILES, STAT_KEYS, numeric_stats

__all__ = [
    "ImageStatsAccumulator",
    "QUANTILES",
    "STAT_KEYS",
    "image_stats_from_histogram",
    "merge_moments",
    "numeric_stats",
]
