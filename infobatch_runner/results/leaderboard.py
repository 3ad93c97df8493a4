"""Strategies at equal savings: which one holds up at the saving you want, against full data and
against simply training fewer epochs (prune=short_schedule).

Runs asked for a `target_saving` form the table: a row per strategy (and its parameters, the
target aside), a column per target, each cell the final accuracy (mean ± sd over seeds) and the
paired Δacc to the full run of the same seed with its 95% CI and verdict, as the report counts
them. A job refused because its strategy cannot reach the target (its failed.json) is
"unattainable". A cell whose realised saving differs from its column (the short schedule trains
whole epochs) says what it saved. The plot draws Δacc against the realised saving, a line per
strategy with its CI as a band.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from omegaconf.errors import OmegaConfBaseException  # noqa: E402

from infobatch_runner.errors import UNREACHABLE  # noqa: E402  (the refusal of a target out of reach)
from infobatch_runner.pruning import ignored_params  # noqa: E402
from infobatch_runner.results.pairing import IGNORED_PRUNE_KEYS, Group  # noqa: E402
from infobatch_runner.results.runs import FailedRun  # noqa: E402
from infobatch_runner.results.stats import verdict  # noqa: E402

ORDER = ("short_schedule",)  # the fewer-epochs baseline first, then the strategies by name


def _row_params(prune: dict) -> dict:
    return {k: v for k, v in prune.items()
            if k not in IGNORED_PRUNE_KEYS and k != "target_saving" and k not in ignored_params(prune)}


def _failed_prune(f: FailedRun) -> dict | None:
    """The prune config of a failed job, from Hydra's record of it."""
    try:
        prune = OmegaConf.to_container(OmegaConf.load(f.path / ".hydra" / "config.yaml").prune)
    except (OSError, ValueError, OmegaConfBaseException):  # no usable record: listed under "Failed runs" only
        return None
    return prune if isinstance(prune, dict) and isinstance(prune.get("name"), str) else None


class Table:
    """The rows (strategy labels), the columns (targets) and the cells of one setting."""

    def __init__(self, groups: list[Group], failed: list[FailedRun], tolerance: float):
        self.tolerance = tolerance
        self.baseline = next((g for g in groups if g.strategy == "full"), None)
        entries = []  # (strategy, row params, target, group or None)
        for g in groups:
            prune = g.runs[0].summary["prune"]
            if g.strategy != "full" and prune.get("target_saving") is not None:
                entries.append((g.strategy, _row_params(prune), prune["target_saving"], g))
        for f in failed:
            prune = _failed_prune(f) if UNREACHABLE in f.error else None
            if prune and prune.get("target_saving") is not None:
                entries.append((prune["name"], _row_params(prune), prune["target_saving"], None))
        varying: dict[str, set[str]] = {}  # per strategy, the parameters that tell its rows apart
        for name, params, _, _ in entries:
            others = [p for n, p, _, _ in entries if n == name]
            varying.setdefault(name, set()).update(k for k, v in params.items() if any(p.get(k) != v for p in others))
        self.targets = sorted({t for _, _, t, _ in entries})
        self.cells: dict[tuple[str, float], Group | None] = {}
        for name, params, target, g in entries:
            label = name + "".join(f" {k}={params[k]}" for k in sorted(varying.get(name, ())))
            if (label, target) not in self.cells or g is not None:
                self.cells[(label, target)] = g
        labels = {label for label, _ in self.cells}
        self.rows = sorted(labels, key=lambda s: (s.split()[0] not in ORDER, s))

    def cell(self, label: str, target: float) -> str:
        if (label, target) not in self.cells:
            return "—"
        g = self.cells[(label, target)]
        if g is None:
            return "unattainable"
        text = f"{100 * g.final_acc.mean:.2f}" + (f" ± {100 * g.final_acc.sd:.2f}" if g.final_acc.n > 1 else "")
        if g.acc_diff.n:
            ci = g.acc_diff.ci95()
            text += f"<br>Δ {100 * g.acc_diff.mean:+.2f}"
            text += f" [{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]" if ci else ""
            text += f" {verdict(g.acc_diff, self.tolerance)[0]}"
        if abs(g.saving_samples.mean - target) > 0.005:
            text += f"<br>(saves {100 * g.saving_samples.mean:.1f}%)"
        return text

    def per_seed(self) -> list[str]:
        """The values behind each cell, one row per seed: what anyone can check a cell against."""
        lines = ["| strategy | target | seed | final acc % | full data % | Δacc pp | samples saved % | time saved % |",
                 "|---|---|---|---|---|---|---|---|"]
        if self.baseline is not None:
            for seed, sv in self.baseline.seeds.items():
                lines.append(f"| full data | — | {seed} | {100 * sv.final_acc:.2f} | | | 0.0 | |")
        for label in self.rows:
            for target in self.targets:
                g = self.cells.get((label, target))
                for seed, sv in (g.seeds.items() if g else ()):
                    base = f"{100 * sv.baseline.final_acc:.2f}" if sv.baseline else ""
                    diff = f"{100 * sv.acc_diff:+.2f}" if sv.acc_diff is not None else ""
                    wall = f"{100 * sv.saving_wall:.1f}" if sv.saving_wall is not None else ""
                    lines.append(f"| {label} | {100 * target:g}% | {seed} | {100 * sv.final_acc:.2f} | {base} | {diff} | "
                                 f"{100 * sv.saving_samples:.1f} | {wall} |")
        return lines

    def markdown(self) -> list[str]:
        head = "| strategy | " + " | ".join(f"{100 * t:g}% saved" for t in self.targets) + " |"
        lines = [head, "|---" * (len(self.targets) + 1) + "|"]
        if self.baseline is not None:
            b = self.baseline.final_acc
            full = f"{100 * b.mean:.2f}" + (f" ± {100 * b.sd:.2f}" if b.n > 1 else "")
            lines.append("| full data (0% saved) | " + " | ".join([full] + [""] * (len(self.targets) - 1)) + " |")
        for label in self.rows:
            lines.append(f"| {label} | " + " | ".join(self.cell(label, t) for t in self.targets) + " |")
        return lines


