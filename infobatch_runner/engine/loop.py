"""The training step, shared by every strategy and every scoring proxy, and what surrounds it:
the model with its optimizer, warm-up, compiling ahead, evaluation.

Per batch: per-sample loss (float32, label-smoothed, under autocast), the strategy's observe,
then a step on mean(w * loss), the mean and not a weighted mean, which keeps the gradient
unbiased. The learning rate follows a schedule of fractional epochs. Per-batch values stay on
the device and are read once per epoch (trainer.skip_nonfinite alone reads the loss each step).
"""

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from infobatch_runner.data.build import DataBundle
from infobatch_runner.data.loaders import batch_starts
from infobatch_runner.engine.models import build_model
from infobatch_runner.engine.optim import build_optimizer
from infobatch_runner.engine.progress import EpochBar
from infobatch_runner.engine.runtime import autocast, device_name, timed_now
from infobatch_runner.errors import UserError
from infobatch_runner.pruning import Plan


@dataclass
class Context:
    """What every training in a run shares: the config, where it runs, and the data."""

    cfg: DictConfig
    device: torch.device
    precision: str
    data: DataBundle
    world_size: int = 1  # torchrun's: each rank trains trainer.batch_size samples per step


def plain(node) -> dict:
    return OmegaConf.to_container(node, resolve=True)


# The config keys that change neither a training's result nor its measured cost, each with why. Every
# other key of the composed config is in the setting, so an option added to a schema is in it unless
# it is named here (tests/test_setting.py walks every schema).
NOT_IN_SETTING = {
    "prune": "the strategy and its parameters: what a comparison compares",
    "seed": "what the comparison pairs by",
    "logger": "where the numbers go (W&B logs once per epoch, outside the timed step)",
    "resume": "a resumed run continues the same training",
    "objective": "what a search reads from the run, not how it trains",
    "dataset.root": "where the files are, not which data",
    "dataset.download": "whether missing files may be fetched",
    "trainer.device": "recorded resolved, as the setting's device",
    "trainer.precision": "recorded resolved, as the setting's precision (tf32 included)",
    "trainer.eval_batch_size": "evaluation is not timed and its accuracy does not depend on the batch",
    "trainer.checkpoint_every": "checkpoint time is reported apart from training time",
    "trainer.progress": "the progress bar",
    "trainer.warmup_steps": "the untimed warm-up trains a throwaway model",
}


def setting_of(ctx: Context) -> dict:
    """Everything besides the strategy and the seed that shapes a training's result or its cost: what
    must match for a full-data run to be another run's baseline, or for cached scores to apply.
    Every config key outside NOT_IN_SETTING, plus what is resolved at run time: the device, the
    precision and, since under torchrun each rank takes trainer.batch_size, the world size and the
    global batch. A validation split (dataset.val_fraction > 0) is part of it: it changes the data."""
    cfg = ctx.cfg
    setting = {}
    for key, value in plain(cfg).items():
        if key in NOT_IN_SETTING:
            continue
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if f"{key}.{k}" not in NOT_IN_SETTING}
        setting[key] = value
    if not setting["dataset"].get("val_fraction"):  # no split: the dataset's setting of earlier versions
        setting["dataset"].pop("val_fraction", None)
    setting["trainer"]["world_size"] = ctx.world_size
    setting["trainer"]["global_batch_size"] = cfg.trainer.batch_size * ctx.world_size
    setting["precision"] = ctx.precision
    setting["device"] = device_name(ctx.device)
    return setting


class Trainable:
    """A model with its optimizer and (fp16 only) gradient scaler, initialised from `seed`
    without touching the global RNG; compiled when trainer.compile (and `compile`) say so."""

    def __init__(self, ctx: Context, seed: int, compile: bool = True):
        cuda = ctx.device.type == "cuda"
        devices = [ctx.device.index if ctx.device.index is not None else torch.cuda.current_device()] if cuda else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            model = build_model(ctx.cfg.model, ctx.data.num_classes, ctx.data.channels, ctx.data.image_size)
        model = model.to(ctx.device)
        if ctx.cfg.trainer.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.module = model  # the parameters; `model` may be its compiled wrapper
        self.optimizer = build_optimizer(ctx.cfg.optimizer, model)
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=ctx.precision == "fp16")
        t = ctx.cfg.trainer
        use = compile and t.compile
        self.model = torch.compile(model, mode=t.compile_mode, backend=t.compile_backend) if use else model


