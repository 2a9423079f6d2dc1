"""Errors that end a run with a one-line message instead of a traceback."""


class DcganDataError(Exception):
    """The run cannot go on; the message says why. Exit code 1."""

    exit_code = 1


class InputError(DcganDataError):
    """The user's input (a path, a file, an option) is missing or unusable. Exit code 2."""

    exit_code = 2


def require(module: str, purpose: str):
    """Import an optional (interop) package, or end the run with a one-line message."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        raise InputError(f"{purpose} needs the {top!r} package: pip install {top} "
                         "(in a clone: pip install -e '.[interop]')") from None
