"""The order of a sweep's jobs: seed by seed, each seed's full-data baseline first.

Hydra's basic sweeper runs the cartesian product of the swept overrides in the order they are
typed: `-m prune=full,infobatch seed=0,1,2` runs the three full runs, then the three InfoBatch
runs, so any drift of the machine's speed over the sweep lands on one strategy's wall saving. With
`seed` moved first and `prune` second (`full` first among its values), the jobs run full, the
strategies, then the next seed: drift spreads over all strategies, and each strategy runs next to
its own baseline. A resumed sweep keeps the order it was made with, so that each job finds its
folder (hydra.sweep.subdir numbers the jobs).
"""

import re
from pathlib import Path

from omegaconf import OmegaConf

FIRST = ("seed", "prune")  # the outer loops, in this order
BASELINE = "full"


def _key(token: str) -> str:
    return token.split("=", 1)[0].lstrip("+~")


def _is_override(token: str) -> bool:
    return not token.startswith("-") and "=" in token


def _baseline_first(token: str) -> str:
    """`prune=infobatch,full` -> `prune=full,infobatch`; anything but a plain list is left as it is."""
    key, _, value = token.partition("=")
    if _key(token) != "prune" or not re.fullmatch(r"[\w]+(,[\w]+)+", value):
        return token
    values = value.split(",")
    return f"{key}=" + ",".join(sorted(values, key=lambda v: v != BASELINE))


def recorded_order(argv: list[str]) -> list[str] | None:
    """The task overrides of the sweep this command resumes, as its multirun.yaml records them;
    None for a new sweep (or a sweep folder that is not given or holds no record)."""
    dirs = [t.split("=", 1)[1].strip("'\"") for t in argv if _is_override(t) and _key(t) == "hydra.sweep.dir"]
    if not dirs or not (Path(dirs[-1]) / "multirun.yaml").is_file():
        return None
    try:
        return [str(o) for o in OmegaConf.load(Path(dirs[-1]) / "multirun.yaml").hydra.overrides.task]
    except Exception:  # an unreadable record: the preflight's checks of each job folder speak for it
        return None


def seed_major(argv: list[str]) -> list[str]:
    """The command line with its task overrides in the order a sweep should run them (see above)."""
    if not {"-m", "--multirun"} & set(argv):
        return argv
    positions = [i for i, t in enumerate(argv) if _is_override(t) and _key(t).split(".")[0].split("/")[0] != "hydra"]
    task = [argv[i] for i in positions]
    recorded = recorded_order(argv)
    if recorded is not None:
        rank = {_key(t): i for i, t in enumerate(recorded)}
        ordered = sorted(task, key=lambda t: rank.get(_key(t), len(rank)))
    else:
        ordered = sorted(task, key=lambda t: FIRST.index(_key(t)) if _key(t) in FIRST else len(FIRST))
        ordered = [_baseline_first(t) for t in ordered]
    out = list(argv)
    for i, token in zip(positions, ordered):
        out[i] = token
    return out
