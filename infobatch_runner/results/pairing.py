"""Pair each run with its full-data baseline and group the runs a comparison counts.

Each run is paired with the full-data run(s) of the same setting (`summary["setting"]`: dataset,
model, optimizer, schedule, trainer settings incl. loader and compile, precision, device) and seed.
Statistics count distinct seeds, not runs: within one group (setting, strategy, parameters) the runs
of one seed are averaged into one value per seed (final accuracy, cost, sample saving), and so are
the full runs of one seed into its baseline (the same full run repeated, e.g. by a sweep over
prune.ratio). Δacc and saving_wall = 1 - cost / baseline cost are then paired per seed and
summarised over seeds.
"""

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from infobatch_runner.pruning import ignored_params
from infobatch_runner.results.budget import Against
from infobatch_runner.results.drift import overlapping, wall_warnings
from infobatch_runner.results.runs import Run, find_runs
from infobatch_runner.results.stats import Stat


IGNORED_PRUNE_KEYS = {"name", "cache", "cache_dir"}


@dataclass
class Baseline:
    cost_s: float
    final_acc: float
    runs: int
    members: list[Run] = field(default_factory=list)  # the full runs averaged


def baselines(runs: list[Run]) -> dict[tuple[str, int], Baseline]:
    """The full-data baseline of each (setting, seed): the mean of its full runs."""
    found: dict[tuple[str, int], list[Run]] = {}
    for run in runs:
        if run.is_baseline:
            found.setdefault((run.setting_key, run.seed), []).append(run)
    return {
        key: Baseline(statistics.fmean(r.summary["time_cost_s"] for r in rs),
                      statistics.fmean(r.summary["final/test_acc"] for r in rs), len(rs), rs)
        for key, rs in found.items()
    }


def against(summary: dict, baseline: Baseline) -> dict:
    """What a run's summary (and its W&B run) records about its baseline: the wall-clock saving, the
    baseline's accuracy and the accuracy difference in percentage points."""
    return {"saving_wall": saving_wall(summary["time_cost_s"], baseline),
            "baseline/test_acc": baseline.final_acc,
            "delta_acc_pp": 100 * (summary["final/test_acc"] - baseline.final_acc)}


def baseline_for(summary: dict, sweep_dir: Path) -> Baseline | None:
    """The baseline among the finished runs of a sweep folder, for a run that is just ending."""
    runs = find_runs([sweep_dir])
    return baselines(runs).get((json.dumps(summary["setting"], sort_keys=True), summary["seed"]))


def wall_na_reason(baseline: Baseline) -> str | None:
    """Why no wall-clock saving can be computed against this baseline, or None when it can."""
    if not (math.isfinite(baseline.cost_s) and baseline.cost_s > 0):
        return f"baseline cost is {baseline.cost_s:g} s"
    return None


def saving_wall(cost_s: float, baseline: Baseline) -> float | None:
    """1 - cost / baseline cost; None when the baseline's cost is not > 0 (see wall_na_reason)."""
    if wall_na_reason(baseline) is not None:
        return None
    return 1.0 - cost_s / baseline.cost_s


@dataclass
class SeedValues:
    """One group's runs of one seed, averaged: the unit the statistics count."""

    runs: list[Run]
    final_acc: float
    cost_s: float
    saving_samples: float
    baseline: Baseline | None = None
    acc_diff: float | None = None  # paired with the baseline's mean over its full runs of this seed
    saving_wall: float | None = None
    wall_na: str | None = None  # why saving_wall is None although there is a baseline
    wall_warnings: list[str] = field(default_factory=list)  # why saving_wall may be the machine's (drift.py)


