"""Our strategies side by side with the published code (tests/published.py), fed the same losses
epoch by epoch: real per-sample losses of a small CNN trained on Fashion-MNIST, and crafted skewed
scores. A test here fails when an implementation drifts from the paper's code, not when it drifts
from itself."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import published
from infobatch_runner.pruning.infobatch import InfoBatch
from infobatch_runner.pruning.kmeans1d import kmeans_1d_groups
from infobatch_runner.pruning.seta import SeTa

N_REAL, REAL_EPOCHS = 10_000, 4


@pytest.fixture(scope="module")
def real_losses() -> torch.Tensor:
    """[epoch, sample]: the training loss of each of 10,000 Fashion-MNIST images in each of 4
    full-data epochs of the runner's small CNN (SGD, batch 128), as a strategy would observe them."""
    from infobatch_runner.data.idx import load_fashion_mnist
    from infobatch_runner.engine.models import SmallCNN

    train, _ = load_fashion_mnist(None, False)
    x = train.images[:N_REAL].float().div(255).reshape(N_REAL, 1, 28, 28)
    y = train.labels[:N_REAL].long()
    torch.manual_seed(0)
    model = SmallCNN(1, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    g = torch.Generator().manual_seed(0)
    losses = torch.empty(REAL_EPOCHS, N_REAL)
    for e in range(REAL_EPOCHS):
        for idx in torch.randperm(N_REAL, generator=g).split(128):
            loss = F.cross_entropy(model(x[idx]), y[idx], reduction="none")
            opt.zero_grad()
            loss.mean().backward()
            opt.step()
            losses[e, idx] = loss.detach()
    return losses


def skewed(kind: str, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(n)
    if kind == "exp_cubed":  # most samples learned, a long tail of hard ones
        return torch.empty(n).exponential_(generator=g) ** 3
    if kind == "lognormal":
        return torch.empty(n).log_normal_(0, 2.0, generator=g)
    # a few far outliers above a dense easy mass: quantile starts put every centre in the mass
    return torch.cat([torch.rand(n - n // 10, generator=g) * 0.05, torch.rand(n // 10 - 8, generator=g) * 2 + 1,
                      torch.rand(8, generator=g) * 5 + 6])


@pytest.mark.parametrize("n", [100, 900])
@pytest.mark.parametrize("kind", ["exp_cubed", "lognormal", "outliers"])
def test_kmeans_groups_are_no_worse_than_scikit_learns_and_near_the_optimum(kind, n):
    scores = skewed(kind, n)
    ours = published.within_group_error(scores, kmeans_1d_groups(scores, 5), 5)
    theirs = published.within_group_error(scores, torch.from_numpy(published.kmeans_labels(scores.numpy(), 5)), 5)
    assert ours <= 1.01 * theirs, f"within-group squared error {ours:.4g}, scikit-learn's {theirs:.4g}"
    assert ours <= 1.001 * published.optimal_error(scores, 5)


@pytest.mark.parametrize("epoch", range(REAL_EPOCHS))
def test_kmeans_of_real_losses_agrees_with_scikit_learn(real_losses, epoch):
    scores = real_losses[epoch]
    ours = kmeans_1d_groups(scores, 5)
    theirs = torch.from_numpy(published.kmeans_labels(scores.numpy(), 5))
    assert published.within_group_error(scores, ours, 5) <= 1.01 * published.within_group_error(scores, theirs, 5)
    assert (ours == theirs).double().mean() >= 0.95, "group labels agree on at least 95% of the samples"


def drive(strategy, real_losses, epochs):
    """Our strategy's plans, each epoch after observing every sample's loss of the epoch before."""
    plans = []
    for e in range(epochs):
        if e:
            strategy.observe(torch.arange(N_REAL), real_losses[min(e - 1, REAL_EPOCHS - 1)])
        plans.append(strategy.plan(e))
    return plans


def next_subset(strategy: SeTa) -> torch.Tensor:
    """The random subset that the strategy's next plan() draws first (a copy of it draws the same)."""
    twin = copy.deepcopy(strategy)
    return twin.randperm(twin.num_samples)[: twin.kept_budget()]


@pytest.mark.parametrize("ratio,window_scale", [(0.1, 0.9), (0.0, 0.6), (0.3, 0.5)])
def test_seta_keeps_what_the_published_code_keeps_of_the_same_subset(real_losses, ratio, window_scale):
    """(0.1, 0.9): the CIFAR script's settings; (0.0, 0.6): the ImageNet script's (every sample
    clustered). Eight epochs, delta 0.875: epoch 0 keeps every group, 1-6 slide the window, 7 anneals
    partially. Each epoch the published steps group the subset ours drew: ours keeps only samples of
    it, the same samples as the published code but for 5% of the subset, and as many as scikit-learn
    keeps at its best to within 2% of the subset. At its best: the published single k-means++ start
    lands up to 0.7% above the optimum's squared error on these losses, where k-means is flat, and
    its window then keeps up to 11% more samples than the optimum's; the best of 10 starts (still
    scikit-learn's KMeans) comes within 0.4%."""
    epochs, delta = 8, 0.875
    s = SeTa(N_REAL, epochs, 0, ratio=ratio, window_scale=window_scale, delta=delta)
    for e in range(epochs):
        if e:
            s.observe(torch.arange(N_REAL), real_losses[min(e - 1, REAL_EPOCHS - 1)])
        subset = next_subset(s)
        plan = s.plan(e)
        assert bool((plan.weights == 1).all())
        if published.annealing(e, epochs, delta):
            assert len(plan) == len(published.seta_no_prune(N_REAL, ratio, np.random.default_rng(e))), f"epoch {e}"
            continue
        scores, drawn = s.score.numpy(), subset.numpy()
        theirs = set(published.seta_window(scores, drawn, 5, window_scale, e).tolist())
        best = published.seta_window(scores, drawn, 5, window_scale, e, n_init=10)
        ours = set(plan.indices.tolist())
        assert ours <= set(subset.tolist()), f"epoch {e} keeps samples outside its random subset"
        assert len(ours ^ theirs) <= 0.05 * len(subset), f"epoch {e}: {len(ours ^ theirs)} samples kept by one only"
        assert abs(len(ours) - len(best)) <= 0.02 * len(subset), f"epoch {e}: {len(ours)} kept, scikit-learn {len(best)}"


@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.7])
def test_infobatch_plans_as_the_published_code(real_losses, ratio):
    """Same scores, same plan but for which well-learned samples the coin keeps: the same samples at
    weight 1, as many at weight 1 / (1 - ratio), those drawn from the same well-learned set, and the
    same annealing epochs (E = 6, delta 0.875: the published sampler's epoch 5)."""
    epochs, delta = 6, 0.875
    ours = drive(InfoBatch(N_REAL, epochs, 0, ratio=ratio, delta=delta), real_losses, epochs)
    rng = np.random.default_rng(0)
    for e, plan in enumerate(ours):
        scores = real_losses[min(e - 1, REAL_EPOCHS - 1)].numpy() if e else np.full(N_REAL, published.UNSEEN)
        if published.annealing(e, epochs, delta):
            kept, weights = np.arange(N_REAL), np.ones(N_REAL)
        else:
            kept, weights = published.infobatch_prune(scores, ratio, rng)
        weights_of = {1.0: set(), 1 / (1 - ratio): set()}
        for w in set(weights.tolist()):
            weights_of[w] = set(kept[weights == w].tolist())
        ours_at_1 = set(plan.indices[plan.weights == 1].tolist())
        ours_up = plan.indices[plan.weights != 1]
        assert ours_at_1 == weights_of[1.0], f"epoch {e}: the samples kept at weight 1"
        assert len(ours_up) == len(weights_of[1 / (1 - ratio)]), f"epoch {e}: as many up-weighted samples"
        assert torch.allclose(plan.weights[plan.weights != 1], torch.tensor(1 / (1 - ratio)))
        well_learned = set(np.where(scores < scores.mean())[0].tolist())
        assert set(ours_up.tolist()) <= well_learned, f"epoch {e}: only well-learned samples are up-weighted"


def window_members(scores: torch.Tensor, epoch: int) -> torch.Tensor:
    """Which samples lie in epoch's window of 4 of 5 groups (start epoch mod 2), by our groups of all
    the scores, and the share of them the published grouping puts there too."""
    start = epoch % 2
    groups = kmeans_1d_groups(scores, 5)
    return (groups >= start) & (groups < start + 4)


@pytest.mark.parametrize("target", [0.4, 0.6])
def test_seta_with_a_target_keeps_its_window_anneals_as_published_and_saves_the_target(real_losses, target):
    """Every window epoch keeps only its window's groups (groups of all the scores, which the
    published grouping of the same scores matches on 95% of the kept samples), epoch 0 and the
    partial annealing keep floor(keep * N) as published, and the run saves the target to half a
    sample per epoch: the window epochs that drop the hardest group keep more when those that drop
    the easiest (most of the data) cannot keep their share."""
    epochs, ratio = 8, 0.1
    s = SeTa(N_REAL, epochs, 0, ratio=ratio, target_saving=target)
    plans = drive(s, real_losses, epochs)
    assert len(plans[0]) == len(plans[7]) == int(N_REAL * (1 - ratio)), "epoch 0 and the partial annealing"
    for e in range(1, 7):
        scores = real_losses[min(e - 1, REAL_EPOCHS - 1)]
        assert bool(window_members(scores, e).index_select(0, plans[e].indices).all()), f"epoch {e} left its window"
        theirs = torch.from_numpy(published.kmeans_labels(scores.numpy(), 5)).index_select(0, plans[e].indices)
        assert ((theirs >= e % 2) & (theirs < e % 2 + 4)).double().mean() >= 0.95
    saved = 1 - sum(len(p) for p in plans) / (epochs * N_REAL)
    assert abs(saved - target) <= 0.5 / N_REAL, f"saved {saved:.5f} for a target of {target}"


def test_seta_with_a_target_its_windows_cannot_hold_keeps_all_they_hold_and_no_more(real_losses):
    """At 30% the windows that drop the easiest group (about 80% of these losses) cannot keep their
    share: each window epoch keeps all its window holds, nothing from outside it, and the run saves
    more than asked (the runner's closing line says "missed")."""
    epochs = 8
    s = SeTa(N_REAL, epochs, 0, target_saving=0.3)
    plans = drive(s, real_losses, epochs)
    for e in (1, 3, 5):
        members = window_members(real_losses[min(e - 1, REAL_EPOCHS - 1)], e)
        assert len(plans[e]) == int(members.sum()) and bool(members.index_select(0, plans[e].indices).all())
    assert 1 - sum(len(p) for p in plans) / (epochs * N_REAL) > 0.3 + 0.5 / N_REAL, "more than asked"
