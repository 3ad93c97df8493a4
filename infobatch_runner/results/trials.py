"""A search's trials (hparams_search=...: Hydra's Optuna sweeper) as one table, best objective first.

Trials differ in the parameters the search draws (the learning rate among them), so grouping them by
setting, as a comparison of strategies does, gave every trial a section and plots of its own (3
trials: 3 sections, 9 PNGs) under labels cut short. A search asks another question: which drawn
parameters did best on the validation split. One row per trial: the parameters that differ between
trials, in full; the objective (the final validation accuracy, and with val_acc+saving the sample
saving too); the cost. Sorted by validation accuracy, then saving. The test accuracy is left out on
purpose: picking a trial by it would tune on the test set (judge the winner afterwards on the test
set, over seeds, against a full-data baseline; docs/validation-and-search.md).
"""

import math

TRIAL_COLUMNS = ["rank", "trial", "val_acc", "saving_samples", "time_cost_s", "objective"]


def is_trial(summary: dict) -> bool:
    return isinstance(summary.get("search"), dict)


def _params(summary: dict) -> dict[str, str]:
    return dict(o.split("=", 1) for o in summary["search"].get("overrides", []) if "=" in o)


def drawn_keys(trials) -> list[str]:
    """The overrides whose values differ between trials: what the search drew."""
    params = [_params(t.summary) for t in trials]
    keys = sorted({k for p in params for k in p})
    return [k for k in keys if len({p.get(k) for p in params}) > 1]


def _number(text: str | None):
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def trial_rows(trials) -> list[dict]:
    """One row per trial (a Run), the drawn parameters as columns of their own, best first."""
    keys = drawn_keys(trials)
    rows = []
    for t in trials:
        s, params = t.summary, _params(t.summary)
        val = s.get("final/val_acc")
        rows.append({"trial": t.path.name, **{k: _number(params.get(k)) for k in keys},
                     "val_acc": math.nan if val is None else val, "saving_samples": s["saving_samples"],
                     "time_cost_s": s["time_cost_s"], "objective": s["search"].get("objective", "")})
    rows.sort(key=lambda r: (-_or(r["val_acc"], -math.inf), -r["saving_samples"], r["trial"]))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


def _or(x: float, fallback: float) -> float:
    return fallback if math.isnan(x) else x


def columns(rows: list[dict]) -> list[str]:
    """rank, trial, the drawn parameters, then the measures."""
    drawn = [k for k in rows[0] if k not in TRIAL_COLUMNS] if rows else []
    return ["rank", "trial", *drawn, "val_acc", "saving_samples", "time_cost_s", "objective"]


def _cell(value) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def markdown(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    drawn = columns(rows)[2:-4]
    objective = rows[0]["objective"]
    lines = ["# Search trials", "",
             f"{len(rows)} trials of a search (objective `{objective}`), best validation accuracy first, then the "
             "largest sample saving. The parameters are those the search drew; the test accuracy is left out, as "
             "choosing a trial by it would tune on the test set: judge the winner on the test set over seeds, "
             "against a full-data baseline with the same split.", "",
             "| # | trial | " + " | ".join(f"`{k}`" for k in drawn) + " | val acc % | sample saving % | cost s |",
             "|---|---|" + "---|" * len(drawn) + "---|---|---|"]
    for r in rows:
        val = "n/a" if math.isnan(r["val_acc"]) else f"{100 * r['val_acc']:.2f}"
        lines.append(f"| {r['rank']} | {r['trial']} | " + " | ".join(_cell(r[k]) for k in drawn)
                     + f" | {val} | {100 * r['saving_samples']:.1f} | {r['time_cost_s']:.3g} |")
    return lines + [""]


def console(rows: list[dict], top: int = 10) -> str:
    """The best `top` trials, for the terminal at the end of the search."""
    drawn = columns(rows)[2:-4]
    head = f"{'#':>3} {'trial':<16} " + " ".join(f"{k:>14}" for k in drawn) + f" {'val acc':>8} {'samples':>8}"
    lines = [head, "-" * len(head)]
    for r in rows[:top]:
        val = "n/a" if math.isnan(r["val_acc"]) else f"{100 * r['val_acc']:.2f}"
        lines.append(f"{r['rank']:>3} {r['trial'][:16]:<16} " + " ".join(f"{_cell(r[k]):>14}" for k in drawn)
                     + f" {val:>8} {100 * r['saving_samples']:>7.1f}%")
    if len(rows) > top:
        lines.append(f"... and {len(rows) - top} more trials in report.md")
    return "\n".join(lines)
