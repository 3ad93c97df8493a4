"""The leaderboard across regimes: one table of every strategy in every regime (a sweep folder of
one recipe at one epoch count and training-set size) at every target saving.

Rows are strategies, columns (regime, target). A cell holds, as each regime's own report counts
them (pairing.py, budget.py): the paired Δacc to the full run of the same seed with its Student-t
95% CI over seeds, and the speedup at equal accuracy against the regime's full-data budget curve,
on the wall clock and in samples, with its CI or as a bound where the run's accuracy lies outside
the curve. The short schedule is a point of that curve: its speedup is 1 by construction.
"""

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from infobatch_runner.results.budget import CURVE_STRATEGIES, EXACT, AT_LEAST, against_curves  # noqa: E402
from infobatch_runner.results.leaderboard import Table  # noqa: E402
from infobatch_runner.results.pairing import Group, group_runs  # noqa: E402
from infobatch_runner.results.render import budget_columns  # noqa: E402
from infobatch_runner.results.runs import FailedRun, find_runs  # noqa: E402
from infobatch_runner.results.stats import DEFAULT_TOLERANCE  # noqa: E402

CSV_COLUMNS = ["regime", "epochs", "num_train", "strategy", "target_saving", "seeds", "saving_samples_mean",
               "final_acc_mean", "acc_diff_pp", "acc_diff_ci_low_pp", "acc_diff_ci_high_pp",
               "speedup_wall", "speedup_wall_relation", "speedup_wall_ci_low", "speedup_wall_ci_high",
               "speedup_samples", "speedup_samples_relation", "speedup_samples_ci_low", "speedup_samples_ci_high",
               "curve_budgets", "unattainable"]


@dataclass
class Regime:
    """One regime's sweep folder, read: its name (from the runs: epochs and training-set size) and its
    equal-savings table."""

    folder: Path
    epochs: int
    num_train: int
    table: Table

    @property
    def name(self) -> str:
        return f"{self.epochs} epochs, {self.num_train:,} samples"


def read_regime(folder: Path, tolerance: float = DEFAULT_TOLERANCE) -> Regime:
    """A regime's runs, paired and set against its budget curve. FileNotFoundError without a full run."""
    failed: list[FailedRun] = []
    runs = find_runs([folder], [], failed)
    full = [r for r in runs if r.is_baseline]
    if not full:
        raise FileNotFoundError(f"no full-data run in {folder}: a regime needs its baseline")
    groups = group_runs(runs)
    against_curves(groups, runs)
    setting = full[0].setting_key
    mine = [g for g in groups if g.setting_key == setting]
    s = full[0].summary
    return Regime(Path(folder), int(s["epochs"]), int(s["num_train"]), Table(mine, failed, tolerance))


def _speedup(g: Group, axis: str) -> str:
    if g.strategy in CURVE_STRATEGIES:
        return "on the curve"
    if g.budget is None:
        return "no curve"
    return g.budget.speedup[axis].text(suffix="x")


def cell(regime: Regime, label: str, target: float) -> str:
    if (label, target) not in regime.table.cells:
        return "—"
    g = regime.table.cells[(label, target)]
    if g is None:
        return "unattainable"
    text = ""
    if g.acc_diff.n:
        ci = g.acc_diff.ci95()
        text = f"Δ {100 * g.acc_diff.mean:+.2f}" + (f" [{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]" if ci else "")
    text += f"<br>time {_speedup(g, 'wall')}"
    if g.strategy not in CURVE_STRATEGIES and g.budget is not None:
        text += f"<br>samples {_speedup(g, 'samples')}"
    if abs(g.saving_samples.mean - target) > 0.005:
        text += f"<br>(saves {100 * g.saving_samples.mean:.1f}%)"
    return text


def markdown(regimes: list[Regime]) -> list[str]:
    columns = [(r, t) for r in regimes for t in r.table.targets]
    rows = list(dict.fromkeys(label for r in regimes for label in r.table.rows))
    head = "| strategy | " + " | ".join(f"{r.epochs} ep · {100 * t:g}% saved" for r, t in columns) + " |"
    lines = [head, "|---" * (len(columns) + 1) + "|"]
    for label in rows:
        lines.append(f"| {label} | " + " | ".join(cell(r, label, t) for r, t in columns) + " |")
    return lines


