"""Optimizer speed: milliseconds per optimizer step of LARS and LAMB, the project's former
implementations (kept below, in this file only, as the reference) against timm's Lars and Lamb that
`infobatch-run` now uses, on ResNet-18 (CIFAR stem, 10 classes) parameters with fixed random
gradients, interleaved (in alternating order) in one process; median step times. It also reports
how far the two updates of one step from the same weights and gradients lie apart.

    python -m bench.optimizer_speed [--device auto|cpu|cuda] [--repeats R] [--steps S] [--smoke]
    (defaults: 20 interleaved repeats of 10 steps each on CUDA, 10 of 3 on the CPU, where a ResNet-18 LAMB
    step takes a third of a second; --smoke: cnn_small, 3 repeats of 2 steps)
"""

import argparse
import copy

import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from torch import nn
from torch.optim import Optimizer

from bench.common import add_common_args, median, pick_device, timed, write
from infobatch_runner.engine.models import build_model
from infobatch_runner.engine.optim import build_optimizer

# --- the reference: infobatch_runner/optim.py's (now engine/optim.py) own LARS and LAMB before they became timm's (commit 6c5d2fb) ----


def _split_decay(model: nn.Module) -> list[dict]:
    """Weights in one group; biases and normalisation parameters (ndim <= 1) in another, excluded
    from weight decay and from layer-wise trust ratios, as LARS and LAMB prescribe."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    plain = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return [{"params": decay, "exclude": False}, {"params": plain, "exclude": True, "weight_decay": 0.0}]


def _trust_ratio(p_norm: torch.Tensor, u_norm: torch.Tensor, coefficient: float, eps: float) -> torch.Tensor:
    ok = (p_norm > 0) & (u_norm > 0)
    return torch.where(ok, coefficient * p_norm / (u_norm + eps), torch.ones_like(p_norm))


class OldLARS(Optimizer):
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


class OldLAMB(Optimizer):
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


def old_optimizer(cfg, model: nn.Module) -> Optimizer:
    """What build_optimizer built for lars and lamb before."""
    if cfg.name == "lars":
        return OldLARS(_split_decay(model), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                       trust_coefficient=cfg.trust_coefficient, eps=cfg.eps)
    return OldLAMB(_split_decay(model), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)


# --- the benchmark -----------------------------------------------------------------------------------------------


def optimizer_config(name: str):
    """conf/optimizer/<name>.yaml as infobatch-run composes it."""
    with initialize_config_module(version_base="1.3", config_module="infobatch_runner.conf"):
        return compose(config_name="config", overrides=[f"optimizer={name}"]).optimizer


def compose_model(arch: str):
    """conf/model/<arch>.yaml; ResNet-18 with the CIFAR stem."""
    overrides = [f"model={arch}"] + (["model.stem=cifar"] if arch == "resnet18" else [])
    with initialize_config_module(version_base="1.3", config_module="infobatch_runner.conf"):
        return compose(config_name="config", overrides=overrides).model


def with_gradients(model: nn.Module, seed: int) -> nn.Module:
    """Fixed random gradients, of the size of a typical gradient (1e-2 per element); optimizers leave p.grad as is."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    for p in model.parameters():
        p.grad = (1e-2 * torch.randn(p.shape, generator=gen)).to(p.device)
    return model


def clone_with_grads(model: nn.Module) -> nn.Module:
    """A deep copy of `model`, its gradients included (deepcopy leaves them behind)."""
    twin = copy.deepcopy(model)
    for p, q in zip(model.parameters(), twin.parameters()):
        q.grad = p.grad.clone()
    return twin


def update_gap(cfg, model: nn.Module) -> float:
    """One step of each implementation from the same weights and gradients: the largest, over the
    parameter tensors, of ||update_old - update_timm|| / ||update_old||."""
    old_model, new_model = clone_with_grads(model), clone_with_grads(model)
    old_optimizer(cfg, old_model).step()
    build_optimizer(cfg, new_model).step()
    gaps = []
    for p0, po, pn in zip(model.parameters(), old_model.parameters(), new_model.parameters()):
        u_old, u_new = (po - p0).detach(), (pn - p0).detach()
        gaps.append(((u_old - u_new).norm() / u_old.norm().clamp_min(1e-30)).item())
    return max(gaps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, "interleaved pairs of timed calls per optimizer (default 20 on CUDA, 10 on the CPU)")
    parser.add_argument("--steps", type=int, help="optimizer steps per timed call (default 10 on CUDA, 3 on the CPU)")
    args = parser.parse_args()
    device = pick_device(args.device)
    gpu = device.type == "cuda"
    args.repeats = args.repeats or (3 if args.smoke else 20 if gpu else 10)
    args.steps = args.steps or (2 if args.smoke else 10 if gpu else 3)
    arch = "cnn_small" if args.smoke else "resnet18"
    torch.manual_seed(0)
    base = build_model(compose_model(arch), num_classes=10, channels=3, image_size=32).to(device)
    with_gradients(base, seed=0)
    params = list(base.parameters())
    result = {
        "model": arch + ("" if args.smoke else " (CIFAR stem, 10 classes)"),
        "parameters": sum(p.numel() for p in params), "tensors": len(params),
        "repeats": args.repeats, "steps_per_call": args.steps, "smoke": args.smoke, "optimizers": {},
    }
    print(f"{result['model']}: {result['parameters']:,} parameters in {result['tensors']} tensors, "
          f"{args.repeats} x {args.steps} steps each, {device}")
    for name in ("lars", "lamb"):
        cfg = optimizer_config(name)
        runs = {}
        for impl, build in (("old", old_optimizer), ("timm", build_optimizer)):
            opt = build(cfg, clone_with_grads(base))

            def steps(opt=opt):
                for _ in range(args.steps):
                    opt.step()

            timed(steps, device, repeats=0, warmup=2)  # state allocated, kernels and caches warm
            runs[impl] = steps
        times = {"old": [], "timm": []}
        for r in range(args.repeats):
            for impl in (("old", "timm") if r % 2 == 0 else ("timm", "old")):
                times[impl] += timed(runs[impl], device, repeats=1, warmup=0)
        old_ms, timm_ms = (1e3 * median(times[i]) / args.steps for i in ("old", "timm"))
        row = {"old_ms_per_step": old_ms, "timm_ms_per_step": timm_ms, "speedup": old_ms / timm_ms,
               "max_update_gap": update_gap(cfg, base), "config": OmegaConf.to_container(cfg)}
        result["optimizers"][name] = row
        print(f"{name}: old {old_ms:.2f} ms/step, timm {timm_ms:.2f} ms/step, {row['speedup']:.2f}x; "
              f"largest relative gap between the two updates of one step: {row['max_update_gap']:.1e}")
    write("optimizer_speed", device, result)


if __name__ == "__main__":
    main()
