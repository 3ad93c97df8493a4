"""Strategy-specific checks beyond the shared contract (docs/strategies.md, one section each)."""

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from infobatch_runner.data.loaders import Batch
from infobatch_runner.engine.scoring import grand_full_scores, grand_last_layer_scores
from infobatch_runner.errors import UserError
from infobatch_runner.pruning import check_budget
from infobatch_runner.pruning import STRATEGIES
from infobatch_runner.pruning.bandit import UCB, EpsilonGreedy
from infobatch_runner.pruning.infobatch import InfoBatch
from infobatch_runner.pruning.random_dynamic import RandomDynamic
from infobatch_runner.pruning.static import EL2N, ForgettingRecorder, StaticRandom

N = 1000


def test_random_dynamic_trains_half_at_ratio_half_and_keeps_its_subset_for_an_interval():
    s = RandomDynamic(N, 10, 0, ratio=0.5, interval=2, delta=0.8)
    plans = [s.plan(e) for e in range(10)]
    for e in range(8):
        assert len(plans[e]) == 500 and torch.all(plans[e].weights == 1)
    assert set(plans[0].indices.tolist()) == set(plans[1].indices.tolist())
    assert not torch.equal(plans[0].indices, plans[1].indices), "each epoch freshly shuffled"
    assert set(plans[1].indices.tolist()) != set(plans[2].indices.tolist()), "a new draw every interval"
    assert len(plans[8]) == len(plans[9]) == N


def test_random_dynamic_rescale():
    plan = RandomDynamic(N, 10, 0, ratio=0.75, rescale=True).plan(0)
    assert len(plan) == 250 and torch.allclose(plan.weights, torch.full((250,), 4.0))


