"""Checkpoints: written atomically at epoch ends (every trainer.checkpoint_every epochs and after
the last; never with 0), the last and the best kept, read back by `resume=auto` so that a killed
run continues exactly where its last checkpointed epoch left it.

Whether a run folder may be (re)used is decided here too, before anything is written into it:
a fresh run never goes into a folder holding results, a resume only with the config it began with.
"""

import os
import random
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from infobatch_runner.errors import UserError
from infobatch_runner.results.folders import holds_a_run, results_in
from infobatch_runner.results.records import read_metrics

FORMAT = 1
LAST, BEST = "last.pt", "best.pt"


def rng_state(device: torch.device | None = None) -> dict:
    """Every global RNG a run draws from: the CPU's, numpy's, Python's and, on a CUDA training
    device, that one device's generator (never one per visible GPU: a resume where fewer GPUs are
    visible must still find its own)."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device is not None and device.type == "cuda" else None,
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def cuda_state_for(saved, device: torch.device) -> torch.Tensor | None:
    """The CUDA generator state for `device` in a checkpoint's rng["cuda"]: one tensor (this version),
    or a list of one state per GPU that was visible (checkpoints of earlier versions): the entry of
    this device's index where there is one, else the first; None when the run saved none."""
    if isinstance(saved, (list, tuple)):
        if not saved:
            return None
        index = device.index if device.index is not None else torch.cuda.current_device()
        return saved[index] if index < len(saved) else saved[0]
    return saved


def set_rng_state(state: dict, device: torch.device | None = None) -> None:
    torch.set_rng_state(state["torch"])
    if device is not None and device.type == "cuda":
        cuda = cuda_state_for(state.get("cuda"), device)
        if cuda is not None:
            torch.cuda.set_rng_state(cuda, device)
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def _write_atomic(state: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # torch reports a failed write inside its zip writer as RuntimeError
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        kept = f"the last good checkpoint {path} is kept" if path.exists() else "no earlier checkpoint exists"
        raise UserError(f"could not save the checkpoint {path} ({reason}); {kept}.") from None


def due(epochs_done: int, every: int, epochs: int) -> bool:
    """Whether the end of epoch `epochs_done` (1-based) writes a checkpoint: every `every` epochs
    (trainer.checkpoint_every) and after the last one; never with every=0."""
    return every > 0 and (epochs_done % every == 0 or epochs_done == epochs)


def save(directory: Path, state: dict, is_best: bool) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, **state}
    _write_atomic(state, directory / LAST)
    if is_best:
        _write_atomic(state, directory / BEST)


def load(directory: Path) -> dict | None:
    """The last checkpoint in `directory`, or None when there is none yet."""
    path = directory / LAST
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated, not a torch file, unreadable: say which file and what to do
        raise UserError(f"the checkpoint {path} is unreadable ({type(exc).__name__}); delete it to start over, "
                        f"or resume from {directory / BEST} by copying it to {path}.") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path} is not a checkpoint of this version of infobatch-runner.")
    return state


def config_difference(saved: dict, current: dict, prefix: str = "") -> str | None:
    """The first setting that differs between two resolved configs, as 'key: saved vs current'."""
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key, "<absent>"), current.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            found = config_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key}: {a!r} vs {b!r}"
    return None


# Settings that change nothing a run computes, only how it is saved: a resume may change them.
NOT_COMPARED = {"trainer": ("checkpoint_every",)}
# Settings added since checkpoints were first written, with the value that does what earlier
# versions did without them: a checkpoint that lacks one is read as having that value.
IMPLICIT = {"trainer": {"tf32": True}, "dataset": {"val_fraction": 0.0}}


def resumable_config(cfg: DictConfig) -> dict:
    """The config a checkpoint must agree with: everything but how the run is resumed, logged and
    checkpointed, and what it returns to a sweeper (`objective`: it changes nothing the run computes)."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    kept = {k: v for k, v in plain.items() if k not in ("resume", "logger", "hydra", "objective")}
    for group, keys in NOT_COMPARED.items():
        if isinstance(kept.get(group), dict):
            kept[group] = {k: v for k, v in kept[group].items() if k not in keys}
    return kept


def _with_implicit(saved: dict) -> dict:
    saved = dict(saved)
    for group, values in IMPLICIT.items():
        if isinstance(saved.get(group), dict):
            saved[group] = {**values, **saved[group]}
    return saved


def previous_state(cfg: DictConfig, run_dir: Path, before_hydra: bool = False) -> dict | None:
    """The checkpoint to continue from (resume=auto), None for a fresh start; refuses, with one
    sentence and before anything is written, every start that would overwrite saved results.

    before_hydra: checked ahead of Hydra, whose own record (.hydra/) of an earlier run counts too.
    """
    run_dir = Path(run_dir)
    where = "choose another hydra.run.dir"
    if cfg.resume != "auto":
        if holds_a_run(run_dir) if before_hydra else results_in(run_dir):
            raise UserError(f"{run_dir} already holds a run; continue it with resume=auto or {where}.")
        return None
    state = load(run_dir / "checkpoints")
    metrics = read_metrics(run_dir / "metrics.csv")
    if state is None:
        # Rows of epochs up to the first checkpoint that was due (trainer.checkpoint_every; 0: never)
        # are this run's own unfinished attempt (killed before that checkpoint was written, which
        # follows its epoch's row): it starts afresh and rewrites them.
        every, epochs = cfg.trainer.checkpoint_every, cfg.trainer.epochs
        none_due = every == 0 or len(metrics) <= min(every, epochs)
        if (run_dir / "summary.json").exists() or (metrics and not none_due):
            raise UserError(f"{run_dir} holds a run's results but no checkpoint (checkpoints/{LAST}) to resume from; "
                            f"{where}.")
        return None
    diff = config_difference(_with_implicit(state["config"]), resumable_config(cfg))
    if diff:
        raise UserError(f"the checkpoint in {run_dir} was made with another config ({diff}); "
                        f"resume with the same settings or {where}.")
    return state
