"""Compare a sweep's strategies against the full-data baseline: pairing, statistics, report files.

Each run is paired with the full-data run(s) of the same setting (dataset, model, optimizer,
schedule, trainer settings, precision, device) and seed. saving_wall = 1 - cost / baseline cost
and the accuracy difference are computed per pair, then summarised per strategy over seeds.
Several full runs for one pair (the same full run repeated, e.g. by a sweep over prune.ratio) are
averaged into one baseline, and the table says how many; runs without a baseline are listed.
"""

import argparse
import csv
import json
import math
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from infobatch_runner.tracking import write_json_atomic

DEFAULT_TOLERANCE = 0.005  # 0.5 percentage points of test accuracy
# Two-sided 95% Student t quantiles by degrees of freedom; beyond 30, the normal 1.96 is close.
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]
MIN_SEEDS_FOR_CI = 3
IGNORED_PRUNE_KEYS = {"name", "cache", "cache_dir"}


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


def read_run(path: Path) -> Run:
    summary = json.loads((path / "summary.json").read_text())
    with open(path / "metrics.csv", newline="") as f:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    return Run(path, summary, rows)


REQUIRED = ("setting", "strategy", "prune", "seed", "time_cost_s", "time_scoring_s", "saving_samples", "final/test_acc")


def find_runs(dirs: list[Path], skipped: list[Path] | None = None) -> list[Run]:
    """Every run folder under dirs; folders whose files are unreadable or lack the fields this
    version writes go to `skipped` instead."""
    runs = []
    for d in dirs:
        for summary in sorted(Path(d).rglob("summary.json")):
            try:
                run = read_run(summary.parent)
            except (OSError, ValueError):
                run = None
            if run is None or any(k not in run.summary for k in REQUIRED):
                if skipped is not None:
                    skipped.append(summary.parent)
                continue
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
            found.setdefault((run.setting_key, run.summary["seed"]), []).append(run)
    return {
        key: Baseline(statistics.fmean(r.summary["time_cost_s"] for r in rs),
                      statistics.fmean(r.summary["final/test_acc"] for r in rs), len(rs))
        for key, rs in found.items()
    }


def baseline_for(summary: dict, sweep_dir: Path) -> Baseline | None:
    """The baseline among the finished runs of a sweep folder, for a run that is just ending."""
    runs = find_runs([sweep_dir])
    return baselines(runs).get((json.dumps(summary["setting"], sort_keys=True), summary["seed"]))


def saving_wall(cost_s: float, baseline: Baseline) -> float:
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
class Group:
    """One strategy with one set of parameters in one setting, over seeds."""

    label: str
    strategy: str
    setting_key: str
    runs: list[Run] = field(default_factory=list)
    final_acc: Stat = field(default_factory=lambda: Stat([]))
    saving_samples: Stat = field(default_factory=lambda: Stat([]))
    cost_s: Stat = field(default_factory=lambda: Stat([]))
    saving_wall: Stat = field(default_factory=lambda: Stat([]))
    acc_diff: Stat = field(default_factory=lambda: Stat([]))
    baseline_runs: list[int] = field(default_factory=list)
    unpaired: list[Run] = field(default_factory=list)


def verdict(diff: Stat, tolerance: float) -> tuple[str, str]:
    """(verdict, what was tested) for the paired accuracy differences against -tolerance."""
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


def group_runs(runs: list[Run]) -> list[Group]:
    base = baselines(runs)
    varying: dict[str, set[str]] = {}  # per strategy, the parameters that differ between its runs
    for run in runs:
        for k, v in _params(run.summary).items():
            varying.setdefault(run.summary["strategy"], {}).setdefault(k, set()).add(json.dumps(v))
    groups: dict[tuple, Group] = {}
    for run in runs:
        s = run.summary
        params = _params(s)
        if run.is_baseline:
            label, key_params = "full", "{}"  # the ratio a sweep passes to full is ignored
        else:
            shown = [k for k, vs in varying[s["strategy"]].items() if len(vs) > 1 or k == "ratio"]
            if params.get("target_saving") is not None:
                shown = [k for k in shown if k != "ratio"] + ["target_saving"]
            label = s["strategy"] + "".join(f" {k}={params[k]:g}" if isinstance(params[k], float) else f" {k}={params[k]}"
                                            for k in dict.fromkeys(shown))
            key_params = json.dumps(params, sort_keys=True)
        g = groups.setdefault((run.setting_key, s["strategy"], key_params), Group(label, s["strategy"], run.setting_key))
        g.runs.append(run)
        g.final_acc.values.append(s["final/test_acc"])
        g.saving_samples.values.append(s["saving_samples"])
        g.cost_s.values.append(s["time_cost_s"])
        b = base.get((run.setting_key, s["seed"]))
        if b is None:
            g.unpaired.append(run)
            continue
        g.saving_wall.values.append(saving_wall(s["time_cost_s"], b))
        g.acc_diff.values.append(s["final/test_acc"] - b.final_acc)
        g.baseline_runs.append(b.runs)
    return sorted(groups.values(), key=lambda g: (g.setting_key, g.strategy != "full", g.label))


