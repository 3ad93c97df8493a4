"""Time to accuracy: each run against the full-data budget curve of its seed.

Full-data runs of one setting that differ only in their epoch count (trainer.epochs, the schedule
compressed with it; a short_schedule run is one too: full data for fewer epochs) give, per seed, a
curve of final accuracy against cost, in sample passes (samples_trained + samples_scoring) and in
wall-clock seconds (time_cost_s). The curve is joined piecewise linearly in cost between its
measured budgets; runs at one budget are averaged. Against it, a run of cost c and accuracy a has

- a speedup at equal accuracy: the cost at which the curve first reaches a (walking up from its
  cheapest budget), divided by c;
- a Δacc at equal cost: a minus the curve's accuracy at c.

Outside the measured budgets these are bounds, never extrapolations, read under the one assumption
that more budget never lowers full data's accuracy: an accuracy above every budget's needs more
than the largest budget (speedup > C_max / c), one the cheapest budget already reaches needs at
most that (speedup <= C_min / c); a cost below the cheapest budget has Δacc >= a - acc(C_min), one
above the largest Δacc <= a - acc(C_max). Statistics are over distinct seeds, each paired with its
own seed's curve: a mean and Student-t 95% CI where every seed has a value, else the mean as a bound.
"""

import bisect
import json
import math
import statistics
from dataclasses import dataclass, field

from infobatch_runner.results.runs import Run
from infobatch_runner.results.stats import Stat

AXES = ("samples", "wall")  # the two costs: sample passes, wall-clock seconds
CURVE_STRATEGIES = ("full", "short_schedule")  # full data, weight 1: the points of a budget curve
EXACT, AT_LEAST, AT_MOST = "=", ">=", "<="


def curve_key(setting: dict) -> str:
    """A setting without its epoch count: the runs whose full-data points make one curve."""
    trainer = {k: v for k, v in setting.get("trainer", {}).items() if k != "epochs"}
    return json.dumps({**setting, "trainer": trainer}, sort_keys=True)


def cost(run: Run, axis: str) -> float:
    s = run.summary
    if axis == "wall":
        return s["time_cost_s"]
    return s.get("samples_trained", math.nan) + s.get("samples_scoring", 0.0)


def on_a_curve(run: Run) -> bool:
    """Full data (full, short_schedule) with its sample passes counted: a point of a budget curve
    (summaries of versions before samples_trained have none)."""
    return run.summary["strategy"] in CURVE_STRATEGIES and math.isfinite(cost(run, "samples"))


@dataclass(frozen=True)
class Bounded:
    """A value, or a bound on it (relation AT_LEAST or AT_MOST) where the curve ends."""

    value: float
    relation: str = EXACT

    def __truediv__(self, other: float) -> "Bounded":
        return Bounded(self.value / other, self.relation)

    def __rsub__(self, other: float) -> "Bounded":  # a - acc: a bound on acc flips
        flipped = {AT_LEAST: AT_MOST, AT_MOST: AT_LEAST}.get(self.relation, EXACT)
        return Bounded(other - self.value, flipped)


