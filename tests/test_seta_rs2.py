"""SeTa's plans as the published algorithm makes them, on crafted scores, and RS2 without
replacement (every sample once per pass). The shared contract (tests/test_strategy_contract.py)
covers both like every registered strategy."""

import pytest
import torch

from infobatch_runner.library import Pruner
from infobatch_runner.pruning.random_dynamic import RandomDynamic
from infobatch_runner.pruning.seta import UNSEEN_SCORE, SeTa, kmeans_1d_groups

LEVELS = 5  # crafted scores: LEVELS well-separated levels of 20 samples each


def levelled(n=100):
    level = torch.arange(n) % LEVELS
    return level, level.float() * 10 + torch.linspace(0, 0.5, n)  # within a level, small spread


def test_kmeans_finds_separated_levels_and_orders_them_by_mean():
    level, scores = levelled()
    values, order = torch.sort(scores)
    assert torch.equal(kmeans_1d_groups(values, LEVELS), level.index_select(0, order))


def test_kmeans_of_equal_scores_gives_equal_chunks():
    assert kmeans_1d_groups(torch.full((10,), 2.0), 5).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_kmeans_converges_where_the_quantile_start_is_wrong():
    # 90 samples near 0 and 10 near 100: quantile starts put all five centres in the big cluster
    scores = torch.cat([torch.linspace(0, 1, 90), torch.linspace(100, 101, 10)])
    groups = kmeans_1d_groups(scores, 2)
    assert groups[:90].eq(0).all() and groups[90:].eq(1).all()


def seta_levels_kept(ratio, epochs=8):
    level, scores = levelled()
    s = SeTa(100, epochs, 0, ratio=ratio, num_group=5, window_scale=0.9, delta=0.875)
    kept = []
    for e in range(epochs):
        plan = s.plan(e)
        assert plan.indices.unique().numel() == len(plan) and bool((plan.weights == 1).all())
        kept.append(sorted(set(level.index_select(0, plan.indices).tolist())) if len(plan) else [])
        s.observe(torch.arange(100), scores)  # every sample's latest loss: its crafted score
        kept[-1] = (len(plan), kept[-1])
    return kept


def test_seta_slides_a_window_of_four_of_five_groups_then_anneals_partially():
    # ratio 0: the random subset is everything, so the groups are exactly the levels.
    # w = round(5 x 0.9) = 4, start = e mod 2; epoch 0 keeps every group; from ceil(0.875 x 8) = 7 on,
    # partial annealing: a uniform floor(1 x 100) = 100.
    assert seta_levels_kept(0.0) == [(100, [0, 1, 2, 3, 4]), (80, [1, 2, 3, 4]), (80, [0, 1, 2, 3]),
                                     (80, [1, 2, 3, 4]), (80, [0, 1, 2, 3]), (80, [1, 2, 3, 4]),
                                     (80, [0, 1, 2, 3]), (100, [0, 1, 2, 3, 4])]


def test_seta_subsamples_first_and_never_trains_all_data_while_annealing():
    kept = seta_levels_kept(0.2)
    assert kept[0][0] == 80 and kept[7][0] == 80, "epoch 0 and the annealing epoch: floor(0.8 x 100)"
    for e in (1, 3, 5):
        assert 0 not in kept[e][1] and 56 <= kept[e][0] <= 72, "the easiest group is out of the window"
    for e in (2, 4, 6):
        assert 4 not in kept[e][1], "the hardest group is out of the window"


def test_seta_scores_unseen_samples_high_and_rounds_the_window_as_published():
    s = SeTa(50, 8, 0)
    assert bool((s.score == UNSEEN_SCORE).all()) and UNSEEN_SCORE == 3.0
    assert (s.ratio, s.num_group, s.window_scale, s.window) == (0.1, 5, 0.9, 4)  # Python's round(4.5) = 4
    assert SeTa(50, 8, 0, num_group=10, window_scale=0.5).window == 5


def test_seta_through_the_library_pruner():
    pruner = Pruner("seta", 200, 4, seed=0, ratio=0.3)
    pruner.set_epoch(0)
    assert len(list(pruner.batch_sampler(50))) == 3  # floor(0.7 x 200) = 140 samples in batches of 50


def rs2(n, ratio, epochs=10, interval=1):
    return RandomDynamic(n, epochs, 0, ratio=ratio, interval=interval, replacement=False)


@pytest.mark.parametrize("n,ratio,interval", [(10, 0.1, 1), (10, 0.7, 1), (37, 0.5, 2), (100, 0.35, 3)])
def test_rs2_without_replacement_trains_every_sample_once_per_pass(n, ratio, interval):
    """The selections, one after another, make whole passes over the data: after every selection each
    sample has been selected as often as any other, give or take one, also where a selection wraps
    from one pass into the next (K = 9 of 10 wraps in all but every tenth), and no plan repeats a
    sample. The published code's wrap takes the end and then the start of the same permutation, a
    sample twice in a pass (its 4th selection of 3 from 10 is perm[9], perm[0]); ours continues in a
    fresh permutation that puts the samples the selection already took last."""
    epochs = 40
    s = rs2(n, ratio, epochs=epochs, interval=interval)
    k = s.kept_budget()
    count = torch.zeros(n, dtype=torch.long)
    for e in range(epochs):
        plan = s.plan(e)
        assert len(plan) == k and plan.indices.unique().numel() == k, f"epoch {e}: a sample twice in one plan"
        if e % interval == 0:  # a new selection; the epochs between repeat it
            count += torch.bincount(plan.indices, minlength=n)
            assert int(count.max() - count.min()) <= 1, f"epoch {e}: selected {count.tolist()} times"
    assert int(count.sum()) == k * len(range(0, epochs, interval))


