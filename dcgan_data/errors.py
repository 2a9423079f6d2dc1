"""Errors that end a run with a one-line message instead of a traceback."""


class DcganDataError(Exception):
    """The run cannot go on; the message says why. Exit code 1."""

    exit_code = 1


class InputError(DcganDataError):
    """The user's input (a path, a file, an option) is missing or unusable. Exit code 2."""

    exit_code = 2
