"""The report's figures: accuracy against wall-clock saving, accuracy curves, kept fraction.

One figure of each per setting (dataset, model, ...). Like the tables, everything counts distinct
seeds: the runs of one seed are averaged first, then curves and error bars are taken over seeds.
"""

import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, none opened
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from infobatch_runner.results.budget import CURVE_STRATEGIES, budget_points, cost  # noqa: E402
from infobatch_runner.results.curves import mean_curve, mean_time_axis, sd_curve  # noqa: E402

BASELINE_STYLE = dict(color="black", linestyle="--", linewidth=1.5)


def _styles(groups):
    cmap = plt.get_cmap("tab10")
    others = [g for g in groups if g.strategy != "full"]
    styles = {id(g): dict(color=cmap(i % 10), marker="os^vDP*Xhp"[i % 10]) for i, g in enumerate(others)}
    styles.update({id(g): dict(color="black", marker="*") for g in groups if g.strategy == "full"})
    return styles


def _legend(ax, **kwargs) -> None:
    if ax.get_legend_handles_labels()[0]:  # no legend (and no warning) for a figure without labelled artists
        ax.legend(**kwargs)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def accuracy_vs_saving(groups, path: Path) -> Path:
    """Accuracy against both savings, side by side: the wall-clock saving (measured against the
    paired full-data run) and the sample saving (counted, known for every run)."""
    fig, (by_wall, by_samples) = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    styles = _styles(groups)
    _scatter(by_wall, groups, styles, wall=True)
    _scatter(by_samples, groups, styles, wall=False)
    by_wall.set_xlabel("wall-clock saving vs full data (%)")
    by_wall.set_ylabel("final test accuracy (%)")
    by_wall.set_title("Against wall-clock saving (mean ± sd over distinct seeds)")
    by_samples.set_xlabel("sample saving (%): 1 - samples trained and scored / (epochs × N)")
    by_samples.set_title("Against sample saving (mean ± sd over distinct seeds)")
    return _save(fig, path)


def _scatter(ax, groups, styles, wall: bool) -> None:
    not_shown = []
    for g in groups:
        if g.strategy == "full":
            acc = 100 * g.final_acc.mean
            ax.axhline(acc, **BASELINE_STYLE, label=f"full data (baseline), {acc:.2f}%")
            ax.plot([0], [acc], marker="*", markersize=14, color="black", linestyle="none")
            continue
        saving = g.saving_wall if wall else g.saving_samples
        if saving.n == 0:
            not_shown.append(g.label)  # no baseline, or one of cost 0: no x position
            continue
        # the seeds that have this saving, each the mean of its runs: x and y over the same seeds
        accs = [100 * sv.final_acc for sv in g.seeds.values() if not wall or sv.saving_wall is not None]
        yerr = statistics.stdev(accs) if len(accs) > 1 else 0.0
        xerr = 100 * saving.sd if saving.n > 1 else 0.0
        doubted = wall and bool(getattr(g, "wall_unreliable", ()))  # drift or overlap (drift.py): hollow, a dagger
        label = f"{g.label} (n={saving.n} seeds)" + (" † wall saving unreliable" if doubted else "")
        ax.errorbar([100 * saving.mean], [statistics.fmean(accs)], xerr=[xerr], yerr=[yerr], capsize=4,
                    markersize=8, linestyle="none", label=label, **styles[id(g)],
                    **({"markerfacecolor": "none", "markeredgewidth": 1.5} if doubted else {}))
    if not_shown:
        ax.text(0.01, 0.01, "wall saving n/a, not shown: " + ", ".join(not_shown), transform=ax.transAxes,
                fontsize=7, color="grey", va="bottom", ha="left", wrap=True)
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.grid(alpha=0.3)
    _legend(ax, fontsize=8, loc="best")


def accuracy_curves(groups, path: Path) -> Path:
    fig, (by_epoch, by_time) = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    styles = _styles(groups)
    for g in groups:
        style = dict(color=styles[id(g)]["color"], linewidth=2 if g.strategy == "full" else 1.5,
                     linestyle="--" if g.strategy == "full" else "-")
        label = "full data (baseline)" if g.strategy == "full" else g.label
        acc = [100 * a for a in mean_curve(g, "test/acc")]
        sd = [100 * d for d in sd_curve(g, "test/acc")]
        epochs, times = range(1, len(acc) + 1), mean_time_axis(g)
        by_epoch.plot(epochs, acc, label=label, **style)
        by_time.plot(times, acc, label=label, **style)
        if any(sd):  # the spread over seeds: mean ± sd
            low, high = [a - d for a, d in zip(acc, sd)], [a + d for a, d in zip(acc, sd)]
            by_epoch.fill_between(epochs, low, high, color=style["color"], alpha=0.15, linewidth=0)
            by_time.fill_between(times, low, high, color=style["color"], alpha=0.15, linewidth=0)
    by_epoch.xaxis.set_major_locator(MaxNLocator(integer=True))
    by_epoch.set_xlabel("epoch")
    by_epoch.set_ylabel("test accuracy (%)")
    by_epoch.set_title("Test accuracy per epoch (mean, ± sd over seeds shaded)")
    by_time.set_xlabel("training time incl. scoring (s)")
    by_time.set_title("Test accuracy over wall-clock time")
    for ax in (by_epoch, by_time):
        ax.grid(alpha=0.3)
    _legend(by_time, fontsize=8, loc="lower right")
    return _save(fig, path)


