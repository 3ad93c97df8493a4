"""Where a run's numbers go: its local files (records.py) and, unless disabled, W&B (wandb_runs.py)."""

from dataclasses import dataclass, field
from pathlib import Path

from infobatch_runner.pruning import ignored_params
from infobatch_runner.results.records import LocalTracker
from infobatch_runner.results.wandb_runs import WandbTracker


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


@dataclass
class Launch:
    """Where a run sits, for W&B dashboards: the sweep it belongs to (its folder's name), whether
    that sweep is a search (Optuna trials), the Hydra choices (`experiment=...` included) and the
    command line's overrides. A single run has no sweep."""

    sweep_id: str | None = None
    search: bool = False
    choices: dict = field(default_factory=dict)
    overrides: list = field(default_factory=list)


def build_trackers(cfg, run_dir: Path, config: dict, resume_from_epoch: int = 0, wandb_id: str | None = None,
                   launch: Launch | None = None) -> Trackers:
    """Local files, plus W&B unless disabled; a resumed run continues its metrics.csv and W&B run.

    A W&B run's group is `<dataset>-<model>` for a single run and `<dataset>-<model>-<sweep id>` for
    a sweep's, so that a tiny test sweep, a real sweep and a search do not share one group; its tags
    carry the strategy, dataset, model, the sweep id and `search` for a search trial (job type
    `search`, else `train`); its config adds sweep_id, the Hydra choices and the overrides."""
    trackers: list = [LocalTracker(run_dir, resume_from_epoch)]
    if cfg.logger.name == "wandb" and cfg.logger.mode != "disabled":
        launch = launch or Launch()
        ratio = "" if cfg.prune.name == "full" else f"-r{cfg.prune.ratio:g}"
        if cfg.prune.get("target_saving") is not None:  # budget mode: the target, and the ratio where it counts
            ratio = ("" if "ratio" in ignored_params(cfg.prune) else ratio) + f"-t{cfg.prune.target_saving:g}"
        name = f"{cfg.prune.name}{ratio}-s{cfg.seed}"
        model = cfg.model.arch if cfg.model.name == "timm" else cfg.model.name
        sweep = f"-{launch.sweep_id}" if launch.sweep_id else ""
        group = cfg.logger.group or f"{cfg.dataset.name}-{model}{sweep}"
        tags = [cfg.prune.name, cfg.dataset.name, model, *([launch.sweep_id] if launch.sweep_id else []),
                *(["search"] if launch.search else []), *cfg.logger.get("tags", [])]
        config = {**config, "sweep_id": launch.sweep_id, "hydra_choices": dict(launch.choices),
                  "overrides": list(launch.overrides)}
        trackers.append(WandbTracker(cfg.logger, run_dir, config, name, group, list(dict.fromkeys(tags)), wandb_id,
                                     job_type="search" if launch.search else "train"))
    return Trackers(trackers)
