"""Per-episode metrics, their aggregates, and a Beta-posterior interval for the success rate.

The interval: with a uniform prior, k successes in n episodes give the posterior Beta(k+1, n-k+1);
its equal-tailed 95% interval is reported next to `pc_success`. The regularized incomplete beta
function is evaluated by its continued fraction (Numerical Recipes 6.4) and inverted by bisection:
no scipy needed, accurate to ~1e-10.
"""

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class EpisodeMetrics:
    episode_ix: int
    seed: int
    sum_reward: float
    max_reward: float
    success: bool
    length: int  # steps taken: done latches at success or the step limit, nothing counted past it
    max_coverage: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _betacf(a: float, b: float, x: float) -> float:
    qab, qap, qam = a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > 1e-300 else 1e-300)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > 1e-300 else 1e-300)
        c = 1 + aa / c if abs(1 + aa / c) > 1e-300 else 1e-300
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > 1e-300 else 1e-300)
        c = 1 + aa / c if abs(1 + aa / c) > 1e-300 else 1e-300
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b) (the Beta(a, b) CDF at x)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    ln_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(ln_front)
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1 - front * _betacf(b, a, 1 - x) / b


def beta_quantile(a: float, b: float, p: float) -> float:
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if betainc(a, b, mid) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def success_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Equal-tailed `level` interval of the success probability (Beta(k+1, n-k+1) posterior), in [0, 1]."""
    tail = (1 - level) / 2
    a, b = successes + 1, n - successes + 1
    return beta_quantile(a, b, tail), beta_quantile(a, b, 1 - tail)


def aggregate(episodes: Sequence[EpisodeMetrics], level: float = 0.95) -> dict[str, Any]:
    """LeRobot's aggregates (`avg_sum_reward`, `avg_max_reward`, `pc_success` in percent,
    `n_episodes`) plus the interval of `pc_success` in percent."""
    n = len(episodes)
    k = sum(e.success for e in episodes)
    lo, hi = success_interval(k, n, level) if n else (0.0, 1.0)
    return {
        "avg_sum_reward": sum(e.sum_reward for e in episodes) / n if n else float("nan"),
        "avg_max_reward": sum(e.max_reward for e in episodes) / n if n else float("nan"),
        "pc_success": 100.0 * k / n if n else float("nan"),
        "n_episodes": n,
        "successes": k,
        "pc_success_interval": [100.0 * lo, 100.0 * hi],
        "interval_level": level,
    }
