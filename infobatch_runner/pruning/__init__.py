"""Pruning strategies behind one contract (base.py), registered by their `prune.name`: ours in
STRATEGIES, other packages' through an entry point (registry.py)."""

import inspect
import warnings

import torch

from infobatch_runner.errors import UserError
from infobatch_runner.pruning.base import Plan, Strategy
from infobatch_runner.pruning.registry import STRATEGIES, registered, why_unusable
from infobatch_runner.pruning.static import StaticStrategy


# Keys of a prune config that the runner reads (the score cache), not the strategy.
RUNNER_KEYS = {"name", "cache", "cache_dir"}
# The arguments every strategy takes from the runner, not from its config.
RUN_ARGUMENTS = ("self", "num_samples", "epochs", "seed", "device")


def strategy_class(name: str) -> type[Strategy]:
    """The registered strategy of this name; UserError (one sentence) for an unknown or unusable one."""
    found = registered()
    if name not in found:
        raise UserError(why_unusable(name) or f"prune={name!r} is unknown; choose one of {', '.join(sorted(found))}.")
    return found[name]


def parameters(cls: type[Strategy]) -> dict[str, inspect.Parameter]:
    """The parameters a strategy takes from its config: its __init__'s, less the run's arguments."""
    return {k: p for k, p in inspect.signature(cls.__init__).parameters.items() if k not in RUN_ARGUMENTS
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def build_strategy(cfg, num_samples: int, epochs: int, seed: int, device: torch.device | str = "cpu") -> Strategy:
    """Build the strategy named by cfg.name with the other keys of cfg as its parameters."""
    params = {k: v for k, v in dict(cfg).items() if k not in RUNNER_KEYS}
    cls = strategy_class(cfg.name)
    accepted = set(parameters(cls))
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise UserError(f"prune={cfg.name} has no parameter {unknown[0]!r}; it takes {', '.join(sorted(accepted)) or 'none'}.")
    return cls(num_samples, epochs, seed, device, **params)


def ignored_params(cfg) -> set[str]:
    """The prune keys a config (or a summary's `prune`: any mapping) carries but its strategy ignores,
    as the strategy says (Strategy.ignored_params); one not installed here is read by the base rule."""
    return registered().get(cfg["name"], Strategy).ignored_params(cfg)


def check_budget(strategy: Strategy) -> None:
    """Before training, with the real N: a target_saving out of reach is refused with what can be
    reached, and a kept budget of 0 (it trains nothing and would report a 100% saving) too."""
    strategy.check_reachable()
    if strategy.pruned_epochs() == 0 and getattr(strategy, "ratio", 0) > 0:
        anneals = hasattr(strategy, "delta") and hasattr(strategy, "anneal_from")  # ours; another package's may not
        why = (f"delta {strategy.delta:g} over {strategy.epochs} epochs leaves no epoch to prune (annealing, all data, "
               f"from epoch floor({strategy.delta:g} x {strategy.epochs}) = {strategy.anneal_from})"
               if anneals else f"{strategy.epochs} epoch(s) leave it no epoch to prune")
        more = "raise delta or train more epochs" if anneals else "train more epochs"
        warnings.warn(f"{why}: {strategy.name} trains all data every epoch; {more}", UserWarning, stacklevel=2)
    k = strategy.kept_budget()
    if k is not None and k < 1:
        n = strategy.num_samples
        raise UserError(f"prune.ratio={strategy.ratio:g} keeps {strategy.kept_rounding}({1 - strategy.ratio:g} x {n}) = {k} of the {n} "
                        "training samples; lower prune.ratio or train on more samples.")


__all__ = ["Plan", "Strategy", "StaticStrategy", "STRATEGIES", "build_strategy", "check_budget", "ignored_params",
           "parameters", "registered", "strategy_class"]
