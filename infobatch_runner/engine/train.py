"""A run: set up, score (static strategies), train epoch by epoch through the strategy's plans,
evaluate, and count what it cost.

Training time is measured between device synchronisations at each epoch's edges (the plan
included, evaluation excluded); per-batch values stay on the device and are read once per epoch.
"""

import logging
import math
import signal
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from torch.nn.parallel import DistributedDataParallel

from infobatch_runner.data.build import build_data
from infobatch_runner.engine import checkpoint
from infobatch_runner.engine.distributed import (SINGLE, Observations, World, all_sum, any_rank, augment_seed,
                                                 broadcast_tensor, shard, world_from_env)
from infobatch_runner.engine.loop import (Context, EpochResult, Interrupted, StopFlag, Trainable, check_finite,
                                          compile_ahead, evaluate, plain, setting_of, train_epoch, warm_up)
from infobatch_runner.engine.optim import build_schedule
from infobatch_runner.engine.runtime import (SectionClock, allow_tf32, device_name, resolve_device, resolve_precision,
                                             timed_now)
from infobatch_runner.engine.scoring import ScoringResult, classifier_of, run_scoring
from infobatch_runner.errors import UserError, first_line
from infobatch_runner.pruning import Plan, build_strategy, check_budget, ignored_params
from infobatch_runner.results.records import read_summary
from infobatch_runner.results.pairing import against, baseline_for
from infobatch_runner.results.tracking import Launch, Trackers, build_trackers

log = logging.getLogger(__name__)


@dataclass
class Counters:
    """What a run must count (docs/strategies.md), accumulated epoch by epoch; checkpointed."""

    samples_trained: int = 0
    time_train_s: float = 0.0
    time_eval_s: float = 0.0
    time_strategy_s: float = 0.0
    time_warmup_s: float = 0.0
    time_compile_s: float = 0.0
    time_checkpoint_s: float = 0.0  # epoch-end checkpoints (not in time_train_s)
    skipped_batches: int = 0
    test_acc: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)  # per epoch, with a validation split only
    val_loss: list[float] = field(default_factory=list)
    # Each epoch's wall-clock (start, end), Unix seconds: lets the report see runs that shared the machine.
    epoch_spans: list[list[float]] = field(default_factory=list)


def setup(cfg: DictConfig, world: World = SINGLE) -> Context:
    t = cfg.trainer
    device = resolve_device(t.device)
    if device.type == "cuda" and world.size > 1:
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    precision = resolve_precision(t.precision, device, t.tf32)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = t.cudnn_benchmark
        allow_tf32(t.tf32)  # summary and setting say so: precision "tf32" (fp32 runs) or "fp32"
    data = build_data(cfg.dataset, t.batch_size, t.eval_batch_size, t.num_workers, device, t.channels_last, cfg.seed,
                      t.loader, augment_seed(cfg.seed, world))
    return Context(cfg, device, precision, data, world.size)


