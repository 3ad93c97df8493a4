"""The one training loop every strategy runs through.

Per epoch: plan = strategy.plan(e) (its length known now); for each batch, the per-sample loss
(float32, label-smoothed, under autocast), strategy.observe(idx, loss), then the step on
mean(w * loss). The learning rate follows a schedule of fractional epochs. Training time is
measured between device synchronisations at the epoch's edges, evaluation kept out of it;
per-batch values stay on the device and are read once per epoch.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from infobatch_runner.data import build_data
from infobatch_runner.models import build_model
from infobatch_runner.optim import build_optimizer, build_schedule
from infobatch_runner.progress import EpochBar
from infobatch_runner.pruning import build_strategy
from infobatch_runner.runtime import SectionClock, autocast, device_name, resolve_device, resolve_precision, timed_now
from infobatch_runner.tracking import build_trackers

log = logging.getLogger(__name__)


@dataclass
class Counters:
    """What a run must count (docs/strategies.md), accumulated epoch by epoch."""

    samples_trained: int = 0
    samples_scoring: float = 0.0
    time_train_s: float = 0.0
    time_scoring_s: float = 0.0
    time_eval_s: float = 0.0
    test_acc: list[float] = field(default_factory=list)


@torch.no_grad()
def evaluate(model, loader, device: torch.device, precision: str) -> tuple[float, float]:
    """Test accuracy and mean cross-entropy over the whole test set (one host read at the end)."""
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    loss_sum = torch.zeros((), device=device)
    n = len(loader)
    for batch in loader.iterate(torch.arange(n, device=device)):
        with autocast(device, precision):
            logits = model(batch.x)
        loss_sum += F.cross_entropy(logits.float(), batch.y, reduction="sum")
        correct += (logits.argmax(1) == batch.y).sum()
    return correct.item() / n, loss_sum.item() / n


def train(cfg: DictConfig, run_dir: Path) -> dict:
    t = cfg.trainer
    device = resolve_device(t.device)
    precision = resolve_precision(t.precision, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = t.cudnn_benchmark
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(cfg.seed)  # model initialisation; strategies and loaders own their generators

    data = build_data(cfg.dataset, t.batch_size, t.eval_batch_size, t.num_workers, device, t.channels_last, cfg.seed)
    model = build_model(cfg.model, data.num_classes, data.channels, data.image_size).to(device)
    if t.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(cfg.optimizer, model)
    for group in optimizer.param_groups:
        group["peak_lr"] = cfg.optimizer.lr
    schedule = build_schedule(cfg.scheduler, t.epochs)
    strategy = build_strategy(cfg.prune, data.num_train, t.epochs, cfg.seed, device)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    strategy_clock = SectionClock(device)
    trackers = build_trackers(cfg, run_dir, OmegaConf.to_container(cfg, resolve=True))
    n_train = data.num_train
    log.info("%s on %s/%s: %d train / %d test samples, %s, %s", cfg.prune.name, cfg.dataset.name, cfg.model.name,
             n_train, len(data.test), device_name(device), precision)

    counts = Counters()
    try:
        for epoch in range(t.epochs):
            start = timed_now(device)
            with strategy_clock():
                plan = strategy.plan(epoch)
            steps = data.train.num_batches(len(plan))
            bar = EpochBar(t.progress, epoch, t.epochs, steps, len(plan) / n_train, device)
            lr_first = cfg.optimizer.lr * schedule(epoch)
            model.train()
            loss_sum = torch.zeros((), device=device)
            seen = 0
            for step, batch in enumerate(data.train.iterate(plan.indices, plan.weights)):
                factor = schedule(epoch + step / steps)
                for group in optimizer.param_groups:
                    group["lr"] = group["peak_lr"] * factor
                with autocast(device, precision):
                    logits = model(batch.x)
                losses = F.cross_entropy(logits.float(), batch.y, reduction="none", label_smoothing=t.label_smoothing)
                with strategy_clock():
                    strategy.observe(batch.idx, losses.detach())
                loss = (batch.w * losses).mean()
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if t.grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                loss_sum += losses.detach().sum()
                seen += batch.idx.shape[0]
                bar.step(step, loss_sum, seen)
            epoch_time = timed_now(device) - start
            bar.close()
            counts.samples_trained += len(plan)
            counts.time_train_s += epoch_time

            eval_start = timed_now(device)
            test_acc, test_loss = evaluate(model, data.test, device, precision)
            counts.time_eval_s += timed_now(device) - eval_start
            counts.test_acc.append(test_acc)
            row = {
                "epoch": epoch,
                "lr": lr_first,
                "train/loss": loss_sum.item() / max(len(plan), 1),
                "train/kept_fraction": len(plan) / n_train,
                "train/epoch_time_s": epoch_time,
                "test/acc": test_acc,
                "test/loss": test_loss,
            }
            trackers.log_epoch(row)
            log.info("epoch %d/%d  kept %5.1f%%  loss %.4f  test acc %.4f  test loss %.4f  lr %.3g  %.1fs",
                     epoch + 1, t.epochs, 100 * row["train/kept_fraction"], row["train/loss"], test_acc, test_loss,
                     lr_first, epoch_time)

        summary = build_summary(cfg, counts, strategy_clock.collect(), test_loss, n_train, device, precision)
        trackers.log_summary(summary)
    finally:
        trackers.finish()
    return summary


def build_summary(cfg: DictConfig, c: Counters, time_strategy_s: float, final_test_loss: float, n_train: int,
                  device: torch.device, precision: str) -> dict:
    epochs = cfg.trainer.epochs
    time_cost = c.time_train_s + c.time_scoring_s
    best = max(range(len(c.test_acc)), key=c.test_acc.__getitem__)
    return {
        "strategy": cfg.prune.name,
        "ratio": None if cfg.prune.name == "full" else cfg.prune.ratio,
        "prune": OmegaConf.to_container(cfg.prune, resolve=True),
        "dataset": cfg.dataset.name,
        "model": cfg.model.arch if cfg.model.name == "timm" else cfg.model.name,
        "optimizer": cfg.optimizer.name,
        "scheduler": cfg.scheduler.name,
        "epochs": epochs,
        "batch_size": cfg.trainer.batch_size,
        "seed": cfg.seed,
        "device": device_name(device),
        "precision": precision,
        "num_train": n_train,
        "samples_trained": c.samples_trained,
        "samples_scoring": c.samples_scoring,
        "saving_samples": 1.0 - (c.samples_trained + c.samples_scoring) / (epochs * n_train),
        "time_train_s": c.time_train_s,
        "time_scoring_s": c.time_scoring_s,
        "time_strategy_s": time_strategy_s,
        "time_eval_s": c.time_eval_s,
        "time_cost_s": time_cost,
        # Measured against a full-data run with the same settings; a full run is its own baseline.
        "saving_wall": 0.0 if cfg.prune.name == "full" else None,
        "final/test_acc": c.test_acc[-1],
        "final/test_loss": final_test_loss,
        "best/test_acc": c.test_acc[best],
        "best/epoch": best,
    }


def closing_line(summary: dict) -> str:
    ratio = "" if summary["ratio"] is None else f" (ratio {summary['ratio']:g})"
    if summary["saving_wall"] is None:
        wall = "wall-clock saving needs a prune=full run with the same settings"
    else:
        wall = f"wall-clock saving {100 * summary['saving_wall']:.1f}% (this is the baseline)"
    return (
        f"{summary['strategy']}{ratio} on {summary['dataset']}/{summary['model']}: "
        f"final test acc {summary['final/test_acc']:.4f} (best {summary['best/test_acc']:.4f}) | "
        f"samples saved {100 * summary['saving_samples']:.1f}% | training time {summary['time_cost_s']:.1f} s | {wall}"
    )
