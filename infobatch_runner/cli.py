"""`infobatch-run`: compose the Hydra config, validate it, train, report.

Bad input ends in one sentence on stderr and exit status 2, never a traceback, and before anything
is written (config/preflight.py). In a sweep, a job that fails at run time is recorded as failed
(failed.json in its folder), the other jobs run, and the report lists it; the sweep then exits 1.
"""

import importlib.util
import json
import logging
import os
import signal
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from infobatch_runner.errors import UserError, first_line

log = logging.getLogger("infobatch_runner")
PROG = "infobatch-run"
FAILED = "failed.json"
TRACEBACK = "traceback.txt"  # beside failed.json when a job failed on a bug rather than on bad input


def say(line: str, err: bool = False) -> None:
    """A line for the user (the terminal, clean, without the log's prefix) that also goes into the
    job's log file, which otherwise would not hold how the job ended."""
    print(line, file=sys.stderr if err else sys.stdout, flush=True)
    record = log.makeRecord(log.name, logging.WARNING if err else logging.INFO, __file__, 0, line, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


# Set by a program that runs a sweep through main() and expects some of its jobs to fail (the
# leaderboard: savings a strategy cannot reach): the sentence to print instead of failing, or None.
explain_failures = None


def fail(message: str, status: int = 2):
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(status)


@hydra.main(version_base="1.3", config_path="pkg://infobatch_runner.conf", config_name="config")
def run(cfg: DictConfig) -> float | tuple[float, float] | None:
    """One job. Returns what a Hydra sweeper (Optuna) optimises, chosen by `objective`
    (train.objective_of): the validation accuracy, or (it, saving_samples); never a test-set number,
    and None when the run has no validation split (objective=auto) or the job failed."""
    from infobatch_runner.config.validate import validate
    from infobatch_runner.engine.distributed import world_from_env
    from infobatch_runner.engine.loop import Interrupted
    from infobatch_runner.engine.runtime import out_of_memory, requeued
    from infobatch_runner.engine.train import closing_line, objective_of, train
    from infobatch_runner.pruning import ignored_params
    from infobatch_runner.results import folders
    from infobatch_runner.sweeps import repeats

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    if multirun and world_from_env().is_main:
        try:
            folders.hold(run_dir, "hydra.sweep.dir")  # the sweep's process holds it already, unless jobs run elsewhere
        except UserError as exc:  # another process's folder: nothing may be written into it, not even failed.json
            say(f"{PROG}: job {run_dir.name} not run: {exc}", err=True)
            return None
    if cfg.resume is None and requeued():  # a job launched by submitit, run again by SLURM: main() did not see it
        cfg.resume = "auto"
        log.info("SLURM started this job again (SLURM_RESTART_COUNT=%s): continuing it from its checkpoint.",
                 os.environ.get("SLURM_RESTART_COUNT"))
    try:
        if multirun and world_from_env().is_main:
            for record in (FAILED, TRACEBACK):  # a failed job that is run again
                (run_dir / record).unlink(missing_ok=True)
        validate(cfg)
        twin = repeats.twin_of(cfg, run_dir, Path(hydra_cfg.sweep.dir),
                               lambda line: say(f"{PROG}: job {run_dir.name} {line}.")) if multirun else None
        if twin is not None:
            repeats.record_twin(run_dir, twin)
            ignored = ", ".join(f"prune.{k}" for k in sorted(ignored_params(cfg.prune))) or "nothing"
            say(f"{PROG}: job {run_dir.name} makes the same run as {twin.name} (prune={cfg.prune.name} ignores "
                f"{ignored}): skipped, its results are {twin.name}'s.")
            return objective_of(cfg.objective, json.loads((twin / "summary.json").read_text()))
        summary = train(cfg, run_dir, Path(hydra_cfg.sweep.dir) if multirun else None)
    except UserError as exc:
        if not multirun:
            say(f"{PROG}: error: {exc}", err=True)  # the run's log says how it ended, too
            sys.exit(2)
        return job_failed(run_dir, exc, list(hydra_cfg.overrides.task))
    except Interrupted as exc:
        message = str(exc)
        if multirun:  # the sweep stops with its job: the message says how to continue the sweep; report what it finished
            say(f"{PROG}: job {run_dir.name} {message}", err=True)
            report_so_far(Path(hydra_cfg.sweep.dir), cfg.logger)
        else:
            say(f"{PROG}: {message}", err=True)
        requeue = signal.getsignal(signal.SIGUSR2)
        if exc.signal == "SIGUSR2" and callable(requeue):  # submitit's handler: it requeues the job, then exits
            requeue(signal.SIGUSR2, None)
        sys.exit(128 + getattr(signal, exc.signal))
    except Exception as exc:  # a bug: its traceback goes to a file in the job's folder, the sweep goes on
        memory = out_of_memory(exc)
        if memory is not None:
            if not multirun:
                say(f"{PROG}: error: {memory}", err=True)
                sys.exit(2)
            return job_failed(run_dir, memory, list(hydra_cfg.overrides.task))
        if not multirun:
            raise
        (run_dir / TRACEBACK).write_text(traceback.format_exc())
        return job_failed(run_dir, exc, list(hydra_cfg.overrides.task))
    if world_from_env().is_main:
        say(closing_line(summary, cfg.objective))
    return objective_of(cfg.objective, summary)  # what a Hydra sweeper (e.g. Optuna) optimises


def report_so_far(sweep_dir: Path, logger) -> None:
    """The sweep's report of the jobs done, when a signal stops the sweep before Hydra's end-of-sweep
    callback would write it."""
    from omegaconf import OmegaConf

    from infobatch_runner.sweeps.callbacks import SweepReport

    try:
        SweepReport().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}, "logger": logger}))
    except Exception as exc:  # the signal's message matters more than a report that could not be written
        log.warning("no report of the stopped sweep (%s)", first_line(exc))


