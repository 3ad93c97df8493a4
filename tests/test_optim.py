"""Schedules as functions of fractional epochs, and every optimizer actually optimises."""

import math

import pytest
import torch
from omegaconf import OmegaConf

from infobatch_runner.optim import build_optimizer, build_schedule


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


def test_schedule_depends_on_epoch_progress_not_steps():
    f = build_schedule(sched(name="cosine", warmup_epochs=1, min_factor=0.0), epochs=10)
    full_epoch = [f(3 + s / 100) for s in range(0, 100, 10)]
    pruned_epoch = [f(3 + s / 60) for s in range(0, 60, 6)]
    assert full_epoch == pytest.approx(pruned_epoch)


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


@pytest.mark.parametrize("name", ["lars", "lamb"])
def test_layerwise_optimizers_exclude_biases_from_decay(name):
    model = torch.nn.Linear(4, 2)
    opt = build_optimizer(OmegaConf.create(OPTIMIZERS[name]), model)
    excluded = [g for g in opt.param_groups if g["exclude"]]
    assert len(excluded) == 1 and excluded[0]["params"][0] is model.bias and excluded[0]["weight_decay"] == 0