def section(regimes: list[Regime]) -> list[str]:
    """leaderboard.md: the regimes, the table and how to read it."""
    lines = ["# Leaderboard across regimes", "", "Regimes (each a sweep folder with its own report.md):", ""]
    for r in regimes:
        full = r.table.baseline
        acc = f"{100 * full.final_acc.mean:.2f} ± {100 * full.final_acc.sd:.2f}" if full and full.final_acc.n > 1 else \
            (f"{100 * full.final_acc.mean:.2f}" if full else "n/a")
        seeds = full.final_acc.n if full else 0
        lines.append(f"- **{r.name}** (`{r.folder.name}/`): full data {acc}% final test accuracy over {seeds} seed(s)")
    lines += ["", "Each cell: Δacc pp to the full run of the same seed, mean and Student-t 95% CI over seeds; "
              "the speedup at equal accuracy against the regime's full-data budget curve (full data trained for "
              "fewer epochs, joined piecewise linearly between its budgets), on the wall clock and in samples "
              "trained, with its 95% CI, or a bound (>=, <=) where the run's accuracy lies outside the curve. "
              "Above 1: faster than training fewer epochs to the same accuracy. \"unattainable\": the strategy "
              "refused the target before training.", "", *markdown(regimes), ""]
    return lines


def rows(regimes: list[Regime]) -> list[dict]:
    out = []
    for r in regimes:
        for (label, target), g in sorted(r.table.cells.items(), key=lambda kv: (kv[0][0], kv[0][1])):
            row = {"regime": r.name, "epochs": r.epochs, "num_train": r.num_train, "strategy": label,
                   "target_saving": target, "unattainable": g is None}
            if g is not None:
                ci = g.acc_diff.ci95() or (math.nan, math.nan)
                row.update(seeds=g.final_acc.n, saving_samples_mean=g.saving_samples.mean, final_acc_mean=g.final_acc.mean,
                           acc_diff_pp=100 * g.acc_diff.mean, acc_diff_ci_low_pp=100 * ci[0],
                           acc_diff_ci_high_pp=100 * ci[1])
                if g.budget is not None:  # the regime's report.csv figures: no mean where bounds point both ways
                    row["curve_budgets"] = g.budget.budgets
                    row.update({k: v for k, v in budget_columns(g).items() if k.startswith("speedup_")})
            out.append(row)
    return out


def plot(regimes: list[Regime], path: Path) -> Path:
    """A panel per regime: the wall-clock speedup at equal accuracy against the samples saved, a line per
    strategy with its 95% CI as a band; a hollow marker is a bound (▲ at least, ▼ at most)."""
    fig, axes = plt.subplots(1, len(regimes), figsize=(6.5 * len(regimes), 5), sharey=True, squeeze=False)
    cmap = plt.get_cmap("tab10")
    names = sorted({g.strategy for r in regimes for g in r.table.cells.values()
                    if g is not None and g.strategy not in CURVE_STRATEGIES})
    for ax, r in zip(axes[0], regimes):
        for label in r.table.rows:
            points = sorted((g.saving_samples.mean, g) for (row, _), g in r.table.cells.items()  # bounds both ways: no point
                            if row == label and g is not None and g.budget is not None and g.budget.speedup["wall"].n
                            and g.budget.speedup["wall"].relation is not None)
            if not points:
                continue
            color = cmap(names.index(points[0][1].strategy) % 10)
            xs = [100 * x for x, _ in points]
            stats = [g.budget.speedup["wall"] for _, g in points]
            ax.plot(xs, [s.mean for s in stats], color=color, label=label, linewidth=1.2)
            for x, s in zip(xs, stats):
                marker = "o" if s.relation == EXACT else "^" if s.relation == AT_LEAST else "v"
                ax.plot([x], [s.mean], marker=marker, color=color, markerfacecolor=color if s.relation == EXACT else "none")
            cis = [s.ci95() for s in stats]
            if all(cis):
                ax.fill_between(xs, [c[0] for c in cis], [c[1] for c in cis], color=color, alpha=0.12, linewidth=0)
        ax.axhline(1, color="black", linestyle="--", linewidth=1, label="training fewer epochs")
        ax.set_title(r.name)
        ax.set_xlabel("samples saved (%)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("speedup at equal accuracy, wall clock (x)")
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.suptitle("Time to the run's accuracy: full data's budget curve / the strategy (mean, 95% CI over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def write(folders: list[Path], out_dir: Path, tolerance: float = DEFAULT_TOLERANCE) -> list[Path]:
    """leaderboard.md, leaderboard.csv and leaderboard.png in out_dir, from the regimes' sweep folders."""
    regimes = [read_regime(f, tolerance) for f in folders]
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "leaderboard.md"
    md.write_text("\n".join(section(regimes)), encoding="utf-8")
    table = out_dir / "leaderboard.csv"
    with open(table, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows(regimes))
    return [md, table, plot(regimes, out_dir / "leaderboard.png")]