def _pm(stat: Stat, scale: float = 100.0, digits: int = 2) -> str:
    if stat.n == 0:
        return "n/a"
    if stat.n == 1:
        return f"{scale * stat.mean:.{digits}f}"
    return f"{scale * stat.mean:.{digits}f} ± {scale * stat.sd:.{digits}f}"


def describe_setting(setting: dict) -> str:
    ds, model, t = setting["dataset"], setting["model"], setting["trainer"]
    name = model.get("arch", model["name"]) if model["name"] == "timm" else model["name"]
    limit = f" (first {ds['limit_train']})" if ds.get("limit_train") else ""
    return (f"{ds['name']}{limit} / {name}, {setting['optimizer']['name']} + {setting['scheduler']['name']}, "
            f"{t['epochs']} epochs, batch {t['batch_size']}, {setting['precision']} on {setting['device']}")


CSV_COLUMNS = ["setting", "strategy", "label", "runs", "seeds_paired", "final_acc_mean", "final_acc_sd", "acc_diff_mean",
               "acc_diff_sd", "acc_diff_ci_low", "acc_diff_ci_high", "saving_wall_mean", "saving_wall_sd",
               "saving_samples_mean", "saving_samples_sd", "time_cost_s_mean", "baseline_runs", "verdict", "tested"]


def rows_of(groups: list[Group], tolerance: float) -> list[dict]:
    rows = []
    for g in groups:
        ci = g.acc_diff.ci95()
        v, tested = ("baseline", "") if g.strategy == "full" else verdict(g.acc_diff, tolerance)
        rows.append({
            "setting": describe_setting(json.loads(g.setting_key)), "strategy": g.strategy, "label": g.label,
            "runs": len(g.runs), "seeds_paired": g.acc_diff.n,
            "final_acc_mean": g.final_acc.mean, "final_acc_sd": g.final_acc.sd,
            "acc_diff_mean": g.acc_diff.mean, "acc_diff_sd": g.acc_diff.sd,
            "acc_diff_ci_low": ci[0] if ci else math.nan, "acc_diff_ci_high": ci[1] if ci else math.nan,
            "saving_wall_mean": g.saving_wall.mean, "saving_wall_sd": g.saving_wall.sd,
            "saving_samples_mean": g.saving_samples.mean, "saving_samples_sd": g.saving_samples.sd,
            "time_cost_s_mean": g.cost_s.mean, "baseline_runs": max(g.baseline_runs, default=0),
            "verdict": v, "tested": tested,
        })
    return rows


def markdown(groups: list[Group], tolerance: float) -> str:
    lines = ["# Strategy comparison against full data", "",
             f"Accuracy is the final epoch's test accuracy; Δacc and the wall-clock saving are paired per seed with "
             f"the full-data run of the same setting; the verdict tests the paired Δacc against a tolerance of "
             f"-{100 * tolerance:.2f} pp (a 95% CI from {MIN_SEEDS_FOR_CI} seeds on). Values are mean ± sd over seeds.", ""]
    for setting_key in dict.fromkeys(g.setting_key for g in groups):
        lines += [f"## {describe_setting(json.loads(setting_key))}", "",
                  "| strategy | runs | final acc % | Δacc pp | wall saving % | sample saving % | cost s | verdict |",
                  "|---|---|---|---|---|---|---|---|"]
        for g in (g for g in groups if g.setting_key == setting_key):
            v = "baseline" if g.strategy == "full" else verdict(g.acc_diff, tolerance)[0]
            note = f" ({max(g.baseline_runs)} baseline runs averaged)" if max(g.baseline_runs, default=1) > 1 else ""
            lines.append(f"| {g.label}{note if g.strategy != 'full' else ''} | {len(g.runs)} | {_pm(g.final_acc)} | "
                         f"{_pm(g.acc_diff) if g.strategy != 'full' else '0'} | {_pm(g.saving_wall, digits=1)} | "
                         f"{_pm(g.saving_samples, digits=1)} | {_pm(g.cost_s, scale=1.0, digits=1)} | {v} |")
        lines.append("")
        tested = [(g.label, verdict(g.acc_diff, tolerance)[1]) for g in groups
                  if g.setting_key == setting_key and g.strategy != "full" and g.acc_diff.n]
        if tested:
            lines += ["What each verdict tested:", ""] + [f"- {label}: {what}" for label, what in tested] + [""]
    unpaired = [r for g in groups if g.strategy != "full" for r in g.unpaired]
    if unpaired:
        lines += ["## Runs without a full-data baseline", "",
                  "No full-data run shares their setting and seed; their wall-clock saving is unknown.", ""]
        lines += [f"- {r.path}: {r.summary['strategy']} seed {r.summary['seed']}, final acc "
                  f"{100 * r.summary['final/test_acc']:.2f}%, cost {r.summary['time_cost_s']:.1f} s" for r in unpaired]
        lines.append("")
    return "\n".join(lines)


