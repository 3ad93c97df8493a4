"""The example's own test: the shared contract in one call, then what this strategy promises."""

import torch

from infobatch_runner.testing import check_strategy
from loss_proportional import LossProportional


def test_it_keeps_the_contract():
    print(check_strategy(LossProportional))
    print(check_strategy(LossProportional, ratio=0.8, floor=0.5))


def test_high_losses_are_kept_more_often_and_weighted_less():
    s = LossProportional(1000, 2, seed=0, ratio=0.7)
    first = s.plan(0)
    s.observe(first.indices, (first.indices >= 500).float() * 2 + 0.1)  # the upper half is hard
    plan = s.plan(1)
    hard = plan.indices >= 500
    assert len(plan) == 300 and hard.sum() > 0.8 * len(plan)
    assert plan.weights[hard].max() < plan.weights[~hard].min()