@dataclass
class Curve:
    """One seed's full-data points on one cost axis, ascending in cost, one per budget."""

    costs: list[float]
    accs: list[float]

    @classmethod
    def of(cls, runs: list[Run], axis: str) -> "Curve":
        by_budget: dict[float, list[Run]] = {}
        for r in runs:  # a budget: the sample passes (the same for repeats and for short_schedule's twin)
            by_budget.setdefault(cost(r, "samples"), []).append(r)
        points = sorted((statistics.fmean(cost(r, axis) for r in rs), statistics.fmean(r.summary["final/test_acc"]
                                                                                        for r in rs))
                        for rs in by_budget.values())
        return cls([c for c, _ in points], [a for _, a in points])

    def cost_to_reach(self, acc: float) -> Bounded:
        if self.accs[0] >= acc:
            return Bounded(self.costs[0], AT_MOST)
        for (c0, a0), (c1, a1) in zip(zip(self.costs, self.accs), zip(self.costs[1:], self.accs[1:])):
            if a1 >= acc > a0:
                return Bounded(c0 + (acc - a0) / (a1 - a0) * (c1 - c0))
        return Bounded(self.costs[-1], AT_LEAST)

    def acc_at(self, c: float) -> Bounded:
        if c < self.costs[0]:
            return Bounded(self.accs[0], AT_MOST)
        if c >= self.costs[-1]:
            return Bounded(self.accs[-1], EXACT if c == self.costs[-1] else AT_LEAST)
        i = bisect.bisect_right(self.costs, c) - 1  # costs[i] <= c < costs[i + 1]
        (c0, a0), (c1, a1) = (self.costs[i], self.accs[i]), (self.costs[i + 1], self.accs[i + 1])
        return Bounded(a0 + (c - c0) / (c1 - c0) * (a1 - a0))


@dataclass
class BoundedStat:
    """One value or bound per distinct seed."""

    values: list[Bounded] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def relation(self) -> str | None:
        """EXACT when every seed has a value, the shared direction of the bounds, or None when the
        bounds point both ways (no mean can be told)."""
        kinds = {v.relation for v in self.values} - {EXACT}
        return EXACT if not kinds else kinds.pop() if len(kinds) == 1 else None

    @property
    def mean(self) -> float:
        return statistics.fmean(v.value for v in self.values) if self.values else math.nan

    def stat(self) -> Stat:
        return Stat([v.value for v in self.values])

    def ci95(self) -> tuple[float, float] | None:
        return self.stat().ci95() if self.relation == EXACT else None

    def text(self, scale: float = 1.0, suffix: str = "", signed: bool = False) -> str:
        """'1.23x [1.10, 1.36]', '>= 1.33x', '+0.12 [-0.05, +0.29]' or 'n/a' (none, or bounds both
        ways), as a report cell."""
        if not self.values or self.relation is None:
            return "n/a"
        spec = "+.2f" if signed else ".2f"
        if self.relation != EXACT:
            return f"{self.relation} {scale * self.mean:{spec}}{suffix}"
        ci = self.ci95()
        return f"{scale * self.mean:{spec}}{suffix}" + (f" [{scale * ci[0]:{spec}}, {scale * ci[1]:{spec}}]" if ci else "")


@dataclass
class Against:
    """A group's figures against the full-data budget curve, per cost axis."""

    speedup: dict[str, BoundedStat] = field(default_factory=lambda: {a: BoundedStat() for a in AXES})
    delta_acc: dict[str, BoundedStat] = field(default_factory=lambda: {a: BoundedStat() for a in AXES})
    budgets: int = 0  # the fewest budgets a paired seed's curve has

    def verdict(self) -> str:
        """Whether the run beat training fewer epochs, on the wall clock: its speedup's 95% CI above 1
        ("faster"), below 1 ("slower") or across ("inconclusive"); with bounds, what every seed says."""
        speed = self.speedup["wall"]
        if speed.n == 0:
            return "no budget curve"
        if speed.relation == EXACT:
            ci = speed.ci95()
            if ci is None:
                word = "faster" if speed.mean > 1 else "slower"
                return f"{word} than training fewer epochs (point estimate, {speed.n} seed(s))"
            if ci[0] > 1:
                return "faster than training fewer epochs"
            if ci[1] < 1:
                return "slower than training fewer epochs"
            return "inconclusive"
        faster = all(v.value > 1 if v.relation == EXACT else v.relation == AT_LEAST and v.value >= 1
                     for v in speed.values)
        slower = all(v.value < 1 if v.relation == EXACT else v.relation == AT_MOST and v.value <= 1
                     for v in speed.values)
        if faster or slower:
            return f"{'faster' if faster else 'slower'} than training fewer epochs on every seed (bounds, no CI)"
        return "inconclusive (bounds)"


