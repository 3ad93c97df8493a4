"""Schedules as functions of fractional epochs; every optimizer optimises, with one weight-decay
grouping (none on biases and normalisation parameters), and LARS/LAMB are timm's steps."""

import math

import pytest
import torch
from omegaconf import OmegaConf

from infobatch_runner.engine import optim
from infobatch_runner.engine.optim import build_optimizer, build_schedule


def sched(**kw):
    return OmegaConf.create(kw)


def test_onecycle_matches_its_definition():
    f = build_schedule(sched(name="onecycle", pct_start=0.3, div_factor=25.0, final_div_factor=1e4), epochs=10)
    assert f(0.0) == pytest.approx(1 / 25)
    assert f(3.0) == pytest.approx(1.0)
    assert f(10.0) == pytest.approx(1 / 25 / 1e4)
    ts = [i / 100 for i in range(0, 1001)]
    values = [f(t) for t in ts]
    peak = values.index(max(values))
    assert all(a <= b + 1e-12 for a, b in zip(values[:peak], values[1 : peak + 1]))
    assert all(a >= b - 1e-12 for a, b in zip(values[peak:], values[peak + 1 :]))


def test_onecycle_agrees_with_torch_on_full_epochs():
    steps, epochs = 10, 4
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=steps * epochs, pct_start=0.3,
                                              div_factor=25, final_div_factor=1e4, three_phase=False)
    f = build_schedule(sched(name="onecycle", pct_start=0.3, div_factor=25.0, final_div_factor=1e4), epochs)
    ours, theirs = [], []
    for k in range(steps * epochs):
        theirs.append(opt.param_groups[0]["lr"])
        ours.append(0.1 * f(k / steps))
        opt.step()
        ref.step()
    # torch counts total_steps - 1 intervals, we count epochs: the curves agree to within one step's change.
    one_step = max(abs(b - a) for a, b in zip(theirs, theirs[1:]))
    assert max(abs(a - b) for a, b in zip(ours, theirs)) <= one_step


def learning_rates_of_an_epoch(num_kept: int) -> list[float]:
    """The learning rate of each step of epoch 1 (of 3, cosine) when the plan keeps num_kept of 256
    samples in batches of 64, as the training loop sets it."""
    from hydra import compose, initialize_config_module

    from infobatch_runner.engine.loop import Trainable, train_epoch
    from infobatch_runner.engine.train import setup
    from infobatch_runner.pruning.base import Plan

    from conftest import TINY

    with initialize_config_module(version_base="1.3", config_module="infobatch_runner.conf"):
        cfg = compose(config_name="config", overrides=[*TINY, "prune=full", "scheduler=cosine", "trainer.batch_size=64",
                                                       "scheduler.warmup_epochs=0"])
    ctx = setup(cfg)
    net = Trainable(ctx, seed=0)
    seen = []
    net.optimizer.register_step_pre_hook(lambda opt, args, kwargs: seen.append(opt.param_groups[0]["lr"]))
    plan = Plan(torch.arange(num_kept), torch.ones(num_kept))
    train_epoch(ctx, net, build_schedule(cfg.scheduler, cfg.trainer.epochs), 1, plan, "test")
    return [lr / cfg.optimizer.lr for lr in seen]


def test_schedule_depends_on_epoch_progress_not_steps():
    """A pruned epoch has fewer steps; each step's learning rate is that of its fraction of the epoch,
    so a pruned epoch ends where a full one does (a schedule by step count would lag behind)."""
    f = build_schedule(sched(name="cosine", warmup_epochs=0, min_factor=0.0), epochs=3)
    full, pruned = learning_rates_of_an_epoch(256), learning_rates_of_an_epoch(128)
    assert full == pytest.approx([f(1 + i / 4) for i in range(4)])
    assert pruned == pytest.approx([f(1 + i / 2) for i in range(2)])
    assert pruned[1] == pytest.approx(full[2]), "half-way through the epoch, whatever its length"
    assert len(set(full)) == 4


