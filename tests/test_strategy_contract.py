"""The contract of docs/strategies.md, checked for every registered strategy: registering a new
strategy is enough to put it under these tests."""

import inspect
import math
import random

import numpy as np
import pytest
import torch

from infobatch_runner.errors import UserError
from infobatch_runner.pruning import STRATEGIES, build_strategy

N, EPOCHS, BATCH = 600, 6, 64
ALL = sorted(STRATEGIES)


def make(name, seed=0):
    s = STRATEGIES[name](N, EPOCHS, seed)
    if s.scoring() is not None:  # a static strategy: the runner's scoring phase would hand it scores
        s.set_scores((torch.arange(N) * 0.618).remainder(1.0))
    return s


def losses_for(indices, dtype=torch.float32):
    # A deterministic stand-in for per-sample losses: some samples are "easy", others "hard".
    return ((indices.float() * 0.618).remainder(1.0) * 3).to(dtype)


def run_epoch(strategy, epoch, dtype=torch.float32):
    plan = strategy.plan(epoch)
    for start in range(0, len(plan), BATCH):
        idx = plan.indices[start : start + BATCH]
        strategy.observe(idx, losses_for(idx, dtype))
    return plan


def in_lockstep(a, b, epochs, observe):
    """Two strategies through `epochs` epochs: each epoch they must plan alike, then observe(idx, epoch)
    feeds each batch of the plan to both, in its own way."""
    for e in range(epochs):
        plan, same = a.plan(e), b.plan(e)
        assert torch.equal(plan.indices, same.indices) and torch.equal(plan.weights, same.weights), f"epoch {e}"
        for start in range(0, len(plan), BATCH):
            observe(plan.indices[start : start + BATCH], e)


@pytest.mark.parametrize("name", ALL)
def test_plans_are_valid(name):
    s = make(name)
    for e in range(EPOCHS):
        plan = run_epoch(s, e)
        assert plan.indices.dtype == torch.int64 and plan.weights.dtype == torch.float32
        assert plan.indices.shape == plan.weights.shape and plan.indices.dim() == 1
        if s.schedule_epochs is not None and e >= s.schedule_epochs:  # short_schedule: its epochs are over
            assert len(plan) == 0
            continue
        assert 0 < len(plan) <= N
        assert int(plan.indices.min()) >= 0 and int(plan.indices.max()) < N
        assert plan.indices.unique().numel() == len(plan), "indices are unique"
        assert torch.all(plan.weights > 0) and torch.all(torch.isfinite(plan.weights))


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_plans_other_seed_other_plans(name):
    a, b, c = make(name, 0), make(name, 0), make(name, 1)
    for e in range(EPOCHS):
        pa, pb, pc = run_epoch(a, e), run_epoch(b, e), run_epoch(c, e)
        assert torch.equal(pa.indices, pb.indices) and torch.equal(pa.weights, pb.weights)
        assert not torch.equal(pa.indices, pc.indices) or len(pa) == 0


