"""What a Pruner is built from, checked in Python's terms: its strategy (a registered name and
keyword arguments, a prune config mapping, or a Strategy), the device its state lives on, and
its world (DistributedSampler's rule). A strategy's errors, worded for the command line, reach
library users as TypeError / ValueError in Python's words."""

import inspect
import operator
import re
from collections.abc import Mapping

import torch
import torch.distributed as dist

from infobatch_runner.engine.distributed import World
from infobatch_runner.errors import UserError
from infobatch_runner.pruning import RUNNER_KEYS, Strategy, build_strategy, check_budget, parameters, registered
from infobatch_runner.pruning.registry import why_unusable


def python_words(message: str) -> str:
    """A strategy's message worded for the command line (`prune=seta`, `prune.ratio=...`) in the
    library's terms: the strategy by its name, its parameters as keyword arguments."""
    message = re.sub(r"\bprune=(?:'([^']*)'|(\w+))", lambda m: f"strategy {m.group(1) or m.group(2)!r}", message)
    return re.sub(r"\bprune\.(\w+)", r"\1", message)


def default_device() -> torch.device:
    """Where the losses of a training on this machine are: the current accelerator (the CUDA
    device torch.cuda.set_device chose, as under torchrun), else the CPU."""
    accelerator = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else None
    if accelerator is None:
        return torch.device("cpu")
    return torch.device(accelerator.type, torch.accelerator.current_device_index())


def same_device(a: torch.device, b: torch.device) -> bool:
    """One device, however named: "cpu" and "cpu:0" are, and so are "cuda" and the current CUDA device."""
    if a.type != b.type:
        return False
    if a.type == "cpu":
        return True
    current = torch.accelerator.current_device_index() if torch.accelerator.is_available() else 0
    return (current if a.index is None else a.index) == (current if b.index is None else b.index)


def plain(value):
    """A numpy or torch scalar as the Python number it is (np.float32(0.5) -> 0.5); anything else as it is."""
    if getattr(value, "shape", None) == () and callable(getattr(value, "item", None)):
        return value.item()
    return value


def as_int(what: str, value, low: int) -> int:
    """An integer argument (a Python, numpy or torch integer) >= low; a bool, float or string is refused."""
    value = plain(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{what} must be an integer >= {low} (got {value!r})")
    return value


def check_seed(seed) -> int:
    """The run seed: an integer (numpy and torch integers too). True would plan as 1 and "1" fail later."""
    seed = plain(seed)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an integer (got {seed!r})")
    return seed


def parameter_defaults(name: str) -> dict:
    """A registered strategy's parameters and their defaults."""
    return {k: p.default for k, p in parameters(registered()[name]).items() if p.default is not inspect.Parameter.empty}


def resolved_params(name: str, params: Mapping) -> dict:
    """The parameters a strategy runs with: those given, every other at its default, so that a state
    saved by Pruner("infobatch", N, E) is one of ratio=0.5 like one saved with ratio=0.5 given."""
    return {**(parameter_defaults(name) if name in registered() else {}), **params}


class _PruneConfig(dict):
    """A prune config as build_strategy reads it: a mapping with a `name`."""

    @property
    def name(self) -> str:
        return self["name"]


def make_strategy(strategy, num_samples: int | None, epochs: int | None, seed: int, device, params: dict) -> Strategy:
    """A Strategy from a registered name (with `params`), a prune config mapping (e.g. the runner's
    cfg.prune, `name` plus parameters), or a Strategy already built; its budget checked against N.
    Errors are Python's types in Python's words: an unknown parameter is a TypeError, a bad value
    a ValueError."""
    if isinstance(strategy, Strategy):
        if params:
            raise TypeError(f"parameters {sorted(params)} are given to a strategy already built")
        for what, value in (("num_samples", num_samples), ("epochs", epochs)):
            if value is not None and value != getattr(strategy, what):
                raise ValueError(f"{what}={value} differs from the strategy's {getattr(strategy, what)}")
    else:
        cfg = _prune_config(strategy, params)
        num_samples, epochs = as_int("num_samples", num_samples, 1), as_int("epochs", epochs, 1)
        seed = check_seed(seed)
    try:
        if not isinstance(strategy, Strategy):
            strategy = build_strategy(cfg, num_samples, epochs, seed, device)
        check_budget(strategy)
    except UserError as e:
        raise ValueError(python_words(str(e))) from None
    return strategy


def _prune_config(strategy, params: dict) -> _PruneConfig:
    """The config build_strategy reads, its name and parameters checked first."""
    params = {k: plain(v) for k, v in params.items()}
    if isinstance(strategy, str):
        cfg = _PruneConfig(name=strategy, **params)
    elif isinstance(strategy, Mapping) and "name" in strategy:
        cfg = _PruneConfig({**{k: plain(v) for k, v in dict(strategy).items()}, **params})
    else:
        raise TypeError(f"strategy must be a name ({', '.join(sorted(registered()))}), a config with a name, "
                        f"or a Strategy (got {strategy!r})")
    if cfg.name not in registered():
        raise ValueError(why_unusable(cfg.name) or
                         f"strategy {cfg.name!r} is unknown; choose one of {', '.join(sorted(registered()))}")
    signature = parameters(registered()[cfg.name])
    taken = set(signature)
    unknown = sorted(set(cfg) - taken - RUNNER_KEYS)
    if unknown:
        raise TypeError(f"strategy {cfg.name!r} got an unexpected keyword argument {unknown[0]!r}; it takes "
                        f"{', '.join(sorted(taken)) or 'none'}")
    for key, value in cfg.items():  # "false" and "no" are truthy: a switch takes True or False only
        if key in signature and signature[key].annotation in (bool, "bool") and not isinstance(value, bool):
            raise TypeError(f"{key} must be True or False (got {value!r})")
    return cfg


def resolve_world(num_replicas: int | None, rank: int | None) -> World:
    """DistributedSampler's rule: the arguments, else torch.distributed's world when initialised,
    else a single process."""
    initialised = dist.is_available() and dist.is_initialized()
    for what, value in (("num_replicas", num_replicas), ("rank", rank)):
        value = plain(value)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(f"{what} must be an integer (got {value!r})")
    num_replicas, rank = plain(num_replicas), plain(rank)
    if num_replicas is None:
        num_replicas = dist.get_world_size() if initialised else 1
    if rank is None:
        if num_replicas > 1 and not initialised:
            raise ValueError("rank must be given with num_replicas > 1 when torch.distributed is not initialised")
        rank = dist.get_rank() if initialised else 0
    if num_replicas < 1 or not 0 <= rank < num_replicas:
        raise ValueError(f"rank must be in [0, num_replicas) (got rank={rank}, num_replicas={num_replicas})")
    return World(rank, num_replicas, rank)
