"""Compare a sweep's strategies against the full-data baseline: pairing, statistics, report files.

Each run is paired with the full-data run(s) of the same setting (`summary["setting"]`: dataset,
model, optimizer, schedule, trainer settings incl. loader and compile, precision, device) and seed.
Statistics count distinct seeds, not runs: within one group (setting, strategy, parameters) the runs
of one seed are averaged into one value per seed (final accuracy, cost, sample saving), and so are
the full runs of one seed into its baseline (the same full run repeated, e.g. by a sweep over
prune.ratio). Δacc and saving_wall = 1 - cost / baseline cost are then paired per seed and
summarised over seeds; the tables say how many runs and how many distinct seeds each row holds.
The same folder reached twice (`S S`, or `S S/1_job`) and copies of one W&B run (same id) count
once. Folders that cannot be read are skipped with a reason, failed jobs (failed.json) are listed,
runs without a baseline are listed apart: nothing is dropped silently.
"""

import argparse
import csv
import json
import logging
import math
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from infobatch_runner.tracking import VAL_KEYS, write_json_atomic

log = logging.getLogger(__name__)

DEFAULT_TOLERANCE = 0.005  # 0.5 percentage points of test accuracy
# Two-sided 95% Student t quantiles by degrees of freedom; beyond 30, the normal 1.96 is close.
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]
MIN_SEEDS_FOR_CI = 3
IGNORED_PRUNE_KEYS = {"name", "cache", "cache_dir"}
CURVE_KEYS = ("test/acc", "train/kept_fraction", "train/epoch_time_s")  # the metrics.csv columns the plots read


class BadRun(ValueError):
    """A run folder this report cannot use; the message says which file and key, in one line."""


class ReportWriteError(OSError):
    """The report's files could not be written (out folder not creatable or not writable)."""


@dataclass
class Run:
    path: Path
    summary: dict
    rows: list[dict]

    @property
    def setting_key(self) -> str:
        return json.dumps(self.summary["setting"], sort_keys=True)

    @property
    def is_baseline(self) -> bool:
        return self.summary["strategy"] == "full"

    @property
    def seed(self) -> int:
        return self.summary["seed"]

    @property
    def wandb_id(self) -> str | None:
        info = self.summary.get("wandb")
        run_id = info.get("id") if isinstance(info, dict) else None
        return None if run_id is None else str(run_id)


class FailedRun(tuple):
    """A failed job's folder: a (path, error) pair that also carries the exception type and the
    job's overrides read from its failed.json."""

    def __new__(cls, path: Path, error: str, type: str = "", overrides: tuple[str, ...] = ()):
        self = super().__new__(cls, (path, error))
        self.type, self.overrides = type, tuple(overrides)
        return self

    @property
    def path(self) -> Path:
        return self[0]

    @property
    def error(self) -> str:
        return self[1]


REQUIRED = ("setting", "strategy", "prune", "seed", "time_cost_s", "time_scoring_s", "saving_samples", "final/test_acc")


def _short(value) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_number(summary: dict, key: str, low: float | None = None, high: float | None = None) -> None:
    value = summary[key]
    if value is None:
        raise BadRun(f"summary.json: {key} is null")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRun(f"summary.json: {key} is {_short(value)}, not a number")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        finite = False
    if not finite:
        raise BadRun(f"summary.json: {key} is {_short(value)}, not a finite number")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"outside [{low:g}, {high:g}]" if high is not None else f"below {low:g}"
        raise BadRun(f"summary.json: {key} is {value:g}, {bounds}")