@contextmanager
def stop_on_signals(flag: StopFlag):
    """SIGTERM, SIGINT and SIGUSR2 stop the epoch at the next batch boundary instead of killing the
    process. SIGUSR2 is what SLURM sends through submitit before a time limit or a preemption; once
    the run has checkpointed, the CLI hands it on to submitit's own handler, which requeues the job
    (cli.run)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        flag.signal = signal.Signals(signum).name

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def launch_of(sweep_dir: Path | None) -> Launch:
    """The run's place for W&B dashboards, from Hydra's record of this job when Hydra launched it."""
    sweep_id = Path(sweep_dir).name if sweep_dir is not None else None
    if not HydraConfig.initialized():
        return Launch(sweep_id)
    hydra_cfg = HydraConfig.get()
    search = sweep_id is not None and not str(hydra_cfg.sweeper.get("_target_", "")).endswith(".BasicSweeper")
    choices = {k: v for k, v in hydra_cfg.runtime.choices.items() if not str(k).startswith("hydra/")}
    return Launch(sweep_id, search, choices, list(hydra_cfg.overrides.task))


def train(cfg: DictConfig, run_dir: Path, sweep_dir: Path | None = None) -> dict:
    """Run one training (continuing from its last checkpoint with resume=auto); in a sweep, pair it
    with a full-data run of the sweep that already finished."""
    world = world_from_env()
    if world.is_main:  # rank 0 decides whether the folder may be used; the others read its checkpoint
        state = checkpoint.previous_state(cfg, run_dir)
    else:
        state = checkpoint.load(run_dir / "checkpoints") if cfg.resume == "auto" else None
    done = read_summary(run_dir) if state is not None and state["epoch"] >= cfg.trainer.epochs else None
    if done is not None:
        log.info("%s finished all %d epochs already; nothing to do.", run_dir, cfg.trainer.epochs)
        return done
    if state is not None and state["epoch"] >= cfg.trainer.epochs:  # its summary.json is missing or cut short
        log.info("%s trained all %d epochs but holds no readable summary.json; writing it again from the last "
                 "checkpoint.", run_dir, cfg.trainer.epochs)
    ctx = setup(cfg, world)
    t, device = cfg.trainer, ctx.device
    n_train = len(ctx.data.train)
    strategy = build_strategy(cfg.prune, n_train, t.epochs, cfg.seed, device)
    with warnings.catch_warnings(record=True) as said:  # a setting that prunes nothing: one log line, not
        warnings.simplefilter("always")               # Python's warning with a file and line number
        check_budget(strategy)
    for warning in said:
        log.warning("%s", warning.message)
    start_epoch = state["epoch"] if state else 0
    launch = launch_of(sweep_dir)
    trackers = build_trackers(cfg, run_dir, plain(cfg), resume_from_epoch=start_epoch, launch=launch,
                              wandb_id=state["wandb_id"] if state else None) if world.is_main else Trackers([])
    val = f" / {len(ctx.data.val)} validation" if ctx.data.val is not None else ""
    log.info("%s on %s/%s: %d train%s / %d test samples, %s, %s%s", cfg.prune.name, cfg.dataset.name, cfg.model.name,
             n_train, val, len(ctx.data.test), device_name(device), ctx.precision,
             f", resuming after epoch {start_epoch}" if state else "")
    stop = StopFlag()
    try:
        with stop_on_signals(stop):
            summary = _train(ctx, strategy, trackers, run_dir, state, stop, world, continue_with(run_dir, sweep_dir))
        if launch.search:  # a search trial: the report lists it among the trials, by its objective
            summary["search"] = {"objective": cfg.objective, "overrides": list(launch.overrides)}
        if sweep_dir is not None and summary["saving_wall"] is None:
            baseline = baseline_for(summary, sweep_dir)
            if baseline is not None:
                summary.update(against(summary, baseline))
        trackers.log_summary(summary)
    finally:
        trackers.finish()
    return summary


def _train(ctx: Context, strategy, trackers, run_dir: Path, state: dict | None, stop: StopFlag, world: World,
           how_to_continue: str) -> dict:
    cfg, t, device = ctx.cfg, ctx.cfg.trainer, ctx.device
    n_train = len(ctx.data.train)
    counts = Counters()
    if t.warmup_steps:
        log.info("warming up: %d untimed step(s) on a throwaway model, so that one-off costs (kernel choice, "
                 "allocator growth) land on no strategy's clock (trainer.warmup_steps) ...", t.warmup_steps)
        counts.time_warmup_s = warm_up(ctx, t.warmup_steps)
        log.info("warm-up done in %.1f s (time_warmup_s; not charged to the run)", counts.time_warmup_s)
    if ctx.cfg.prune.name == "grand" and cfg.prune.variant == "last_layer":
        classifier_of(Trainable(ctx, 0, compile=False).module)  # a model without a linear head fails now, not later
    if state is None:
        scoring = ScoringResult(None, 0.0, 0.0, cached=False)
        spec = strategy.scoring()
        if spec is not None:
            scoring = run_scoring(ctx, spec, cfg.prune.get("cache", False), cfg.prune.get("cache_dir", "outputs/score_cache"),
                                  stop, how_to_continue)
            strategy.set_scores(broadcast_tensor(scoring.scores, world))
        torch.manual_seed(cfg.seed)  # anything in the model that draws from the global RNG (dropout)
    net = Trainable(ctx, cfg.seed)
    if state is not None:
        scoring = ScoringResult(None, **state["scoring"])
        counts = restore(state, ctx, net, strategy, warmup_s=counts.time_warmup_s)
    if world.size > 1:
        ddp = DistributedDataParallel(net.module, device_ids=[device.index] if device.type == "cuda" else None)
        net.model = torch.compile(ddp, mode=t.compile_mode, backend=t.compile_backend) if t.compile else ddp
    if t.compile:
        counts.time_compile_s += compile_ahead(ctx, net)
    observations = Observations() if world.size > 1 else None
    schedule = build_schedule(cfg.scheduler, strategy.schedule_epochs or t.epochs)  # short_schedule compresses it
    strategy_clock = SectionClock(device)
    strategy_clock.total = counts.time_strategy_s
    partial = state.get("in_epoch") if state else None  # an epoch that a signal interrupted
    last_saved = state["epoch"] if state else None  # epochs done in the newest checkpoint on disk
    for epoch in range(state["epoch"] if state else 0, t.epochs):
        if stop.signal:  # arrived during the last step of the previous epoch (or before the first)
            if epoch > 0 and last_saved != epoch and t.checkpoint_every > 0:  # checkpoint_every > 1 skipped it
                if world.is_main:
                    save_epoch_end(epoch, ctx, net, strategy, counts, scoring, trackers, run_dir, best=False)
                last_saved = epoch
            when = f"after epoch {epoch}" if epoch else "before the first epoch"
            raise Interrupted(stopped(f"stopped by {stop.signal} {when}", last_saved, t.checkpoint_every,
                                      how_to_continue),
                              stop.signal)
        start = timed_now(device)
        wall_start = time.time()
        if partial:
            plan = Plan(partial["indices"].to(device), partial["weights"].to(device))
            mine, resume_at = plan, EpochResult(partial["loss_sum"].to(device), partial["first_bad"].to(device),
                                                partial["skipped"], partial["steps_done"],
                                                partial.get("skipped_samples", 0))
            start -= partial["elapsed_s"]
        else:
            resume_at = None
            with strategy_clock():
                plan = strategy.plan(epoch)
                mine = shard(plan, world)
        partial = None
        try:
            result = train_epoch(ctx, net, schedule, epoch, mine, f"epoch {epoch + 1}/{t.epochs}",
                                 strategy=observations or strategy, clock=strategy_clock, stop=stop, resume=resume_at,
                                 agree=(lambda bad: any_rank(bad, world, device)) if world.size > 1 else None)
        except Interrupted as exc:
            raise interrupted(exc, epoch, plan, timed_now(device) - start, ctx, net, strategy, counts, scoring,
                              trackers, run_dir, world, strategy_clock, how_to_continue, last_saved) from None
        if observations is not None:
            with strategy_clock():
                observations.merge(strategy, world)  # once per epoch: every rank's losses, every rank
        epoch_time = timed_now(device) - start
        counts.epoch_spans.append([wall_start, time.time()])
        check_finite(result, f"epoch {epoch + 1}")
        # Samples of batches skipped for a non-finite loss were not trained: they are not counted.
        skipped = result.skipped_samples
        if world.size > 1:
            skipped = int(all_sum(torch.tensor(skipped, device=device), world))
        stepped = len(mine) * world.size - skipped  # what the steps averaged over, torchrun's padding included
        # Torchrun pads the plan to a multiple of the world size by repeating its head: the repeats
        # cost time but train no new sample, so the count is the plan's own (less what was skipped).
        trained = max(len(plan) - skipped, 0)
        counts.samples_trained += trained
        counts.time_train_s += epoch_time
        counts.skipped_batches += result.skipped_batches

        eval_start = timed_now(device)
        test_acc, test_loss = evaluate(ctx, net.model)
        val_acc = val_loss = math.nan
        if ctx.data.val is not None:  # the held-out split, like the test set: no augmentation
            val_acc, val_loss = evaluate(ctx, net.model, ctx.data.val)
            counts.val_acc.append(val_acc)
            counts.val_loss.append(val_loss)
        counts.time_eval_s += timed_now(device) - eval_start
        counts.test_acc.append(test_acc)
        counts.test_loss.append(test_loss)
        counts.time_strategy_s = strategy_clock.collect()
        row = {
            "epoch": epoch + 1,  # 1-based everywhere: the logs' "epoch 3/10", the plots, metrics.csv and W&B
            "lr": cfg.optimizer.lr * schedule(epoch),
            # an epoch that trains nothing (short_schedule after its schedule) has no loss: a gap, not 0
            "train/loss": all_sum(result.loss_sum, world).item() / stepped if stepped else math.nan,
            "train/kept_fraction": len(plan) / n_train,
            "train/epoch_time_s": epoch_time,
            "test/acc": test_acc,
            "test/loss": test_loss,
            "val/acc": val_acc,  # NaN without a validation split
            "val/loss": val_loss,
        }
        trackers.log_epoch(row)
        if checkpoint.due(epoch + 1, t.checkpoint_every, t.epochs):
            if world.is_main:
                counts.time_checkpoint_s += save_epoch_end(epoch + 1, ctx, net, strategy, counts, scoring, trackers,
                                                           run_dir)
            last_saved = epoch + 1
        log.info("epoch %d/%d  kept %5.1f%%  loss %.4f  test acc %.4f  test loss %.4f%s  lr %.3g  %.1fs",
                 epoch + 1, t.epochs, 100 * row["train/kept_fraction"], row["train/loss"], test_acc, test_loss,
                 f"  val acc {val_acc:.4f}" if ctx.data.val is not None else "", row["lr"], epoch_time)

    summary = build_summary(ctx, counts, scoring, n_train)
    summary["wandb"] = trackers.wandb_info()
    return summary


def continue_with(run_dir: Path, sweep_dir: Path | None) -> str:
    """The command that continues an interrupted run: its own folder, or for a sweep's job the whole
    sweep (its finished jobs are kept, this one resumes from its checkpoint)."""
    if sweep_dir is None:
        return f"resume=auto hydra.run.dir={run_dir}"
    return f"resume=auto hydra.sweep.dir={sweep_dir} and the sweep's own overrides (its finished jobs are kept)"


def stopped(what: str, last_saved: int | None, every: int, how_to_continue: str) -> str:
    """The message of an interrupted run: what it leaves to resume from, and how to continue."""
    if every == 0:
        return f"{what}; trainer.checkpoint_every=0 keeps no checkpoint, so nothing was kept."
    if last_saved is None:
        return f"{what}; no checkpoint exists yet: start it afresh in the same folder with {how_to_continue}"
    return f"{what}; the checkpoint of epoch {last_saved} is kept: continue with {how_to_continue}"


def save_epoch_end(epochs_done: int, ctx: Context, net: Trainable, strategy, counts: Counters, scoring: ScoringResult,
                   trackers, run_dir: Path, best: bool = True) -> float:
    """Checkpoint the run after `epochs_done` epochs: last.pt, and best.pt when (best) the last
    epoch's accuracy is the best of the checkpointed epochs' (the validation accuracy when there is a
    split: no model is chosen on the test set then). Returns the device-synchronised wall
    clock it took (the state copied to the host, both files written and fsynced): time_checkpoint_s.
    The checkpoint's own counters cannot hold its own time, so a resumed run lacks that one."""
    start = timed_now(ctx.device)
    t = ctx.cfg.trainer
    accuracy = counts.val_acc if ctx.data.val is not None and counts.val_acc else counts.test_acc
    checkpointed = [a for i, a in enumerate(accuracy) if checkpoint.due(i + 1, t.checkpoint_every, t.epochs)]
    is_best = best and bool(checkpointed) and accuracy[-1] >= max(checkpointed)
    checkpoint.save(run_dir / "checkpoints", snapshot(epochs_done, ctx, net, strategy, counts, scoring,
                                                      (trackers.wandb_info() or {}).get("id")), is_best=is_best)
    return timed_now(ctx.device) - start


