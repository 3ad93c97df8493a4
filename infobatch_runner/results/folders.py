"""Run and sweep folders: one process owns each, and nothing a run saved is overwritten.

Ownership is an advisory lock (flock) on the folder itself, held for the life of the process:
the kernel drops it when the process ends, kill -9 included, so a crashed run never leaves a
stale lock behind, and no lock file is written into the folder.
"""

import errno
import fcntl
import logging
import os
from pathlib import Path

from infobatch_runner.errors import UserError

log = logging.getLogger(__name__)

# What a run writes into its folder (besides Hydra's .hydra/ and log, written for every job).
RESULTS = ("metrics.csv", "summary.json", "checkpoints", "failed.json")
HYDRA_OUTPUT = ".hydra"
SWEEP_RECORD = "multirun.yaml"

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
