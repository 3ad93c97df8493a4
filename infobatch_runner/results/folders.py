"""Run and sweep folders: one process owns each, and nothing a run saved is overwritten.

Ownership is an advisory lock (flock) on the folder itself, held for the life of the process:
the kernel drops it when the process ends, kill -9 included, so a crashed run never leaves a
stale lock behind, and no lock file is written into the folder.
"""

import errno
import fcntl
import logging
import os
import resource
from pathlib import Path

from infobatch_runner.errors import UserError

log = logging.getLogger(__name__)

# What a run writes into its folder (besides Hydra's .hydra/ and log, written for every job).
RESULTS = ("metrics.csv", "summary.json", "checkpoints", "failed.json")
HYDRA_OUTPUT = ".hydra"
SWEEP_RECORD = "multirun.yaml"
SWEEP_PLAN = "sweep_plan.json"  # written by the CLI before a sweep's first job (sweeps/repeats.py)

_held: dict[Path, int] = {}


def hold(folder: Path, what: str = "hydra.run.dir") -> None:
    """Create `folder` if needed and lock it for this process; another process holding it ends
    this one with one sentence. Holding a folder twice in one process is a no-op."""
    folder = Path(folder).resolve()
    if folder in _held:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise UserError(f"cannot create the folder {folder} ({exc.strerror or exc}); choose another {what}.") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise UserError(f"{folder} is in use by another infobatch-run process; wait for it to end or choose "
                            f"another {what}.") from None
        # Some network file systems cannot lock folders: go on unguarded rather than not at all.
        log.warning("could not lock %s (%s); make sure no other run writes into it.", folder, exc.strerror or exc)
        return
    _held[folder] = fd


def hold_all(paths: list[Path], what: str) -> None:
    """Hold every folder of `paths` (creating them), raising the process's open-file limit as far
    as it may go, since each held folder keeps a descriptor open. Folders beyond that limit are
    checked instead (refused when another process holds one) and held when their job starts."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = len(_held) + len(paths) + 256  # room for the files, sockets and workers of a run
    if needed > soft and (hard == resource.RLIM_INFINITY or soft < hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed if hard == resource.RLIM_INFINITY else min(needed, hard),
                                                        hard))
        except (ValueError, OSError):
            pass
    room = resource.getrlimit(resource.RLIMIT_NOFILE)[0] - len(_held) - 256
    for i, path in enumerate(paths):
        if i < room:
            hold(path, what)
        elif is_held(path):
            raise UserError(f"{Path(path).resolve()} is in use by another infobatch-run process; wait for it to end "
                            f"or choose another {what}.")


def release_all() -> None:
    for fd in _held.values():
        os.close(fd)
    _held.clear()


def is_held(folder: Path) -> bool:
    """True when another process holds `folder` (a run or sweep still going); False for a folder of
    this process, one nobody holds, or one that cannot be checked."""
    folder = Path(folder).resolve()
    if folder in _held:
        return False
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
    finally:
        os.close(fd)  # closing drops a lock it took
    return False


def results_in(folder: Path) -> list[str]:
    """The run results already in `folder` (empty for a new or never-started run)."""
    return [name for name in RESULTS if (Path(folder) / name).exists()]


def holds_a_run(folder: Path) -> bool:
    """True when `folder` holds anything a run wrote, Hydra's record of it included."""
    folder = Path(folder)
    return bool(results_in(folder)) or (folder / HYDRA_OUTPUT).exists()


def holds_a_sweep(folder: Path) -> bool:
    """True when `folder` holds a sweep or a search: its multirun.yaml (a basic sweep's record), or
    any job folder a run wrote into (a search, such as Optuna's, writes no multirun.yaml)."""
    folder = Path(folder)
    if (folder / SWEEP_RECORD).exists():
        return True
    try:
        return any(holds_a_run(child) for child in folder.iterdir() if child.is_dir())
    except OSError:
        return False
