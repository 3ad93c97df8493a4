"""The contract of docs/strategies.md for every strategy of ours, through the public checker
(infobatch_runner.testing.check_strategy), and what the config and the budget check add to it:
registering a new strategy is enough to put it under these tests."""

import inspect
import math

import pytest

from infobatch_runner.errors import UserError
from infobatch_runner.pruning import STRATEGIES, build_strategy
from infobatch_runner.testing import check_strategy, losses_for

N, EPOCHS, BATCH = 600, 6, 64
ALL = sorted(STRATEGIES)


def run_epoch(strategy, epoch):
    plan = strategy.plan(epoch)
    for start in range(0, len(plan), BATCH):
        idx = plan.indices[start : start + BATCH]
        strategy.observe(idx, losses_for(idx, epoch))
    return plan


# Every strategy of ours, in each form whose state or plans differ: what users can build.
FORMS = [(name, {}) for name in ALL] + [
    ("infobatch", {"target_saving": 0.2}), ("infobatch", {"score_momentum": 0.5}), ("seta", {"target_saving": 0.4}),
    ("random_dynamic", {"ratio": 0.3}), ("random_dynamic", {"replacement": False}), ("random_dynamic", {"interval": 3}),
    ("rs2", {"target_saving": 0.5}), ("epsilon_greedy", {"target_saving": 0.3}), ("ucb", {"target_saving": 0.4}),
    ("ucb", {"use_variance": False}), ("el2n", {"offset": 30}),
]


@pytest.mark.parametrize("name,params", FORMS, ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in p.items()) or 'default'}"
                                                    for n, p in FORMS])
def test_the_contract(name, params):
    """The public checker (infobatch_runner.testing.check_strategy), the one a strategy of another
    package is checked with: valid and fixed plans, seeds, state round trip, no host read in
    observe, low-precision and non-finite losses, two gloo ranks, target savings."""
    report = check_strategy(STRATEGIES[name], num_samples=N, epochs=EPOCHS, **params)
    assert "ranks merge" in report.held


@pytest.mark.parametrize("name", ALL)
def test_unknown_parameter_is_refused(name, compose_cfg):
    cfg = compose_cfg([f"prune={name}", "+prune.bogus=1"])
    with pytest.raises(UserError, match="bogus"):
        build_strategy(cfg.prune, N, EPOCHS, 0)


@pytest.mark.parametrize("name", ALL)
def test_config_file_parameters_build_the_strategy(name, compose_cfg):
    s = build_strategy(compose_cfg([f"prune={name}"]).prune, N, EPOCHS, 0)
    assert s.name == name


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
            s.observe(plan.indices, losses_for(plan.indices, e))
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
