"""The one exception type that reaches the user as a sentence instead of a traceback."""


class UserError(Exception):
    """Bad input (config, data, environment): the message is one sentence saying what and how to fix."""