@dataclass
class BudgetPoint:
    """One budget of a setting's full-data curve, over seeds: its epochs, its mean cost per axis,
    and its final accuracy per seed (a seed's runs at this budget averaged)."""

    epochs: float
    cost: dict[str, float]
    acc: Stat


def budget_points(setting_key: str, groups: list) -> list[BudgetPoint]:
    """The full-data budgets (full runs of every epoch count, short_schedule runs) that a setting's
    runs are paired with, cheapest first."""
    key = curve_key(json.loads(setting_key))
    by_budget: dict[float, dict[int, list[Run]]] = {}
    for g in groups:
        if g.strategy in CURVE_STRATEGIES and curve_key(json.loads(g.setting_key)) == key:
            for seed, sv in g.seeds.items():
                for r in filter(on_a_curve, sv.runs):
                    epochs = cost(r, "samples") / max(r.summary.get("num_train") or 1, 1)
                    by_budget.setdefault(epochs, {}).setdefault(seed, []).append(r)
    return [BudgetPoint(epochs, {axis: statistics.fmean(statistics.fmean(cost(r, axis) for r in rs)
                                                        for rs in seeds.values()) for axis in AXES},
                        Stat([statistics.fmean(r.summary["final/test_acc"] for r in rs) for rs in seeds.values()]))
            for epochs, seeds in sorted(by_budget.items())]


def curves_of(runs: list[Run]) -> dict[tuple[str, int], list[Run]]:
    """The full-data runs of each (setting without epochs, seed)."""
    found: dict[tuple[str, int], list[Run]] = {}
    for r in filter(on_a_curve, runs):
        found.setdefault((curve_key(r.summary["setting"]), r.seed), []).append(r)
    return found


RUN_KEYS = {("speedup", "wall"): "speedup", ("speedup", "samples"): "speedup_samples",
            ("delta", "wall"): "delta_acc_equal_cost_pp", ("delta", "samples"): "delta_acc_equal_cost_samples_pp"}


def run_figures(run: Run, members: list[Run]) -> dict:
    """One run's figures against its seed's curve (`members`, the full-data runs), for its
    summary.json and W&B: each value and, beside it as <key>_relation, "=" or the bound it is
    (">=", "<="). {} without a curve of two budgets."""
    if len({cost(r, "samples") for r in members}) < 2:
        return {}
    out = {}
    acc = run.summary["final/test_acc"]
    for axis in AXES:
        curve, mine = Curve.of(members, axis), cost(run, axis)
        if not (math.isfinite(mine) and mine > 0):
            continue
        for kind, figure, scale in (("speedup", curve.cost_to_reach(acc) / mine, 1.0),
                                    ("delta", acc - curve.acc_at(mine), 100.0)):
            key = RUN_KEYS[kind, axis]
            out[key], out[f"{key}_relation"] = scale * figure.value, figure.relation
    return out


def against_curves(groups, runs: list[Run]) -> None:
    """Set `budget` on every group but full data's and short_schedule's (points of the curve
    themselves) whose seeds have a curve of two budgets or more; the others keep None."""
    curves = curves_of(runs)
    for g in groups:
        if g.strategy in CURVE_STRATEGIES:
            continue
        figures = Against()
        budgets = []
        for seed, sv in g.seeds.items():
            members = curves.get((curve_key(sv.runs[0].summary["setting"]), seed), [])
            if len({cost(r, "samples") for r in members}) < 2:
                continue
            budgets.append(len({cost(r, "samples") for r in members}))
            for axis in AXES:
                curve = Curve.of(members, axis)
                mine = statistics.fmean(cost(r, axis) for r in sv.runs)
                if not (math.isfinite(mine) and mine > 0):
                    continue
                figures.speedup[axis].values.append(curve.cost_to_reach(sv.final_acc) / mine)
                figures.delta_acc[axis].values.append(sv.final_acc - curve.acc_at(mine))
        if budgets:
            figures.budgets = min(budgets)
            g.budget = figures

