"""Weights & Biases: a training run's W&B run (the same rows and summary as the local files, the
resolved config, a name saying strategy and ratio, a group per dataset + model), the sweep report's
own run, and reopening runs to add the wall-clock saving once their baseline is known.
W&B never prompts: with no credentials, or no server, it logs offline.
"""

import hashlib
import json
import logging
import math
import netrc
import os
import statistics
from pathlib import Path
from urllib.parse import urlparse

from infobatch_runner.results.budget import CURVE_STRATEGIES, RUN_KEYS, budget_points, cost
from infobatch_runner.results.curves import mean_curve, sd_curve
from infobatch_runner.results.render import CSV_COLUMNS
from infobatch_runner.results.trials import columns as trial_columns

log = logging.getLogger(__name__)


def has_wandb_credentials() -> bool:
    """True when W&B could log in without asking: an API key in the environment or in netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def start_wandb_run(mode: str, where: Path, init_timeout: float = 60, **kwargs):
    """wandb.init that never prompts and never loses the work: offline when there are no
    credentials or the server cannot be reached. W&B's own console output is off (`silent`: its
    header of three lines per offline run, its footer); a training run (job_type "train") says
    one line instead: its URL, or where its offline data is and how to upload it. The sweep's
    report run and the reopening of runs to add saving_wall say nothing unless something fails."""
    import wandb

    train = kwargs.get("job_type") in ("train", "search") and not kwargs.pop("reopened", False)
    said = False
    if mode == "online" and not has_wandb_credentials():
        if train:
            log.warning("W&B: no API key found (WANDB_API_KEY or `wandb login`), logging offline to %s/wandb; "
                        "upload later with `wandb sync`.", where)
            said = True
        mode = "offline"
    kwargs.update(dir=str(where), reinit="finish_previous",
                  settings=wandb.Settings(console="off", quiet=True, silent=True, init_timeout=init_timeout))
    try:
        run = wandb.init(mode=mode, **kwargs)
    except Exception as exc:  # an unreachable server or a rejected key must not lose the run
        if mode != "online":
            raise
        log.warning("W&B: could not start an online run (%s); logging offline instead.", str(exc).splitlines()[0])
        said = True
        run = wandb.init(mode="offline", **kwargs)
    if train and not said:
        if run.offline:
            log.info("W&B: offline; upload later with `wandb sync %s`.", run.sync_dir)
        else:
            log.info("W&B: %s", run.url)
    return run


class WandbTracker:
    def __init__(self, cfg_logger, run_dir: Path, config: dict, name: str, group: str, tags: list[str],
                 run_id: str | None = None, job_type: str = "train"):
        resume = dict(id=run_id, resume="allow") if run_id else {}
        self.run = start_wandb_run(cfg_logger.mode, run_dir, cfg_logger.get("init_timeout", 60),
                                   project=cfg_logger.project, entity=cfg_logger.get("entity"),
                                   group=group, name=name, job_type=job_type, tags=tags, config=config, **resume)
        self.run.define_metric("epoch")
        self.run.define_metric("*", step_metric="epoch")

    def info(self) -> dict:
        """What it takes to reopen this run later (to add saving_wall once the baseline is known) as
        the same run: offline, a reopened run is written anew, so it needs its name, group, job type
        and tags again (else its second folder holds a run without them)."""
        return {"id": self.run.id, "project": self.run.project, "entity": self.run.entity or None,
                "group": self.run.group, "mode": "offline" if self.run.offline else "online",
                "name": self.run.name, "job_type": self.run.job_type, "tags": list(self.run.tags or ())}

    def log_epoch(self, row: dict) -> None:
        # NaN is "nothing here": the val/* columns without a validation split (no series at all) and
        # the loss of an epoch that trained nothing (a gap in the curve, not a drop to 0).
        self.run.log({k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))})

    def log_summary(self, summary: dict) -> None:
        self.run.summary.update(dashboard_summary(summary))

    def finish(self) -> None:
        self.run.finish()


def setting_id(setting: dict) -> str:
    """A short name of a setting (everything that must match for two runs to be compared): runs
    with one setting_id share their baselines."""
    return hashlib.sha256(json.dumps(setting, sort_keys=True).encode()).hexdigest()[:10]


def dashboard_summary(summary: dict) -> dict:
    """summary.json as a W&B runs table shows it, one column per key: the setting (some 30 leaves,
    all of them in the run's config already) as its setting_id, and neither the prune config (in
    the config too), the epochs' wall-clock spans (a list, for the report's overlap check) nor the
    run's own W&B identity."""
    slim = {k: v for k, v in summary.items() if k not in ("setting", "prune", "epoch_spans", "wandb")}
    if isinstance(summary.get("setting"), dict):
        slim["setting_id"] = setting_id(summary["setting"])
    return slim


def log_report_to_wandb(report, cfg_logger, sweep_dir: Path) -> None:
    """The sweep's comparison as one W&B run of its own (job type `report`) in the sweep's group."""
    import wandb

    groups = [r.summary["wandb"]["group"] for g in report.groups for r in g.runs if r.summary.get("wandb")]
    group = max(set(groups), key=groups.count) if groups else cfg_logger.get("group")
    run = start_wandb_run(cfg_logger.mode, sweep_dir, cfg_logger.get("init_timeout", 60),
                          project=cfg_logger.project, entity=cfg_logger.get("entity"),
                          group=group, name=f"report-{sweep_dir.name}", job_type="report",
                          config={"sweep_dir": str(sweep_dir)})
    logged = {f"report/{p.stem}": wandb.Image(str(p)) for p in report.files if p.suffix == ".png"}
    if report.rows:
        logged["report/table"] = wandb.Table(columns=CSV_COLUMNS, data=[[row[c] for c in CSV_COLUMNS]
                                                                        for row in report.rows])
        logged.update(native_charts(report))
    if report.trials:  # a search: its trials, best first
        columns = trial_columns(report.trials)
        logged["report/trials"] = wandb.Table(columns=columns, data=[[row[c] for c in columns] for row in report.trials])
    run.log(logged)
    artifact = wandb.Artifact(f"report-{sweep_dir.name}", type="report",
                              description="report.md, report.csv (a search: trials.csv) and the plots of the sweep")
    for path in report.files:
        artifact.add_file(str(path))
    run.log_artifact(artifact)
    run.finish()


