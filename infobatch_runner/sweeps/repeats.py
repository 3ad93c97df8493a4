"""Sweeps that waste nothing: a job whose run an earlier job of the sweep makes is skipped.

`-m prune=full,infobatch prune.ratio=0.3,0.5,0.7 seed=0,1,2` composes the full-data baseline once
per ratio, although prune=full ignores the ratio: nine full runs where three give the same result.
A job is the same run as another when their resolved configs are equal once the keys the strategy
ignores (and `resume`) are left out, and its parameters are read as the strategy says they decide
the run (Strategy.run_params: short_schedule's saving counts as the whole epochs it trains, so
0.3, 0.5 and 0.7 of 2 epochs are one run of 1 epoch).

The sweep is planned up front: before Hydra starts a job, the CLI writes sweep_plan.json into the
sweep folder, naming for each job the first job of the sweep that makes the same run (its twin).
A job with a twin waits for it, so that launchers that start jobs together (hydra/launcher=local,
slurm) skip repeats too: while the twin's folder is held by a live process, and for up to
START_GRACE_S for a twin not started yet. A twin that finished gives its results; one that failed,
or never started, leaves the job to run itself. Sweeps without a plan (made by earlier versions)
look for a finished twin among the job folders, as before.
"""

import json
import logging
import time
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig, OmegaConf

from infobatch_runner.errors import first_line
from infobatch_runner.pruning import Strategy, registered
from infobatch_runner.results.folders import SWEEP_PLAN, is_held
from infobatch_runner.results.records import write_json_atomic

log = logging.getLogger(__name__)

SAME_AS = "same_as.json"
START_GRACE_S = 60.0  # how long a job waits for a planned twin that has not started yet
POLL_S = 1.0


def what_runs(cfg: DictConfig) -> dict:
    """The config as far as it decides the run's result and cost."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain.pop("resume", None)
    plain.pop("hydra", None)
    prune = plain["prune"]
    cls = registered().get(prune["name"], Strategy)  # one not installed here: the base rules
    ignored = cls.ignored_params(prune) | {"name"}
    params = {k: v for k, v in prune.items() if k not in ignored}
    epochs = plain.get("trainer", {}).get("epochs")  # every real config has it; a plan's test may not
    # the strategy says which of its parameters make a run (short_schedule: whole epochs)
    plain["prune"] = {"name": prune["name"], **cls.run_params(params, epochs)}
    return plain


def finished_twin(cfg: DictConfig, run_dir: Path, sweep_dir: Path) -> Path | None:
    """A finished job folder of this sweep that made exactly this job's run, if there is one."""
    mine = what_runs(cfg)
    for sibling in sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p != run_dir):
        recorded = sibling / ".hydra" / "config.yaml"
        if not (sibling / "summary.json").exists() or not recorded.exists():
            continue
        try:
            theirs = what_runs(OmegaConf.load(recorded))
        except Exception as exc:  # another job's damaged record is its own problem, not this job's
            log.warning("%s cannot be read (%s); %s is not taken as a twin.", recorded, first_line(exc), sibling.name)
            continue
        if theirs == mine:
            return sibling
    return None


def record_twin(run_dir: Path, twin: Path) -> None:
    (run_dir / SAME_AS).write_text(json.dumps({"same_as": twin.name}) + "\n")


def write_plan(sweep_dir: Path, jobs) -> None:
    """sweep_plan.json: for each job (an object with .cfg and .folder, in launch order), the folder
    name of the first job that makes the same run, or null."""
    first: dict[str, str] = {}
    twin_of = {}
    for job in jobs:
        name = Path(job.folder).name
        owner = first.setdefault(json.dumps(what_runs(job.cfg), sort_keys=True, default=str), name)
        twin_of[name] = None if owner == name else owner
    write_json_atomic(Path(sweep_dir) / SWEEP_PLAN, {"twin_of": twin_of})


def planned_twin(run_dir: Path, sweep_dir: Path) -> Path | None | bool:
    """The twin the plan names for this job, None when it names none, False without a usable plan."""
    try:
        plan = json.loads((sweep_dir / SWEEP_PLAN).read_text())["twin_of"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not isinstance(plan, dict) or run_dir.name not in plan:
        return False
    return None if plan[run_dir.name] is None else sweep_dir / str(plan[run_dir.name])


def wait_for(twin: Path, say: Callable[[str], None], grace_s: float = START_GRACE_S, poll_s: float = POLL_S) -> bool:
    """Wait until the twin's job ends; True when it finished (summary.json), False when it failed,
    ended without a record (started, yet no process holds it on two polls running), or did not
    start within grace_s."""
    waited, idle, said = 0.0, 0, False
    while True:
        if (twin / "summary.json").exists():
            return True
        if (twin / "failed.json").exists():
            return False
        idle = 0 if is_held(twin) else idle + 1
        if (idle >= 2 and (twin / ".hydra").exists()) or (idle and waited >= grace_s):
            return False
        if not said:
            say(f"waits for {twin.name}, which makes the same run")
            said = True
        time.sleep(poll_s)
        waited += poll_s


def twin_of(cfg: DictConfig, run_dir: Path, sweep_dir: Path, say: Callable[[str], None]) -> Path | None:
    """The finished job of this sweep whose results are this job's, waiting for a planned twin that is
    still running; None when this job must run itself."""
    twin = planned_twin(run_dir, sweep_dir)
    if twin is False:
        return finished_twin(cfg, run_dir, sweep_dir)
    if twin is None:
        return None
    return twin if wait_for(twin, say) else None
