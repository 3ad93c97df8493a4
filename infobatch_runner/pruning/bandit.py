"""Loss-ranked dynamic pruning as a bandit (Raju et al., "Accelerating Deep Learning with Dynamic
Data Pruning", 2021): epsilon-greedy and UCB selection over moving averages of per-sample losses."""

import math

import torch

from infobatch_runner.pruning.base import (Plan, Strategy, check_interval, check_range, first_full_epoch,
                                           kept_count)


class _LossRanked(Strategy):
    """Shared state and rhythm: a moving-average loss per sample (+inf until first seen, so unseen
    samples rank first), a new selection every `interval` epochs, full data from floor(delta * epochs).
    `target_saving` s (ratio ignored): K = N - round(s * E * N / pruned epochs), the realised saving
    s to half a sample per epoch, or refused with what can be reached."""

    def __init__(self, num_samples, epochs, seed, device, ratio, alpha, interval, delta, target_saving=None):
        self.ratio = check_range("ratio", ratio, 0.0, 1.0, high_open=True)
        self.alpha = check_range("alpha", alpha, 0.0, 1.0, low_open=True)
        self.interval = check_interval(interval)
        self.delta = check_range("delta", delta, 0.0, 1.0, low_open=True)
        super().__init__(num_samples, epochs, seed, device)
        self.anneal_from = first_full_epoch(self.delta, epochs)
        self.aim(target_saving, self.anneal_from)
        self.mu = torch.full((num_samples,), math.inf, device=self.device)
        self.subset = torch.arange(num_samples, device=self.device)

    def observe(self, indices: torch.Tensor, losses: torch.Tensor) -> None:
        losses = losses.detach().float()
        finite = torch.isfinite(losses)  # a NaN or inf loss leaves its sample's statistics as they were
        old = self.mu.index_select(0, indices)
        seen = torch.isfinite(old)
        self._observe_extra(indices, losses, old, seen & finite)
        new = torch.where(seen, (1 - self.alpha) * old + self.alpha * losses, losses)
        self.mu.index_copy_(0, indices, torch.where(finite, new, old))

    def _observe_extra(self, indices, losses, old_mu, seen) -> None:
        pass

    def pruned_epochs(self) -> int:
        return self.anneal_from  # epochs 0 .. anneal_from - 1

    def kept_budget(self) -> int:
        return kept_count(self.ratio, self.num_samples)

    def select(self, k: int) -> torch.Tensor:
        raise NotImplementedError

    def plan(self, epoch: int) -> Plan:
        if epoch >= self.anneal_from:
            return self.full_plan()
        if epoch % self.interval == 0:
            self.subset = self.select(self.kept_budget())
        return self.shuffled(self.subset, 1.0)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "mu": self.mu.clone(), "subset": self.subset.clone()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.mu.copy_(state["mu"])
        self.subset = state["subset"].to(self.device)


class EpsilonGreedy(_LossRanked):
    """Epsilon-greedy selection (Raju et al. 2021).

    observe: mu_i = (1 - alpha) * mu_i + alpha * loss_i (the loss itself on first sight).
    Each selection keeps the ceil((1 - epsilon) * K) samples of highest mu (exploitation) plus
    K minus that many drawn uniformly from the rest (exploration); weight 1.
    Parameters: ratio (0.5), epsilon (0.1), alpha (0.8), interval (1), delta (1.0).
    Cost: one scatter per batch; one partial selection (top-k) of N per selection.
    """

    name = "epsilon_greedy"

    def __init__(self, num_samples, epochs, seed, device="cpu", ratio: float = 0.5, epsilon: float = 0.1,
                 alpha: float = 0.8, interval: int = 1, delta: float = 1.0, target_saving: float | None = None):
        self.epsilon = check_range("epsilon", epsilon, 0.0, 1.0)
        super().__init__(num_samples, epochs, seed, device, ratio, alpha, interval, delta, target_saving)

    def select(self, k: int) -> torch.Tensor:
        n_top = min(math.ceil((1 - self.epsilon) * k - 1e-9), k)
        top = self.top_k(self.mu, n_top)
        rest = torch.ones(self.num_samples, dtype=torch.bool, device=self.device)
        rest[top] = False
        rest = rest.nonzero().squeeze(1)
        explore = rest.index_select(0, self.randperm(rest.shape[0])[: k - n_top])
        return torch.cat([top, explore])


class UCB(_LossRanked):
    """Upper-confidence-bound selection (Raju et al. 2021).

    The paper gives no official code; these are the chosen readings, with the knobs exposed:
    - observe: var_i = (1 - alpha) * var_i + alpha * (loss_i - mu_old_i)^2, then mu as in
      epsilon_greedy. On a sample's first sight there is no mean to deviate from: var stays 0.
    - selection: the K samples of highest mu + c * sqrt(var) (`use_variance: true` ranks by
      mu + c * var instead, as one public reading does); unseen samples (mu = +inf) first.
    Parameters: ratio (0.5), c (1.0), alpha (0.8), use_variance (false), interval (1), delta (1.0).
    """

    name = "ucb"

    def __init__(self, num_samples, epochs, seed, device="cpu", ratio: float = 0.5, c: float = 1.0,
                 alpha: float = 0.8, use_variance: bool = False, interval: int = 1, delta: float = 1.0,
                 target_saving: float | None = None):
        self.c = check_range("c", c, 0.0, math.inf)
        self.use_variance = bool(use_variance)
        super().__init__(num_samples, epochs, seed, device, ratio, alpha, interval, delta, target_saving)
        self.var = torch.zeros(num_samples, device=self.device)

    def _observe_extra(self, indices, losses, old_mu, seen) -> None:
        deviation = torch.where(seen, losses - old_mu, torch.zeros_like(losses))
        old_var = self.var.index_select(0, indices)
        self.var.index_copy_(0, indices, torch.where(seen, (1 - self.alpha) * old_var + self.alpha * deviation**2, old_var))

    def priority(self) -> torch.Tensor:
        spread = self.var if self.use_variance else self.var.sqrt()
        return self.mu + self.c * spread

    def select(self, k: int) -> torch.Tensor:
        return self.top_k(self.priority(), k)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "var": self.var.clone()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.var.copy_(state["var"])
