import torch

from infobatch_runner.pruning.base import Plan, Strategy, check_interval, check_range, first_full_epoch, kept_count


class RandomDynamic(Strategy):
    """Uniform random dynamic pruning (Raju et al. 2021; RS2, Okanovic et al. 2024).

    Every `interval` epochs, draw K = round((1 - ratio) * N) samples uniformly without
    replacement and train on that subset for `interval` epochs, freshly shuffled each epoch,
    with weight 1 (or 1 / (1 - ratio) when `rescale`). From epoch ceil(delta * epochs) on:
    all samples, weight 1. Cost: one permutation per selection; observe does nothing.
    """

    name = "random_dynamic"

    def __init__(self, num_samples, epochs, seed, device="cpu", ratio: float = 0.5, interval: int = 1,
                 delta: float = 1.0, rescale: bool = False):
        self.ratio = check_range("ratio", ratio, 0.0, 1.0, high_open=True)
        self.interval = check_interval(interval)
        self.delta = check_range("delta", delta, 0.0, 1.0, low_open=True)
        self.rescale = bool(rescale)
        super().__init__(num_samples, epochs, seed, device)
        self.anneal_from = first_full_epoch(self.delta, epochs)
        self.subset = torch.arange(num_samples, device=self.device)

    def kept_budget(self) -> int:
        return kept_count(self.ratio, self.num_samples)

    def plan(self, epoch: int) -> Plan:
        if epoch >= self.anneal_from:
            return self.full_plan()
        if epoch % self.interval == 0:
            self.subset = self.randperm(self.num_samples)[: self.kept_budget()]
        weight = 1.0 / (1.0 - self.ratio) if self.rescale else 1.0
        return self.shuffled(self.subset, weight)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "subset": self.subset.clone()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.subset = state["subset"].to(self.device)
