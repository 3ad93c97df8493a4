"""Where a run's numbers go: local files (the source of truth) and, optionally, Weights & Biases.

metrics.csv holds one row per epoch with EPOCH_KEYS; summary.json holds the run's totals.
W&B gets the same rows and summary, the resolved config, a name saying strategy and ratio,
and a group per dataset + model. W&B never prompts: with no credentials it runs offline.
"""

import csv
import json
import logging
import math
import netrc
import os
from pathlib import Path
from urllib.parse import urlparse

from infobatch_runner.errors import UserError

log = logging.getLogger(__name__)

EPOCH_KEYS = ("epoch", "lr", "train/loss", "train/kept_fraction", "train/epoch_time_s", "test/acc", "test/loss",
              "val/acc", "val/loss")
VAL_KEYS = ("val/acc", "val/loss")  # NaN without a validation split (dataset.val_fraction=0)
# The columns of earlier versions (no validation split): still read, their rows given NaN val columns.
EPOCH_KEYS_BEFORE_VAL = tuple(k for k in EPOCH_KEYS if k not in VAL_KEYS)


def write_json_atomic(path: Path, data: dict) -> None:
    """Write `data` beside `path` and rename it over `path`: a failed write leaves `path` as it was."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def _cannot_write(path: Path, exc: OSError) -> UserError:
    return UserError(f"cannot write {path} ({exc.strerror or exc}); free some space or make the folder writable, "
                     f"then continue with resume=auto.")


def read_metrics(path: Path) -> list[dict]:
    """The rows of a metrics.csv this tool wrote ([] when there is none), each value a number;
    a row it did not write is one sentence, before anything is changed."""
    if not path.exists():
        return []
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None:
                return []
            if tuple(reader.fieldnames) not in (EPOCH_KEYS, EPOCH_KEYS_BEFORE_VAL):
                raise UserError(f"{path} does not have the columns this tool writes ({', '.join(EPOCH_KEYS)}); "
                                "move it away or choose another hydra.run.dir.")
            rows = []
            for line, row in enumerate(reader, start=2):
                try:
                    rows.append({**{k: math.nan for k in VAL_KEYS},
                                 **{k: int(v) if k == "epoch" else math.nan if k in VAL_KEYS and v == "" else float(v)
                                    for k, v in row.items()}})
                except (TypeError, ValueError):
                    raise UserError(f"{path} line {line} is not a row this tool wrote ({', '.join(map(str, row.values()))}"
                                    "); delete that line or choose another hydra.run.dir.") from None
            return rows
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path} ({getattr(exc, 'strerror', None) or exc}).") from None


class LocalTracker:
    def __init__(self, run_dir: Path, resume_from_epoch: int = 0):
        self.metrics_path = run_dir / "metrics.csv"
        self.summary_path = run_dir / "summary.json"
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            self._keep_rows_before(resume_from_epoch)
            new = not self.metrics_path.exists()
            self._file = open(self.metrics_path, "a", newline="")
            self._writer = csv.DictWriter(self._file, fieldnames=EPOCH_KEYS)
            if new:
                self._writer.writeheader()
                self._file.flush()
        except OSError as exc:
            raise _cannot_write(self.metrics_path, exc) from None

    def _keep_rows_before(self, epoch: int) -> None:
        """A resumed run rewrites the epochs after its checkpoint: drop their rows, if any were written."""
        rows = [r for r in read_metrics(self.metrics_path) if r["epoch"] < epoch]
        if not self.metrics_path.exists():
            return
        tmp = self.metrics_path.with_name("metrics.csv.tmp")
        try:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=EPOCH_KEYS)
                writer.writeheader()
                writer.writerows(rows)
            os.replace(tmp, self.metrics_path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise

    def log_epoch(self, row: dict) -> None:
        try:
            self._writer.writerow({k: row[k] for k in EPOCH_KEYS})
            self._file.flush()
        except OSError as exc:
            raise _cannot_write(self.metrics_path, exc) from None

    def log_summary(self, summary: dict) -> None:
        try:
            write_json_atomic(self.summary_path, summary)
        except OSError as exc:
            raise _cannot_write(self.summary_path, exc) from None

    def finish(self) -> None:
        try:
            self._file.close()
        except OSError:
            pass  # a failed flush was already reported by the write that failed


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

    train = kwargs.get("job_type") == "train"
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
                 run_id: str | None = None):
        resume = dict(id=run_id, resume="allow") if run_id else {}
        self.run = start_wandb_run(cfg_logger.mode, run_dir, cfg_logger.get("init_timeout", 60),
                                   project=cfg_logger.project, entity=cfg_logger.get("entity"),
                                   group=group, name=name, job_type="train", tags=tags, config=config, **resume)
        self.run.define_metric("epoch")
        self.run.define_metric("*", step_metric="epoch")

    def info(self) -> dict:
        """What it takes to reopen this run later (to add saving_wall once the baseline is known)."""
        return {"id": self.run.id, "project": self.run.project, "entity": self.run.entity or None,
                "group": self.run.group, "mode": "offline" if self.run.offline else "online"}

    def log_epoch(self, row: dict) -> None:
        # Without a validation split its columns are NaN: W&B gets no val/* series at all.
        self.run.log({k: v for k, v in row.items() if not (k in VAL_KEYS and math.isnan(v))})

    def log_summary(self, summary: dict) -> None:
        self.run.summary.update(summary)

    def finish(self) -> None:
        self.run.finish()


class Trackers:
    """Fans every call out to the local files and, when enabled, W&B."""

    def __init__(self, trackers: list):
        self.trackers = trackers

    def log_epoch(self, row: dict) -> None:
        for t in self.trackers:
            t.log_epoch(row)

    def log_summary(self, summary: dict) -> None:
        for t in self.trackers:
            t.log_summary(summary)

    def finish(self) -> None:
        for t in self.trackers:
            t.finish()

    def wandb_info(self) -> dict | None:
        return next((t.info() for t in self.trackers if isinstance(t, WandbTracker)), None)


def build_trackers(cfg, run_dir: Path, config: dict, resume_from_epoch: int = 0, wandb_id: str | None = None) -> Trackers:
    """Local files, plus W&B unless disabled; a resumed run continues its metrics.csv and W&B run."""
    trackers: list = [LocalTracker(run_dir, resume_from_epoch)]
    if cfg.logger.name == "wandb" and cfg.logger.mode != "disabled":
        ratio = "" if cfg.prune.name == "full" else f"-r{cfg.prune.ratio:g}"
        if cfg.prune.get("target_saving") is not None:
            ratio = f"-t{cfg.prune.target_saving:g}"  # budget mode: the target, not the ignored ratio
        name = f"{cfg.prune.name}{ratio}-s{cfg.seed}"
        model = cfg.model.arch if cfg.model.name == "timm" else cfg.model.name
        group = cfg.logger.group or f"{cfg.dataset.name}-{model}"
        tags = [cfg.prune.name, cfg.dataset.name, model, *cfg.logger.get("tags", [])]
        trackers.append(WandbTracker(cfg.logger, run_dir, config, name, group, tags, wandb_id))
    return Trackers(trackers)


def log_report_to_wandb(report, cfg_logger, sweep_dir: Path) -> None:
    """The sweep's comparison as one W&B run of its own (job type `report`) in the sweep's group."""
    import wandb

    from infobatch_runner.report import CSV_COLUMNS

    groups = [r.summary["wandb"]["group"] for g in report.groups for r in g.runs if r.summary.get("wandb")]
    group = max(set(groups), key=groups.count) if groups else cfg_logger.get("group")
    run = start_wandb_run(cfg_logger.mode, sweep_dir, cfg_logger.get("init_timeout", 60),
                          project=cfg_logger.project, entity=cfg_logger.get("entity"),
                          group=group, name=f"report-{sweep_dir.name}", job_type="report",
                          config={"sweep_dir": str(sweep_dir)})
    table = wandb.Table(columns=CSV_COLUMNS, data=[[row[c] for c in CSV_COLUMNS] for row in report.rows])
    images = {f"report/{p.stem}": wandb.Image(str(p)) for p in report.files if p.suffix == ".png"}
    run.log({"report/table": table, **images})
    run.finish()


def add_saving_wall_to_wandb(runs) -> None:
    """Reopen each run's W&B run (online or offline, by id) to add the saving_wall now known."""
    for r in runs:
        info = r.summary.get("wandb")
        if not info:
            continue
        run = start_wandb_run(info["mode"], r.path, id=info["id"], project=info["project"], entity=info["entity"],
                              resume="allow")
        run.summary["saving_wall"] = r.summary["saving_wall"]
        run.finish()