def section(groups: list[Group], failed: list[FailedRun], tolerance: float) -> list[str]:
    """The report's "Strategies at equal savings" section of one setting ([] without targets)."""
    table = Table(groups, failed, tolerance)
    if not table.cells:
        return []
    return ["### Strategies at equal savings", "",
            f"Final test accuracy % (mean ± sd over seeds) and Δacc pp to the full run of the same seed with its "
            f"95% CI and verdict (tolerance -{100 * tolerance:.2f} pp); `short_schedule` is full data for fewer "
            "epochs, the baseline a saving must beat. \"unattainable\": the strategy refused the target.", "",
            *table.markdown(), "", "Per seed, the values behind each cell (Δacc against the full run of the same seed):",
            "", *table.per_seed(), ""]


def plot(groups: list[Group], failed: list[FailedRun], tolerance: float, path: Path) -> Path | None:
    """Δacc against the realised saving, a line per strategy, its 95% CI as a band."""
    table = Table(groups, failed, tolerance)
    if not table.cells:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 5))
    cmap = plt.get_cmap("tab10")
    for i, label in enumerate(table.rows):
        points = sorted(((g.saving_samples.mean, g) for (row, _), g in table.cells.items()
                         if row == label and g and g.acc_diff.n), key=lambda point: point[0])
        if not points:
            continue
        xs = [100 * x for x, _ in points]
        ys = [100 * g.acc_diff.mean for _, g in points]
        cis = [g.acc_diff.ci95() for _, g in points]
        fewer_epochs = label.startswith("short_schedule")
        style = dict(color="black", linestyle="--") if fewer_epochs else dict(color=cmap(i % 10))
        ax.plot(xs, ys, marker="o", label=f"{label} (fewer epochs)" if fewer_epochs else label, **style)
        if all(cis):
            ax.fill_between(xs, [100 * c[0] for c in cis], [100 * c[1] for c in cis], alpha=0.15,
                            color=style["color"])
    ax.axhline(0, color="grey", linewidth=0.8, label="full data")
    ax.axhline(-100 * tolerance, color="red", linewidth=0.8, linestyle=":", label=f"-{100 * tolerance:.1f} pp tolerance")
    ax.set_xlabel("samples saved (%)")
    ax.set_ylabel("Δ final test accuracy vs full data (pp)")
    ax.set_title("Strategies at equal savings (mean, 95% CI over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

