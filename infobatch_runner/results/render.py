"""The comparison as text: report.md (Markdown, every setting's table with what each verdict tested,
and the runs that are in no statistic), the rows of report.csv, and the compact console table.
"""

import json
import math
from pathlib import Path

from infobatch_runner.results import leaderboard
from infobatch_runner.results.budget import AXES, CURVE_STRATEGIES, budget_points
from infobatch_runner.results.pairing import Group
from infobatch_runner.results.runs import UNFINISHED, FailedRun
from infobatch_runner.results.stats import MIN_SEEDS_FOR_CI, Stat, verdict


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


UNRELIABLE = "†"  # marks a wall saving that the drift or overlap check doubts (drift.py)
CSV_COLUMNS = ["setting", "strategy", "label", "runs", "seeds", "seeds_paired", "final_acc_mean", "final_acc_sd",
               "acc_diff_mean", "acc_diff_sd", "acc_diff_ci_low", "acc_diff_ci_high", "saving_wall_mean",
               "saving_wall_sd", "wall_unreliable", "saving_samples_mean", "saving_samples_sd", "time_cost_s_mean",
               "baseline_runs", "verdict", "tested", "fewer_epochs", "speedup_wall", "speedup_wall_relation",
               "speedup_wall_ci_low", "speedup_wall_ci_high", "speedup_samples", "speedup_samples_relation",
               "speedup_samples_ci_low", "speedup_samples_ci_high", "delta_acc_equal_cost_wall_pp",
               "delta_acc_equal_cost_wall_relation", "delta_acc_equal_cost_samples_pp",
               "delta_acc_equal_cost_samples_relation", "curve_budgets", "fewer_epochs_verdict"]


SHORT = "short_schedule"
FEWER_EPOCHS_MARK = "‡"  # a lossless verdict that no fewer-epochs run at its saving was compared with


def fewer_epochs(g: Group, mine: list[Group], tolerance: float) -> str:
    """For a pruning strategy judged lossless: how the fewer-epochs baseline (short_schedule) of the
    same setting did at a saving at least as large, or "" for any other group. A saving that also
    comes from simply training fewer epochs is no achievement of the strategy."""
    if g.strategy in ("full", SHORT) or not verdict(g.acc_diff, tolerance)[0].startswith("lossless"):
        return ""
    saved = g.saving_samples.mean
    rivals = [s for s in mine if s.strategy == SHORT and s.saving_samples.mean >= saved - 0.005 and s.acc_diff.n]
    if not rivals and g.budget is not None:
        return f"against full data's budget curve (time to accuracy): {g.budget.verdict()}"
    if not rivals:
        return (f"not compared: no {SHORT} run saved {100 * saved:.0f}% or more; add prune={SHORT} "
                f"prune.target_saving={round(saved, 2):g} to the sweep")
    best = min(rivals, key=lambda s: s.saving_samples.mean)
    their = verdict(best.acc_diff, tolerance)[0]
    also = "so is" if their.startswith("lossless") else "unlike"
    return (f"{also} training fewer epochs: {SHORT} saving {100 * best.saving_samples.mean:.0f}% is {their} "
            f"(Δacc {100 * best.acc_diff.mean:+.2f} pp)")


def budget_columns(g: Group) -> dict:
    """report.csv's columns against the full-data budget curve (budget.py): each figure's mean over
    seeds, its relation ("=", or ">=" / "<=" for a bound, "" without a value) and its 95% CI."""
    out = {"curve_budgets": g.budget.budgets if g.budget else 0,
           "fewer_epochs_verdict": g.budget.verdict() if g.budget else ""}
    for axis in AXES:
        for name, stat, scale in ((f"speedup_{axis}", g.budget and g.budget.speedup[axis], 1.0),
                                  (f"delta_acc_equal_cost_{axis}", g.budget and g.budget.delta_acc[axis], 100.0)):
            known = bool(stat) and stat.n > 0 and stat.relation is not None
            ci = stat.ci95() if known else None
            column = name + ("_pp" if scale != 1.0 else "")
            out[column] = scale * stat.mean if known else math.nan
            out[name + "_relation"] = stat.relation if known else ""
            if scale == 1.0:
                out[name + "_ci_low"], out[name + "_ci_high"] = (ci[0], ci[1]) if ci else (math.nan, math.nan)
    return out