def check_summary(summary) -> None:
    """Raise BadRun naming the key when summary.json lacks what the report needs or holds a value
    that would make its statistics wrong (null, a string, NaN, an accuracy outside [0, 1], ...)."""
    if not isinstance(summary, dict):
        kind = "null" if summary is None else type(summary).__name__
        raise BadRun(f"summary.json is not a JSON object but {kind}")
    missing = [k for k in REQUIRED if k not in summary]
    if missing:
        raise BadRun(f"summary.json lacks {', '.join(missing)} (written by another version?)")
    if not isinstance(summary["setting"], dict):
        raise BadRun(f"summary.json: setting is {_short(summary['setting'])}, not an object")
    if not isinstance(summary["strategy"], str):
        raise BadRun(f"summary.json: strategy is {_short(summary['strategy'])}, not a name")
    if not isinstance(summary["prune"], dict):
        raise BadRun(f"summary.json: prune is {_short(summary['prune'])}, not an object")
    if isinstance(summary["seed"], bool) or not isinstance(summary["seed"], int):
        raise BadRun(f"summary.json: seed is {_short(summary['seed'])}, not an integer")
    _check_number(summary, "final/test_acc", 0.0, 1.0)
    _check_number(summary, "time_cost_s", 0.0)
    _check_number(summary, "time_scoring_s", 0.0)
    _check_number(summary, "saving_samples")


def read_rows(path: Path) -> list[dict]:
    """metrics.csv as floats; BadRun naming the line and column of the first value that is not a number.
    The validation columns (absent before they existed) may be empty: NaN, as without a split."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [k for k in CURVE_KEYS if k not in header]
            if missing:
                raise BadRun(f"metrics.csv lacks the column(s) {', '.join(missing)}")
            rows = []
            for row in reader:
                parsed = {}
                for k, v in row.items():
                    if k is None:
                        raise BadRun(f"metrics.csv line {reader.line_num}: more values than columns")
                    try:
                        parsed[k] = math.nan if k in VAL_KEYS and v == "" else float(v)
                    except (TypeError, ValueError):
                        what = "is missing" if v is None else f"is {v!r}, not a number"
                        raise BadRun(f"metrics.csv line {reader.line_num}: {k} {what}") from None
                rows.append(parsed)
            return rows
    except FileNotFoundError:
        raise BadRun("metrics.csv is missing") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise BadRun(f"metrics.csv is not a readable CSV file ({exc})") from None
    except OSError as exc:
        raise BadRun(f"cannot read metrics.csv ({exc.strerror or exc})") from None


def read_run(path: Path) -> Run:
    """The run in a folder; BadRun (a ValueError) with a one-line reason naming the file and key."""
    try:
        summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadRun(f"cannot read summary.json ({exc.strerror or exc})") from None
    except (ValueError, RecursionError) as exc:
        raise BadRun(f"summary.json is not valid JSON ({exc})") from None
    check_summary(summary)
    return Run(path, summary, read_rows(path / "metrics.csv"))


def read_failed(path: Path) -> FailedRun:
    """A failed job's folder, from its failed.json: {"error": "<one sentence>", "type": "<exception class>",
    "overrides": ["prune=...", ...]}. An unreadable failed.json still makes a failed run, saying so."""
    try:
        data = json.loads((path / "failed.json").read_text(encoding="utf-8"))
    except OSError as exc:
        return FailedRun(path, f"failed.json cannot be read ({exc.strerror or exc})")
    except (ValueError, RecursionError) as exc:
        return FailedRun(path, f"failed.json is not valid JSON ({exc})")
    if not isinstance(data, dict):
        return FailedRun(path, "failed.json is not a JSON object")
    error = data.get("error")
    error = " ".join(str(error).split()) if error not in (None, "") else "no error message recorded in failed.json"
    kind = data.get("type")
    overrides = data.get("overrides")
    overrides = [str(o) for o in overrides] if isinstance(overrides, list) else []
    return FailedRun(path, error, str(kind) if kind else "", overrides)


def _folders(dirs: list[Path]) -> list[tuple[Path, bool, bool]]:
    """Every folder under dirs holding a summary.json or a failed.json, once each however often it is
    reached (compared by resolved path), in sorted order: (path as found, has summary, has failed.json)."""
    found: dict[Path, Path] = {}
    for d in dirs:
        for name in ("summary.json", "failed.json"):
            for marker in Path(d).rglob(name):
                if marker.is_file():
                    found.setdefault(marker.parent.resolve(), marker.parent)
    return [(found[key], (key / "summary.json").is_file(), (key / "failed.json").is_file()) for key in sorted(found)]


def find_runs(dirs: list[Path], skipped: list[tuple[Path, str]] | None = None,
              failed: list[FailedRun] | None = None) -> list[Run]:
    """Every run folder under dirs, each counted once: the same folder reached twice (compared by
    resolved path) and a second folder holding the same W&B run id (a copy; the first in sorted path
    order is kept) count once. Folders whose files are unreadable or hold unusable values go to
    `skipped` as (path, reason); folders of failed jobs (failed.json, no summary.json) to `failed`."""
    runs: list[Run] = []
    by_wandb_id: dict[str, Run] = {}
    for path, has_summary, has_failed in _folders(dirs):
        if not has_summary:
            if has_failed and failed is not None:
                failed.append(read_failed(path))
            continue
        try:
            run = read_run(path)
        except BadRun as exc:
            if skipped is not None:
                skipped.append((path, str(exc)))
            continue
        first = by_wandb_id.get(run.wandb_id) if run.wandb_id is not None else None
        if first is not None:
            if skipped is not None:
                skipped.append((path, f"duplicate of {first.path} (same W&B run id {run.wandb_id})"))
            continue
        if run.wandb_id is not None:
            by_wandb_id[run.wandb_id] = run
        runs.append(run)
    return runs


@dataclass
class Baseline:
    cost_s: float
    final_acc: float
    runs: int


def baselines(runs: list[Run]) -> dict[tuple[str, int], Baseline]:
    """The full-data baseline of each (setting, seed): the mean of its full runs."""
    found: dict[tuple[str, int], list[Run]] = {}
    for run in runs:
        if run.is_baseline:
            found.setdefault((run.setting_key, run.seed), []).append(run)
    return {
        key: Baseline(statistics.fmean(r.summary["time_cost_s"] for r in rs),
                      statistics.fmean(r.summary["final/test_acc"] for r in rs), len(rs))
        for key, rs in found.items()
    }


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

    @property
    def wall_na(self) -> list[tuple[int, str]]:
        """(seed, reason) for the paired seeds whose wall-clock saving cannot be computed."""
        return [(seed, sv.wall_na) for seed, sv in self.seeds.items() if sv.wall_na]


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


def _params(summary: dict) -> dict:
    return {k: v for k, v in summary["prune"].items() if k not in IGNORED_PRUNE_KEYS}


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def group_runs(runs: list[Run]) -> list[Group]:
    """Runs grouped by (setting, strategy, parameters); within a group the runs of one seed are averaged
    into one value per seed, then paired per seed with that seed's baseline (its full runs averaged)."""
    base = baselines(runs)
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
            if params.get("target_saving") is not None:
                shown = [k for k in shown if k != "ratio"] + ["target_saving"]
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
            if sv.saving_wall is None:
                sv.wall_na = wall_na_reason(b)
            else:
                g.saving_wall.values.append(sv.saving_wall)
    return sorted(groups.values(), key=lambda g: (g.setting_key, g.strategy != "full", g.label))


