"""The viewer's error messages: one line on the console and in the GUI, tracebacks only on request.

A person's mistake (a bad query or threshold, a scene the model cannot encode, an unreadable file) is a
``ValueError`` or an ``OSError`` with a message that says what to change; anything else is an internal
error, whose traceback ``liftgs-viewer --verbose`` prints after the one line.
"""

from __future__ import annotations

import sys
import traceback

PREFIX = "liftgs-viewer"
MAX_MESSAGE_LENGTH = 300
"""Longer messages are cut (with "...") so that the line stays readable."""
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)
"""Errors that report bad input or a bad file rather than a bug in the viewer."""


def one_line(error: BaseException) -> str:
    """The error's message on one line (its first line, at most ``MAX_MESSAGE_LENGTH`` characters);
    internal errors are prefixed with their type (``KeyError: 'x'``)."""
    lines = str(error).strip().splitlines()
    message = lines[0].strip() if lines else ""
    if not isinstance(error, EXPECTED_ERRORS) or not message:
        message = f"{type(error).__name__}: {message}" if message else type(error).__name__
    if len(message) > MAX_MESSAGE_LENGTH:
        message = message[: MAX_MESSAGE_LENGTH - 3].rstrip() + "..."
    return message


def log_line(where: str, message: str) -> None:
    """Prints ``liftgs-viewer: <where>: <message>`` to stderr."""
    print(f"{PREFIX}: {where}: {message}", file=sys.stderr, flush=True)


def log_error(where: str, error: BaseException, verbose: bool = False) -> str:
    """Logs ``error`` in one line (plus, with ``verbose``, the traceback of an internal error); returns the
    line's message for the GUI."""
    message = one_line(error)
    log_line(where, message)
    if verbose and not isinstance(error, EXPECTED_ERRORS):
        traceback.print_exception(error, file=sys.stderr)
    return message
