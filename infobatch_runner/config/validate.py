"""Every config value checked right after composition: one sentence per mistake, before any
data is read or any model is built.

Types are the schemas' job (infobatch_runner/config/schema.py, enforced while Hydra composes); here come
unknown keys (`check_known_keys`, first), then ranges, choices and how values fit together."""

import math

import torch
from omegaconf import DictConfig, ListConfig

from infobatch_runner.config.schema import check_known_keys
from infobatch_runner.data.synthetic import check_fits
from infobatch_runner.engine.models import MODELS
from infobatch_runner.engine.optim import OPTIMIZERS, SCHEDULES, build_schedule
from infobatch_runner.engine.runtime import PRECISIONS
from infobatch_runner.errors import UserError
from infobatch_runner.pruning import build_strategy, strategy_class

DATASETS = ("fashion_mnist", "cifar10", "cifar100", "imagenet", "synthetic")
# Datasets read whole from files whose images have one size: nothing resizes them.
NATIVE_SIZE = {"fashion_mnist": 28, "cifar10": 32, "cifar100": 32}
LOGGERS = ("wandb", "none")
LOGGER_MODES = ("online", "offline", "disabled")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
STEMS = ("auto", "cifar", "imagenet")
# What run() hands a Hydra sweeper (train.objective_of): never the test accuracy.
OBJECTIVES = ("auto", "val_acc", "val_acc+saving")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)


# Every count and size becomes a tensor size or an int64 index; a seed seeds torch's generators,
# which take an unsigned 64-bit seed.
INT64_MAX = 2**63 - 1
SEED_MAX = 2**64 - 1


def need_int(key: str, v, low: int = 1, optional: bool = False, high: int = INT64_MAX) -> None:
    if v is None and optional:
        return
    if not _is_int(v) or v < low:
        raise UserError(f"{key} must be an integer >= {low}{' or null' if optional else ''} (got {v!r}).")
    if v > high:
        raise UserError(f"{key} must be an integer <= {high} (got {v!r}).")