def compile_ahead(ctx: Context, net: Trainable) -> float:
    """Compile `net` before its timed training: forward and backward at the full batch size, at one
    less and at two (so that dynamic-shape graphs exist for the partial batches at a plan's end), and eval
    forwards, then restore every parameter and buffer. Returns the seconds it took (time_compile_s)."""
    start = timed_now(ctx.device)
    snapshot = {k: v.clone() for k, v in net.module.state_dict().items()}
    loader = ctx.data.train_eval  # no augmentation: the training loader's generator stays untouched
    batch = next(iter(loader.iterate(torch.arange(min(ctx.cfg.trainer.batch_size, len(loader)), device=ctx.device))))
    for size in dict.fromkeys((batch.x.shape[0], batch.x.shape[0] - 1, 2)):
        net.model.train()
        with autocast(ctx.device, ctx.precision):
            loss = F.cross_entropy(net.model(batch.x[:size]).float(), batch.y[:size])
        net.scaler.scale(loss).backward()
        net.model.eval()
        with torch.no_grad(), autocast(ctx.device, ctx.precision):
            net.model(batch.x[:size])
    net.optimizer.zero_grad(set_to_none=True)
    net.module.load_state_dict(snapshot)
    return timed_now(ctx.device) - start


class Interrupted(Exception):
    """SIGTERM or SIGINT arrived: the epoch stopped at a batch boundary, `progress` says how far."""

    def __init__(self, message: str, signal_name: str, progress: "EpochResult | None" = None):
        super().__init__(message)
        self.signal = signal_name
        self.progress = progress


class StopFlag:
    """Set by a signal handler, read (a host bool, no device sync) after every batch."""

    signal: str | None = None


@dataclass
class EpochResult:
    loss_sum: torch.Tensor  # sum of the per-sample losses trained (device)
    first_nonfinite_step: torch.Tensor  # -1, or the first step whose loss was not finite (device)
    skipped_batches: int  # batches skipped for a non-finite loss (trainer.skip_nonfinite only)
    steps_done: int = 0  # batches of the plan done (all of them, unless interrupted)
    skipped_samples: int = 0  # the samples of those skipped batches: not trained, not counted