def _pm(stat: Stat, scale: float = 100.0, digits: int = 2) -> str:
    if stat.n == 0:
        return "n/a"
    if stat.n == 1:
        return f"{scale * stat.mean:.{digits}f}"
    return f"{scale * stat.mean:.{digits}f} ± {scale * stat.sd:.{digits}f}"


def describe_setting(setting: dict) -> str:
    try:
        ds, model, t = setting["dataset"], setting["model"], setting["trainer"]
        name = model.get("arch", model["name"]) if model["name"] == "timm" else model["name"]
        limit = f" (first {ds['limit_train']})" if ds.get("limit_train") else ""
        return (f"{ds['name']}{limit} / {name}, {setting['optimizer']['name']} + {setting['scheduler']['name']}, "
                f"{t['epochs']} epochs, batch {t['batch_size']}, {setting['precision']} on {setting['device']}")
    except (KeyError, TypeError, AttributeError):  # a setting of another version: say all of it
        return json.dumps(setting, sort_keys=True)


def _leaves(d: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_leaves(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = json.dumps(v, sort_keys=True)
    return out


def setting_names(setting_keys) -> dict[str, str]:
    """describe_setting of each setting, plus the values that tell apart settings it describes alike
    (e.g. two runs differing only in trainer.loader or trainer.compile)."""
    keys = list(dict.fromkeys(setting_keys))
    names = {k: describe_setting(json.loads(k)) for k in keys}
    for name in set(names.values()):
        alike = [k for k in keys if names[k] == name]
        if len(alike) < 2:
            continue
        leaves = [_leaves(json.loads(k)) for k in alike]
        differing = sorted({p for lv in leaves for p in lv if len({lv2.get(p) for lv2 in leaves}) > 1})
        for k, lv in zip(alike, leaves):
            names[k] = name + " (" + ", ".join(f"{p}={lv.get(p, 'unset').strip(chr(34))}" for p in differing) + ")"
    return names


CSV_COLUMNS = ["setting", "strategy", "label", "runs", "seeds", "seeds_paired", "final_acc_mean", "final_acc_sd",
               "acc_diff_mean", "acc_diff_sd", "acc_diff_ci_low", "acc_diff_ci_high", "saving_wall_mean",
               "saving_wall_sd", "saving_samples_mean", "saving_samples_sd", "time_cost_s_mean", "baseline_runs",
               "verdict", "tested"]


def rows_of(groups: list[Group], tolerance: float) -> list[dict]:
    """One row per group; means, sds and CIs over distinct seeds (repeats of a seed averaged first)."""
    names = setting_names(g.setting_key for g in groups)
    rows = []
    for g in groups:
        ci = g.acc_diff.ci95()
        v, tested = ("baseline", "") if g.strategy == "full" else verdict(g.acc_diff, tolerance)
        rows.append({
            "setting": names[g.setting_key], "strategy": g.strategy, "label": g.label,
            "runs": len(g.runs), "seeds": len(g.seeds), "seeds_paired": g.acc_diff.n,
            "final_acc_mean": g.final_acc.mean, "final_acc_sd": g.final_acc.sd,
            "acc_diff_mean": g.acc_diff.mean, "acc_diff_sd": g.acc_diff.sd,
            "acc_diff_ci_low": ci[0] if ci else math.nan, "acc_diff_ci_high": ci[1] if ci else math.nan,
            "saving_wall_mean": g.saving_wall.mean, "saving_wall_sd": g.saving_wall.sd,
            "saving_samples_mean": g.saving_samples.mean, "saving_samples_sd": g.saving_samples.sd,
            "time_cost_s_mean": g.cost_s.mean, "baseline_runs": max(g.baseline_runs, default=0),
            "verdict": v, "tested": tested,
        })
    return rows


def _seed_list(seeds) -> str:
    seeds = list(seeds)
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))


