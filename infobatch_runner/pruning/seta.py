import torch

from infobatch_runner.errors import UserError
from infobatch_runner.pruning.base import Plan, Strategy, Target, check_range, first_full_epoch, floor_count

UNSEEN_SCORE = 3.0  # the published initial score: a sample never trained counts as hard
KMEANS_ITERATIONS = 16
KMEANS_SAMPLE = 65_536  # the scores the centres are fitted on: all of them up to this many


def kmeans_1d_centres(sorted_scores: torch.Tensor, num_group: int, iterations: int = KMEANS_ITERATIONS) -> torch.Tensor:
    """The ascending centres of 1-D k-means over `sorted_scores` (ascending, float64): Lloyd's
    iterations, each a searchsorted against the midpoints of the centres and one prefix sum for the
    new means (in 1-D the groups are contiguous ranges of the sorted data). Centres start at evenly
    spaced quantiles; a group that empties keeps its centre."""
    x, n = sorted_scores, sorted_scores.shape[0]
    prefix = torch.cat([x.new_zeros(1), x.cumsum(0)])
    positions = ((torch.arange(num_group, device=x.device, dtype=torch.float64) + 0.5) * n / num_group).long()
    centres = x.index_select(0, positions.clamp(max=n - 1))
    for _ in range(iterations):
        edges = torch.searchsorted(x, (centres[1:] + centres[:-1]) / 2)  # first index of each group after the first
        starts = torch.cat([edges.new_zeros(1), edges])
        ends = torch.cat([edges, edges.new_full((1,), n)])
        counts = (ends - starts).double()
        sums = prefix.index_select(0, ends) - prefix.index_select(0, starts)
        centres = torch.sort(torch.where(counts > 0, sums / counts.clamp(min=1), centres)).values
    return centres


def kmeans_1d_groups(scores: torch.Tensor, num_group: int) -> torch.Tensor:
    """The k-means group (0 = lowest mean) of each of `scores`, given in a uniformly random order.

    The centres are fitted on the first KMEANS_SAMPLE scores (all of them for up to that many: exact
    k-means; beyond, a uniform sample, whose centres differ from the full data's by far less than
    the groups' spread) and every score goes to its nearest centre: one sort of at most 65,536
    values and one searchsorted of all of them, where sorting a 1.2M-sample ImageNet subset cost 5x
    InfoBatch's whole plan. All-equal scores give `num_group` equal chunks, as the published code."""
    n = scores.shape[0]
    x = scores.double()
    if n == 0 or bool(x.min() == x.max()):
        return torch.div(torch.arange(n, device=x.device) * num_group, max(n, 1), rounding_mode="floor")
    centres = kmeans_1d_centres(torch.sort(x[:KMEANS_SAMPLE]).values, num_group)
    return torch.searchsorted((centres[1:] + centres[:-1]) / 2, x, right=True)


