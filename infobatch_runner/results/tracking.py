"""Where a run's numbers go: its local files (records.py) and, unless disabled, W&B (wandb_runs.py)."""

from pathlib import Path

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