def interrupted(exc: Interrupted, epoch: int, plan: Plan, elapsed_s: float, ctx: Context, net: Trainable, strategy,
                counts: Counters, scoring: ScoringResult, trackers, run_dir: Path, world: World,
                clock: SectionClock, how_to_continue: str, last_saved: int | None = None) -> Interrupted:
    """Save where the interrupted epoch stands (single process, unless trainer.checkpoint_every=0;
    under torchrun the other ranks' observations are not merged yet, so the epoch restarts from the
    last checkpoint) and say how to continue."""
    every = ctx.cfg.trainer.checkpoint_every
    if world.size > 1 or exc.progress is None or every == 0:
        return Interrupted(stopped(f"stopped by {exc.signal} during epoch {epoch + 1}", last_saved, every,
                                   how_to_continue),
                           exc.signal)
    counts.time_strategy_s = clock.collect()
    saved = snapshot(epoch, ctx, net, strategy, counts, scoring, (trackers.wandb_info() or {}).get("id"))
    p = exc.progress
    saved["in_epoch"] = {"indices": plan.indices.cpu(), "weights": plan.weights.cpu(), "steps_done": p.steps_done,
                         "loss_sum": p.loss_sum.cpu(), "first_bad": p.first_nonfinite_step.cpu(),
                         "skipped": p.skipped_batches, "skipped_samples": p.skipped_samples, "elapsed_s": elapsed_s}
    checkpoint.save(run_dir / "checkpoints", saved, is_best=False)
    return Interrupted(f"stopped by {exc.signal} at epoch {epoch + 1}, step {p.steps_done}; saved a checkpoint "
                       f"there: continue with {how_to_continue}", exc.signal)


