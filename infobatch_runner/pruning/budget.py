"""InfoBatch's budget mode: steer the pruned epochs so that the run's realised saving lands on a
target, with loss weights that stay bounded.

The published method fixes the ratio r and the saving follows (about r times the share of samples
below the mean). Users asked for the opposite control. Raising r to meet a target inflates the
weights 1 / (1 - r) of the kept candidates (r = 0.9 gives 10, which made training diverge), so r
never exceeds `max_ratio`; when the samples below the mean are too few for this epoch's share, the
candidate set widens to the lowest-scored seen samples instead. A target that even all-candidate
epochs at max_ratio cannot reach is refused before training, naming what can be reached.
"""

import math

from infobatch_runner.errors import UserError
from infobatch_runner.pruning.base import floor_count


class SkipBudget:
    def __init__(self, target: float, max_ratio: float, epochs: int, num_samples: int, anneal_from: int):
        self.target = target
        self.max_ratio = max_ratio
        self.epochs = epochs
        self.num_samples = num_samples
        self.anneal_from = anneal_from

    def reachable(self) -> float:
        """The largest saving budget mode can realise: epoch 0 has seen nothing (all of it trains),
        the annealing epochs train everything, the others skip at most floor(max_ratio * N) samples
        each (whole samples: at N = 7 and max_ratio 0.6 that is 4, not 4.2)."""
        per_epoch = floor_count(self.max_ratio * self.num_samples)
        return max(self.anneal_from - 1, 0) * per_epoch / (self.epochs * self.num_samples)

    def check(self, delta: float) -> None:
        reachable = self.reachable()
        if self.target > reachable + 1e-9:
            pruned = max(self.anneal_from - 1, 0)
            # advice that can help: max_ratio only where some epoch is pruned, delta only below 1
            advice = ["lower the target"]
            if pruned:
                advice.append("raise prune.max_ratio (loss weights grow as 1 / (1 - max_ratio))")
            advice.append("raise prune.delta" if delta < 1 else "train more epochs")
            raise UserError(
                f"prune.target_saving={self.target:g} cannot be reached: over {self.epochs} epochs with "
                f"prune.delta={delta:g} ({pruned} pruned epochs) and prune.max_ratio="
                f"{self.max_ratio:g}, at most {reachable:.4f} of the samples can be skipped; "
                + ", ".join(advice[:-1]) + f" or {advice[-1]}.")

    def to_skip(self, epoch: int, skipped: int) -> int:
        """Samples to skip this epoch: what is still to skip, spread over the pruned epochs left."""
        still = self.target * self.epochs * self.num_samples - skipped
        epochs_left = self.anneal_from - epoch
        return max(0, round(still / epochs_left)) if epochs_left > 0 else 0

    def candidates_needed(self, skip: int, below_mean: int) -> int:
        """How many candidates this epoch needs so that skipping `skip` keeps r <= max_ratio."""
        return max(below_mean, math.ceil(skip / self.max_ratio - 1e-9))
