"""The published code's plan steps, as oracles for tests/test_published_conformance.py.

Transcribed from InfoBatch's and SeTa's `prune()` / `no_prune()` / sampler (github mrazhou/SeTa,
seta.py at 341df62, which carries InfoBatch's code too): numpy and scikit-learn as published, with
two changes that do not touch the method: an explicit numpy Generator instead of the global torch
and numpy RNGs, and SeTa's grouping loop written with numpy instead of a Python loop over samples.
Plus the exact 1-D k-means optimum (a dynamic programme over every split), which neither publishes.
"""

import numpy as np
import torch
from sklearn.cluster import KMeans

UNSEEN = 3.0  # both published classes start every score at 3


def annealing(epoch: int, epochs: int, delta: float) -> bool:
    """IBSampler.reset: its 1-based counter `iterations` anneals once it exceeds delta * num_epochs."""
    return epoch + 1 > epochs * delta


def infobatch_prune(scores: np.ndarray, ratio: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """InfoBatch.prune: (kept indices, their weights). Well learned = below the mean of all scores;
    int(keep_ratio * n_well) of them kept at weight 1 / keep_ratio, every other sample at weight 1."""
    keep_ratio = min(1.0, max(1e-1, 1.0 - ratio))
    weights = np.ones(len(scores))
    well = np.where(scores < scores.mean())[0]
    selected = rng.choice(well, int(keep_ratio * len(well)), replace=False)
    weights[selected] = 1 / keep_ratio
    kept = np.concatenate([np.where(scores >= scores.mean())[0], selected])
    rng.shuffle(kept)
    return kept, weights[kept]


def kmeans_labels(scores: np.ndarray, num_group: int, n_init: int = 1) -> np.ndarray:
    """kmeans_group's grouping: KMeans(n_clusters=G, random_state=0), groups ranked by mean score
    (0 = easiest); equal scores give torch.chunk's chunks. `n_init` > 1 keeps the best of that many
    k-means++ starts (the published code: one)."""
    if scores.max() == scores.min():
        return np.concatenate([np.full(len(c), g) for g, c in enumerate(np.array_split(scores, num_group))])
    km = KMeans(n_clusters=num_group, random_state=0, n_init=n_init).fit(scores.reshape(-1, 1).astype(np.float64))
    means = np.array([scores[km.labels_ == g].mean() for g in range(num_group)])
    return np.argsort(np.argsort(means))[km.labels_]


def seta_window(scores: np.ndarray, subset: np.ndarray, num_group: int, window_scale: float, iteration: int,
                n_init: int = 1) -> np.ndarray:
    """SeTa.prune after its random subset (random_select_with_ratio: a uniform int(keep * N) of the
    samples, passed here as `subset`): the subset's scores grouped by kmeans_labels, the groups of the
    window slide_easy2hard(iteration) kept (every group at iteration 0)."""
    if iteration == 0:
        return subset
    labels = kmeans_labels(scores[subset], num_group, n_init)
    window = round(num_group * window_scale)
    start = iteration % (num_group - window + 1)
    return subset[(labels >= start) & (labels < start + window)]


def seta_no_prune(n: int, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """SeTa.no_prune, the partial annealing: a random int(keep * N) of all samples."""
    keep_ratio = min(1.0, max(1e-1, 1.0 - ratio))
    return rng.choice(rng.permutation(n), int(keep_ratio * n), replace=False)


def within_group_error(scores: torch.Tensor, groups: torch.Tensor, num_group: int) -> float:
    """The k-means objective: every score's squared distance to its group's mean, summed."""
    x = scores.double()
    count = torch.bincount(groups, minlength=num_group).double()
    mean = torch.zeros(num_group, dtype=torch.float64).index_add_(0, groups, x) / count.clamp(min=1)
    return float(((x - mean.index_select(0, groups)) ** 2).sum())


def optimal_error(scores: torch.Tensor, num_group: int) -> float:
    """The least within-group squared error over all groupings: in 1-D the optimal groups are
    contiguous in sorted order, so D_k[i] = min_j D_{k-1}[j] + cost(j..i-1) over every split j."""
    x = torch.sort(scores.double()).values
    x = x - x.mean()
    s1 = torch.cat([x.new_zeros(1), x.cumsum(0)])
    s2 = torch.cat([x.new_zeros(1), (x * x).cumsum(0)])
    i = torch.arange(len(x) + 1)
    count = (i[None, :] - i[:, None]).double()
    cost = (s2[None, :] - s2[:, None]) - (s1[None, :] - s1[:, None]) ** 2 / count.clamp(min=1)
    cost = torch.where(count > 0, cost, torch.full_like(cost, float("inf")))
    best = cost[0]
    for _ in range(1, num_group):
        best = (best[:, None] + cost).min(0).values
    return float(best[-1])
