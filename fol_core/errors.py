"""The one base of every error whose message is meant for the user.

A UserError says, in one line, what the user can change (a file, a name, a setting). Front ends
show exactly these as messages and go on; any other exception is a bug, and is logged with its
traceback rather than shown as if it were the user's fault.
"""

from __future__ import annotations

MAX_MESSAGE = 300
"""Longest message shown to a user (a crafted file can make a library's message huge)."""


class UserError(Exception):
    """Something the user asked for cannot be done as given; str(self) is one line for the user."""


def line(text: str, limit: int = MAX_MESSAGE) -> str:
    """The first line of a text for the user, cut to `limit` characters."""
    text = text.strip().splitlines()[0] if text.strip() else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def one_line(exc: BaseException, limit: int = MAX_MESSAGE) -> str:
    """The first line of an exception's message (or its type), cut to `limit` characters."""
    return line(str(exc), limit) or type(exc).__name__


def about(name: str, exc: BaseException | str) -> str:
    """One line on what went wrong with `name`, naming it once (most messages already start with it)."""
    text = line(exc) if isinstance(exc, str) else one_line(exc)
    return text if text.startswith(str(name)) else line(f"{name}: {text}")
