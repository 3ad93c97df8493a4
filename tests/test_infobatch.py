"""InfoBatch's plan, exactly as docs/strategies.md specifies it, including the places where the
published implementation went wrong (annealing weights, plan length, float round-off)."""

import math

import pytest
import torch

from infobatch_runner.pruning.infobatch import InfoBatch

N = 1000


def observed(ratio=0.5, delta=0.875, epochs=10, seed=0, losses=None, momentum=0.0):
    s = InfoBatch(N, epochs, seed, ratio=ratio, delta=delta, score_momentum=momentum)
    if losses is not None:
        s.observe(torch.arange(N), losses)
    return s


def known_losses():
    return torch.rand(N, generator=torch.Generator().manual_seed(1)) * 2


def test_epoch_zero_is_full_data():
    plan = observed().plan(0)
    assert len(plan) == N
    assert torch.equal(plan.indices.sort().values, torch.arange(N))
    assert torch.all(plan.weights == 1)


@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.7, 0.9])
def test_candidate_rule_exact_count_and_weights(ratio):
    losses = known_losses()
    plan = observed(ratio=ratio, losses=losses).plan(1)
    candidates = losses < losses.mean()
    n_cand = int(candidates.sum())
    assert len(plan) == (N - n_cand) + math.floor((1 - ratio) * n_cand + 1e-9)
    assert len(set(plan.indices.tolist())) == len(plan)
    in_plan = torch.zeros(N, dtype=torch.bool)
    in_plan[plan.indices] = True
    assert torch.all(in_plan[~candidates]), "every sample at or above the mean is kept"
    weight_of = dict(zip(plan.indices.tolist(), plan.weights.tolist()))
    for i in range(N):
        if in_plan[i]:
            expected = 1 / (1 - ratio) if candidates[i] else 1.0
            assert weight_of[i] == pytest.approx(expected, rel=1e-6)


def test_kept_count_forgives_round_off():
    # 10 candidates at ratio 0.9 keep exactly floor(0.1 * 10) = 1, though (1 - 0.9) * 10 < 1 in floats.
    s = InfoBatch(20, 10, 0, ratio=0.9)
    s.observe(torch.arange(20), torch.cat([torch.zeros(10), torch.ones(10)]))
    assert len(s.plan(1)) == 10 + 1


def test_unseen_samples_are_never_candidates():
    s = InfoBatch(N, 10, 0, ratio=0.5)
    s.observe(torch.arange(N // 2), known_losses()[: N // 2])
    plan = s.plan(1)
    kept = set(plan.indices.tolist())
    assert set(range(N // 2, N)) <= kept
    unseen_weights = plan.weights[plan.indices >= N // 2]
    assert torch.all(unseen_weights == 1)


@pytest.mark.parametrize("epochs,delta,first_full", [(10, 0.875, 8), (8, 0.875, 7), (10, 0.9, 9), (7, 0.5, 3), (3, 1.0, 3),
                                                     (6, 0.875, 5)])
def test_annealing_epochs_are_full_with_unit_weights(epochs, delta, first_full):
    losses = known_losses()
    s = observed(delta=delta, epochs=epochs, losses=losses)
    for e in range(epochs):
        plan = s.plan(e)
        if e >= first_full:
            assert len(plan) == N and torch.all(plan.weights == 1.0), f"epoch {e} must be full with weight exactly 1"
        elif e > 0:
            assert len(plan) < N and torch.any(plan.weights > 1), f"epoch {e} must prune"
        s.observe(plan.indices, losses[plan.indices])


def test_plan_is_fresh_each_epoch_and_shuffled():
    s = observed(losses=known_losses())
    a, b = s.plan(1), s.plan(2)
    assert not torch.equal(a.indices, b.indices)
    assert not torch.equal(a.indices, a.indices.sort().values)


def test_score_is_latest_loss_or_moving_average():
    s = InfoBatch(4, 10, 0, score_momentum=0.0)
    s.observe(torch.tensor([0, 1]), torch.tensor([1.0, 2.0]))
    s.observe(torch.tensor([0]), torch.tensor([3.0]))
    assert s.score[:2].tolist() == [3.0, 2.0]
    m = InfoBatch(4, 10, 0, score_momentum=0.5)
    m.observe(torch.tensor([0]), torch.tensor([1.0]))  # first sight: the loss itself
    m.observe(torch.tensor([0]), torch.tensor([3.0]))
    assert m.score[0].item() == pytest.approx(2.0)
    assert m.seen.tolist() == [True, False, False, False]


def test_seed_determines_the_plans():
    losses = known_losses()
    a, b, c = (observed(seed=s, losses=losses) for s in (0, 0, 1))
    pa, pb, pc = a.plan(1), b.plan(1), c.plan(1)
    assert torch.equal(pa.indices, pb.indices) and torch.equal(pa.weights, pb.weights)
    assert not torch.equal(pa.indices, pc.indices)


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5])
def test_ratio_out_of_range_is_refused(ratio):
    from infobatch_runner.errors import UserError

    with pytest.raises(UserError, match=r"prune.ratio must be in \[0, 1\)"):
        InfoBatch(N, 10, 0, ratio=ratio)


@pytest.mark.parametrize("n", [10, 1000, 50_000, 1_281_167])
@pytest.mark.parametrize("value", [0.1, 1 / 3, 2.302585, 1e-7, 7.7])
def test_all_equal_losses_leave_no_candidate(n, value):
    # The float32 mean of n equal values can round one ulp above them: every sample then looked
    # "below the mean" and `ratio` of the data was dropped although nothing is better learned.
    s = InfoBatch(n, 10, 0)
    s.observe(torch.arange(n), torch.full((n,), value))
    assert int(s.candidates().sum()) == 0
    plan = s.plan(1)
    assert len(plan) == n and bool(torch.all(plan.weights == 1))


def test_candidates_are_strictly_below_the_exact_mean():
    losses = torch.tensor([1.0, 1.0, 1.0, 4.0])  # mean 1.75
    s = InfoBatch(4, 10, 0)
    s.observe(torch.arange(4), losses)
    assert s.candidates().tolist() == [True, True, True, False]
    s.observe(torch.arange(4), torch.tensor([2.0, 1.0, 3.0, 2.0]))  # mean exactly 2.0: only 1.0 is below
    assert s.candidates().tolist() == [False, True, False, False]