def need_number(key: str, v, low: float, high: float = math.inf, low_open: bool = False,
                high_open: bool = False, optional: bool = False) -> None:
    if v is None and optional:
        return
    ok = _is_number(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        if high == math.inf:
            interval = f"{'>' if low_open else '>='} {low:g}"
        else:
            interval = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise UserError(f"{key} must be a number {interval}{' or null' if optional else ''} (got {v!r}).")


def need_choice(key: str, v, choices) -> None:
    if v not in choices:
        raise UserError(f"{key} must be one of {', '.join(map(str, choices))} (got {v!r}).")


def need_bool(key: str, v) -> None:
    if not isinstance(v, bool):
        raise UserError(f"{key} must be true or false (got {v!r}).")


def need_text(key: str, v) -> None:
    if not isinstance(v, str) or not v.strip():
        raise UserError(f"{key} must be a non-empty string (got {v!r}).")


def need_numbers(key: str, values, what: str, ok=lambda v: True) -> list:
    """A list of numbers, each passing `ok`; `what` says what is expected, for the message."""
    items = list(values) if isinstance(values, (list, ListConfig)) else None
    if items is None or not all(_is_number(v) and ok(v) for v in items):
        shown = items if items is not None else values
        raise UserError(f"{key} must be {what} (got {shown!r}).")
    return items


# The keys that shape each schedule's learning rates beyond optimizer.lr, for the message.
SCHEDULE_KEYS = {"onecycle": ("div_factor", "final_div_factor"), "step": ("gamma",)}
FLOAT32_MAX = float(torch.finfo(torch.float32).max)


def check_learning_rates(lr: float, scheduler, epochs: int) -> None:
    """Every learning rate the schedule reaches must fit the float32 update `param -= lr * grad`.
    The schedules are monotone between their start, peak and end, so those points bound them."""
    schedule = build_schedule(scheduler, epochs)
    points = [0.0, epochs] + ([scheduler.pct_start * epochs] if scheduler.name == "onecycle" else [])
    try:
        highest = max(lr * schedule(p) for p in points)
    except OverflowError:  # gamma ** milestones beyond a Python float
        highest = math.inf
    if not highest <= FLOAT32_MAX:
        keys = ", ".join(f"scheduler.{k}={scheduler[k]!r}" for k in SCHEDULE_KEYS.get(scheduler.name, ()))
        raise UserError(f"the learning rate would reach {highest:.3g} (optimizer.lr={lr!r}{', ' + keys if keys else ''}), "
                        f"more than a float32 parameter update can take ({FLOAT32_MAX:.3g}).")


def validate(cfg: DictConfig) -> None:
    check_known_keys(cfg)  # first: a typo such as +trainer.epoch=3 is refused before any value is read
    need_int("seed", cfg.seed, low=0, high=SEED_MAX)
    if cfg.resume not in (None, "auto"):
        raise UserError(f"resume must be auto or null (got {cfg.resume!r}); point hydra.run.dir at the run to continue.")

    t = cfg.trainer
    need_int("trainer.epochs", t.epochs)
    need_int("trainer.batch_size", t.batch_size)
    need_int("trainer.eval_batch_size", t.eval_batch_size)
    need_int("trainer.num_workers", t.num_workers, low=0)
    need_choice("trainer.precision", t.precision, PRECISIONS)
    need_number("trainer.label_smoothing", t.label_smoothing, 0.0, 1.0, high_open=True)
    need_number("trainer.grad_clip", t.grad_clip, 0.0, low_open=True, optional=True)
    if t.progress != "auto" and not isinstance(t.progress, bool):
        raise UserError(f"trainer.progress must be auto, true or false (got {t.progress!r}).")
    need_choice("trainer.loader", t.loader, ("auto", "device", "dataloader"))
    if t.loader == "device" and cfg.dataset.name == "imagenet":
        raise UserError("trainer.loader=device needs a dataset held in memory; image folders stream through a DataLoader.")
    if not isinstance(t.device, str):
        raise UserError(f"trainer.device must be auto, cpu, cuda or cuda:N (got {t.device!r}).")
    if t.precision == "fp16" and t.device == "cpu":
        raise UserError("trainer.precision=fp16 needs a CUDA device; on CPU use bf16 or fp32.")
    for key in ("skip_nonfinite", "channels_last", "compile", "cudnn_benchmark", "tf32"):
        need_bool(f"trainer.{key}", t[key])
    need_int("trainer.checkpoint_every", t.checkpoint_every, low=0)
    need_int("trainer.warmup_steps", t.warmup_steps, low=0)
    need_choice("trainer.compile_mode", t.compile_mode, COMPILE_MODES)
    need_text("trainer.compile_backend", t.compile_backend)

    d = cfg.dataset
    need_choice("dataset.name", d.name, DATASETS)
    need_int("dataset.limit_train", d.limit_train, optional=True)
    need_int("dataset.limit_test", d.limit_test, optional=True)
    need_number("dataset.val_fraction", d.val_fraction, 0.0, 0.5)
    need_choice("objective", cfg.objective, OBJECTIVES)
    if cfg.objective != "auto" and d.val_fraction == 0:
        raise UserError(f"objective={cfg.objective} is measured on a validation split, but dataset.val_fraction is 0; "
                        "set dataset.val_fraction (e.g. 0.1) so that no search tunes on the test set.")
    need_int("dataset.num_classes", d.num_classes, low=2, optional=d.name == "imagenet")  # imagenet: null counts folders
    need_int("dataset.channels", d.channels)
    need_int("dataset.image_size", d.image_size, low=8)
    if d.name in NATIVE_SIZE and d.image_size != NATIVE_SIZE[d.name]:
        size = NATIVE_SIZE[d.name]
        raise UserError(f"dataset.image_size must be {size} for {d.name}, whose images are {size}x{size} and are "
                        f"not resized (got {d.image_size}).")
    need_int("dataset.augment.crop_padding", d.augment.crop_padding, low=0)
    need_bool("dataset.augment.flip", d.augment.flip)
    need_bool("dataset.download", d.download)
    need_numbers("dataset.mean", d.mean, "a list of numbers, one per channel or one for all")
    need_numbers("dataset.std", d.std, "a list of positive numbers, one per channel or one for all", lambda v: v > 0)
    for key in ("mean", "std"):
        if len(d[key]) not in (1, d.channels):
            counts = "1 value" if d.channels == 1 else f"1 or {d.channels} values, one per channel"
            raise UserError(f"dataset.{key} needs {counts} (got {len(d[key])}: {list(d[key])}).")
    if d.name == "synthetic":
        need_int("dataset.num_train", d.num_train)
        need_int("dataset.num_test", d.num_test)
        need_number("dataset.noise", d.noise, 0.0)
        check_fits(d.num_train, d.num_test, d.num_classes, d.channels, d.image_size)
    elif d.name == "imagenet":
        need_int("dataset.eval_resize", d.eval_resize, low=d.image_size)  # resize, then center-crop image_size
    elif d.root is None and d.name != "fashion_mnist":
        raise UserError(f"dataset.root must name the folder that holds {d.name} (got null).")

    m = cfg.model
    need_choice("model.name", m.name, MODELS)
    if m.name == "cnn_small":
        need_int("model.width", m.width)
    elif m.name in ("resnet18", "resnet50"):
        need_choice("model.stem", m.stem, STEMS)
    elif m.name == "timm":
        need_text("model.arch", m.arch)
        need_bool("model.pretrained", m.pretrained)

    o = cfg.optimizer
    need_choice("optimizer.name", o.name, OPTIMIZERS)
    need_number("optimizer.lr", o.lr, 0.0, low_open=True)
    need_number("optimizer.weight_decay", o.weight_decay, 0.0)
    if o.name in ("sgd", "lars"):
        need_number("optimizer.momentum", o.momentum, 0.0, 1.0, high_open=True)
    if o.name == "sgd":
        need_bool("optimizer.nesterov", o.nesterov)
    if o.name in ("adamw", "lamb"):
        betas = need_numbers("optimizer.betas", o.betas, "two numbers in [0, 1), as [beta1, beta2]",
                             lambda v: 0 <= v < 1)
        if len(betas) != 2:
            raise UserError(f"optimizer.betas must be two numbers in [0, 1), as [beta1, beta2] (got {betas!r}).")
    if o.name in ("adamw", "lamb", "lars"):
        need_number("optimizer.eps", o.eps, 0.0, low_open=True)
    if o.name == "lars":
        need_number("optimizer.trust_coefficient", o.trust_coefficient, 0.0, low_open=True)

    s = cfg.scheduler
    need_choice("scheduler.name", s.name, SCHEDULES)
    if "warmup_epochs" in s:
        need_number("scheduler.warmup_epochs", s.warmup_epochs, 0.0, t.epochs, high_open=True)
    if s.name == "onecycle":
        need_number("scheduler.pct_start", s.pct_start, 0.0, 1.0, low_open=True, high_open=True)
        need_number("scheduler.div_factor", s.div_factor, 0.0, low_open=True)
        need_number("scheduler.final_div_factor", s.final_div_factor, 0.0, low_open=True)
    elif s.name == "cosine":
        need_number("scheduler.min_factor", s.min_factor, 0.0, 1.0)
    elif s.name == "step":
        milestones = need_numbers("scheduler.milestones", s.milestones,
                                  "a list of fractions of the run in (0, 1], in increasing order", lambda v: 0 < v <= 1)
        if any(b <= a for a, b in zip(milestones, milestones[1:])):
            raise UserError(f"scheduler.milestones must be a list of fractions of the run in (0, 1], in increasing "
                            f"order (got {milestones!r}).")
        need_number("scheduler.gamma", s.gamma, 0.0, low_open=True)

    check_learning_rates(o.lr, s, t.epochs)

    strategy_class(cfg.prune.name)  # ours or another package's (pruning/registry.py)
    build_strategy(cfg.prune, num_samples=1, epochs=t.epochs, seed=0)  # the strategy checks its own parameters

    lg = cfg.logger
    need_choice("logger", lg.name, LOGGERS)
    need_choice("logger.mode", lg.mode, LOGGER_MODES)
    if "init_timeout" in lg:
        need_number("logger.init_timeout", lg.init_timeout, 0.0, low_open=True)