def compact_table(rows: list[dict]) -> str:
    """The few columns that fit a terminal, one line per strategy."""
    head = f"{'strategy':<28} {'runs':>4} {'final acc':>15} {'Δacc pp':>14} {'wall saving':>13} {'samples':>8}  verdict"
    lines = [head, "-" * len(head)]
    for r in rows:
        def pm(mean, sd, scale=100, d=2):
            if math.isnan(mean):
                return "n/a"
            return f"{scale * mean:.{d}f}" + ("" if math.isnan(sd) else f"±{scale * sd:.{d}f}")
        lines.append(f"{r['label'][:28]:<28} {r['runs']:>4} {pm(r['final_acc_mean'], r['final_acc_sd']):>15} "
                     f"{'0' if r['strategy'] == 'full' else pm(r['acc_diff_mean'], r['acc_diff_sd']):>14} "
                     f"{pm(r['saving_wall_mean'], r['saving_wall_sd'], d=1):>13} "
                     f"{100 * r['saving_samples_mean']:>7.1f}%  {r['verdict']}")
    return "\n".join(lines)


@dataclass
class Report:
    groups: list[Group]
    rows: list[dict]
    files: list[Path]
    skipped: list[Path]
    updated: list[Run]  # runs whose saving_wall this report filled in


def write_report(dirs: list[Path], out_dir: Path, tolerance: float = DEFAULT_TOLERANCE) -> Report:
    from infobatch_runner.plots import write_plots

    skipped: list[Path] = []
    runs = find_runs(dirs, skipped)
    if not runs:
        raise FileNotFoundError(f"no readable run folders (summary.json + metrics.csv) under {', '.join(map(str, dirs))}")
    groups = group_runs(runs)
    rows = rows_of(groups, tolerance)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.md").write_text(markdown(groups, tolerance))
    with open(out_dir / "report.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    updated = fill_saving_wall(runs)
    files = [out_dir / "report.md", out_dir / "report.csv", *write_plots(groups, out_dir)]
    return Report(groups, rows, files, skipped, updated)


def fill_saving_wall(runs: list[Run]) -> list[Run]:
    """Write saving_wall into the summary.json of runs whose baseline is now known; returns them."""
    base = baselines(runs)
    updated = []
    for run in runs:
        b = base.get((run.setting_key, run.summary["seed"]))
        if b is None or run.is_baseline or run.summary.get("saving_wall") is not None:
            continue
        run.summary["saving_wall"] = saving_wall(run.summary["time_cost_s"], b)
        write_json_atomic(run.path / "summary.json", run.summary)
        updated.append(run)
    return updated


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
    missing = [d for d in args.dirs if not d.is_dir()]
    if missing:
        print(f"infobatch-report: error: {missing[0]} is not a folder.", file=sys.stderr)
        sys.exit(2)
    try:
        report = write_report(args.dirs, args.out or args.dirs[0], args.tolerance)
    except FileNotFoundError as exc:
        print(f"infobatch-report: error: {exc}.", file=sys.stderr)
        sys.exit(2)
    print(compact_table(report.rows))
    if report.skipped:
        print(f"\nskipped {len(report.skipped)} folder(s) without readable metrics.csv/summary.json of this version: "
              + ", ".join(map(str, report.skipped)))
    print("\nwrote " + ", ".join(str(p) for p in report.files))
