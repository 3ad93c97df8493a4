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


def _split_decay(model: nn.Module) -> list[dict]:
    """Weights in one group; biases and normalisation parameters (ndim <= 1) in another, excluded
    from weight decay and from layer-wise trust ratios, as LARS and LAMB prescribe."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    plain = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return [{"params": decay, "exclude": False}, {"params": plain, "exclude": True, "weight_decay": 0.0}]


def _trust_ratio(p_norm: torch.Tensor, u_norm: torch.Tensor, coefficient: float, eps: float) -> torch.Tensor:
    ok = (p_norm > 0) & (u_norm > 0)
    return torch.where(ok, coefficient * p_norm / (u_norm + eps), torch.ones_like(p_norm))


class LARS(Optimizer):
    """SGD with momentum whose per-layer step is scaled by trust * ||w|| / ||g + wd * w||."""

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust_coefficient: float = 0.001, eps: float = 1e-9):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      trust_coefficient=trust_coefficient, eps=eps, exclude=False))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = p.grad
                if not group["exclude"]:
                    update = update.add(p, alpha=group["weight_decay"])
                    update = update * _trust_ratio(p.norm(), update.norm(), group["trust_coefficient"], group["eps"])
                state = self.state[p]
                buf = state.setdefault("momentum_buffer", torch.zeros_like(p))
                buf.mul_(group["momentum"]).add_(update)
                p.add_(buf, alpha=-group["lr"])


class LAMB(Optimizer):
    """Adam moments, decoupled weight decay, and a per-layer trust ratio ||w|| / ||update||."""

    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-6, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, exclude=False))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(step=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
                state["step"] += 1
                state["m"].mul_(beta1).add_(p.grad, alpha=1 - beta1)
                state["v"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                m_hat = state["m"] / (1 - beta1 ** state["step"])
                v_hat = state["v"] / (1 - beta2 ** state["step"])
                update = m_hat / (v_hat.sqrt() + group["eps"])
                if not group["exclude"]:
                    update = update.add(p, alpha=group["weight_decay"])
                    update = update * _trust_ratio(p.norm(), update.norm(), 1.0, 0.0)
                p.add_(update, alpha=-group["lr"])


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
    """The optimizer of `cfg` over `model`'s parameters, where they already are (fused on CUDA for
    SGD and AdamW; LARS and LAMB are ours, per-parameter loops)."""
    if cfg.name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                               nesterov=cfg.nesterov and cfg.momentum > 0, weight_decay=cfg.weight_decay,
                               **implementation_for(parameter_device(model)))
    if cfg.name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                                 weight_decay=cfg.weight_decay, **implementation_for(parameter_device(model)))
    if cfg.name == "lars":
        return LARS(_split_decay(model), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                    trust_coefficient=cfg.trust_coefficient, eps=cfg.eps)
    if cfg.name == "lamb":
        return LAMB(_split_decay(model), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
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
