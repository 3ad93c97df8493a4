"""The typed config of a strategy another package registers, read from its __init__ signature.

Ours have a YAML file and a schema each (conf/prune/, schema.py); a strategy from another package
has neither, so its parameters, with their annotations and defaults, become a dataclass that
schema.register() stores as the option `prune=<name>`. Hydra then types its keys as ours:
`prune.ratio=abc` and `prune.ratoi=0.3` are refused at composition. An annotation a config cannot
hold (a tensor, a callable) gives an untyped key; a parameter without a default, a key that must be
set (`???`).
"""

import dataclasses
import inspect
import logging
import types
import typing
from importlib.metadata import entry_points
from typing import Any, List, Optional, Union

from omegaconf import MISSING

SIMPLE = (bool, int, float, str)
# pruning.registry.GROUP, named here so that finding none installed imports no torch (`--help`)
ENTRY_POINT_GROUP = "infobatch_runner.strategies"

log = logging.getLogger(__name__)


def config_type(annotation, default=inspect.Parameter.empty):
    """The type of a config key for a parameter annotated `annotation` (its default's type when unannotated)."""
    if annotation is inspect.Parameter.empty or annotation is None:
        return type(default) if type(default) in SIMPLE else Any
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return Optional[config_type(inner[0])] if len(inner) == 1 and len(args) == 2 else Any
    if annotation in SIMPLE:
        return annotation
    if origin is list and len(args) == 1 and args[0] in SIMPLE:
        return List[args[0]]
    return Any


def strategy_schema(cls) -> type:
    """A dataclass with the strategy's `name` and one field per parameter, typed and defaulted as
    its __init__ says."""
    from infobatch_runner.pruning import parameters

    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # noqa: BLE001 - an annotation that does not resolve: the key is untyped
        hints = {}
    fields = [("name", str, dataclasses.field(default=cls.name))]
    for key, p in parameters(cls).items():
        default = MISSING if p.default is p.empty else p.default
        kind = config_type(hints.get(key, inspect.Parameter.empty), p.default)
        if default is None and kind is not Any:
            kind = Optional[kind]
        if isinstance(default, (list, dict)):
            field = dataclasses.field(default_factory=lambda d=default: type(d)(d))
        else:
            field = dataclasses.field(default=default)
        fields.append((key, kind, field))
    return dataclasses.make_dataclass(f"{cls.__name__}Config", fields)


def plugin_schemas() -> dict[str, type]:
    """The schema of every strategy another installed package registers; one that cannot be made is
    left out with a logged sentence."""
    if not entry_points(group=ENTRY_POINT_GROUP):
        return {}
    from infobatch_runner.pruning.registry import plugins

    schemas = {}
    for name, cls in plugins().items():
        try:
            schemas[name] = strategy_schema(cls)
        except Exception as e:  # noqa: BLE001 - one package's odd signature must not stop every run
            log.warning(f"the strategy {name!r} ({cls.__module__}.{cls.__qualname__}) is left out: its parameters "
                        f"do not make a config ({type(e).__name__}: {e}).")
    return schemas
