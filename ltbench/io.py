"""Atomic file writes and strict readers.

Nothing half-written ever appears under its final name: every writer goes to a temporary file in the
same directory, flushes and fsyncs it, then ``os.replace``s it into place (atomic on POSIX).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ltbench.errors import LtbenchError


def _default_file_mode() -> int:
    """0o666 minus the process umask: what ``open(path, "w")`` would have given the file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


# mkstemp creates files 0600; results and tables are meant to be shared with a group on a cluster.
_FILE_MODE = _default_file_mode()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    if "r" in mode or "a" in mode or "+" in mode:
        raise ValueError(f"atomic_open writes whole files only, got mode {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, _FILE_MODE)
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def install_file(tmp: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Give a complete file written elsewhere in ``target``'s folder its final name, atomically: fsync it,
    give it the usual file mode, ``os.replace`` it onto ``target``, fsync the folder. For files too large
    or too slow to write in one ``atomic_open`` (resumable downloads keep their partial file between tries).
    """
    tmp_path, target_path = Path(tmp), Path(target)
    if tmp_path.parent.resolve() != target_path.parent.resolve():
        raise ValueError(f"install_file needs {tmp_path} in the folder of {target_path} (rename is atomic only there)")
    with open(tmp_path, "rb+") as handle:
        os.fsync(handle.fileno())
    os.chmod(tmp_path, _FILE_MODE)
    os.replace(tmp_path, target_path)
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened and fsynced
        fd = os.open(target_path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def write_json(path: str | os.PathLike[str], obj: Any, *, indent: int | None = 2) -> None:
    with atomic_open(path, "w") as handle:
        json.dump(obj, handle, indent=indent, sort_keys=False)
        handle.write("\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read JSON; a missing, empty or truncated file is a ``LtbenchError`` naming the file and position."""
    p = Path(path)
    if not p.is_file():
        raise LtbenchError("file not found", path=p, expected="an existing JSON file")
    text = p.read_text(encoding="utf-8")
    if not text.strip():
        raise LtbenchError("file is empty", path=p, expected="a JSON document")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise LtbenchError(
            f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            + (" (the file looks truncated)" if exc.pos >= len(text.rstrip()) - 1 else ""),
            path=p,
            expected="a complete JSON document",
        ) from None


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Read YAML; errors name the file, line and column."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise LtbenchError("file not found", path=p, expected="an existing YAML file")
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise LtbenchError(f"invalid YAML{where}: {problem}", path=p, expected="valid YAML") from None