@dataclass
class Group:
    """One strategy with one set of parameters in one setting, over distinct seeds (repeats averaged)."""

    label: str
    strategy: str
    setting_key: str
    runs: list[Run] = field(default_factory=list)
    seeds: dict[int, SeedValues] = field(default_factory=dict)  # by seed, ascending
    final_acc: Stat = field(default_factory=lambda: Stat([]))  # one value per seed
    saving_samples: Stat = field(default_factory=lambda: Stat([]))
    cost_s: Stat = field(default_factory=lambda: Stat([]))
    saving_wall: Stat = field(default_factory=lambda: Stat([]))  # per paired seed with a baseline cost > 0
    acc_diff: Stat = field(default_factory=lambda: Stat([]))  # per paired seed
    baseline_runs: list[int] = field(default_factory=list)  # full runs averaged, per paired seed
    unpaired: list[Run] = field(default_factory=list)  # runs of the seeds without a baseline
    budget: Against | None = None  # against the full-data budget curve (budget.py), where there is one

    @property
    def wall_na(self) -> list[tuple[int, str]]:
        """(seed, reason) for the paired seeds whose wall-clock saving cannot be computed."""
        return [(seed, sv.wall_na) for seed, sv in self.seeds.items() if sv.wall_na]

    @property
    def wall_unreliable(self) -> list[tuple[int, str]]:
        """(seed, reason) for the paired seeds whose wall-clock saving may be the machine's, not the strategy's."""
        return [(seed, w) for seed, sv in self.seeds.items() for w in sv.wall_warnings]


def _params(summary: dict) -> dict:
    """The strategy's parameters that shape its runs: not the runner's keys (the score cache), nor
    those it ignores (the ratio of budget mode, max_ratio outside it, any of full's)."""
    prune = summary["prune"]
    ignored = ignored_params(prune) if isinstance(prune.get("name"), str) else set()
    return {k: v for k, v in prune.items() if k not in IGNORED_PRUNE_KEYS and k not in ignored}


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def group_runs(runs: list[Run]) -> list[Group]:
    """Runs grouped by (setting, strategy, parameters); within a group the runs of one seed are averaged
    into one value per seed, then paired per seed with that seed's baseline (its full runs averaged)."""
    base = baselines(runs)
    overlaps = overlapping(runs)
    varying: dict[str, dict[str, set[str]]] = {}  # per strategy, the parameters that differ between its runs
    for run in runs:
        for k, v in _params(run.summary).items():
            varying.setdefault(run.summary["strategy"], {}).setdefault(k, set()).add(json.dumps(v, sort_keys=True))
    groups: dict[tuple, Group] = {}
    for run in runs:
        s = run.summary
        params = _params(s)
        if run.is_baseline:
            label, key_params = "full", "{}"  # the ratio a sweep passes to full is ignored
        else:
            shown = [k for k, vs in varying.get(s["strategy"], {}).items() if len(vs) > 1 or k == "ratio"]
            if params.get("target_saving") is not None:  # the target names the run; a ratio only if it varies
                shown = [k for k in shown if k != "ratio" or len(varying[s["strategy"]]["ratio"]) > 1] + ["target_saving"]
            label = s["strategy"] + "".join(f" {k}={_fmt(params.get(k))}" for k in dict.fromkeys(shown))
            key_params = json.dumps(params, sort_keys=True)
        g = groups.setdefault((run.setting_key, s["strategy"], key_params), Group(label, s["strategy"], run.setting_key))
        g.runs.append(run)
    for g in groups.values():
        by_seed: dict[int, list[Run]] = {}
        for run in g.runs:
            by_seed.setdefault(run.seed, []).append(run)
        for seed in sorted(by_seed):
            rs = by_seed[seed]
            sv = SeedValues(rs, statistics.fmean(r.summary["final/test_acc"] for r in rs),
                            statistics.fmean(r.summary["time_cost_s"] for r in rs),
                            statistics.fmean(r.summary["saving_samples"] for r in rs))
            g.seeds[seed] = sv
            g.final_acc.values.append(sv.final_acc)
            g.cost_s.values.append(sv.cost_s)
            g.saving_samples.values.append(sv.saving_samples)
            b = base.get((g.setting_key, seed))
            if b is None:
                g.unpaired.extend(rs)
                continue
            sv.baseline = b
            sv.acc_diff = sv.final_acc - b.final_acc
            g.acc_diff.values.append(sv.acc_diff)
            g.baseline_runs.append(b.runs)
            sv.saving_wall = saving_wall(sv.cost_s, b)
            if g.strategy != "full":
                sv.wall_warnings = wall_warnings(rs, b.members, overlaps)
            if sv.saving_wall is None:
                sv.wall_na = wall_na_reason(b)
            else:
                g.saving_wall.values.append(sv.saving_wall)
    return sorted(groups.values(), key=lambda g: (g.setting_key, g.strategy != "full", g.label))