PAIRED_KEYS = ("saving_wall", "baseline/test_acc", "delta_acc_pp",
               *(k for key in RUN_KEYS.values() for k in (key, f"{key}_relation")))
POINT_COLUMNS = ["label", "strategy", "seeds", "saving_wall", "saving_samples", "delta_acc_pp", "final_acc"]


def native_charts(report) -> dict:
    """W&B's own charts of the comparison, drawn from W&B Tables (a dashboard can restyle them):
    Δacc against the wall-clock and the sample saving, a point per strategy (its mean over seeds),
    and the test accuracy per epoch of each strategy, its mean and its mean ± sd over seeds."""
    import wandb

    points = wandb.Table(columns=POINT_COLUMNS, data=[
        [r["label"], r["strategy"], r["seeds"], 100 * r["saving_wall_mean"], 100 * r["saving_samples_mean"],
         0.0 if r["strategy"] == "full" else 100 * r["acc_diff_mean"], 100 * r["final_acc_mean"]]
        for r in report.rows])
    charts = {
        "report/delta_acc_vs_wall_saving": wandb.plot.scatter(
            points, "saving_wall", "delta_acc_pp", title="Δacc (pp) against the wall-clock saving (%)"),
        "report/delta_acc_vs_sample_saving": wandb.plot.scatter(
            points, "saving_samples", "delta_acc_pp", title="Δacc (pp) against the sample saving (%)"),
    }
    cost_rows = cost_points(report.groups)
    if cost_rows:
        table = wandb.Table(columns=COST_COLUMNS, data=cost_rows)
        charts["report/accuracy_vs_cost"] = wandb.plot.scatter(
            table, "cost_s", "final_acc", title="Final accuracy (%) against wall-clock cost (s): full data for "
                                                "fewer epochs (series 'full data curve') and each strategy")
        charts["report/accuracy_vs_cost_table"] = table
    keys, xs, ys = curve_series(report.groups)
    if keys:
        charts["report/test_acc_curves"] = wandb.plot.line_series(
            xs=xs, ys=ys, keys=keys, title="Test accuracy (%) per epoch: mean and mean ± sd over seeds", xname="epoch")
    return charts


COST_COLUMNS = ["series", "label", "epochs", "cost_s", "sample_epochs", "final_acc", "seeds"]


def cost_points(groups) -> list[list]:
    """The rows of the accuracy-against-cost chart: every full-data budget of each setting's curve
    (series "full data curve") and every strategy placed on it, means over seeds."""
    rows = []
    for key in dict.fromkeys(g.setting_key for g in groups):
        points = budget_points(key, groups)
        strategies = [g for g in groups if g.setting_key == key and g.strategy not in CURVE_STRATEGIES]
        if len(points) < 2 or not strategies:
            continue
        n = max(strategies[0].runs[0].summary.get("num_train") or 1, 1)
        rows += [["full data curve", f"full data, {p.epochs:g} epochs", p.epochs, p.cost["wall"], p.cost["samples"] / n,
                  100 * p.acc.mean, p.acc.n] for p in points]
        for g in strategies:
            seeds = list(g.seeds.values())
            rows.append([g.strategy, g.label, g.runs[0].summary.get("epochs"),
                         statistics.fmean(statistics.fmean(cost(r, "wall") for r in sv.runs) for sv in seeds),
                         statistics.fmean(statistics.fmean(cost(r, "samples") for r in sv.runs) for sv in seeds) / n,
                         100 * g.final_acc.mean, len(seeds)])
    return rows


def curve_series(groups) -> tuple[list[str], list[list[int]], list[list[float]]]:
    """The test-accuracy curves (%) of the report's plot, as W&B line series: per group its mean over
    seeds and the mean ± sd over seeds (results/curves.py, as the PNG)."""
    keys, xs, ys = [], [], []
    for g in groups:
        mean, sd = mean_curve(g, "test/acc"), sd_curve(g, "test/acc")
        for suffix, values in (("", mean), (" - sd", [m - d for m, d in zip(mean, sd)]),
                               (" + sd", [m + d for m, d in zip(mean, sd)])):
            if values:
                keys.append(g.label + suffix)
                xs.append(list(range(1, len(values) + 1)))
                ys.append([100 * v for v in values])
    return keys, xs, ys


def add_paired_figures_to_wandb(runs) -> None:
    """Reopen each run's W&B run (online or offline, by id) to add what its pairings, now known,
    tell: saving_wall, baseline/test_acc and delta_acc_pp against its baseline, and the speedup and
    Δacc at equal cost against its seed's full-data budget curve (with their _relation)."""
    for r in runs:
        info = r.summary.get("wandb")
        if not info:
            continue
        same = {k: info[k] for k in ("group", "name", "job_type", "tags") if info.get(k)}  # older runs lack some
        run = start_wandb_run(info["mode"], r.path, id=info["id"], project=info["project"], entity=info["entity"],
                              resume="allow", reopened=True, **same)
        for key in PAIRED_KEYS:
            if r.summary.get(key) is not None:
                run.summary[key] = r.summary[key]
        run.finish()
