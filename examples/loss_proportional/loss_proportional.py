"""Keep each sample with a probability proportional to its last loss, weight 1/probability.

Epoch 0 trains all data (no loss seen yet); every later epoch draws exactly K = round((1 - ratio) N)
samples by systematic sampling with inclusion probabilities pi = K x (loss share, mixed with a
uniform `floor`), capped at 1. The weight 1/pi makes the weighted loss of the kept samples an
unbiased estimate of the full-data loss (Horvitz-Thompson).
"""

import torch

from infobatch_runner.pruning import Plan, Strategy
from infobatch_runner.pruning.base import check_range, kept_count


class LossProportional(Strategy):
    name = "loss_proportional"

    def __init__(self, num_samples, epochs, seed, device="cpu", ratio: float = 0.5, floor: float = 0.1,
                 target_saving: float | None = None):
        super().__init__(num_samples, epochs, seed, device)
        self.ratio = check_range("ratio", ratio, 0.0, 1.0, high_open=True)
        self.floor = check_range("floor", floor, 0.0, 1.0, low_open=True)
        self.loss = torch.ones(num_samples, device=self.device)  # uniform until a loss is seen
        self.aim(target_saving, self.pruned_epochs())

    def pruned_epochs(self) -> int:
        return self.epochs - 1

    def kept_budget(self) -> int:
        return kept_count(self.ratio, self.num_samples)

    def plan(self, epoch: int) -> Plan:
        n, k = self.num_samples, self.kept_budget()
        if epoch == 0 or k >= n:
            return self.full_plan()
        share = (1 - self.floor) * self.loss / self.loss.sum().clamp_min(1e-12) + self.floor / n
        capped = torch.zeros(n, dtype=torch.bool, device=self.device)
        while True:  # water-filling: scale the uncapped shares to the budget left, cap at 1, repeat
            pi = torch.where(capped, 1.0, (k - capped.sum()) * share / share[~capped].sum())
            if not bool((pi[~capped] > 1).any()):
                break
            capped |= pi > 1
        order = self.randperm(n)
        edges = pi.index_select(0, order).double().cumsum(0)
        start = torch.rand((), generator=self.gen, device=self.device, dtype=torch.float64)
        picked = torch.searchsorted(edges, start + torch.arange(k, device=self.device), right=True).clamp_(max=n - 1)
        kept = order.index_select(0, picked)
        return Plan(kept, 1.0 / pi.index_select(0, kept))

    def observe(self, indices: torch.Tensor, losses: torch.Tensor) -> None:
        losses = losses.detach().float()
        seen = torch.where(torch.isfinite(losses), losses, self.loss.index_select(0, indices))
        self.loss.index_copy_(0, indices, seen.clamp_min(0))

    def state_dict(self) -> dict:
        return {**super().state_dict(), "loss": self.loss.clone()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.loss.copy_(state["loss"])