def snapshot(epochs_done: int, ctx: Context, net: Trainable, strategy, counts: Counters, scoring: ScoringResult,
             wandb_id: str | None) -> dict:
    """Everything a resumed run needs to continue exactly where this one stands."""
    loader = ctx.data.train
    return {
        "epoch": epochs_done,
        "config": checkpoint.resumable_config(ctx.cfg),
        "model": net.module.state_dict(),
        "optimizer": net.optimizer.state_dict(),
        "scaler": net.scaler.state_dict(),
        "strategy": strategy.state_dict(),
        "loader": loader.gen.get_state() if hasattr(loader, "gen") else None,
        "rng": checkpoint.rng_state(ctx.device),
        "counters": asdict(counts),
        "scoring": {"time_s": scoring.time_s, "samples": scoring.samples, "cached": scoring.cached},
        "wandb_id": wandb_id,
    }


def restore(state: dict, ctx: Context, net: Trainable, strategy, warmup_s: float) -> Counters:
    """Put a snapshot back; returns its counters (this run's warm-up added). A snapshot whose pieces
    no longer fit (written by another version: other parameter groups, counters, strategy state)
    is one sentence, before anything of the run is overwritten."""
    try:
        net.module.load_state_dict(state["model"])
        net.optimizer.load_state_dict(state["optimizer"])
        net.scaler.load_state_dict(state["scaler"])
        strategy.load_state_dict(state["strategy"])
        if state["loader"] is not None:
            ctx.data.train.gen.set_state(state["loader"])
        checkpoint.set_rng_state(state["rng"], ctx.device)
        counts = Counters(**state["counters"])
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise UserError(f"the checkpoint does not fit this version of infobatch-runner ({first_line(exc)}); start the run "
                        "afresh in another hydra.run.dir.") from None
    counts.time_warmup_s += warmup_s
    return counts


