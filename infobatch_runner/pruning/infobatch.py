import torch

from infobatch_runner.pruning.base import Plan, Strategy, check_range, first_full_epoch, floor_count
from infobatch_runner.pruning.budget import SkipBudget


class InfoBatch(Strategy):
    """InfoBatch (Qin et al., "InfoBatch: Lossless Training Speed Up by Unbiased Dynamic Data
    Pruning", ICLR 2024).

    While epoch < floor(delta * epochs): the candidates are the samples already seen whose score is below
    the mean score of the seen samples; exactly floor((1 - ratio) * n_candidates) of them, drawn
    uniformly, are kept with loss weight 1 / (1 - ratio), and every other sample is kept with
    weight 1. From epoch floor(delta * epochs) on (annealing): all samples, weight exactly 1.
    The score is the latest per-sample loss, or its moving average when score_momentum > 0.

    Budget mode (`target_saving` in (0, 1), budget.py): `ratio` is ignored; each pruned epoch
    skips (samples still to skip / pruned epochs left), drawn uniformly from the candidates, whose
    kept share gets weight n_candidates / n_kept. The share r_e skipped never exceeds `max_ratio`
    (default 0.6: weights at most 2.5); when the samples below the mean are too few, the candidates
    widen to the lowest-scored seen samples. A target out of reach is refused before training.

    Cost: one scatter per batch in observe; per epoch one mean, one permutation, a cumulative sum
    and two masked selections on the device, and one host read of the candidate count. Unlike the published code, the plan is fresh each epoch (no stale weights in
    annealing epochs, whatever delta * epochs is), its length is known before the epoch starts,
    bf16/fp16 losses are cast to float32, and the global RNGs are left alone.
    """

    name = "infobatch"

    def __init__(self, num_samples, epochs, seed, device="cpu", ratio: float = 0.5, delta: float = 0.875,
                 score_momentum: float = 0.0, target_saving: float | None = None, max_ratio: float = 0.6):
        self.ratio = check_range("ratio", ratio, 0.0, 1.0, high_open=True)
        self.target = None if target_saving is None else check_range("target_saving", target_saving, 0.0, 1.0, True, True)
        self.max_ratio = check_range("max_ratio", max_ratio, 0.0, 1.0, low_open=True, high_open=True)
        self.delta = check_range("delta", delta, 0.0, 1.0, low_open=True)
        self.momentum = check_range("score_momentum", score_momentum, 0.0, 1.0, high_open=True)
        super().__init__(num_samples, epochs, seed, device)
        self.anneal_from = first_full_epoch(self.delta, epochs)
        self.score = torch.zeros(num_samples, dtype=torch.float32, device=self.device)
        self.seen = torch.zeros(num_samples, dtype=torch.bool, device=self.device)
        self.skipped = 0  # samples left out so far, what budget mode steers
        self.budget = None
        if self.target is not None:
            self.budget = SkipBudget(self.target, self.max_ratio, epochs, num_samples, self.anneal_from)

    @classmethod
    def ignored_params(cls, params) -> set[str]:
        """max_ratio bounds budget mode only."""
        budget = params.get("target_saving") is not None
        return super().ignored_params(params) | (set() if budget else {"max_ratio"})

    def pruned_epochs(self) -> int:
        return max(self.anneal_from - 1, 0)  # epoch 0 has seen nothing

    def check_reachable(self) -> None:
        if self.budget is not None:
            self.budget.check(self.delta)

    def observe(self, indices: torch.Tensor, losses: torch.Tensor) -> None:
        losses = losses.detach().float()
        finite = torch.isfinite(losses)  # a NaN or inf loss leaves its sample as it was (one NaN would void the mean)
        old = self.score.index_select(0, indices)
        seen = self.seen.index_select(0, indices)
        if self.momentum > 0:
            losses = torch.where(seen, self.momentum * old + (1 - self.momentum) * losses, losses)
        self.score.index_copy_(0, indices, torch.where(finite, losses, old))
        self.seen.index_copy_(0, indices, seen | finite)

    def candidates(self) -> torch.Tensor:
        """Boolean mask of the well-learned samples: seen, and scored strictly below the seen mean.

        Compared as score * n < sum in float64: a float32 mean can round one ulp above a common
        value and make every sample of an all-equal set a candidate. n * score is exact in float64
        (24 + 29 bits for N < 2^29), and so is the sum of equal scores: equal scores are never below."""
        score = self.score.double()
        total = torch.where(self.seen, score, 0.0).sum()
        return self.seen & (score * self.seen.sum() < total)

    def plan(self, epoch: int) -> Plan:
        if epoch >= self.anneal_from:
            return self.full_plan()
        mask = self.candidates()
        n_candidates = int(mask.sum())  # a host read, once per epoch
        if self.budget is None:
            n_keep = floor_count((1 - self.ratio) * n_candidates)
            weight = 1.0 / (1.0 - self.ratio)
        else:
            mask, n_candidates, n_keep = self.budget_epoch(epoch, mask, n_candidates)
            weight = n_candidates / n_keep if n_keep else 1.0
        # One permutation does both jobs: the first n_keep candidates in a uniformly random order are
        # a uniformly random subset of exactly n_keep, and the order itself is the epoch's shuffle.
        perm = self.randperm(self.num_samples)
        candidate = mask.index_select(0, perm)
        keep = ~candidate | (candidate.cumsum(0) <= n_keep)
        # One masked selection for both: each index carries its candidate flag in its lowest bit.
        kept = torch.masked_select(perm * 2 + candidate, keep)
        indices = kept >> 1
        weights = (kept & 1).float().mul_(weight - 1.0).add_(1.0)
        self.skipped += self.num_samples - indices.shape[0]
        return Plan(indices, weights)

    def budget_epoch(self, epoch: int, below_mean: torch.Tensor, n_below: int) -> tuple[torch.Tensor, int, int]:
        """Budget mode's (candidates, their number, how many of them to keep) for this epoch."""
        n_seen = int(self.seen.sum())
        skip = self.budget.to_skip(epoch, self.skipped) if n_seen else 0
        wanted = min(self.budget.candidates_needed(skip, n_below), n_seen)
        mask = below_mean
        if wanted > n_below:  # too few below the mean: the `wanted` lowest-scored seen samples
            lowest = self.top_k(torch.where(self.seen, -self.score, -torch.inf), wanted)
            mask = torch.zeros_like(self.seen).index_fill_(0, lowest, True)
        skip = min(skip, floor_count(self.max_ratio * wanted))
        return mask, wanted, wanted - skip

    def state_dict(self) -> dict:
        return {**super().state_dict(), "score": self.score.clone(), "seen": self.seen.clone(), "skipped": self.skipped}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.score.copy_(state["score"])
        self.seen.copy_(state["seen"])
        self.skipped = state["skipped"]
