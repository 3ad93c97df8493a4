"""Every config value checked right after composition: one sentence per mistake, before any
data is read or any model is built."""

import math

from omegaconf import DictConfig

from infobatch_runner.errors import UserError
from infobatch_runner.models import MODELS
from infobatch_runner.optim import OPTIMIZERS, SCHEDULES
from infobatch_runner.pruning import STRATEGIES, build_strategy
from infobatch_runner.runtime import PRECISIONS

DATASETS = ("fashion_mnist", "cifar10", "cifar100", "imagenet", "synthetic")
LOGGERS = ("wandb", "none")
LOGGER_MODES = ("online", "offline", "disabled")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)


def need_int(key: str, v, low: int = 1, optional: bool = False) -> None:
    if v is None and optional:
        return
    if not _is_int(v) or v < low:
        raise UserError(f"{key} must be an integer >= {low}{' or null' if optional else ''} (got {v!r}).")


def need_number(key: str, v, low: float, high: float = math.inf, low_open: bool = False,
                high_open: bool = False, optional: bool = False) -> None:
    if v is None and optional:
        return
    ok = _is_number(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise UserError(f"{key} must be a number in {interval}{' or null' if optional else ''} (got {v!r}).")


def need_choice(key: str, v, choices) -> None:
    if v not in choices:
        raise UserError(f"{key} must be one of {', '.join(choices)} (got {v!r}).")


def validate(cfg: DictConfig) -> None:
    need_int("seed", cfg.seed, low=0)
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
    need_choice("trainer.progress", t.progress, ("auto", True, False))
    need_choice("trainer.loader", t.loader, ("auto", "device", "dataloader"))
    if t.loader == "device" and cfg.dataset.name == "imagenet":
        raise UserError("trainer.loader=device needs a dataset held in memory; image folders stream through a DataLoader.")
    if not isinstance(t.device, str):
        raise UserError(f"trainer.device must be auto, cpu, cuda or cuda:N (got {t.device!r}).")
    if t.precision == "fp16" and t.device == "cpu":
        raise UserError("trainer.precision=fp16 needs a CUDA device; on CPU use bf16 or fp32.")

    d = cfg.dataset
    need_choice("dataset.name", d.name, DATASETS)
    need_int("dataset.limit_train", d.limit_train, optional=True)
    need_int("dataset.limit_test", d.limit_test, optional=True)
    need_int("dataset.channels", d.channels)
    need_int("dataset.image_size", d.image_size, low=8)
    need_int("dataset.augment.crop_padding", d.augment.crop_padding, low=0)
    for key in ("mean", "std"):
        if len(d[key]) not in (1, d.channels):
            raise UserError(f"dataset.{key} needs 1 or {d.channels} values, one per channel (got {len(d[key])}).")
    if any(not _is_number(s) or s <= 0 for s in d.std):
        raise UserError(f"dataset.std values must be positive numbers (got {list(d.std)}).")
    if d.name == "synthetic":
        need_int("dataset.num_train", d.num_train)
        need_int("dataset.num_test", d.num_test)
        need_int("dataset.num_classes", d.num_classes, low=2)
        need_number("dataset.noise", d.noise, 0.0)
    elif d.name != "imagenet" and d.root is None and d.name != "fashion_mnist":
        raise UserError(f"dataset.root must name the folder that holds {d.name} (got null).")

    need_choice("model.name", cfg.model.name, MODELS)
    need_choice("optimizer.name", cfg.optimizer.name, OPTIMIZERS)
    need_number("optimizer.lr", cfg.optimizer.lr, 0.0, low_open=True)
    need_number("optimizer.weight_decay", cfg.optimizer.weight_decay, 0.0)
    need_choice("scheduler.name", cfg.scheduler.name, SCHEDULES)
    if "warmup_epochs" in cfg.scheduler:
        need_number("scheduler.warmup_epochs", cfg.scheduler.warmup_epochs, 0.0, t.epochs, high_open=True)

    need_choice("prune", cfg.prune.name, sorted(STRATEGIES))
    build_strategy(cfg.prune, num_samples=1, epochs=t.epochs, seed=0)  # the strategy checks its own parameters

    need_choice("logger", cfg.logger.name, LOGGERS)
    need_choice("logger.mode", cfg.logger.mode, LOGGER_MODES)
