"""Everything checked before Hydra writes a byte: each job's config (every job of a sweep, before
the first starts) and the folders they will write into.

Hydra records a job (.hydra/, its log) before the task function runs, so a refusal made there
would already have overwritten an earlier run's record. Here the command line is composed the way
Hydra will compose it, job by job; a config that does not validate, a folder another process owns,
a fresh run into a folder holding results, or a resume with another config is one sentence, and
nothing has been written yet.
"""

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import get_args_parser
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
from hydra.core.utils import setup_globals
from hydra.errors import HydraException, OverrideParseException
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from infobatch_runner.engine import checkpoint
from infobatch_runner.errors import UNREACHABLE, UserError, first_line
from infobatch_runner.results import folders
from infobatch_runner.results.records import read_summary

CONFIG_MODULE = "infobatch_runner.conf"
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
# Flags with which Hydra prints something instead of running: nothing to check.
NOT_RUNNING = ("help", "hydra_help", "cfg", "info", "shell_completion", "experimental_rerun")


@dataclass
class Job:
    overrides: list[str]  # the job's own overrides (a sweep's expansion), as Hydra records them
    cfg: DictConfig  # the composed task config (no hydra node)
    folder: Path  # where the job writes


@dataclass
class Launch:
    multirun: bool
    folder: Path  # the run folder, or the sweep folder
    jobs: list[Job]
    pinned: list[str]  # overrides that pin the resolved folders, so Hydra writes where we checked
    in_process: bool = True  # the jobs run in this process (Hydra's basic launcher), not in others (submitit)


def one_line(exc: BaseException) -> str:
    """Hydra's and OmegaConf's multi-line errors as one sentence: the message and its cause."""
    if isinstance(exc, OverrideParseException):
        reason = str(exc.message).strip().splitlines()[0].rstrip(".")
        return f"cannot parse the override {exc.override!r} ({reason}); see `infobatch-run --hydra-help` for the syntax."
    parts = [first_line(exc)]
    cause = exc.__cause__
    if isinstance(cause, OmegaConfBaseException) and str(cause).strip():
        parts.append(str(cause).strip().splitlines()[0])
    text = ": ".join(p.rstrip(".") for p in parts)
    return text + "."


def _quote(path: Path) -> str:
    """A path as a quoted Hydra override value (commas, spaces and brackets stay literal)."""
    return "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _task_config(cfg: DictConfig) -> DictConfig:
    task = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    with open_dict(task):
        del task["hydra"]
    return task


def _compose(overrides: list[str], job_num: int = 0) -> tuple[DictConfig, DictConfig]:
    """(the config with its hydra node, the task config) of one job; hydra.* interpolations resolved
    as Hydra resolves them for that job."""
    try:
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.job.num = job_num
            cfg.hydra.job.id = job_num
        HydraConfig.instance().set_config(cfg)
        return cfg, _task_config(cfg)
    except (HydraException, OmegaConfBaseException) as exc:
        raise UserError(_unknown_key(exc, overrides) or one_line(exc)) from None


def _unknown_key(exc: BaseException, overrides: list[str]) -> str | None:
    """For `trainer.epoch=3` (a key its schema lacks), the sentence `+trainer.epoch=3` gets from
    schema.check_known_keys, with the close match: composed without that override, the node shows
    which keys it has. None for any other error."""
    found = re.match(r"Could not override '([^']+)'", first_line(exc))
    if found is None or not isinstance(exc.__cause__, (ConfigKeyError, ConfigAttributeError)) or "." not in found.group(1):
        return None
    key = found.group(1)
    parent, leaf = key.rsplit(".", 1)
    try:
        parsed = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader()).parse_overrides(overrides)
        others = [o.input_line for o in parsed if not o.is_sweep_override() and o.get_key_element().lstrip("+~") != key]
        node = OmegaConf.select(compose(config_name="config", overrides=others), parent)
    except (HydraException, OmegaConfBaseException):
        return None
    if not isinstance(node, DictConfig):
        return None
    known = [str(k) for k in node.keys()]
    close = difflib.get_close_matches(leaf, known, n=1)
    more = f"did you mean {parent}.{close[0]}?" if close else f"it takes {', '.join(known)}."
    return f"{key} is not a setting of {parent}; {more}"


def inspect(argv: list[str]) -> Launch | None:
    """Compose and validate every job the command line asks for; None when Hydra will only print
    (--help, --cfg ...) or loads another config (--config-path/--config-dir/--config-name)."""
    from infobatch_runner.config.validate import validate

    args, unknown = get_args_parser().parse_known_args(argv)
    if unknown or any(getattr(args, flag, None) for flag in NOT_RUNNING) or args.config_path or args.config_dir \
            or args.config_name:
        return None
    setup_globals()  # Hydra's resolvers (now, hydra) as the real run has them
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(version_base="1.3", config_module=CONFIG_MODULE, job_name="infobatch-run"):
            try:
                return _inspect(args.overrides, args.multirun, validate)
            except (HydraException, OmegaConfBaseException) as exc:
                raise UserError(_unknown_key(exc, args.overrides) or one_line(exc)) from None
    except (HydraException, OmegaConfBaseException) as exc:
        raise UserError(one_line(exc)) from None
    finally:
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None