def rows_of(groups: list[Group], tolerance: float) -> list[dict]:
    """One row per group; means, sds and CIs over distinct seeds (repeats of a seed averaged first)."""
    names = setting_names(g.setting_key for g in groups)
    rows = []
    for g in groups:
        mine = [other for other in groups if other.setting_key == g.setting_key]
        ci = g.acc_diff.ci95()
        v, tested = ("baseline", "") if g.strategy == "full" else verdict(g.acc_diff, tolerance)
        rows.append({
            "setting": names[g.setting_key], "strategy": g.strategy, "label": g.label,
            "runs": len(g.runs), "seeds": len(g.seeds), "seeds_paired": g.acc_diff.n,
            "final_acc_mean": g.final_acc.mean, "final_acc_sd": g.final_acc.sd,
            "acc_diff_mean": g.acc_diff.mean, "acc_diff_sd": g.acc_diff.sd,
            "acc_diff_ci_low": ci[0] if ci else math.nan, "acc_diff_ci_high": ci[1] if ci else math.nan,
            "saving_wall_mean": g.saving_wall.mean, "saving_wall_sd": g.saving_wall.sd,
            "wall_unreliable": "; ".join(f"seed {seed}: {why}" for seed, why in g.wall_unreliable),
            "saving_samples_mean": g.saving_samples.mean, "saving_samples_sd": g.saving_samples.sd,
            "time_cost_s_mean": g.cost_s.mean, "baseline_runs": max(g.baseline_runs, default=0),
            "verdict": v, "tested": tested, "fewer_epochs": fewer_epochs(g, mine, tolerance),
            **budget_columns(g),
        })
    return rows


def time_to_accuracy(mine: list[Group], groups: list[Group]) -> list[str]:
    """A setting's strategies against the full-data budget curve of their seeds (budget.py): the
    curve's budgets, then per strategy its speedup at equal accuracy and Δacc at equal cost."""
    strategies = [g for g in mine if g.strategy not in CURVE_STRATEGIES]
    if not strategies:
        return []
    budgets = budget_points(mine[0].setting_key, groups)
    lines = ["### Against training fewer epochs: time to accuracy", ""]
    if not any(g.budget for g in strategies):
        epochs = json.loads(mine[0].setting_key).get("trainer", {}).get("epochs", 8)
        fewer = ",".join(str(e) for e in sorted({max(1, round(epochs * f)) for f in (0.5, 0.75)}))
        return lines + [f"No full-data budget curve: this setting has full-data runs at fewer than two epoch "
                        f"counts per seed. Add them (the same seeds), e.g. `prune=full trainer.epochs={fewer}`, to "
                        "see how much faster each strategy reached its accuracy than full data trained for "
                        "fewer epochs.", ""]
    lines += ["Each run against the full-data curve of its seed: full data trained for " + ", ".join(
        f"{p.epochs:g}" for p in budgets) + " epochs (" + ", ".join(
        f"{100 * p.acc.mean:.2f}%" for p in budgets) + " final accuracy, mean over seeds), joined piecewise "
        "linearly in cost. Speedup at equal accuracy: the cost at which that curve first reaches the run's "
        "accuracy, divided by the run's cost (time: time_cost_s; samples: sample passes). Δacc at equal cost: "
        "the run's accuracy minus the curve's at the run's cost. Beyond the curve's budgets, a bound (>=, <=) "
        "read under the assumption that more budget never lowers full data's accuracy, never an "
        "extrapolation. Mean and 95% CI over seeds; the verdict is the time speedup's CI against 1.", "",
        "| strategy | seeds | speedup, time | speedup, samples | Δacc at equal time pp | Δacc at equal samples pp "
        "| against training fewer epochs |", "|---|---|---|---|---|---|---|"]
    for g in strategies:
        if g.budget is None:
            lines.append(f"| {g.label} | {len(g.seeds)} | n/a | n/a | n/a | n/a | no budget curve for its seeds |")
            continue
        b = g.budget
        lines.append(f"| {g.label} | {b.speedup['wall'].n} | {b.speedup['wall'].text(suffix='x')} | "
                     f"{b.speedup['samples'].text(suffix='x')} | {b.delta_acc['wall'].text(100, signed=True)} | "
                     f"{b.delta_acc['samples'].text(100, signed=True)} | {b.verdict()} |")
    return lines + [""]