class SeTa(Strategy):
    """SeTa (Zhou, Gao, Wang, "Scale Efficient Training for Large Datasets", CVPR 2025).

    keep = 1 - ratio. Each epoch e before floor(delta * epochs) (epoch 0 included): draw a uniform
    random subset of floor(keep * N) of all samples; cluster their scores (the latest loss; a
    sample never trained scores UNSEEN_SCORE = 3.0, the published initial value) into `num_group`
    groups by 1-D k-means, ordered by mean score (easiest first); keep the groups of a sliding
    window of w = round(num_group * window_scale) groups (Python's round, as published: 4 of 5 at
    0.9) starting at group (e mod (num_group - w + 1)), every group at e = 0. Weight 1, freshly
    shuffled. From floor(delta * epochs) on ("partial annealing"): a uniform random floor(keep * N)
    of all samples, weight 1: never the full data, unlike InfoBatch.

    `target_saving` s (ratio ignored): the cluster sizes decide how many samples the window keeps,
    so the subset is drawn to fit instead. Each epoch keeps K_e = N - (samples still to skip /
    epochs left), the skipped samples spread over all epochs (partial annealing prunes too):
    the scores of all N are grouped, and the subset grows, in a uniform random order, until it
    holds K_e samples of the window's groups (topped up with others in the same order when the
    window holds fewer). Epoch 0 and the annealing epochs keep a uniform K_e. The realised saving
    is s to half a sample per epoch.

    Cost: one scatter per batch in observe; per epoch one permutation, KMEANS_ITERATIONS vectorised
    k-means steps on at most KMEANS_SAMPLE sorted scores and one nearest-centre assignment of the
    subset, on the device (no sklearn, no loop over samples). Unlike the published code, its own
    generator, never the global RNGs.
    """

    name = "seta"

    def __init__(self, num_samples, epochs, seed, device="cpu", ratio: float = 0.1, num_group: int = 5,
                 window_scale: float = 0.9, delta: float = 0.875, target_saving: float | None = None):
        self.ratio = check_range("ratio", ratio, 0.0, 1.0, high_open=True)
        if isinstance(num_group, bool) or not isinstance(num_group, int) or num_group < 1:
            raise UserError(f"prune.num_group must be a whole number >= 1 (got {num_group!r}).")
        self.num_group = num_group
        self.window_scale = check_range("window_scale", window_scale, 0.0, 1.0, low_open=True)
        self.window = round(num_group * self.window_scale)
        if self.window < 1:
            raise UserError(f"prune.window_scale={window_scale:g} keeps round({num_group} x {window_scale:g}) = 0 "
                            "groups; raise prune.window_scale or prune.num_group.")
        self.delta = check_range("delta", delta, 0.0, 1.0, low_open=True)
        super().__init__(num_samples, epochs, seed, device)
        self.anneal_from = first_full_epoch(self.delta, epochs)
        self.score = torch.full((num_samples,), UNSEEN_SCORE, dtype=torch.float32, device=self.device)
        self.skipped = 0  # samples left out so far: what a target_saving steers
        if target_saving is not None:  # every epoch prunes, the partial annealing ones too
            self.saving_target = Target(target_saving, epochs, num_samples, epochs)

    def kept_budget(self) -> int | None:
        """The size of each epoch's random subset, floor(keep * N) as published; with a target the
        kept count varies by epoch (Target.kept)."""
        if self.saving_target is not None:
            return None
        return floor_count((1.0 - self.ratio) * self.num_samples)

    def observe(self, indices: torch.Tensor, losses: torch.Tensor) -> None:
        losses = losses.detach().float()  # a NaN or inf loss leaves its sample's score as it was
        self.score.index_copy_(0, indices, torch.where(torch.isfinite(losses), losses, self.score.index_select(0, indices)))

    def window_start(self, epoch: int) -> int:
        return epoch % (self.num_group - self.window + 1)

    def in_window(self, epoch: int, groups: torch.Tensor) -> torch.Tensor:
        start = self.window_start(epoch)
        return (groups >= start) & (groups < start + self.window)

    def plan(self, epoch: int) -> Plan:
        if self.saving_target is not None:
            return self.plan_for_target(epoch)
        subset = self.randperm(self.num_samples)[: self.kept_budget()]
        if epoch >= self.anneal_from or epoch == 0:
            return self.shuffled(subset, 1.0)  # partial annealing; epoch 0 keeps every group
        groups = kmeans_1d_groups(self.score.index_select(0, subset), self.num_group)  # the subset's order is random
        kept = subset[self.in_window(epoch, groups)]
        if kept.shape[0] == 0:  # the window holds only groups k-means left empty: keep the subset
            kept = subset
        return self.shuffled(kept, 1.0)

    def plan_for_target(self, epoch: int) -> Plan:
        k = self.saving_target.kept(epoch, self.skipped)
        perm = self.randperm(self.num_samples)
        if epoch == 0 or epoch >= self.anneal_from:
            kept = perm[:k]
        else:
            chosen = self.in_window(epoch, kmeans_1d_groups(self.score.index_select(0, perm), self.num_group))
            n_window = min(k, int(chosen.sum()))  # a host read, once per epoch
            take = (chosen & (chosen.cumsum(0) <= k)) | (~chosen & ((~chosen).cumsum(0) <= k - n_window))
            kept = perm[take]
        self.skipped += self.num_samples - kept.shape[0]
        return self.shuffled(kept, 1.0)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "score": self.score.clone(), "skipped": self.skipped}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.score.copy_(state["score"])
        self.skipped = state.get("skipped", 0)
