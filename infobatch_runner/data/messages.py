"""Helpers that turn third-party exceptions into the one-line reasons of a UserError sentence."""

import re
import tarfile
import zlib

from infobatch_runner.errors import UserError


# What torchvision's download helpers raise without network or on a broken transfer: URLError and
# socket errors are OSErrors, "Error downloading ..." and checksum failures are RuntimeErrors, a
# damaged archive fails in tarfile, gzip or zlib.
DOWNLOAD_ERRORS = (OSError, RuntimeError, EOFError, ValueError, zlib.error, tarfile.TarError)


def one_line(text: object, limit: int = 240) -> str:
    """The exception text (or any text) on one line: whitespace runs collapsed, cut at `limit`."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3].rstrip() + "..."


def reason(exc: BaseException) -> str:
    """Why an operation failed, for a parenthesis: strerror for OS errors, else the message."""
    if isinstance(exc, OSError) and exc.strerror and type(exc).__module__ == "builtins":
        return one_line(exc.strerror)
    return one_line(exc) or type(exc).__name__


# torch's ExceptionWrapper re-raises a worker's exception as
#   "Caught UserError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n
#    ...\ninfobatch_runner.errors.UserError: <sentence>\n"
_WORKER_LAST_LINE = re.compile(r"^(?:[\w.]+\.)?UserError: (.*)$")


def worker_sentence(err: UserError) -> str:
    """The original sentence of a UserError, whether raised here or re-raised from a DataLoader worker."""
    message = str(err)
    if "\n" not in message:
        return message
    for line in reversed(message.splitlines()):
        found = _WORKER_LAST_LINE.match(line.strip())
        if found:
            return found.group(1).strip()
    return one_line(message.splitlines()[0])
