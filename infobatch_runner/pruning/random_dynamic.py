import torch

from infobatch_runner.pruning.base import (Plan, Strategy, check_interval, check_range, first_full_epoch,
                                           kept_count)


class RandomDynamic(Strategy):
    """Uniform random dynamic pruning (Raju et al. 2021; RS2, Okanovic et al. 2024).

    Every `interval` epochs, select K = round((1 - ratio) * N) samples and train on that subset
    for `interval` epochs, freshly shuffled each epoch, with weight 1 (or 1 / (1 - ratio) when
    `rescale`). From epoch floor(delta * epochs) on: all samples, weight 1.

    The selection: with `replacement` (the default), K drawn uniformly afresh each time, so a
    sample may sit out many selections in a row. Without (`replacement=false`, RS2 without
    replacement): consecutive K-slices of one permutation of all N; a slice that runs past the
    end continues in a fresh permutation, whose order puts the samples the slice already took
    last, so every sample is trained once per pass of ceil(N / K) selections and no plan repeats
    a sample. `target_saving` s (ratio ignored): K = N - round(s * E * N / pruned epochs), the
    realised saving s to half a sample per epoch, or refused with what can be reached. Cost: at
    most one permutation per selection; observe does nothing.
    """

    name = "random_dynamic"

    def __init__(self, num_samples, epochs, seed, device="cpu", ratio: float = 0.5, interval: int = 1,
                 delta: float = 1.0, rescale: bool = False, replacement: bool = True, target_saving: float | None = None):
        self.ratio = check_range("ratio", ratio, 0.0, 1.0, high_open=True)
        self.interval = check_interval(interval)
        self.delta = check_range("delta", delta, 0.0, 1.0, low_open=True)
        self.rescale = bool(rescale)
        self.replacement = bool(replacement)
        super().__init__(num_samples, epochs, seed, device)
        self.anneal_from = first_full_epoch(self.delta, epochs)
        self.aim(target_saving, self.anneal_from)
        self.subset = torch.arange(num_samples, device=self.device)
        self.order = self.randperm(num_samples) if not self.replacement else None  # this pass's permutation
        self.cursor = 0  # how much of `order` earlier selections took

    def pruned_epochs(self) -> int:
        return self.anneal_from  # epochs 0 .. anneal_from - 1

    def kept_budget(self) -> int:
        return kept_count(self.ratio, self.num_samples)

    def next_slice(self, k: int) -> torch.Tensor:
        """RS2 without replacement: the next k samples of the pass, wrapping into a fresh pass."""
        head = self.order[self.cursor : self.cursor + k]
        self.cursor += head.shape[0]
        if head.shape[0] == k:
            return head
        fresh = self.randperm(self.num_samples)
        taken = torch.zeros(self.num_samples, dtype=torch.bool, device=self.device).index_fill_(0, head, True)
        # the samples this slice already took go last in the new pass: no duplicate in this plan
        self.order = torch.cat([fresh[~taken.index_select(0, fresh)], fresh[taken.index_select(0, fresh)]])
        self.cursor = k - head.shape[0]
        return torch.cat([head, self.order[: self.cursor]])

    def plan(self, epoch: int) -> Plan:
        if epoch >= self.anneal_from:
            return self.full_plan()
        if epoch % self.interval == 0:
            k = self.kept_budget()
            self.subset = self.randperm(self.num_samples)[:k] if self.replacement else self.next_slice(k)
        weight = 1.0 / (1.0 - self.ratio) if self.rescale else 1.0
        return self.shuffled(self.subset, weight)

    def state_dict(self) -> dict:
        state = {**super().state_dict(), "subset": self.subset.clone(), "cursor": self.cursor}
        if self.order is not None:
            state["order"] = self.order.clone()
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.subset = state["subset"].to(self.device)
        self.cursor = state.get("cursor", 0)
        if self.order is not None:
            self.order = state["order"].to(self.device)


class RS2(RandomDynamic):
    """RS2 without replacement (Okanovic et al., "Repeated Random Sampling for Minimizing the
    Time-to-Accuracy of Learning", ICLR 2024) under its own name: random_dynamic with
    `replacement=false` (see RandomDynamic), so that a sweep over `prune=` can compare it."""

    name = "rs2"

    def __init__(self, num_samples, epochs, seed, device="cpu", ratio: float = 0.5, interval: int = 1,
                 delta: float = 1.0, rescale: bool = False, target_saving: float | None = None):
        super().__init__(num_samples, epochs, seed, device, ratio, interval, delta, rescale, replacement=False,
                         target_saving=target_saving)