def test_rs2_keeps_a_subset_for_interval_epochs_and_round_trips():
    a = rs2(100, 0.5, interval=2)
    first, second = a.plan(0), a.plan(1)
    assert set(first.indices.tolist()) == set(second.indices.tolist())
    b = rs2(100, 0.5, interval=2)
    b.load_state_dict(a.state_dict())
    for e in range(2, 10):
        pa, pb = a.plan(e), b.plan(e)
        assert torch.equal(pa.indices, pb.indices)


@pytest.mark.parametrize("replacement", [True, False])
def test_random_dynamic_composes_with_and_without_replacement(compose_cfg, replacement):
    from infobatch_runner.config.validate import validate
    from infobatch_runner.pruning import build_strategy

    cfg = compose_cfg(["prune=random_dynamic", f"prune.replacement={str(replacement).lower()}"])
    validate(cfg)
    assert build_strategy(cfg.prune, 100, 4, 0).replacement is replacement


@pytest.mark.parametrize("name", ["random_dynamic", "epsilon_greedy", "ucb"])
def test_a_target_the_pruned_epochs_cannot_reach_is_refused_with_what_can(name):
    from infobatch_runner.errors import UserError
    from infobatch_runner.pruning import STRATEGIES

    # delta 0.25 over 8 epochs: epochs 0 and 1 pruned, each keeping at least 1 of 100: at most 0.2475
    from infobatch_runner.pruning import check_budget

    with pytest.raises(UserError, match=r"target_saving=0.3 cannot be reached: 2 of the 8 .* at most 0.2475"):
        check_budget(STRATEGIES[name](100, 8, 0, delta=0.25, target_saving=0.3))


def test_a_seta_target_outside_what_its_fixed_epochs_allow_is_refused_with_what_can_be_reached():
    from infobatch_runner.errors import UserError
    from infobatch_runner.pruning import check_budget

    # 8 epochs, delta 0.875: epoch 0 and epoch 7 keep floor(0.9 x 100) = 90, which saves 20 / 800 = 0.025 alone
    with pytest.raises(UserError, match=r"target_saving=0.02 cannot be reached: .* keep floor\(0.9 x 100\) = 90 .* "
                                        r"alone saves 0.0250"):
        check_budget(SeTa(100, 8, 0, target_saving=0.02))
    # delta 0.25: epoch 1 alone slides the window; 7 x 10 + 99 skipped at most: 169 / 800
    with pytest.raises(UserError, match=r"target_saving=0.3 cannot be reached: 1 of the 8 epochs .* at most 0.2112"):
        check_budget(SeTa(100, 8, 0, delta=0.25, target_saving=0.3))
    check_budget(SeTa(100, 8, 0, delta=0.25, target_saving=0.2))


@pytest.mark.parametrize("name", ["infobatch", "seta", "random_dynamic", "epsilon_greedy", "ucb", "short_schedule"])
def test_a_target_is_checked_with_the_real_data_not_at_composition(monkeypatch, capsys, tmp_path, name):
    """Composition and validate() know no N and accept the target; the run judges it (check_budget)
    once the data is loaded, with the real N (a sweep then records an unreachable job as failed and
    runs the others)."""
    from conftest import TINY, run_main

    from infobatch_runner.engine import train
    from infobatch_runner.errors import UserError

    judged = []

    def judge(strategy):
        judged.append((strategy.name, strategy.num_samples))
        raise UserError("judged here.")

    monkeypatch.setattr(train, "check_budget", judge)
    status, out = run_main(monkeypatch, capsys, [f"prune={name}", "prune.target_saving=0.5", *TINY,
                                                 f"hydra.run.dir={tmp_path / 'run'}"])
    assert judged == [(name, 256)] and status != 0 and "judged here." in out


def test_a_tiny_run_realises_a_target_end_to_end(tmp_path, monkeypatch, capsys):
    import json

    from conftest import TINY, run_main

    status, out = run_main(monkeypatch, capsys, ["prune=seta", "prune.target_saving=0.4", *TINY,
                                                 f"hydra.run.dir={tmp_path / 'run'}"])
    assert status == 0, out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert abs(summary["saving_samples"] - 0.4) <= 0.005 and "(target saving 0.4, met)" in out


def test_kmeans_beyond_its_sample_still_finds_the_levels():
    # 200,000 scores in a random order: centres fitted on the first 65,536, every score assigned
    level = torch.randint(0, LEVELS, (200_000,), generator=torch.Generator().manual_seed(0))
    scores = level.float() * 10 + torch.rand(200_000, generator=torch.Generator().manual_seed(1))
    assert torch.equal(kmeans_1d_groups(scores, LEVELS), level)


@pytest.mark.parametrize("name", ["seta", "rs2", "random_dynamic", "epsilon_greedy", "ucb", "short_schedule"])
def test_a_target_run_resumed_from_its_state_plans_as_the_uninterrupted_run(name):
    from infobatch_runner.pruning import STRATEGIES

    def make(seed=0):
        return STRATEGIES[name](300, 8, seed, target_saving=0.5)

    def epoch(s, e):
        plan = s.plan(e)
        s.observe(plan.indices, (plan.indices.float() * 0.618).remainder(1.0))
        return plan

    whole, broken = make(), make()
    for e in range(3):
        epoch(whole, e), epoch(broken, e)
    resumed = make(seed=99)
    resumed.load_state_dict(broken.state_dict())
    for e in range(3, 8):
        a, b = epoch(whole, e), epoch(resumed, e)
        assert torch.equal(a.indices, b.indices) and torch.equal(a.weights, b.weights), f"epoch {e}"