def build_summary(ctx: Context, c: Counters, scoring: ScoringResult, n_train: int) -> dict:
    cfg = ctx.cfg
    epochs = cfg.trainer.epochs
    best = max(range(len(c.test_acc)), key=c.test_acc.__getitem__)
    return {
        "setting": setting_of(ctx),
        "strategy": cfg.prune.name,
        "ratio": None if "ratio" in ignored_params(cfg.prune) else cfg.prune.ratio,  # full, budget mode: none
        "prune": plain(cfg.prune),
        "dataset": cfg.dataset.name,
        "model": cfg.model.arch if cfg.model.name == "timm" else cfg.model.name,
        "optimizer": cfg.optimizer.name,
        "scheduler": cfg.scheduler.name,
        "epochs": epochs,
        "batch_size": cfg.trainer.batch_size,
        "seed": cfg.seed,
        "device": device_name(ctx.device),
        "precision": ctx.precision,
        "num_train": n_train,  # what the strategy prunes: the training set less the validation split
        "num_val": 0 if ctx.data.val is None else len(ctx.data.val),
        "samples_trained": c.samples_trained,
        "samples_scoring": scoring.samples,
        "saving_samples": 1.0 - (c.samples_trained + scoring.samples) / (epochs * n_train),
        "time_train_s": c.time_train_s,
        "time_scoring_s": scoring.time_s,
        "scoring_cached": scoring.cached,
        "time_strategy_s": c.time_strategy_s,
        "time_warmup_s": c.time_warmup_s,  # untimed one-off costs, charged to no strategy
        "time_compile_s": c.time_compile_s,  # torch.compile, reported apart from training time
        "time_checkpoint_s": c.time_checkpoint_s,  # epoch-end checkpoints, apart from training time
        "skipped_batches": c.skipped_batches,
        "time_eval_s": c.time_eval_s,
        "time_cost_s": c.time_train_s + scoring.time_s,
        "epoch_spans": c.epoch_spans,  # wall-clock (start, end) of each epoch: the report's overlap check
        # Measured against a full-data run with the same settings; a full run is its own baseline.
        "saving_wall": 0.0 if cfg.prune.name == "full" else None,
        # The accuracy it is compared with (W&B dashboards plot these per run): known once the
        # baseline is, and for a full run its own.
        "baseline/test_acc": c.test_acc[-1] if cfg.prune.name == "full" else None,
        "delta_acc_pp": 0.0 if cfg.prune.name == "full" else None,
        "final/test_acc": c.test_acc[-1],
        "final/test_loss": c.test_loss[-1],
        "best/test_acc": c.test_acc[best],
        "best/epoch": best + 1,
        # The validation split's (dataset.val_fraction > 0; null without one): what a search optimises.
        "final/val_acc": c.val_acc[-1] if ctx.data.val is not None and c.val_acc else None,
        "best/val_acc": max(c.val_acc) if ctx.data.val is not None and c.val_acc else None,
    }


