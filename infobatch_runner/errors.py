"""The one exception type that reaches the user as a sentence instead of a traceback."""


def first_line(exc: BaseException) -> str:
    """An exception's first line of text (or its type's name), to quote inside a sentence."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class UserError(Exception):
    """Bad input (config, data, environment): the message is one sentence saying what and how to fix."""


# The words of every refusal of a target saving its strategy cannot reach: in a sweep that job alone
# fails (config/preflight.py), and the leaderboard shows "unattainable" (results/leaderboard.py).
UNREACHABLE = "cannot be reached"