def job_failed(run_dir: Path, exc: BaseException, overrides: list[str]) -> None:
    """Record a sweep job's failure in its folder (the report lists it) and say so in one line."""
    message = first_line(exc)
    where = f" (traceback in {run_dir / TRACEBACK})" if (run_dir / TRACEBACK).exists() else ""
    say(f"{PROG}: job {run_dir.name} failed: {message}{where}", err=True)
    try:
        (run_dir / FAILED).write_text(json.dumps({"error": message, "type": type(exc).__name__,
                                                  "overrides": overrides}, indent=2) + "\n")
    except OSError as write_error:
        log.error("could not record the failure in %s: %s", run_dir / FAILED, write_error)
    return None


def torchrun_device(preflight) -> str:
    """trainer.device as composed from the command line: under torchrun it decides the backend
    (NCCL on GPUs, gloo on CPUs) before any rank talks to another."""
    launch = preflight.inspect(sys.argv[1:])
    return str(launch.jobs[0].cfg.trainer.device) if launch is not None and launch.jobs else "auto"


def check_search_plugin(args: list[str]) -> None:
    """hparams_search=... runs Hydra's Optuna sweeper, an optional extra: say how to install it."""
    asked = [a.split("=", 1)[1] for a in args if a.lstrip("+").startswith("hparams_search=") and not a.endswith("=null")]
    if not asked:
        return
    try:
        found = importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is not None
    except ModuleNotFoundError:  # not even the hydra_plugins namespace
        found = False
    if not found:
        raise UserError(f"hparams_search={asked[0]} needs Hydra's Optuna sweeper, which is not installed; "
                        "install it with pip install 'infobatch-runner[optuna]'.")


def quote_home_paths(args: list[str]) -> list[str]:
    """`key=~/data` as `key='~/data'`: Hydra's grammar takes no unquoted value starting with `~`,
    and shells leave a `~` after `key=` alone; the dataset and cache paths expand it themselves."""
    quoted = []
    for arg in args:
        key, eq, value = arg.partition("=")
        if eq and not key.startswith("-") and value.startswith("~") and "," not in value and "'" not in value:
            arg = f"{key}='{value}'"
        quoted.append(arg)
    return quoted