def objective_of(objective: str, summary: dict) -> float | tuple[float, float] | None:
    """What run() returns to a Hydra sweeper (Optuna), never a test-set number: `val_acc`, the final
    validation accuracy; `val_acc+saving`, (that, saving_samples) for a two-objective search; `auto`,
    the validation accuracy when the run has a split, else None (nothing a search may optimise).

    The saving is always saving_samples: a search runs no full-data baseline, so saving_wall is
    unknown for most trials, and a study must compare every trial on the same measure; samples
    saved are also exact where wall-clock moves by about ±10% between runs on a shared machine."""
    val = summary.get("final/val_acc")
    if objective == "val_acc+saving":
        return (val, summary["saving_samples"])
    if objective == "val_acc" or (objective == "auto" and val is not None):
        return val
    return None


def closing_line(summary: dict, objective: str | None = None) -> str:
    ratio = "" if summary["ratio"] is None else f" (ratio {summary['ratio']:g})"
    target = (summary.get("prune") or {}).get("target_saving")
    if target is not None and summary["strategy"] != "full":  # budget mode: the target is what was asked for
        missed = abs(summary["saving_samples"] - target) > 0.005  # a target is met to within 0.5 pp
        ratio = f" (target saving {target:g}{', missed' if missed else ', met'})"
    if summary["strategy"] == "full":
        wall = "the full-data baseline"
    elif summary["saving_wall"] is None:
        wall = "wall-clock saving needs a prune=full run with the same settings"
    else:
        wall = f"wall-clock saving {100 * summary['saving_wall']:.1f}% vs the sweep's full-data run"
    scoring = f" incl. {summary['time_scoring_s']:.1f} s scoring" if summary["time_scoring_s"] else ""
    line = (
        f"{summary['strategy']}{ratio} on {summary['dataset']}/{summary['model']}: "
        f"final test acc {summary['final/test_acc']:.4f} (best {summary['best/test_acc']:.4f}) | "
        f"samples saved {100 * summary['saving_samples']:.1f}% | cost {summary['time_cost_s']:.1f} s{scoring} | {wall}"
    )
    if summary.get("final/val_acc") is not None:
        line += f" | val acc {summary['final/val_acc']:.4f} (best {summary['best/val_acc']:.4f})"
    value = objective_of(objective, summary) if objective else None
    if isinstance(value, tuple):
        line += f" | objective (val_acc, saving_samples) = ({value[0]:.4f}, {value[1]:.4f})"
    elif value is not None:
        line += f" | objective val_acc = {value:.4f}"
    return line