def _inspect(overrides: list[str], multirun: bool, validate) -> Launch:
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    parsed = parser.parse_overrides(overrides)
    hydra_overrides = [o.input_line for o in parsed if o.key_or_group.split(".")[0].split("/")[0] == "hydra"]
    task = [o for o in parsed if o.input_line not in hydra_overrides]
    if not multirun:
        cfg, job_cfg = _compose(overrides)
        _validate(validate, job_cfg, None)
        folder = _folder(cfg.hydra.run.dir, "hydra.run.dir")
        return Launch(False, folder, [Job([o.input_line for o in task], job_cfg, folder)],
                      [f"hydra.run.dir={_quote(folder)}"])
    # A config group (hparams_search=..., experiment=...) may choose the sweeper too: compose with
    # every override that is not a sweep to find it.
    fixed = hydra_overrides + [o.input_line for o in task if not o.is_sweep_override()]
    if _sweeper_target(fixed) != f"{BasicSweeper.__module__}.{BasicSweeper.__name__}":
        return _other_sweeper(fixed, validate, [o for o in task if o.is_sweep_override()])
    jobs = []
    expanded = [job for batch in BasicSweeper.split_arguments(task, None) for job in batch]
    swept = {o.key_or_group for o in task if o.is_sweep_override()}
    sweep_dir = None
    for num, job_overrides in enumerate(expanded):
        cfg, job_cfg = _compose(hydra_overrides + job_overrides, num)
        _validate(validate, job_cfg, [o for o in job_overrides if o.split("=", 1)[0].lstrip("+~") in swept])
        if sweep_dir is None:
            sweep_dir = _folder(cfg.hydra.sweep.dir, "hydra.sweep.dir")
        folder = sweep_dir / _folder(cfg.hydra.sweep.subdir, "hydra.sweep.subdir", "the sweep folder itself")
        same = next((job for job in jobs if job.folder == folder), None)
        if same is not None:
            def shown(overrides):
                return " ".join(o for o in overrides if o.split("=", 1)[0].lstrip("+~") in swept)
            raise UserError(f"hydra.sweep.subdir gives the sweep jobs {shown(same.overrides)} and {shown(job_overrides)} "
                            f"one folder, {folder}; include ${{hydra:job.num}} in it.")
        jobs.append(Job(job_overrides, job_cfg, folder))
    in_process = str(cfg.hydra.launcher._target_) == BASIC_LAUNCHER if expanded else True
    return Launch(True, sweep_dir, jobs, [f"hydra.sweep.dir={_quote(sweep_dir)}"], in_process)


def _folder(value, key: str, instead: str = "the current directory") -> Path:
    """The folder a key names; an empty value would write into `instead`, unasked."""
    if value is None or not str(value).strip():
        raise UserError(f"{key} must name a folder (got {'' if value is None else str(value)!r}); an empty one would "
                        f"write into {instead}.")
    return Path(str(value))


def _sweeper_target(hydra_overrides: list[str]) -> str:
    cfg = compose(config_name="config", overrides=hydra_overrides, return_hydra_config=True)
    return str(cfg.hydra.sweeper._target_)


def _other_sweeper(fixed: list[str], validate, sweeps: list) -> Launch:
    """A sweeper that chooses its jobs as it goes (Optuna...): check the base config (every override
    but the sweeps, which the sweeper expands) and the folder. A search optimises what run() returns,
    which without a validation split is nothing: refused here, before any trial runs."""
    cfg, job_cfg = _compose(fixed)
    _validate(validate, job_cfg, None)
    if job_cfg.objective == "auto" and not job_cfg.dataset.val_fraction:
        raise UserError(f"the {str(cfg.hydra.sweeper._target_).rsplit('.', 1)[-1]} searches on what each run returns, "
                        "and without a validation split a run returns nothing (never the test accuracy); set "
                        "dataset.val_fraction (e.g. 0.1), or use hparams_search=infobatch_optuna.")
    if "n_trials" in cfg.hydra.sweeper:  # Hydra's Optuna sweeper
        check_search(cfg.hydra.sweeper, job_cfg.objective, fixed, sweeps, validate)
    folder = _folder(cfg.hydra.sweep.dir, "hydra.sweep.dir")
    return Launch(True, folder, [], [f"hydra.sweep.dir={_quote(folder)}"])


DIRECTIONS = ("minimize", "maximize")


