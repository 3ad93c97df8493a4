"""Strategies by their `prune.name`: ours, and those other installed packages register.

A package registers a Strategy subclass under the entry-point group `infobatch_runner.strategies`,
the entry point's name being the strategy's `name` (pyproject.toml):

    [project.entry-points."infobatch_runner.strategies"]
    loss_proportional = "loss_proportional:LossProportional"

Entry points are loaded once per process, on first use. One that cannot be used (it fails to
import, is not a Strategy, clashes with one of ours, or its name is not an option name) is left
out with one logged sentence naming its package; asking for it by name raises that sentence.
"""

import functools
import logging
import re
from importlib.metadata import entry_points

from infobatch_runner.pruning.bandit import UCB, EpsilonGreedy
from infobatch_runner.pruning.base import Strategy
from infobatch_runner.pruning.full import Full
from infobatch_runner.pruning.infobatch import InfoBatch
from infobatch_runner.pruning.random_dynamic import RS2, RandomDynamic
from infobatch_runner.pruning.seta import SeTa
from infobatch_runner.pruning.short_schedule import ShortSchedule
from infobatch_runner.pruning.static import EL2N, Forgetting, GraNd, StaticRandom

GROUP = "infobatch_runner.strategies"
OPTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a Hydra option and a run-folder suffix

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (Full, ShortSchedule, InfoBatch, SeTa, RandomDynamic, RS2, EpsilonGreedy, UCB, EL2N, GraNd, Forgetting,
                StaticRandom)
}

log = logging.getLogger(__name__)


def _problem(entry, loaded) -> str | None:
    """Why a loaded entry point cannot be a strategy, in one sentence naming its package; None if it can."""
    where = _where(entry)
    if entry.name in STRATEGIES:
        return f"{where} clashes with the built-in strategy {entry.name!r} and is left out; rename the entry point."
    if not OPTION_NAME.fullmatch(entry.name):
        return f"{where} is not usable as prune={entry.name}: a name of letters, digits and underscores is."
    if not (isinstance(loaded, type) and issubclass(loaded, Strategy)):
        return f"{where} is {loaded!r}, not a subclass of infobatch_runner.pruning.Strategy."
    if getattr(loaded, "name", None) != entry.name:
        return (f"{where} loads a strategy whose name is {getattr(loaded, 'name', None)!r}; the class's `name` "
                "and the entry point's must be the same.")
    return None


def _where(entry) -> str:
    """The entry point and its package, as every sentence about it begins."""
    dist = getattr(entry, "dist", None)
    package = repr(dist.name) if dist is not None else "(unknown)"
    return f"entry point {entry.name!r} of package {package} ({entry.value})"


@functools.cache
def _discovered() -> tuple[dict[str, type[Strategy]], dict[str, str]]:
    found, problems = {}, {}
    for entry in entry_points(group=GROUP):
        try:
            loaded = entry.load()
        except Exception as e:  # noqa: BLE001 - whatever a third-party import raises is reported, not raised
            problems[entry.name] = f"{_where(entry)} failed to import: {type(e).__name__}: {e}"
            continue
        problem = _problem(entry, loaded)
        if problem:
            problems[entry.name] = problem
        else:
            found[entry.name] = loaded
    for problem in problems.values():
        log.warning(problem)
    return found, problems


def registered() -> dict[str, type[Strategy]]:
    """Every strategy a run can name: ours, then those of other installed packages."""
    return {**STRATEGIES, **_discovered()[0]}


def plugins() -> dict[str, type[Strategy]]:
    """The strategies other installed packages register."""
    return dict(_discovered()[0])


def why_unusable(name: str) -> str | None:
    """The sentence that left a registered entry point of this name out, or None."""
    return _discovered()[1].get(name)


def forget() -> None:
    """Look for entry points again on next use (after installing a package into a running process)."""
    _discovered.cache_clear()
