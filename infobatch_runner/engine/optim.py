"""Optimizers (SGD, AdamW, LARS, LAMB) and learning-rate schedules of fractional epoch progress.

A schedule is a function of t = epoch + step / steps_this_epoch, in [0, epochs), returning a
factor of the peak lr. Because t counts epochs rather than steps, a pruned epoch that has fewer
steps still walks the same LR-versus-epoch curve as the full-data run.
"""

import math
from typing import Callable

import torch
from torch import nn
from torch.optim import Optimizer

from infobatch_runner.errors import UserError


def __getattr__(name: str):
    """`optim.LARS` and `optim.LAMB` are timm's Lars and Lamb, imported when first asked for: timm
    takes over a second to import, which a CLI that only checks its input should not pay."""
    if name in ("LARS", "LAMB"):
        import timm.optim

        return timm.optim.Lars if name == "LARS" else timm.optim.Lamb
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def weight_decay_groups(model: nn.Module, weight_decay: float, layerwise: bool = False) -> list[dict]:
    """One grouping for every optimizer: timm's `param_groups_weight_decay`, which puts biases and
    normalisation parameters (ndim <= 1, or named `*.bias`) in a group with weight_decay 0 and the
    rest (conv and linear weights) in a group with `weight_decay`.

    timm puts every parameter in its no-decay group when weight_decay is 0, so the split is asked
    for with a placeholder decay and the configured one set afterwards: the groups (and with them
    the parameters that get LARS/LAMB trust ratios) do not depend on the decay. With `layerwise`,
    the decayed group gets `always_adapt=True` (timm then applies the trust ratio even at weight
    decay 0) and the other `always_adapt=False` (timm skips the trust ratio for a group whose weight
    decay is 0): biases and normalisation parameters take plain steps, as LARS and LAMB prescribe."""
    from timm.optim import param_groups_weight_decay

    groups = param_groups_weight_decay(model, weight_decay=1.0)
    for group in groups:
        decayed = group["weight_decay"] != 0
        group["weight_decay"] = float(weight_decay) if decayed else 0.0
        if layerwise:
            group["always_adapt"] = decayed
    return groups


OPTIMIZERS = ("sgd", "adamw", "lars", "lamb")


def implementation_for(device: torch.device) -> dict:
    """The keyword arguments that pick torch's SGD/AdamW implementation for parameters on `device`:
    the fused kernels on CUDA (one launch per step for all parameters, and with fp16's GradScaler
    the inf check and unscaling stay on the device: no host sync in the step), torch's default
    elsewhere (the CPU)."""
    return {"fused": True} if device.type == "cuda" else {}


def parameter_device(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def build_optimizer(cfg, model: nn.Module) -> Optimizer:
    """The optimizer of `cfg` over `model`'s parameters, where they already are, with no weight
    decay on biases and normalisation parameters (`weight_decay_groups`). SGD and AdamW are torch's
    (fused on CUDA), LARS and LAMB timm's (multi-tensor on CUDA, per parameter on the CPU)."""
    if cfg.name == "sgd":
        return torch.optim.SGD(weight_decay_groups(model, cfg.weight_decay), lr=cfg.lr, momentum=cfg.momentum,
                               nesterov=cfg.nesterov and cfg.momentum > 0, weight_decay=cfg.weight_decay,
                               **implementation_for(parameter_device(model)))
    if cfg.name == "adamw":
        return torch.optim.AdamW(weight_decay_groups(model, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas),
                                 eps=cfg.eps, weight_decay=cfg.weight_decay,
                                 **implementation_for(parameter_device(model)))
    if cfg.name == "lars":
        from timm.optim import Lars

        # timm's trust ratio is trust_coefficient * |w| / (|g| + weight_decay * |w| + eps) (NVIDIA's LARC form)
        return Lars(weight_decay_groups(model, cfg.weight_decay, layerwise=True), lr=cfg.lr, momentum=cfg.momentum,
                    weight_decay=cfg.weight_decay, trust_coeff=cfg.trust_coefficient, eps=cfg.eps)
    if cfg.name == "lamb":
        from timm.optim import Lamb

        # max_grad_norm=None: no global gradient clipping inside the optimizer (trainer.grad_clip does that);
        # weight decay added to the Adam update before the trust ratio, as in the LAMB paper
        return Lamb(weight_decay_groups(model, cfg.weight_decay, layerwise=True), lr=cfg.lr,
                    betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay, max_grad_norm=None)
    raise UserError(f"optimizer.name={cfg.name!r} is unknown; choose one of {', '.join(OPTIMIZERS)}.")


def _cosine(start: float, end: float, fraction: float) -> float:
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * min(max(fraction, 0.0), 1.0)))


def _with_warmup(warmup: float, after: Callable[[float], float]) -> Callable[[float], float]:
    if warmup <= 0:
        return after
    return lambda t: (t / warmup) * after(warmup) if t < warmup else after(t)


SCHEDULES = ("onecycle", "cosine", "step", "constant")


def build_schedule(cfg, epochs: int) -> Callable[[float], float]:
    """The factor of the peak lr at fractional epoch t."""
    if cfg.name == "onecycle":
        peak = cfg.pct_start * epochs
        start, end = 1.0 / cfg.div_factor, 1.0 / (cfg.div_factor * cfg.final_div_factor)

        def onecycle(t: float) -> float:
            if t < peak:
                return _cosine(start, 1.0, t / peak)
            return _cosine(1.0, end, (t - peak) / max(epochs - peak, 1e-12))

        return onecycle
    if cfg.name == "cosine":
        span = max(epochs - cfg.warmup_epochs, 1e-12)
        return _with_warmup(cfg.warmup_epochs, lambda t: _cosine(1.0, cfg.min_factor, (t - cfg.warmup_epochs) / span))
    if cfg.name == "step":
        bounds = [m * epochs for m in cfg.milestones]
        return _with_warmup(cfg.warmup_epochs, lambda t: cfg.gamma ** sum(t >= b for b in bounds))
    if cfg.name == "constant":
        return _with_warmup(cfg.warmup_epochs, lambda t: 1.0)
    raise UserError(f"scheduler.name={cfg.name!r} is unknown; choose one of {', '.join(SCHEDULES)}.")
