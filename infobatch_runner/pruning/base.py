"""The contract every pruning strategy keeps (see docs/strategies.md).

- plan(epoch) -> Plan: the epoch's sample indices (already shuffled) and a loss weight per index,
  materialised before the epoch starts, so its length sizes the schedule and the progress bar.
- observe(indices, losses): the trained batch's detached per-sample losses; device ops only. A
  non-finite loss (NaN, inf) leaves its sample's state as it was.
- state_dict() / load_state_dict(): everything, generator included, to continue identically.

A strategy owns its random generator (on the training device) and never touches the global
torch or numpy RNG. It knows nothing of models, loaders or loggers.
"""

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch

from infobatch_runner.errors import UserError


@dataclass
class Plan:
    indices: torch.Tensor  # int64, on the device, unique, in [0, N)
    weights: torch.Tensor  # float32, positive, aligned with indices

    def __len__(self) -> int:
        return self.indices.shape[0]


def strategy_seed(run_seed: int, name: str) -> int:
    """A seed for the strategy's own generator, decorrelated from the model-init seed."""
    digest = hashlib.sha256(f"{name}:{run_seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def floor_count(x: float) -> int:
    """floor() that forgives float round-off: (1 - 0.9) * 10 is 0.9999999999999998, not 0."""
    return math.floor(x + 1e-9)


def first_full_epoch(delta: float, epochs: int) -> int:
    """The first annealing (full-data) epoch, floor(delta * epochs), as the published InfoBatch code:
    it trains all data once its 1-based epoch counter exceeds delta * epochs (e + 1 > delta * E).
    With E = 6 and delta 0.875 that is epoch 5, where ceil would prune every epoch. Robust to
    0.7 * 10 = 6.999999999999999."""
    return math.floor(delta * epochs + 1e-9)


def kept_count(ratio: float, num_samples: int) -> int:
    """K = round((1 - p) * N), the kept budget of strategies that take one."""
    return int(round((1 - ratio) * num_samples + 1e-9))


class Target:
    """`target_saving` for a strategy that keeps K of the N samples in each of its `pruned_epochs`
    and all of them in the others: the K whose skipped samples, spread evenly, realise the target
    to half a sample per epoch. Whether it can be reached depends on N, known only once the data
    is: `check` (called by the runner and the library through check_budget) refuses a target that
    even K = 1 cannot reach, naming the saving that can be reached."""

    def __init__(self, target: float, epochs: int, num_samples: int, pruned_epochs: int):
        self.target = check_range("target_saving", target, 0.0, 1.0, low_open=True, high_open=True)
        self.epochs, self.num_samples, self.pruned_epochs = epochs, num_samples, pruned_epochs
        self.skip = round(self.target * epochs * num_samples / pruned_epochs) if pruned_epochs else num_samples

    def ratio(self) -> float:
        """The ratio 1 - K/N of the K that realises the target (K >= 1 until `check` says otherwise)."""
        return 1.0 - max(self.num_samples - self.skip, 1) / self.num_samples

    def check(self) -> None:
        if self.skip > self.num_samples - 1:
            n, pruned = self.num_samples, self.pruned_epochs
            reachable = pruned * (n - 1) / (self.epochs * n)
            more = " or raise prune.delta" if pruned < self.epochs else ""  # with every epoch pruned, delta is 1
            raise UserError(f"prune.target_saving={self.target:g} cannot be reached: {pruned} of the {self.epochs} "
                            f"epochs are pruned (the others train all data, see prune.delta), each keeping at least 1 "
                            f"of the {n} samples, so at most {reachable:.4f} can be saved; lower the target{more}.")


def check_interval(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"prune.interval must be an integer >= 1 (got {value!r}).")
    return value


def check_range(name: str, value, low: float, high: float, low_open: bool = False, high_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"prune.{name} must be a number (got {value!r}).")
    below = value <= low if low_open else value < low
    above = value >= high if high_open else value > high
    if below or above or math.isnan(value):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise UserError(f"prune.{name} must be in {interval} (got {value!r}).")
    return float(value)


class Strategy:
    name: ClassVar[str]
    # The epochs the learning-rate schedule spans, when a strategy trains fewer than trainer.epochs
    # (short_schedule); None: all of them.
    schedule_epochs: int | None = None
    saving_target: "Target | None" = None  # set by aim(): prune.target_saving in place of the ratio
    kept_rounding: ClassVar[str] = "round"  # how kept_budget() rounds (1 - ratio) * N, for messages

    def __init__(self, num_samples: int, epochs: int, seed: int, device: torch.device | str = "cpu"):
        self.num_samples = num_samples
        self.epochs = epochs
        self.device = torch.device(device)
        self.gen = torch.Generator(device=self.device).manual_seed(strategy_seed(seed, self.name))

    def plan(self, epoch: int) -> Plan:
        raise NotImplementedError

    def observe(self, indices: torch.Tensor, losses: torch.Tensor) -> None:
        """Strategies that learn nothing from losses ignore them."""

    def scoring(self):
        """The scoring phase a static strategy needs before its first plan (a ScoringSpec), or None."""
        return None

    @classmethod
    def run_params(cls, params: dict, epochs: int) -> dict:
        """The prune parameters as far as they decide the run: two jobs of a sweep whose configs agree
        but for parameters that map to the same run_params are one run (sweeps/repeats.py). All of
        them as given, unless a strategy knows better."""
        return params

    @classmethod
    def ignored_params(cls, params: Mapping) -> set[str]:
        """The prune keys a config (or a summary's `prune`) carries that this strategy ignores: reports
        leave them out of a run's parameters and sweeps out of what makes a run. By default the ratio,
        when a target_saving replaces it."""
        return {"ratio"} if params.get("target_saving") is not None else set()

    def pruned_epochs(self) -> int | None:
        """How many epochs may leave samples out (before annealing), or None where that is not told
        by delta alone."""
        return None

    def kept_budget(self) -> int | None:
        """K, for strategies that keep a fixed number of samples per pruned epoch; None otherwise."""
        return None

    def aim(self, target_saving: float | None, pruned_epochs: int) -> None:
        """With a target_saving, keep the K that realises it over `pruned_epochs` (the ratio is then
        ignored); without one, nothing changes."""
        if target_saving is not None:
            self.saving_target = Target(target_saving, self.epochs, self.num_samples, pruned_epochs)
            self.ratio = self.saving_target.ratio()

    def check_reachable(self) -> None:
        """Refuse, with the real N, a target_saving this strategy cannot realise (see check_budget)."""
        if self.saving_target is not None:
            self.saving_target.check()

    def randperm(self, n: int) -> torch.Tensor:
        """A permutation of range(n) from the strategy's generator, as int64. Drawn as int32 where n
        allows: about twice as fast on the CPU at ImageNet size."""
        dtype = torch.int32 if n < 2**31 else torch.int64
        return torch.randperm(n, generator=self.gen, device=self.device, dtype=dtype).long()

    def full_plan(self) -> Plan:
        """Every sample once, freshly shuffled, weight 1."""
        return Plan(self.randperm(self.num_samples), torch.ones(self.num_samples, device=self.device))

    def shuffled(self, subset: torch.Tensor, weight: float) -> Plan:
        """A fixed subset in a fresh order, every sample with the same weight."""
        order = self.randperm(subset.shape[0])
        return Plan(subset.index_select(0, order), torch.full((subset.shape[0],), weight, device=self.device))

    def top_k(self, priority: torch.Tensor, k: int) -> torch.Tensor:
        """The k indices of highest priority (in no particular order), ties broken by the strategy's
        generator: a partial selection, several times faster than sorting N at ImageNet size."""
        shuffle = self.randperm(self.num_samples)
        return shuffle.index_select(0, torch.topk(priority.index_select(0, shuffle), k, sorted=False).indices)

    def rank_desc(self, priority: torch.Tensor) -> torch.Tensor:
        """All indices by decreasing priority, ties broken by the strategy's generator."""
        shuffle = self.randperm(self.num_samples)
        order = torch.sort(priority.index_select(0, shuffle), descending=True, stable=True).indices
        return shuffle.index_select(0, order)

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])
