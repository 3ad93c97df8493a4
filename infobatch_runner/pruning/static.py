"""Static pruning: one fixed subset, chosen before training and trained on every epoch.

Score-based strategies declare a ScoringSpec; the runner performs that scoring phase through the
training loop (infobatch_runner/engine/scoring.py), charges its cost to the run, and hands the scores
back with set_scores(). A strategy never builds a model itself.
"""

from dataclasses import asdict, dataclass

import torch

from infobatch_runner.errors import UserError
from infobatch_runner.pruning.base import Plan, Strategy, check_range, kept_count


@dataclass(frozen=True)
class ScoringSpec:
    kind: str  # el2n | grand | forgetting
    runs: int  # proxy trainings, each from its own seed; scores are averaged
    epochs: int  # training epochs of each proxy before scoring (0: at initialisation)
    variant: str = "last_layer"  # grand only: last_layer | full

    def as_dict(self) -> dict:
        return asdict(self)


def default_score_epochs(value, epochs: int) -> int:
    """`score_epochs: null` means 10% of the run's epochs, at least 1."""
    if value is None:
        return max(1, round(0.1 * epochs))
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"prune.score_epochs must be an integer >= 0 or null (got {value!r}).")
    return value


def check_runs(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"prune.score_runs must be an integer >= 1 (got {value!r}).")
    return value


class StaticStrategy(Strategy):
    """Keeps the K = round((1 - ratio) * N) highest scores, after skipping the `offset` highest."""

    def __init__(self, num_samples, epochs, seed, device, ratio: float, offset: int = 0):
        self.ratio = check_range("ratio", ratio, 0.0, 1.0, high_open=True)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise UserError(f"prune.offset must be an integer >= 0 (got {offset!r}).")
        self.offset = offset
        super().__init__(num_samples, epochs, seed, device)
        if offset + kept_count(self.ratio, num_samples) > num_samples and num_samples > 1:
            raise UserError(f"prune.offset={offset} leaves fewer than the {kept_count(self.ratio, num_samples)} samples to keep.")
        self.subset: torch.Tensor | None = None

    def kept_budget(self) -> int:
        return kept_count(self.ratio, self.num_samples)

    def set_scores(self, scores: torch.Tensor) -> None:
        """One score per sample (a higher score is kept first)."""
        scores = torch.as_tensor(scores)
        if scores.shape != (self.num_samples,):
            raise ValueError(f"set_scores takes one score per sample: {self.num_samples} (got shape {tuple(scores.shape)})")
        k = kept_count(self.ratio, self.num_samples)
        ranked = self.rank_desc(scores.to(self.device).float())
        self.subset = ranked[self.offset : self.offset + k].sort().values

    def plan(self, epoch: int) -> Plan:
        if self.subset is None:
            raise RuntimeError(f"{self.name} needs its scores (set_scores) before the first plan")
        return self.shuffled(self.subset, 1.0)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "subset": None if self.subset is None else self.subset.clone()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.subset = None if state["subset"] is None else state["subset"].to(self.device)


class EL2N(StaticStrategy):
    """EL2N (Paul et al., "Deep Learning on a Data Diet", NeurIPS 2021).

    Scoring phase: `score_runs` proxy trainings of the run's own model on the full data for
    `score_epochs` epochs (null: 10% of the epochs, at least 1), each from its own seed; then
    EL2N(x, y) = ||softmax(f(x)) - onehot(y)||_2 on the un-augmented training set in eval mode,
    averaged over the runs. Keeps the K highest after skipping the `offset` highest.
    Parameters: ratio (0.5), score_epochs (null), score_runs (1; the paper uses 10), offset (0).
    Cost charged: runs * score_epochs * N training passes + runs * N forwards (1/3 pass each).
    """

    name = "el2n"

    def __init__(self, num_samples, epochs, seed, device="cpu", ratio: float = 0.5, score_epochs: int | None = None,
                 score_runs: int = 1, offset: int = 0):
        super().__init__(num_samples, epochs, seed, device, ratio, offset)
        self.spec = ScoringSpec("el2n", check_runs(score_runs), default_score_epochs(score_epochs, epochs))

    def scoring(self) -> ScoringSpec:
        return self.spec


class GraNd(StaticStrategy):
    """GraNd (Paul et al. 2021): the norm of the loss gradient with respect to the parameters.

    `variant: last_layer` (default) uses the closed form for the linear classifier,
    ||softmax(z) - onehot(y)|| * sqrt(||h||^2 + 1) for features h (cheap: one forward);
    `variant: full` takes per-sample gradients of every parameter with torch.func (one forward
    and backward per sample, charged as a full training pass). Default score_epochs 0: at
    initialisation, as in the paper (an independent reproduction found GraNd at initialisation
    no better than random). Otherwise as el2n.
    """

    name = "grand"

    def __init__(self, num_samples, epochs, seed, device="cpu", ratio: float = 0.5, score_epochs: int | None = 0,
                 score_runs: int = 1, offset: int = 0, variant: str = "last_layer"):
        super().__init__(num_samples, epochs, seed, device, ratio, offset)
        if variant not in ("last_layer", "full"):
            raise UserError(f"prune.variant must be last_layer or full (got {variant!r}).")
        self.spec = ScoringSpec("grand", check_runs(score_runs), default_score_epochs(score_epochs, epochs), variant)

    def scoring(self) -> ScoringSpec:
        return self.spec


class Forgetting(StaticStrategy):
    """Forgetting events (Toneva et al., "An Empirical Study of Example Forgetting", ICLR 2019).

    Scoring phase: one proxy training on the full data for `score_epochs` epochs (null: 10% of the
    epochs, at least 1); each time a sample is trained, whether it was classified correctly is
    recorded; a forgetting event is a correct -> incorrect flip. Score = number of events, +inf
    for a sample never classified correctly. Keeps the K highest.
    Parameters: ratio (0.5), score_epochs (null), offset (0).
    Cost charged: score_epochs * N training passes (correctness comes from the training forward).
    """

    name = "forgetting"

    def __init__(self, num_samples, epochs, seed, device="cpu", ratio: float = 0.5, score_epochs: int | None = None,
                 offset: int = 0):
        super().__init__(num_samples, epochs, seed, device, ratio, offset)
        self.spec = ScoringSpec("forgetting", 1, max(1, default_score_epochs(score_epochs, epochs)))

    def scoring(self) -> ScoringSpec:
        return self.spec


class StaticRandom(StaticStrategy):
    """A uniformly random fixed subset of K samples, drawn once: the cheapest static baseline.
    Parameters: ratio (0.5). No scoring phase."""

    name = "static_random"

    def __init__(self, num_samples, epochs, seed, device="cpu", ratio: float = 0.5):
        super().__init__(num_samples, epochs, seed, device, ratio)
        k = kept_count(self.ratio, num_samples)
        self.subset = self.randperm(num_samples)[:k].sort().values


class ForgettingRecorder:
    """Counts forgetting events from per-sample correctness, batch by batch, on the device."""

    def __init__(self, num_samples: int, device: torch.device):
        self.previous = torch.zeros(num_samples, dtype=torch.bool, device=device)
        self.ever = torch.zeros(num_samples, dtype=torch.bool, device=device)
        self.events = torch.zeros(num_samples, dtype=torch.int64, device=device)

    def record(self, indices: torch.Tensor, correct: torch.Tensor) -> None:
        self.events[indices] += (self.previous[indices] & ~correct).long()
        self.previous[indices] = correct
        self.ever[indices] |= correct

    def scores(self) -> torch.Tensor:
        return torch.where(self.ever, self.events.float(), torch.tensor(float("inf"), device=self.events.device))