# Flags with which Hydra only prints: answered without importing torch (seconds) or checking anything.
HELP_FLAGS = ("--help", "-h", "--hydra-help")


def main() -> None:
    if any(arg in HELP_FLAGS for arg in sys.argv[1:]):
        run()
        return
    from infobatch_runner.config import preflight
    from infobatch_runner.config.choices import check_group_choices
    from infobatch_runner.engine.distributed import agreed_overrides, rank0_verdict, world_from_env
    from infobatch_runner.engine.hostmem import keep_freed_memory
    from infobatch_runner.engine.runtime import requeued
    from infobatch_runner.results import folders
    from infobatch_runner.sweeps.callbacks import SweepReport
    from infobatch_runner.sweeps import repeats
    from infobatch_runner.sweeps.order import seed_major

    keep_freed_memory()
    logging.raiseExceptions = False  # a log file on a full disk must not print a traceback per record
    user_setting = os.environ.get("HYDRA_FULL_ERROR")
    full_errors = bool(user_setting)  # the user asked for tracebacks
    launch = None
    try:
        # A sweep runs seed by seed, each seed's baseline first.
        sys.argv[1:] = seed_major(quote_home_paths(sys.argv[1:]))
        if requeued() and not any(a.split("=", 1)[0].lstrip("+") == "resume" for a in sys.argv[1:]):
            sys.argv.append("resume=auto")  # SLURM runs the same command again: it continues its run
        check_group_choices(sys.argv[1:])
        check_search_plugin(sys.argv[1:])
        world = world_from_env(torchrun_device(preflight) if os.environ.get("WORLD_SIZE", "1") != "1" else "auto")
        sys.argv += agreed_overrides(world, sys.argv[1:])  # under torchrun: one run folder
        launch = preflight.inspect(sys.argv[1:])
        if launch is not None:
            refusal = None
            if world.is_main:
                try:
                    preflight.claim(launch)
                    if launch.multirun and launch.jobs:
                        repeats.write_plan(launch.folder, launch.jobs)  # each job's twin, before any job starts
                except (UserError, preflight.Finished) as exc:
                    refusal = exc
            verdict = rank0_verdict(world, None if refusal is None else (type(refusal).__name__, str(refusal)))
            if refusal is not None:
                raise refusal
            if verdict is not None:  # another rank under torchrun: rank 0 has said why, once
                sys.exit(0 if verdict[0] == preflight.Finished.__name__ else 2)
            sys.argv += launch.pinned
        os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises instead of printing: errors are ours to word
        SweepReport.failed_jobs, SweepReport.report_error = 0, None
        run()
    except UserError as exc:
        fail(str(exc))
    except preflight.Finished as done:
        print(f"{PROG}: {done}", flush=True)
    except OSError as exc:
        if full_errors:
            raise
        # A write through an open file (Hydra's records, a log) fails without a file name: name the
        # folder being written instead.
        where = exc.filename or (launch.folder if launch is not None else None)
        fail(f"cannot write{f' {where}' if where else ''} ({exc.strerror or exc}); free some space or choose "
             "another folder.")
    except (HydraException, OmegaConfBaseException) as exc:
        if full_errors:
            raise
        fail(preflight.one_line(exc))
    except ValueError as exc:  # Hydra's own flag check (-m with --cfg) raises a plain ValueError
        if full_errors or not str(exc).startswith("Only one of"):
            raise
        fail(f"{str(exc).rstrip('.')}; drop -m to print the config of one run (--cfg job).")
    finally:
        folders.release_all()
        if user_setting is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
    if SweepReport.report_error:
        fail(SweepReport.report_error, status=1)
    if SweepReport.failed_jobs:
        expected = explain_failures() if explain_failures is not None else None
        if expected is not None:  # a caller (the leaderboard) knows these failures for what they are
            print(expected, flush=True)
            return
        fail(f"{SweepReport.failed_jobs} job(s) of the sweep failed; the report lists them.", status=1)


if __name__ == "__main__":
    main()