def test_cosine_step_constant():
    cos = build_schedule(sched(name="cosine", warmup_epochs=2, min_factor=0.1), epochs=10)
    assert cos(0) == 0 and cos(1) == pytest.approx(0.5) and cos(2) == pytest.approx(1.0)
    assert cos(6) == pytest.approx(0.1 + 0.9 * 0.5) and cos(10) == pytest.approx(0.1)
    step = build_schedule(sched(name="step", milestones=[0.5, 0.75], gamma=0.1, warmup_epochs=0), epochs=8)
    assert [step(t) for t in (0, 3.9, 4, 5.9, 6, 7.9)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    const = build_schedule(sched(name="constant", warmup_epochs=0), epochs=8)
    assert const(0) == const(7.5) == 1.0


OPTIMIZERS = {
    "sgd": dict(name="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4),
    "adamw": dict(name="adamw", lr=1e-2, betas=[0.9, 0.999], eps=1e-8, weight_decay=0.01),
    "lars": dict(name="lars", lr=1.0, momentum=0.9, weight_decay=1e-4, trust_coefficient=0.02, eps=1e-9),
    "lamb": dict(name="lamb", lr=2e-2, betas=[0.9, 0.999], eps=1e-6, weight_decay=0.01),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_reduces_the_loss(name):
    torch.manual_seed(0)
    x = torch.randn(256, 10)
    y = (x @ torch.randn(10, 3)).argmax(1)
    model = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    opt = build_optimizer(OmegaConf.create(OPTIMIZERS[name]), model)
    losses = []
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0] and math.isfinite(losses[-1])


def small_net() -> torch.nn.Module:
    """A conv with bias, a BatchNorm, a linear: weights (ndim > 1), biases and normalisation parameters."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                               torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 3))


def group_of(opt, p) -> dict:
    [group] = [g for g in opt.param_groups if any(q is p for q in g["params"])]
    return group


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_no_weight_decay_on_biases_and_normalisation_parameters(name):
    net = small_net()
    conv, bn, fc = net[0], net[1], net[4]
    opt = build_optimizer(OmegaConf.create(OPTIMIZERS[name]), net)
    for p in (conv.bias, bn.weight, bn.bias, fc.bias):
        assert group_of(opt, p)["weight_decay"] == 0.0
    for p in (conv.weight, fc.weight):
        assert group_of(opt, p)["weight_decay"] == OPTIMIZERS[name]["weight_decay"] > 0
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(net.parameters()))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_one_step_moves_the_weights_and_leaves_a_zero_gradient_bn_weight_alone(name):
    """A parameter whose gradient is zero moves only by weight decay: the BN weight must not move,
    a conv weight with a zero gradient must (it is decayed), the rest move by their gradients."""
    net = small_net()
    conv, bn = net[0], net[1]
    with torch.no_grad():
        bn.weight.fill_(1.5)  # not 0: decay would visibly shrink it
    opt = build_optimizer(OmegaConf.create(OPTIMIZERS[name]), net)
    net(torch.randn(8, 3, 6, 6)).square().mean().backward()
    bn.weight.grad.zero_()
    conv.weight.grad.zero_()
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    opt.step()
    after = dict(net.named_parameters())
    assert torch.equal(after["1.weight"], before["1.weight"])
    assert not torch.equal(after["0.weight"], before["0.weight"])  # decay alone moved it
    assert (after["0.weight"].norm() < before["0.weight"].norm()).item()
    for n in ("0.bias", "1.bias", "4.weight", "4.bias"):
        assert not torch.equal(after[n], before[n]), n


def test_zero_weight_decay_still_makes_two_groups():
    net = small_net()
    for name in sorted(OPTIMIZERS):
        opt = build_optimizer(OmegaConf.create({**OPTIMIZERS[name], "weight_decay": 0.0}), net)
        assert [len(g["params"]) for g in opt.param_groups] == [4, 2]  # 3 biases and the BN weight | 2 weights
        assert all(g["weight_decay"] == 0 for g in opt.param_groups)


def one_step(cfg: dict, weight: torch.Tensor, bias: torch.Tensor, grad_w: torch.Tensor, grad_b: torch.Tensor):
    layer = torch.nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    opt = build_optimizer(OmegaConf.create(cfg), layer)
    layer.weight.grad, layer.bias.grad = grad_w.clone(), grad_b.clone()
    opt.step()
    return layer.weight.detach(), layer.bias.detach(), opt


@pytest.mark.parametrize("weight_decay", [1e-2, 0.0])
def test_lars_is_timms_trust_ratio_on_weights_and_plain_sgd_on_biases(weight_decay):
    """timm's Lars (NVIDIA LARC form): the weights' step is lr * trust * |w| / (|g| + wd |w| + eps) * (g + wd w),
    also at weight decay 0 (always_adapt on that group); biases and BN parameters take lr * g."""
    torch.manual_seed(1)
    w, b, gw, gb = torch.randn(3, 5), torch.randn(3), torch.randn(3, 5), torch.randn(3)
    cfg = {**OPTIMIZERS["lars"], "weight_decay": weight_decay}
    new_w, new_b, opt = one_step(cfg, w, b, gw, gb)
    assert isinstance(opt, optim.LARS) and optim.LARS.__module__.startswith("timm.")
    trust = cfg["trust_coefficient"] * w.norm() / (gw.norm() + weight_decay * w.norm() + cfg["eps"])
    assert torch.allclose(new_w, w - cfg["lr"] * trust * (gw + weight_decay * w), atol=1e-6)
    assert torch.allclose(new_b, b - cfg["lr"] * gb, atol=1e-6)


def test_lamb_is_the_papers_step_without_gradient_clipping():
    """First step: m_hat = g, v_hat = g^2; update u = g / (|g| + eps) + wd w; weights move by
    lr * |w| / |u| * u, biases by lr * g / (|g| + eps), and a large gradient is not clipped first."""
    torch.manual_seed(2)
    w, b, gw, gb = torch.randn(3, 5), torch.randn(3), 100 * torch.randn(3, 5), 100 * torch.randn(3)
    cfg = OPTIMIZERS["lamb"]
    new_w, new_b, opt = one_step(cfg, w, b, gw, gb)
    assert isinstance(opt, optim.LAMB) and opt.defaults["max_grad_norm"] is None
    u = gw / (gw.abs() + cfg["eps"]) + cfg["weight_decay"] * w
    assert torch.allclose(new_w, w - cfg["lr"] * w.norm() / u.norm() * u, atol=1e-6)
    assert torch.allclose(new_b, b - cfg["lr"] * gb / (gb.abs() + cfg["eps"]), atol=1e-6)