def kept_fraction(groups, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    styles = _styles(groups)
    for g in groups:
        kept = [100 * k for k in mean_curve(g, "train/kept_fraction")]
        label = "full data (baseline)" if g.strategy == "full" else g.label
        ax.plot(range(1, len(kept) + 1), kept, label=label, color=styles[id(g)]["color"],
                marker=styles[id(g)]["marker"], markersize=4,
                linestyle="--" if g.strategy == "full" else "-")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("samples trained (% of the training set)")
    ax.set_ylim(0, 105)
    ax.set_title("Kept fraction per epoch")
    ax.grid(alpha=0.3)
    _legend(ax, fontsize=8, loc="lower right")
    return _save(fig, path)


def accuracy_vs_cost(mine, groups, path: Path) -> Path | None:
    """Final accuracy against cost, the wall clock and the sample passes side by side: full data
    trained for fewer epochs as a line (mean over seeds, ± sd shaded), each strategy as a point with
    its sd over seeds both ways. Above the line and left of it is better than training fewer epochs.
    None without a curve of two budgets or without a strategy to place on it."""
    points = budget_points(mine[0].setting_key, groups)
    strategies = [g for g in mine if g.strategy not in CURVE_STRATEGIES]
    if len(points) < 2 or not strategies:
        return None
    n = max(mine[0].runs[0].summary.get("num_train") or 1, 1)
    names = list(dict.fromkeys(g.strategy for g in strategies))  # a colour per strategy, a marker per variant
    cmap = plt.get_cmap("tab10")
    styles = {id(g): dict(color=cmap(names.index(g.strategy) % 10),
                          marker="os^vDP"[[o for o in strategies if o.strategy == g.strategy].index(g) % 6])
              for g in strategies}
    fig, axes = plt.subplots(1, 2, figsize=(16, 5.5), sharey=True)
    for ax, axis in zip(axes, ("wall", "samples")):
        scale = 1.0 if axis == "wall" else 1.0 / n  # sample passes as epochs of full data
        xs = [scale * p.cost[axis] for p in points]
        ys = [100 * p.acc.mean for p in points]
        sds = [100 * p.acc.sd if p.acc.n > 1 else 0.0 for p in points]
        ax.plot(xs, ys, **BASELINE_STYLE, marker="o", label="full data, " + ", ".join(f"{p.epochs:g}" for p in points)
                + " epochs")
        ax.fill_between(xs, [y - d for y, d in zip(ys, sds)], [y + d for y, d in zip(ys, sds)], color="black",
                        alpha=0.12)
        for g in strategies:
            costs = [scale * statistics.fmean(cost(r, axis) for r in sv.runs) for sv in g.seeds.values()]
            accs = [100 * sv.final_acc for sv in g.seeds.values()]
            spread = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in (costs, accs)]
            ax.errorbar([statistics.fmean(costs)], [statistics.fmean(accs)], xerr=[spread[0]], yerr=[spread[1]],
                        capsize=4, markersize=8, linestyle="none", label=f"{g.label} (n={len(accs)} seeds)",
                        **styles[id(g)])
        ax.set_xlabel("wall-clock cost (s): time_cost_s" if axis == "wall" else
                      "sample passes, in epochs of full data")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("final test accuracy (%)")
    axes[0].set_title("Against the wall clock (mean ± sd over seeds)")
    axes[1].set_title("Against the samples trained (mean ± sd over seeds)")
    _legend(axes[1], fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    return _save(fig, path)


def plotted_settings(groups) -> list[str]:
    """The settings that get figures, in report order: beside others, a setting of full data alone (a
    budget of another setting's curve, drawn there) gets none."""
    settings = list(dict.fromkeys(g.setting_key for g in groups))
    compared = [k for k in settings if any(g.strategy != "full" for g in groups if g.setting_key == k)]
    return compared if len(settings) > 1 and compared else settings


def prefix(settings: list[str], i: int) -> str:
    """The file name prefix of the i-th plotted setting: none when there is one."""
    return "" if len(settings) == 1 else f"setting{i + 1}_"


def write_plots(groups, out_dir: Path) -> list[Path]:
    settings = plotted_settings(groups)
    files = []
    for i, key in enumerate(settings):
        name = prefix(settings, i)
        mine = [g for g in groups if g.setting_key == key]
        files += [
            accuracy_vs_saving(mine, out_dir / f"{name}accuracy_vs_saving.png"),
            accuracy_curves(mine, out_dir / f"{name}accuracy_curves.png"),
            kept_fraction(mine, out_dir / f"{name}kept_fraction.png"),
        ]
        against_curve = accuracy_vs_cost(mine, groups, out_dir / f"{name}accuracy_vs_cost.png")
        files += [against_curve] if against_curve else []
    return files
