"""The statistics of a comparison: mean, sd and a Student-t 95% interval over distinct seeds, and
the verdict that tests the paired accuracy difference against a tolerance.
"""

import math
import statistics
from dataclasses import dataclass


DEFAULT_TOLERANCE = 0.005  # 0.5 percentage points of test accuracy
MIN_SEEDS_FOR_CI = 3


def t_within(t: float, df: int) -> float:
    """P(|T| < t) for Student's t with `df` (a positive integer) degrees of freedom, in closed form
    (Abramowitz & Stegun 26.7.3-4): finite sums in cos(theta), theta = atan(t / sqrt(df))."""
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    if df % 2 == 1:
        term, total = math.cos(theta), 0.0
        for k in range(1, (df - 1) // 2 + 1):  # cos + 2/3 cos^3 + (2*4)/(3*5) cos^5 + ... up to cos^(df-2)
            total += term
            term *= c2 * (2 * k) / (2 * k + 1)
        return 2 / math.pi * (theta + math.sin(theta) * total)
    term, total = 1.0, 0.0
    for k in range(1, df // 2 + 1):  # 1 + 1/2 cos^2 + (1*3)/(2*4) cos^4 + ... up to cos^(df-2)
        total += term
        term *= c2 * (2 * k - 1) / (2 * k)
    return math.sin(theta) * total


def t_quantile(p: float, df: int) -> float:
    """The p-quantile (p > 0.5) of Student's t with `df` degrees of freedom, at every df: no switch
    to the normal's 1.96 for large samples, which makes a CI too narrow (bisection to 1e-12)."""
    within = 2 * p - 1
    low, high = 0.0, 1.0
    while t_within(high, df) < within:
        high *= 2
    for _ in range(200):
        mid = (low + high) / 2
        if t_within(mid, df) < within:
            low = mid
        else:
            high = mid
        if high - low < 1e-12:
            break
    return (low + high) / 2


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
        half = t_quantile(0.975, self.n - 1) * self.sd / math.sqrt(self.n)
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