def markdown(groups: list[Group], tolerance: float, skipped: list[tuple[Path, str]] = (),
             failed: list[FailedRun] = ()) -> str:
    names = setting_names(g.setting_key for g in groups)
    lines = ["# Strategy comparison against full data", "",
             f"Accuracy is the final epoch's test accuracy; Δacc and the wall-clock saving are paired per seed with "
             f"the full-data run of the same setting; the verdict tests the paired Δacc against a tolerance of "
             f"-{100 * tolerance:.2f} pp (a 95% CI from {MIN_SEEDS_FOR_CI} seeds on). Values are mean ± sd over "
             f"distinct seeds: repeats of the same seed (same setting, strategy and parameters, or full runs) are "
             f"averaged into one value first, so n, the sd and the CI count distinct seeds, not runs.", ""]
    if not groups:
        lines += ["No finished run to compare.", ""]
    for setting_key in dict.fromkeys(g.setting_key for g in groups):
        mine = [g for g in groups if g.setting_key == setting_key]
        lines += [f"## {names[setting_key]}", "",
                  "| strategy | runs | seeds | final acc % | Δacc pp | wall saving % | sample saving % | cost s | verdict |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for g in mine:
            v = "baseline" if g.strategy == "full" else verdict(g.acc_diff, tolerance)[0]
            note = f" ({max(g.baseline_runs)} baseline runs averaged)" if max(g.baseline_runs, default=1) > 1 else ""
            wall_n = f" ({g.saving_wall.n} of {g.acc_diff.n} seeds)" if 0 < g.saving_wall.n < g.acc_diff.n else ""
            lines.append(f"| {g.label}{note if g.strategy != 'full' else ''} | {len(g.runs)} | {len(g.seeds)} | "
                         f"{_pm(g.final_acc)} | {_pm(g.acc_diff) if g.strategy != 'full' else '0'} | "
                         f"{_pm(g.saving_wall, digits=1)}{wall_n} | {_pm(g.saving_samples, digits=1)} | "
                         f"{_pm(g.cost_s, scale=1.0, digits=1)} | {v} |")
        lines.append("")
        na = [(g, g.wall_na) for g in mine if g.wall_na and g.strategy != "full"]
        if na:
            lines += ["Wall saving n/a (1 - cost / baseline cost is undefined; Δacc is still paired):", ""]
            for g, seeds in na:
                by_reason: dict[str, list[int]] = {}
                for seed, reason in seeds:
                    by_reason.setdefault(reason, []).append(seed)
                lines += [f"- {g.label}: {_seed_list(ss)}: {reason}" for reason, ss in by_reason.items()]
            lines.append("")
        tested = [(g.label, verdict(g.acc_diff, tolerance)[1]) for g in mine if g.strategy != "full" and g.acc_diff.n]
        if tested:
            lines += ["What each verdict tested:", ""] + [f"- {label}: {what}" for label, what in tested] + [""]
    unpaired = [r for g in groups if g.strategy != "full" for r in g.unpaired]
    if unpaired:
        lines += ["## Runs without a full-data baseline", "",
                  "No full-data run shares their setting and seed; their wall-clock saving is unknown.", ""]
        lines += [f"- {r.path}: {r.summary['strategy']} seed {r.summary['seed']}, final acc "
                  f"{100 * r.summary['final/test_acc']:.2f}%, cost {r.summary['time_cost_s']:.1f} s" for r in unpaired]
        lines.append("")
    if skipped:
        lines += ["## Skipped folders", "", "Not in any statistic above:", ""]
        lines += [f"- {path}: {reason}" for path, reason in skipped]
        lines.append("")
    if failed:
        lines += ["## Failed runs", "", "These jobs ended with an error (failed.json, no summary.json); "
                  "they are in no statistic above.", ""]
        for f in failed:
            path, error = f[0], f[1]
            overrides = getattr(f, "overrides", ())
            kind = getattr(f, "type", "")
            lines.append(f"- {path}" + (f" (`{' '.join(overrides)}`)" if overrides else "") + ": "
                         + (f"{kind}: " if kind else "") + error)
        lines.append("")
    return "\n".join(lines)


def compact_table(rows: list[dict]) -> str:
    """The few columns that fit a terminal, one line per strategy."""
    head = (f"{'strategy':<28} {'runs':>4} {'seeds':>5} {'final acc':>15} {'Δacc pp':>14} {'wall saving':>13} "
            f"{'samples':>8}  verdict")
    lines = [head, "-" * len(head)]
    for r in rows:
        def pm(mean, sd, scale=100, d=2):
            if math.isnan(mean):
                return "n/a"
            return f"{scale * mean:.{d}f}" + ("" if math.isnan(sd) else f"±{scale * sd:.{d}f}")
        lines.append(f"{r['label'][:28]:<28} {r['runs']:>4} {r['seeds']:>5} "
                     f"{pm(r['final_acc_mean'], r['final_acc_sd']):>15} "
                     f"{'0' if r['strategy'] == 'full' else pm(r['acc_diff_mean'], r['acc_diff_sd']):>14} "
                     f"{pm(r['saving_wall_mean'], r['saving_wall_sd'], d=1):>13} "
                     f"{100 * r['saving_samples_mean']:>7.1f}%  {r['verdict']}")
    return "\n".join(lines)


@dataclass
class Report:
    groups: list[Group]
    rows: list[dict]
    files: list[Path]
    skipped: list[tuple[Path, str]]  # (folder, why it is in no statistic)
    updated: list[Run]  # runs whose saving_wall this report filled in
    failed: list[FailedRun] = field(default_factory=list)  # (folder, error) of the jobs that wrote failed.json


def write_report(dirs: list[Path], out_dir: Path, tolerance: float = DEFAULT_TOLERANCE) -> Report:
    """report.md, report.csv and the plots in out_dir. FileNotFoundError when dirs hold neither a run
    nor a failed job; ReportWriteError (an OSError) when out_dir cannot be created or written."""
    from infobatch_runner.plots import write_plots

    if not (isinstance(tolerance, (int, float)) and math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"the tolerance must be a finite fraction >= 0, not {tolerance}")
    skipped: list[tuple[Path, str]] = []
    failed: list[FailedRun] = []
    runs = find_runs(dirs, skipped, failed)
    if not runs and not failed:
        why = ""
        if skipped:
            more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
            why = f"; skipped {skipped[0][0]}: {skipped[0][1]}{more}"
        raise FileNotFoundError(f"no readable run folders (summary.json + metrics.csv) under "
                                f"{', '.join(map(str, dirs))}{why}")
    groups = group_runs(runs)
    rows = rows_of(groups, tolerance)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "report.md").write_text(markdown(groups, tolerance, skipped, failed), encoding="utf-8")
        with open(out_dir / "report.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        plots = write_plots(groups, out_dir)
    except OSError as exc:
        raise ReportWriteError(f"cannot write the report to {out_dir} ({exc.strerror or exc})") from exc
    updated = fill_saving_wall(runs)
    files = [out_dir / "report.md", out_dir / "report.csv", *plots]
    return Report(groups, rows, files, skipped, updated, failed)


def fill_saving_wall(runs: list[Run]) -> list[Run]:
    """Write saving_wall into the summary.json of runs whose baseline is now known; returns them.
    A run folder that cannot be written is warned about and left as it is."""
    base = baselines(runs)
    updated = []
    for run in runs:
        b = base.get((run.setting_key, run.seed))
        if b is None or run.is_baseline or run.summary.get("saving_wall") is not None:
            continue
        value = saving_wall(run.summary["time_cost_s"], b)
        if value is None:  # the baseline's cost is 0: nothing to fill in
            continue
        try:
            write_json_atomic(run.path / "summary.json", {**run.summary, "saving_wall": value})
        except OSError as exc:
            log.warning("could not write saving_wall into %s (%s); left as it is",
                        run.path / "summary.json", exc.strerror or exc)
            continue
        run.summary["saving_wall"] = value
        updated.append(run)
    return updated


def _fail(message: str) -> None:
    print(f"infobatch-report: error: {message}.", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="infobatch-report",
        description="Compare the runs of one or more sweeps with their full-data baselines: writes report.md, "
                    "report.csv and PNG plots, and prints a compact table.")
    parser.add_argument("dirs", nargs="+", type=Path, help="sweep or run folders (searched recursively)")
    parser.add_argument("--out", type=Path, help="where to write the report (default: the first folder)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help="accuracy drop still called lossless, as a fraction (default 0.005 = 0.5 pp)")
    args = parser.parse_args(argv)
    if not (math.isfinite(args.tolerance) and args.tolerance >= 0):
        _fail(f"--tolerance must be a finite fraction >= 0 (0.005 = 0.5 pp), not {args.tolerance}")
    missing = [d for d in args.dirs if not d.is_dir()]
    if missing:
        _fail(f"{missing[0]} is not a folder")
    try:
        report = write_report(args.dirs, args.out or args.dirs[0], args.tolerance)
    except ReportWriteError as exc:
        _fail(str(exc))
    except FileNotFoundError as exc:
        _fail(str(exc))
    except OSError as exc:  # e.g. a folder that cannot be listed
        _fail(f"cannot read {exc.filename or ', '.join(map(str, args.dirs))} ({exc.strerror or exc})")
    print(compact_table(report.rows))
    if report.failed:
        print(f"\n{len(report.failed)} run(s) failed: " + "; ".join(f"{path}: {error}" for path, error in report.failed))
    if report.skipped:
        print(f"\nskipped {len(report.skipped)} folder(s): "
              + "; ".join(f"{path} ({reason})" for path, reason in report.skipped))
    print("\nwrote " + ", ".join(str(p) for p in report.files))