def check_search(sweeper: DictConfig, objective: str, fixed: list[str], sweeps: list, validate) -> None:
    """The Optuna sweeper's settings, before any trial runs: trial counts, one direction per value
    that run() returns, a storage that opens, and a search space whose every value validates (an
    interval's two ends, each choice, a range's ends), from hydra.sweeper.params and from the sweeps
    of the command line (`sweeps`, parsed overrides) alike: a value no trial could run is refused
    here, not found trial by trial."""
    for key in ("n_trials", "n_jobs"):
        if key in sweeper and (not isinstance(sweeper[key], int) or isinstance(sweeper[key], bool) or sweeper[key] < 1):
            raise UserError(f"hydra.sweeper.{key} must be an integer >= 1 (got {sweeper[key]!r}).")
    directions = sweeper.direction
    directions = list(directions) if isinstance(directions, (list, ListConfig)) else [directions]
    for d in directions:
        if str(d).lower() not in DIRECTIONS:
            raise UserError(f"hydra.sweeper.direction must be minimize or maximize, one per objective (got {d!r}).")
    returned = 2 if objective == "val_acc+saving" else 1
    if len(directions) != returned:
        what = "two values (val_acc, saving_samples)" if returned == 2 else "one value (val_acc)"
        fitting = "val_acc" if len(directions) == 1 else "val_acc+saving"
        raise UserError(f"objective={objective} returns {what}, but hydra.sweeper.direction has {len(directions)} "
                        f"direction(s); give one direction per value, or objective={fitting}.")
    if sweeper.get("storage"):
        _check_storage(str(sweeper.storage))
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    space = [(f"hydra.sweeper.params.{key}={spec}", parser.parse_override(f"{key}={spec}"))
             for key, spec in (sweeper.get("params") or {}).items()]
    space += [(o.input_line, o) for o in sweeps]
    for where, override in space:
        key, value = override.key_or_group, override.value()
        if isinstance(value, IntervalSweep):
            if not value.start < value.end:
                raise UserError(f"{where} is empty: an interval needs its start below its end.")
            if "log" in value.tags and value.start <= 0:
                raise UserError(f"{where} is sampled on a log scale, which needs a start above 0.")
            candidates = [value.start, value.end]
        elif isinstance(value, ChoiceSweep):
            candidates = list(value.list)
        elif isinstance(value, RangeSweep):
            candidates = list(dict.fromkeys([value.start, value.stop - value.step]))
        else:
            candidates = [value]
        for candidate in candidates:
            _, trial_cfg = _compose(fixed + [f"{key}={candidate}"])
            try:
                validate(trial_cfg)
            except UserError as exc:
                raise UserError(f"{str(exc).rstrip('.')} ({where} can choose {candidate}); no trial was started.") from None


def _check_storage(url: str) -> None:
    """An Optuna storage that cannot be opened fails every trial: open it now (as the sweeper will)."""
    import optuna

    try:
        optuna.storages.get_storage(url)
    except Exception as exc:  # optuna and SQLAlchemy raise many kinds (ArgumentError, OperationalError, ...)
        raise UserError(f"hydra.sweeper.storage={url} cannot be opened ({first_line(exc)}); give a reachable "
                        "database URL, or null to keep the study in memory.") from None


def _validate(validate, cfg: DictConfig, job_overrides: list[str] | None) -> None:
    """A bad job refuses its sweep, but for a target saving its strategy cannot reach: that job
    alone fails when it starts, with the same sentence, and the others run (the leaderboard's
    "unattainable" cells)."""
    try:
        validate(cfg)
    except UserError as exc:
        if job_overrides is None:
            raise
        if UNREACHABLE in str(exc):
            return
        message = str(exc).rstrip(".")
        raise UserError(f"{message} (in the sweep job {' '.join(job_overrides)}); no job was started.") from None


def claim(launch: Launch) -> None:
    """Own the folders of the launch (one process per folder) and refuse, before anything is
    written, every start that would overwrite saved results."""
    if launch.multirun:
        folders.hold(launch.folder, "hydra.sweep.dir")
        used = folders.holds_a_sweep(launch.folder)
        if not launch.jobs and used:  # a search: its sweeper keeps its study in memory, nothing to continue
            raise UserError(f"{launch.folder} already holds a sweep or a search, which a search cannot continue; "
                            "choose another hydra.sweep.dir.")
        resuming = bool(launch.jobs) and all(job.cfg.resume == "auto" for job in launch.jobs)
        if not resuming and used:
            raise UserError(f"{launch.folder} already holds a sweep; continue it with resume=auto or choose another "
                            "hydra.sweep.dir.")
        for job in launch.jobs:
            if folders.is_held(job.folder):
                raise UserError(f"{job.folder} is in use by another infobatch-run process; wait for it to end or "
                                "choose another hydra.sweep.dir.")
            checkpoint.previous_state(job.cfg, job.folder, before_hydra=True)
        if launch.in_process:  # jobs run in this process: own their folders before Hydra writes into them
            folders.hold_all([job.folder for job in launch.jobs], "hydra.sweep.dir")
        return
    folders.hold(launch.folder)
    cfg = launch.jobs[0].cfg
    state = checkpoint.previous_state(cfg, launch.folder, before_hydra=True)
    if state is not None and state["epoch"] >= cfg.trainer.epochs and read_summary(launch.folder) is not None:
        raise Finished(launch.folder)


class Finished(Exception):
    """resume=auto found the run finished: nothing to do, and nothing is rewritten."""

    def __init__(self, folder: Path):
        super().__init__(f"{folder} finished all its epochs already; nothing to do.")
        self.folder = folder