def train_epoch(ctx: Context, net: Trainable, schedule, epoch: int, plan: Plan, desc: str,
                strategy=None, clock=None, recorder=None, stop: StopFlag | None = None,
                resume: EpochResult | None = None, agree=None) -> EpochResult:
    """Train once through `plan`.

    strategy.observe(idx, losses) runs inside `clock` (the strategy's time); recorder.record(idx,
    correct) receives per-sample correctness for scores that need it (forgetting events).
    A non-finite loss is noted on the device (the caller stops the run after the epoch, naming the
    step); with trainer.skip_nonfinite the batch is skipped instead, at the price of one host read
    of the loss per step (and under torchrun, `agree`: the ranks agree to skip when any rank must).
    `resume` continues an interrupted epoch after its `steps_done` batches.

    cuDNN autotuning (trainer.cudnn_benchmark) is on for full batches (trainer.batch_size samples)
    only; a partial batch (the plan's last one or two: `batch_starts`) runs on
    cuDNN's heuristics (`autotune_full_batches`). Autotuning a shape costs a search, paid inside
    whichever timed epoch meets it first; InfoBatch's plan length, and so its last batch's size,
    changes every epoch, full data's never, so autotuned partial batches would charge pruning a
    search per epoch that the baseline pays once: a bias in saving_wall. The full batch shape is
    tuned once, in the untimed warm-up (`warm_up`), for every strategy alike.
    """
    t = ctx.cfg.trainer
    model, optimizer, scaler = net.model, net.optimizer, net.scaler
    loader = ctx.data.train
    steps = loader.num_batches(len(plan))
    peak_lr = ctx.cfg.optimizer.lr
    done = resume.steps_done if resume else 0
    bar = EpochBar(t.progress, desc, steps, len(plan) / len(loader), ctx.device, done)
    model.train()
    loss_sum = resume.loss_sum.clone() if resume else torch.zeros((), device=ctx.device)
    first_bad = resume.first_nonfinite_step.clone() if resume else torch.full((), -1, dtype=torch.int64, device=ctx.device)
    skipped = resume.skipped_batches if resume else 0
    skipped_samples = resume.skipped_samples if resume else 0
    seen = batch_starts(len(plan), loader.batch_size)[done] if done else 0
    batches = autotune_full_batches(loader.iterate(plan.indices, plan.weights, first_batch=done), loader.batch_size,
                                    t.cudnn_benchmark)
    for step, batch in enumerate(batches, start=done):
        lr = peak_lr * schedule(epoch + step / steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with autocast(ctx.device, ctx.precision):
            logits = model(batch.x)
        losses = F.cross_entropy(logits.float(), batch.y, reduction="none", label_smoothing=t.label_smoothing)
        batch_sum = losses.detach().sum()
        if t.skip_nonfinite and must_skip(batch_sum, agree):
            skipped += 1
            skipped_samples += batch.idx.shape[0]
            continue  # (a signal is then noticed after the next trained batch)
        first_bad = torch.where((first_bad < 0) & ~torch.isfinite(batch_sum), step, first_bad)
        if strategy is not None:
            with clock() if clock else nullcontext():
                strategy.observe(batch.idx, losses.detach())
        if recorder is not None:
            recorder.record(batch.idx, logits.detach().argmax(1) == batch.y)
        loss = (batch.w * losses).mean()
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if t.grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        loss_sum += batch_sum
        seen += batch.idx.shape[0]
        bar.step(step, loss_sum, seen)
        if stop is not None and stop.signal and step + 1 < steps:  # between batches: nothing half done
            bar.close()
            batches.close()  # the cuDNN flag as it was
            raise Interrupted(stop.signal, stop.signal, EpochResult(loss_sum, first_bad, skipped, step + 1, skipped_samples))
    bar.close()
    return EpochResult(loss_sum, first_bad, skipped, steps, skipped_samples)


def autotune_full_batches(batches, batch_size: int, benchmark: bool):
    """Yield `batches`, each with torch.backends.cudnn.benchmark set for its whole step (forward,
    backward and optimizer step are launched before the next batch is asked for): `benchmark` for a
    batch of exactly `batch_size` samples, False (cuDNN's heuristics: no search, nothing added to
    the autotune cache) for any other size. The flag is put back as it was when the batches end or
    are closed. Reads only the batch's shape: no host sync."""
    before = torch.backends.cudnn.benchmark
    try:
        for batch in batches:
            torch.backends.cudnn.benchmark = benchmark and batch.idx.shape[0] == batch_size
            yield batch
    finally:
        torch.backends.cudnn.benchmark = before


def must_skip(batch_sum: torch.Tensor, agree=None) -> bool:
    """trainer.skip_nonfinite: whether to skip this batch (a host read; under torchrun all ranks agree)."""
    bad = not torch.isfinite(batch_sum).item()
    return agree(bad) if agree is not None else bad


def check_finite(result: EpochResult, where: str) -> None:
    """Stop the run, naming the step, if the epoch met a non-finite loss (one host read per epoch)."""
    step = int(result.first_nonfinite_step)
    if step >= 0:
        raise UserError(f"the training loss became non-finite at {where}, step {step + 1}; lower optimizer.lr, "
                        "set trainer.grad_clip, or set trainer.skip_nonfinite=true to skip such batches.")


def warm_up(ctx: Context, steps: int = 3) -> float:
    """A few untimed training steps and an eval forward on a throwaway model, so that one-off
    costs (kernel selection, JIT, allocator growth) land on no strategy's clock: in a sweep,
    the first job would otherwise pay them alone. Returns the seconds it took."""
    start = timed_now(ctx.device)
    net = Trainable(ctx, seed=0, compile=False)
    loader = ctx.data.train_eval
    batch = next(iter(loader.iterate(torch.arange(min(ctx.cfg.trainer.batch_size, len(loader)), device=ctx.device))))
    net.model.train()
    for _ in range(steps):
        with autocast(ctx.device, ctx.precision):
            try:
                logits = net.model(batch.x)
            except ValueError as exc:  # BatchNorm over a single value per channel (torch's own check)
                if "more than 1 value per channel" not in str(exc):
                    raise
                raise UserError(f"model={ctx.cfg.model.name} reduces a dataset.image_size={ctx.cfg.dataset.image_size} "
                                f"image to 1x1 before a BatchNorm, which cannot train on a batch of one sample; raise "
                                f"trainer.batch_size to 2 or more (got {ctx.cfg.trainer.batch_size}).") from None
            loss = F.cross_entropy(logits.float(), batch.y)
        net.optimizer.zero_grad(set_to_none=True)
        net.scaler.scale(loss).backward()
        net.scaler.step(net.optimizer)
        net.scaler.update()
    net.model.eval()
    with torch.no_grad(), autocast(ctx.device, ctx.precision):
        net.model(batch.x)
    return timed_now(ctx.device) - start


@torch.no_grad()
def evaluate(ctx: Context, model, loader=None) -> tuple[float, float]:
    """Accuracy and mean cross-entropy over the whole test set, or over `loader` (the validation
    split), without augmentation (one host read at the end)."""
    model.eval()
    loader = ctx.data.test if loader is None else loader
    correct = torch.zeros((), dtype=torch.int64, device=ctx.device)
    loss_sum = torch.zeros((), device=ctx.device)
    n = len(loader)
    for batch in loader.iterate(torch.arange(n, device=ctx.device)):
        with autocast(ctx.device, ctx.precision):
            logits = model(batch.x)
        loss_sum += F.cross_entropy(logits.float(), batch.y, reduction="sum")
        correct += (logits.argmax(1) == batch.y).sum()
    return correct.item() / n, loss_sum.item() / n
