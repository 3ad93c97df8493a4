"""Pruning strategies behind one contract (base.py), registered by their `prune.name`."""

import inspect
import warnings

import torch

from infobatch_runner.errors import UserError
from infobatch_runner.pruning.bandit import UCB, EpsilonGreedy
from infobatch_runner.pruning.base import Plan, Strategy
from infobatch_runner.pruning.full import Full
from infobatch_runner.pruning.infobatch import InfoBatch
from infobatch_runner.pruning.random_dynamic import RS2, RandomDynamic
from infobatch_runner.pruning.seta import SeTa
from infobatch_runner.pruning.short_schedule import ShortSchedule
from infobatch_runner.pruning.static import EL2N, Forgetting, GraNd, StaticRandom, StaticStrategy

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (Full, ShortSchedule, InfoBatch, SeTa, RandomDynamic, RS2, EpsilonGreedy, UCB, EL2N, GraNd, Forgetting,
                StaticRandom)
}


# Keys of a prune config that the runner reads (the score cache), not the strategy.
RUNNER_KEYS = {"name", "cache", "cache_dir"}


def build_strategy(cfg, num_samples: int, epochs: int, seed: int, device: torch.device | str = "cpu") -> Strategy:
    """Build the strategy named by cfg.name with the other keys of cfg as its parameters."""
    params = {k: v for k, v in dict(cfg).items() if k not in RUNNER_KEYS}
    if cfg.name not in STRATEGIES:
        raise UserError(f"prune={cfg.name!r} is unknown; choose one of {', '.join(sorted(STRATEGIES))}.")
    cls = STRATEGIES[cfg.name]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "num_samples", "epochs", "seed", "device"}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise UserError(f"prune={cfg.name} has no parameter {unknown[0]!r}; it takes {', '.join(sorted(accepted)) or 'none'}.")
    return cls(num_samples, epochs, seed, device, **params)


def ignored_params(cfg) -> set[str]:
    """The prune keys a config (or a summary's `prune`: any mapping) carries but its strategy ignores:
    prune=full takes a ratio only so that `-m prune=full,infobatch prune.ratio=...` composes, a
    target_saving replaces the ratio (but SeTa's, which still sizes its epoch 0 and partial
    annealing), and max_ratio bounds InfoBatch's budget mode only."""
    name, budget = cfg["name"], cfg.get("target_saving") is not None
    if name == "full":
        return {"ratio", "target_saving"}
    ignored = {"ratio"} if budget and name != "seta" else set()
    if name == "infobatch" and not budget:
        ignored.add("max_ratio")
    return ignored


def check_budget(strategy: Strategy) -> None:
    """Before training, with the real N: a target_saving out of reach is refused with what can be
    reached, and a kept budget of 0 (it trains nothing and would report a 100% saving) too."""
    strategy.check_reachable()
    if strategy.pruned_epochs() == 0 and getattr(strategy, "ratio", 0) > 0:
        warnings.warn(f"delta {strategy.delta:g} over {strategy.epochs} epochs leaves no epoch to prune (annealing, "
                      f"all data, from epoch floor({strategy.delta:g} x {strategy.epochs}) = {strategy.anneal_from}): "
                      f"{strategy.name} trains all data every epoch; raise delta or train more epochs", UserWarning,
                      stacklevel=2)
    k = strategy.kept_budget()
    if k is not None and k < 1:
        n = strategy.num_samples
        raise UserError(f"prune.ratio={strategy.ratio:g} keeps {strategy.kept_rounding}({1 - strategy.ratio:g} x {n}) = {k} of the {n} "
                        "training samples; lower prune.ratio or train on more samples.")


__all__ = ["Plan", "Strategy", "StaticStrategy", "STRATEGIES", "build_strategy", "check_budget", "ignored_params"]
