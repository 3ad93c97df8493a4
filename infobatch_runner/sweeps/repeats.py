"""Sweeps that waste nothing: a job whose run an earlier job of the sweep already made is skipped.

`-m prune=full,infobatch prune.ratio=0.3,0.5,0.7 seed=0,1,2` composes the full-data baseline once
per ratio, although prune=full ignores the ratio: nine full runs where three give the same result.
A job is the same run as another when their resolved configs are equal once the keys the strategy
ignores (and `resume`) are left out.
"""

import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from infobatch_runner.pruning import ignored_params

SAME_AS = "same_as.json"


def what_runs(cfg: DictConfig) -> dict:
    """The config as far as it decides the run's result and cost."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain.pop("resume", None)
    plain.pop("hydra", None)
    for key in ignored_params(cfg.prune):
        plain["prune"].pop(key, None)
    return plain


def finished_twin(cfg: DictConfig, run_dir: Path, sweep_dir: Path) -> Path | None:
    """A finished job folder of this sweep that made exactly this job's run, if there is one."""
    mine = what_runs(cfg)
    for sibling in sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p != run_dir):
        recorded = sibling / ".hydra" / "config.yaml"
        if not (sibling / "summary.json").exists() or not recorded.exists():
            continue
        if what_runs(OmegaConf.load(recorded)) == mine:
            return sibling
    return None


def record_twin(run_dir: Path, twin: Path) -> None:
    (run_dir / SAME_AS).write_text(json.dumps({"same_as": twin.name}) + "\n")