@pytest.mark.parametrize("name", ALL)
def test_state_round_trip_continues_identically(name):
    a = make(name)
    for e in range(EPOCHS // 2):
        run_epoch(a, e)
    b = make(name, seed=123)
    b.load_state_dict(a.state_dict())
    for e in range(EPOCHS // 2, EPOCHS):
        pa, pb = run_epoch(a, e), run_epoch(b, e)
        assert torch.equal(pa.indices, pb.indices) and torch.equal(pa.weights, pb.weights)


@pytest.mark.parametrize("name", ALL)
def test_global_rng_untouched(name):
    torch.manual_seed(7)
    np.random.seed(7)
    random.seed(7)
    before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    s = make(name)
    for e in range(EPOCHS):
        run_epoch(s, e)
    s.load_state_dict(s.state_dict())
    assert torch.equal(torch.get_rng_state(), before[0])
    assert np.array_equal(np.random.get_state()[1], before[1])
    assert random.getstate() == before[2]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_observe_accepts_low_precision_losses(name, dtype):
    """bf16/fp16 losses (autocast) plan exactly as the same values given in float32: the strategy
    casts them, and neither refuses them nor keeps them in half precision."""
    low, high = make(name), make(name)

    def observe(idx, epoch):
        low.observe(idx, losses_for(idx, dtype))
        high.observe(idx, losses_for(idx, dtype).float())

    in_lockstep(low, high, 3, observe)
    state = low.state_dict()
    assert all(v.dtype not in (torch.bfloat16, torch.float16) for v in state.values() if isinstance(v, torch.Tensor))


@pytest.mark.parametrize("name", ALL)
def test_unknown_parameter_is_refused(name, compose_cfg):
    cfg = compose_cfg([f"prune={name}", "+prune.bogus=1"])
    with pytest.raises(UserError, match="bogus"):
        build_strategy(cfg.prune, N, EPOCHS, 0)


@pytest.mark.parametrize("name", ALL)
def test_config_file_parameters_build_the_strategy(name, compose_cfg):
    s = build_strategy(compose_cfg([f"prune={name}"]).prune, N, EPOCHS, 0)
    assert s.name == name


class NoReadBack(torch.Tensor):
    """A tensor that fails the test if anything reads its values back to the host: on a GPU each
    such read would be a device sync inside the training step."""

    FORBIDDEN = {"item", "tolist", "numpy", "cpu", "__bool__", "__int__", "__float__", "__index__", "nonzero"}

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in cls.FORBIDDEN:
            raise AssertionError(f"observe read a value back to the host ({func.__name__})")
        return super().__torch_function__(func, types, args, kwargs or {})


@pytest.mark.parametrize("name", ALL)
def test_observe_never_reads_back_to_the_host(name):
    s = make(name)
    for e in range(2):
        plan = s.plan(e)
        idx = plan.indices[:BATCH]
        s.observe(idx.as_subclass(NoReadBack), losses_for(idx).as_subclass(NoReadBack))


@pytest.mark.parametrize("name", ALL)
def test_a_non_finite_loss_leaves_its_sample_as_it_was(name):
    """An fp16 overflow or one diverged sample: observing NaN and inf for some samples ends in the
    state of observing only the others (one NaN in InfoBatch's scores used to void its mean, and
    with it every later epoch's pruning)."""
    with_bad, without = make(name), make(name)

    def observe(idx, epoch):
        losses = losses_for(idx)
        bad = idx % 7 == epoch
        with_bad.observe(idx, torch.where(bad, torch.tensor([math.nan, math.inf])[idx % 2], losses))
        without.observe(idx[~bad], losses[~bad])

    in_lockstep(with_bad, without, 3, observe)
    a, b = with_bad.plan(3), without.plan(3)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.weights, b.weights)


@pytest.mark.parametrize("name", ALL)
def test_a_kept_budget_of_zero_is_refused_naming_the_real_n(name):
    from infobatch_runner.pruning import check_budget

    if name == "short_schedule":  # its budget is in epochs: round(0.01 x 6) = 0 of them is refused at once
        with pytest.raises(UserError, match=r"trains round\(0\.01 x 6\) = 0 epochs"):
            STRATEGIES[name](40, EPOCHS, 0, ratio=0.99)
        return
    s = STRATEGIES[name](40, EPOCHS, 0, ratio=0.99) if name != "full" else STRATEGIES[name](40, EPOCHS, 0)
    if s.kept_budget() is None:  # full data and InfoBatch keep every non-candidate: never an empty epoch
        check_budget(s)
        for e in range(EPOCHS):
            plan = s.plan(e)
            assert len(plan) >= (40 if name == "full" else 1), f"epoch {e} of {name} at ratio 0.99 trains nothing"
            s.observe(plan.indices, losses_for(plan.indices))
        assert name in ("full", "infobatch"), "a new strategy without a kept budget: say why it never empties"
        return
    rounding = "floor" if name == "seta" else "round"  # SeTa's subset is int(keep * N), as published
    with pytest.raises(UserError, match=rf"keeps {rounding}\(0\.01 x 40\) = 0 of the 40 training samples"):
        check_budget(s)
    check_budget(STRATEGIES[name](40, EPOCHS, 0, ratio=0.9))  # K = 4: fine


DELTA_TAKERS = [name for name in ALL if "delta" in inspect.signature(STRATEGIES[name].__init__).parameters]


@pytest.mark.parametrize("name", DELTA_TAKERS)
@pytest.mark.parametrize("epochs", range(4, 11))
def test_annealing_starts_at_floor_of_delta_times_epochs(name, epochs):
    """As the published InfoBatch code: epoch e is pruned while e + 1 <= delta * E, so E = 6 with
    delta 0.875 trains its last epoch as annealing (5.25 -> epoch 5), where ceil would prune all six."""
    s = STRATEGIES[name](N, epochs, 0, delta=0.875)
    first = math.floor(0.875 * epochs)
    for e in range(epochs):
        plan = run_epoch(s, e)
        whole = s.kept_budget() if name == "seta" else N  # SeTa's partial annealing: its whole random subset
        if e >= first:
            assert len(plan) == whole and bool((plan.weights == 1).all()), f"epoch {e} of {epochs} anneals"
        elif e > 0:
            assert len(plan) < whole, f"epoch {e} of {epochs} is pruned"
