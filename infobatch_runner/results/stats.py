"""The statistics of a comparison: mean, sd and a Student-t 95% interval over distinct seeds, and
the verdict that tests the paired accuracy difference against a tolerance.
"""

import math
import statistics
from dataclasses import dataclass


DEFAULT_TOLERANCE = 0.005  # 0.5 percentage points of test accuracy
# Two-sided 95% Student t quantiles by degrees of freedom; beyond 30, the normal 1.96 is close.
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]
MIN_SEEDS_FOR_CI = 3


@dataclass
class Stat:
    values: list[float]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def sd(self) -> float:
        return statistics.stdev(self.values) if self.n > 1 else math.nan

    def ci95(self) -> tuple[float, float] | None:
        if self.n < MIN_SEEDS_FOR_CI:
            return None
        t = T975[self.n - 2] if self.n - 1 <= len(T975) else 1.96
        half = t * self.sd / math.sqrt(self.n)
        return self.mean - half, self.mean + half


def verdict(diff: Stat, tolerance: float) -> tuple[str, str]:
    """(verdict, what was tested) for the paired accuracy differences (one per distinct seed) against -tolerance."""
    if diff.n == 0:
        return "no baseline", "no full-data run with the same setting and seed"
    tol = f"tolerance -{100 * tolerance:.2f} pp"
    ci = diff.ci95()
    if ci is None:
        what = f"paired mean Δacc {100 * diff.mean:+.2f} pp over {diff.n} seed(s), too few for a CI, vs {tol}"
        return ("lossless (point estimate)" if diff.mean >= -tolerance else "lossy (point estimate)"), what
    lo, hi = ci
    what = f"paired mean Δacc {100 * diff.mean:+.2f} pp, 95% CI [{100 * lo:+.2f}, {100 * hi:+.2f}] over {diff.n} seeds, vs {tol}"
    if lo >= -tolerance:
        return "lossless", what
    if hi < -tolerance:
        return "lossy", what
    return "inconclusive", what