def _seed_list(seeds) -> str:
    seeds = list(seeds)
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))


def _comparison_header(groups: list[Group], tolerance: float) -> list[str]:
    lines = ["# Strategy comparison against full data", "",
             f"Accuracy is the final epoch's test accuracy; Δacc and the wall-clock saving are paired per seed with "
             f"the full-data run of the same setting; the verdict tests the paired Δacc against a tolerance of "
             f"-{100 * tolerance:.2f} pp (a 95% CI from {MIN_SEEDS_FOR_CI} seeds on). Values are mean ± sd over "
             f"distinct seeds: repeats of the same seed (same setting, strategy and parameters, or full runs) are "
             f"averaged into one value first, so n, the sd and the CI count distinct seeds, not runs.", ""]
    return lines + (["No finished run to compare.", ""] if not groups else [])


def markdown(groups: list[Group], tolerance: float, skipped: list[tuple[Path, str]] = (),
             failed: list[FailedRun] = (), trials: list[str] = ()) -> str:
    """The comparison; a search's table of trials (trials.markdown) first, and alone when the folder
    holds nothing else."""
    names = setting_names(g.setting_key for g in groups)
    lines = list(trials)
    if groups or not trials:
        lines += _comparison_header(groups, tolerance)
    for setting_key in dict.fromkeys(g.setting_key for g in groups):
        mine = [g for g in groups if g.setting_key == setting_key]
        lines += [f"## {names[setting_key]}", "",
                  "| strategy | runs | seeds | final acc % | Δacc pp | wall saving % | sample saving % | cost s | verdict |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for g in mine:
            v = "baseline" if g.strategy == "full" else verdict(g.acc_diff, tolerance)[0]
            note = f" ({max(g.baseline_runs)} baseline runs averaged)" if max(g.baseline_runs, default=1) > 1 else ""
            wall_n = f" ({g.saving_wall.n} of {g.acc_diff.n} seeds)" if 0 < g.saving_wall.n < g.acc_diff.n else ""
            wall_n += UNRELIABLE if g.wall_unreliable else ""
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
        unreliable = [g for g in mine if g.wall_unreliable]
        if unreliable:
            lines += [f"{UNRELIABLE} Wall saving unreliable: the machine, not only the strategy, changed the time "
                      f"(Δacc is unaffected):", ""]
            for g in unreliable:
                lines += [f"- {g.label}: seed {seed}: {why}" for seed, why in g.wall_unreliable]
            lines.append("")
        against = [(g.label, fewer_epochs(g, mine, tolerance)) for g in mine]
        against = [(label, note) for label, note in against if note]
        if against:
            lines += ["Against training fewer epochs (a lossless verdict is only worth what a cheaper baseline "
                      f"cannot also do; {SHORT} trains full data for fewer epochs with the whole schedule):", ""]
            lines += [f"- {label}: {note}" for label, note in against] + [""]
        lines += time_to_accuracy(mine, groups)
        lines += leaderboard.section(mine, failed, tolerance)
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
    ended = [f for f in failed if getattr(f, "type", "") != UNFINISHED]
    if ended:
        lines += ["## Failed runs", "", "These jobs ended with an error (failed.json, no summary.json); "
                  "they are in no statistic above.", ""]
        for f in ended:
            path, error = f[0], f[1]
            overrides = getattr(f, "overrides", ())
            kind = getattr(f, "type", "")
            lines.append(f"- {path}" + (f" (`{' '.join(overrides)}`)" if overrides else "") + ": "
                         + (f"{kind}: " if kind else "") + error)
        lines.append("")
    cut = [f for f in failed if getattr(f, "type", "") == UNFINISHED]
    if cut:
        lines += ["## Runs that did not finish", "", "These job folders hold neither summary.json nor failed.json; "
                  "they are in no statistic above.", ""]
        lines += [f"- {f.path}: {f.error}" for f in cut] + [""]
    return "\n".join(lines)


def compact_table(rows: list[dict]) -> str:
    """The few columns that fit a terminal, one line per strategy; the strategy column as wide as its
    longest label (up to 60 characters), so that rows differing at their end stay apart."""
    settings = list(dict.fromkeys(r.get("setting") for r in rows))
    if len(settings) > 1:  # two settings' rows side by side ("full" twice): each row says whose it is
        rows = [{**r, "label": f"[{settings.index(r.get('setting')) + 1}] {r['label']}"} for r in rows]
    width = min(max([28] + [len(r["label"]) for r in rows]), 60)
    head = (f"{'strategy':<{width}} {'runs':>4} {'seeds':>5} {'final acc':>15} {'Δacc pp':>14} {'wall saving':>13} "
            f"{'samples':>8} {'speedup':>8}  verdict")
    lines = [head, "-" * len(head)]
    for r in rows:
        def pm(mean, sd, scale=100, d=2):
            if math.isnan(mean):
                return "n/a"
            return f"{scale * mean:.{d}f}" + ("" if math.isnan(sd) else f"±{scale * sd:.{d}f}")
        wall = pm(r["saving_wall_mean"], r["saving_wall_sd"], d=1) + (UNRELIABLE if r["wall_unreliable"] else "")
        relation = r.get("speedup_wall_relation", "")  # against the budget curve, on the wall clock
        speedup = "" if not relation else ("" if relation == "=" else relation) + f"{r['speedup_wall']:.2f}x"
        lines.append(f"{r['label'][:width]:<{width}} {r['runs']:>4} {r['seeds']:>5} "
                     f"{pm(r['final_acc_mean'], r['final_acc_sd']):>15} "
                     f"{'0' if r['strategy'] == 'full' else pm(r['acc_diff_mean'], r['acc_diff_sd']):>14} "
                     f"{wall:>13} "
                     f"{100 * r['saving_samples_mean']:>7.1f}% {speedup:>8}  {r['verdict']}"
                     + (FEWER_EPOCHS_MARK if r["fewer_epochs"].startswith("not compared") else ""))
    if len(settings) > 1:
        lines += [f"[{i}] {setting}" for i, setting in enumerate(settings, 1)]
    if any(r["wall_unreliable"] for r in rows):
        lines.append(f"{UNRELIABLE} wall saving unreliable (the machine's speed drifted or jobs overlapped): see report.md")
    if any(r.get("speedup_wall_relation") for r in rows):
        lines.append("speedup: how much sooner than full data trained for fewer epochs it reached its accuracy, on "
                     "the wall clock (mean over seeds; >= and <= are bounds beyond the curve): see report.md")
    if any(r["fewer_epochs"].startswith("not compared") for r in rows):
        lines.append(f"{FEWER_EPOCHS_MARK} lossless against full data, but no fewer-epochs run ({SHORT}) was compared "
                     "at that saving: see report.md")
    return "\n".join(lines)
