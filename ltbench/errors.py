"""One error type for every user-facing failure.

A ``LtbenchError`` names where the problem is (file, and a key path inside it), what was found and what
was expected. The CLI prints it as one readable message and exits with status 2, never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from difflib import get_close_matches
from os import PathLike


def format_key_path(keys: Sequence[str | int]) -> str:
    """``["tables", 2, "rows", 0, "run"]`` -> ``tables[2].rows[0].run``."""
    out = ""
    for key in keys:
        if isinstance(key, int):
            out += f"[{key}]"
        else:
            out += f".{key}" if out else str(key)
    return out


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A short "did you mean ...?" suffix, or "" when nothing is close."""
    close = get_close_matches(str(word), [str(c) for c in choices], n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"


class LtbenchError(Exception):
    """A user-facing error: bad input, missing data, impossible request.

    Args:
        message: what is wrong, in one sentence.
        path: the file the problem is in, if any.
        key: key path inside that file (a string, or a sequence turned into ``a.b[0].c``).
        expected: what would have been accepted.
        hint: how to fix it (a command to run, a path to create).
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | PathLike[str] | None = None,
        key: str | Sequence[str | int] | None = None,
        expected: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.key = key if (key is None or isinstance(key, str)) else format_key_path(key)
        self.expected = expected
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.path and self.key:
            where = f"{self.path}: {self.key}: "
        elif self.path:
            where = f"{self.path}: "
        elif self.key:
            where = f"{self.key}: "
        text = where + self.message
        if self.expected:
            text += f"; expected {self.expected}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text