def exponential_losses(seed=0):
    return torch.empty(N).exponential_(generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("target", [0.2, 0.4])
def test_infobatch_budget_mode_realises_the_target(target):
    epochs = 20
    s = InfoBatch(N, epochs, 0, target_saving=target)
    g = torch.Generator().manual_seed(1)
    trained = 0
    for e in range(epochs):
        plan = s.plan(e)
        trained += len(plan)
        # Losses drift and shrink as training goes on; each trained sample reports a fresh one.
        fresh = torch.empty(len(plan)).exponential_(generator=g) * (1 - e / (2 * epochs))
        s.observe(plan.indices, fresh)
    assert 1 - trained / (epochs * N) == pytest.approx(target, abs=1e-4)


def test_infobatch_budget_mode_caps_the_ratio_and_widens_the_candidates_instead():
    # 8 epochs, delta 0.875: 6 pruned epochs; target 0.35 needs ~47% of the data skipped per pruned
    # epoch, more than max_ratio 0.6 of the ~63% of exponential losses below their mean allows.
    s = InfoBatch(N, 8, 0, target_saving=0.35, max_ratio=0.6)
    s.observe(torch.arange(N), exponential_losses())
    below_mean = int(s.candidates().sum())
    plan = s.plan(1)
    skipped = N - len(plan)
    assert skipped == round(0.35 * 8 * N / 6)
    assert skipped > 0.6 * below_mean, "more than max_ratio of the below-mean samples: the set widened"
    assert plan.weights.max().item() <= 1 / (1 - 0.6) + 1e-6, "weights stay bounded by max_ratio"
    kept_weights = plan.weights[plan.weights > 1]
    assert kept_weights.sum().item() == pytest.approx(kept_weights.numel() + skipped, rel=1e-4), "unbiased"


def test_infobatch_budget_out_of_reach_is_refused_naming_what_can_be_reached():
    with pytest.raises(UserError, match=r"target_saving=0.4 cannot be reached: .* at most 0.3750"):
        check_budget(InfoBatch(N, 8, 0, target_saving=0.4, max_ratio=0.5))
    check_budget(InfoBatch(N, 8, 0, target_saving=0.4, max_ratio=0.6))  # 6 x 0.6 / 8 = 0.45: reachable


def test_infobatch_budget_at_a_small_n_refuses_what_whole_samples_cannot_reach():
    # N = 7, 8 epochs: 6 pruned epochs skip at most floor(0.6 x 7) = 4 samples each, 24 of 56 = 0.4286
    with pytest.raises(UserError, match=r"target_saving=0.45 cannot be reached: .* at most 0.4286"):
        check_budget(InfoBatch(7, 8, 0, target_saving=0.45))
    s = InfoBatch(7, 8, 0, target_saving=24 / 56)
    trained = 0
    for e in range(8):
        plan = s.plan(e)
        trained += len(plan)
        s.observe(plan.indices, torch.arange(len(plan), dtype=torch.float32))
    assert trained == 56 - 24, "the largest reachable target is realised exactly"


@pytest.mark.parametrize("target", [0.2, 0.3, 0.4])
def test_infobatch_budget_mode_lands_on_the_target_in_a_short_run(target):
    epochs = 8
    s = InfoBatch(N, epochs, 0, target_saving=target)
    g = torch.Generator().manual_seed(2)
    trained = 0
    for e in range(epochs):
        plan = s.plan(e)
        trained += len(plan)
        assert plan.weights.max().item() <= 2.5 + 1e-6
        s.observe(plan.indices, torch.empty(len(plan)).exponential_(generator=g))
    assert 1 - trained / (epochs * N) == pytest.approx(target, abs=0.005)


def test_epsilon_greedy_keeps_the_top_and_explores_the_rest():
    losses = exponential_losses()
    s = EpsilonGreedy(N, 10, 0, ratio=0.6, epsilon=0.25, alpha=1.0)
    s.observe(torch.arange(N), losses)
    kept = set(s.plan(1).indices.tolist())
    k = 400
    n_top = math.ceil(0.75 * k)
    top = set(torch.argsort(losses, descending=True)[:n_top].tolist())
    assert len(kept) == k and top <= kept
    others = kept - top
    assert len(others) == k - n_top
    assert any(i not in set(torch.argsort(losses, descending=True)[:k].tolist()) for i in others), "exploration is random"


def test_epsilon_greedy_moving_average_and_unseen_first():
    s = EpsilonGreedy(4, 10, 0, ratio=0.5, alpha=0.8)
    s.observe(torch.tensor([0, 1]), torch.tensor([1.0, 2.0]))
    s.observe(torch.tensor([0]), torch.tensor([3.0]))
    assert s.mu[0].item() == pytest.approx(0.2 * 1.0 + 0.8 * 3.0) and s.mu[1].item() == 2.0
    assert math.isinf(s.mu[2].item()), "unseen samples rank first"


def test_ucb_ranks_by_mean_plus_c_std():
    s = UCB(6, 10, 0, ratio=0.5, c=2.0, alpha=0.5)
    first = torch.tensor([1.0, 1.0, 3.0, 0.5, 2.0, 0.1])
    second = torch.tensor([1.0, 3.0, 3.0, 0.5, 0.0, 0.1])
    s.observe(torch.arange(6), first)
    assert torch.all(s.var == 0), "no deviation on first sight"
    s.observe(torch.arange(6), second)
    mu = 0.5 * first + 0.5 * second
    var = 0.5 * (second - first) ** 2
    assert torch.allclose(s.mu, mu) and torch.allclose(s.var, var)
    expected = set(torch.argsort(mu + 2.0 * var.sqrt(), descending=True)[:3].tolist())
    assert set(s.plan(1).indices.tolist()) == expected
    v = UCB(6, 10, 0, ratio=0.5, c=2.0, alpha=0.5, use_variance=True)
    v.observe(torch.arange(6), first)
    v.observe(torch.arange(6), second)
    assert torch.allclose(v.priority(), mu + 2.0 * var)


def test_el2n_keeps_the_highest_scores_after_the_offset():
    scores = torch.randperm(N, generator=torch.Generator().manual_seed(0)).float()
    s = EL2N(N, 10, 0, ratio=0.7, offset=20)
    s.set_scores(scores)
    kept = set(s.plan(0).indices.tolist())
    order = torch.argsort(scores, descending=True)
    assert kept == set(order[20 : 20 + 300].tolist())


def test_static_random_is_one_fixed_subset():
    s = StaticRandom(N, 5, 0, ratio=0.4)
    sets = [set(s.plan(e).indices.tolist()) for e in range(5)]
    assert all(x == sets[0] for x in sets) and len(sets[0]) == 600


def test_forgetting_counts_correct_to_incorrect_flips_and_never_learned_ranks_first():
    r = ForgettingRecorder(4, torch.device("cpu"))
    history = [[True, False, False, True], [False, False, True, True], [True, False, False, True], [False, False, True, True]]
    for correct in history:
        r.record(torch.arange(4), torch.tensor(correct))
    scores = r.scores()
    assert scores[0].item() == 2 and math.isinf(scores[1].item()) and scores[2].item() == 1 and scores[3].item() == 0
    s = STRATEGIES["forgetting"](4, 10, 0, ratio=0.5)
    s.set_scores(scores)
    assert set(s.plan(0).indices.tolist()) == {0, 1}


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(5, 8), nn.Tanh())
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(self.body(x))


def in_order_context(x, y, batch=None):
    """The slice of a run's Context that scoring reads: the un-augmented training set, in order,
    in batches of `batch` samples (default: one batch)."""

    class Batches:
        def __len__(self):
            return len(y)

        def iterate(self, indices, weights=None):
            size = batch or len(indices)
            for s in range(0, len(indices), size):
                i = indices[s : s + size]
                yield Batch(x[i], y[i], i, torch.ones(len(i)))

    return SimpleNamespace(device=torch.device("cpu"), precision="fp32", data=SimpleNamespace(train_eval=Batches()))


def autograd_norms(model, x, y, params):
    norms = []
    for i in range(len(y)):
        model.zero_grad()
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        norms.append(torch.cat([p.grad.flatten() for p in params]).norm())
    return torch.stack(norms)


def test_grand_last_layer_closed_form_agrees_with_autograd():
    torch.manual_seed(0)
    model, x, y = TinyNet(), torch.randn(6, 5), torch.randint(0, 3, (6,))
    expected = autograd_norms(model, x, y, [model.fc.weight, model.fc.bias])
    assert torch.allclose(grand_last_layer_scores(in_order_context(x, y), model), expected, rtol=1e-5)


def test_grand_full_variant_matches_autograd():
    torch.manual_seed(1)
    model, x, y = TinyNet(), torch.randn(4, 5), torch.randint(0, 3, (4,))
    expected = autograd_norms(model, x, y, list(model.parameters()))
    assert torch.allclose(grand_full_scores(in_order_context(x, y), model), expected, rtol=1e-4)
