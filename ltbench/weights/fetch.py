"""What a plan needs, and getting it: download, verify, resume (``ltbench weights fetch``).

Downloads go to ``<file>.part`` beside the final name, with ``<file>.part.json`` holding the URL and the
server's validator (ETag or Last-Modified). An interrupted download resumes from the bytes it has with an
HTTP ``Range`` request guarded by ``If-Range``: a server that answers with the whole file (it changed, or
ignores ranges) restarts it from zero. The finished file is verified (sha256: the published prefix or full
hash, and the one recorded in ``weights.lock.json``) before it is renamed to its final name
(``ltbench.io.install_file``); a file that fails the check is deleted, never installed. One fetch at a time
per cache (a file lock), so concurrent fetches into a shared cache are safe.
"""

from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import http.client
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltbench.errors import LtbenchError
from ltbench.weights import manifest
from ltbench.weights.cache import (
    ENV_FILES, LOCK_NAME, Override, Settings, cache_lock, fetch_command, read_lock, write_lock,
)

CHUNK = 1 << 20
TIMEOUT_S = 60.0
RETRY_SLEEP_S = 2.0
_LOCAL_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT}

Log = Callable[[str], None]


# ---- what is needed ---------------------------------------------------------------------------------
@dataclass
class Need:
    """One weight id and the runs that start from it."""

    id: str
    runs: list[str] = field(default_factory=list)
    kinds: set[str] = field(default_factory=set)  # "mmdet mask_rcnn r50_fpn, pretrain imagenet"


def needs_of_plan(plan: Any) -> dict[str, Need]:  # noqa: ANN401 (ltbench.plan.Plan)
    """weight id -> the runs of ``plan`` that need it (plan order)."""
    out: dict[str, Need] = {}
    for run in plan.runs.values():
        config = run.config
        weight_id = manifest.weight_id(config)
        if weight_id is None:
            continue
        need = out.setdefault(weight_id, Need(weight_id))
        need.runs.append(run.id)
        need.kinds.add(f"{config['framework']} {config['detector']} {config['backbone']}, pretrain {config['pretrain']}")
    return out


def needs_of_ids(ids: Iterable[str]) -> dict[str, Need]:
    return {i: Need(manifest.check_weight_id(i, key="--id")) for i in ids}


@dataclass
class Item:
    """One entry of the listing: a file to fetch (serving one or more ids), a user's file, or an id with no
    known source."""

    needs: list[Need]
    file: manifest.WeightFile | None = None
    override: Override | None = None

    @property
    def ids(self) -> list[str]:
        return [n.id for n in self.needs]


def items_of(needs: dict[str, Need], s: Settings, files: tuple[manifest.WeightFile, ...] | None = None) -> list[Item]:
    known = manifest.by_id(files)
    out: list[Item] = []
    by_file: dict[str, Item] = {}
    for need in needs.values():
        if need.id in s.files:
            out.append(Item([need], override=s.files[need.id]))
        elif need.id in known:
            file = known[need.id]
            if file.url in by_file:
                by_file[file.url].needs.append(need)
            else:
                by_file[file.url] = Item([need], file=file)
                out.append(by_file[file.url])
        else:
            out.append(Item([need]))
    return out


# ---- status and listing -------------------------------------------------------------------------------
def quick_status(item: Item, s: Settings, lock: dict[str, dict[str, Any]]) -> str:
    """present / missing / partial, from sizes only (no hashing): what ``--dry-run`` prints."""
    if item.override is not None:
        return "yours, present" if item.override.path.is_file() else "yours, not found here"
    if item.file is None:
        return "no source"
    local = s.local_path(item.file)
    if local.is_file():
        recorded = lock.get(item.file.relpath)
        if recorded is not None and recorded.get("size") != local.stat().st_size:
            return f"present, but {local.stat().st_size} bytes where {LOCK_NAME} says {recorded.get('size')}"
        return "present"
    part = _part(local)
    if part.is_file():
        return f"missing ({part.stat().st_size} bytes of a partial download, resumable)"
    return "missing"


def _size_text(file: manifest.WeightFile, recorded: dict[str, Any] | None) -> str:
    if recorded is not None:
        return f"{recorded['size']} bytes ({LOCK_NAME})"
    return file.size_note or "unknown until the first fetch"


def _checksum_text(file: manifest.WeightFile, recorded: dict[str, Any] | None) -> str:
    if recorded is not None:
        when = recorded.get("first_fetched", "?")
        text = f"sha256 {recorded['sha256']} ({LOCK_NAME}, first fetched {when})"
        if file.sha256_prefix:
            text += f"; published prefix {file.sha256_prefix}"
        return text
    if file.sha256:
        return f"sha256 {file.sha256} (published)"
    if file.sha256_prefix:
        return (f"sha256 prefix {file.sha256_prefix} (published in the file name); the full sha256 is recorded in "
                f"{LOCK_NAME} at the first fetch and verified after")
    return f"none published: the sha256 is recorded in {LOCK_NAME} at the first fetch and verified after"


def _for_lines(item: Item) -> list[str]:
    lines = []
    for need in item.needs:
        convention = ""
        if item.file is not None:
            convention = f" ({item.file.use(need.id).convention})"
        runs = f": {len(need.runs)} run{'s' * (len(need.runs) != 1)}, {'; '.join(sorted(need.kinds))}" if need.runs else ""
        lines.append(f"{need.id}{convention}{runs}")
    return lines


def describe(item: Item, s: Settings, lock: dict[str, dict[str, Any]], status: str, mirror: str | None = None) -> list[str]:
    pad = "    {:<11s}{}"
    head = item.file.name if item.file is not None else item.ids[0]
    out = [f"[{status}] {head}"]
    out += [pad.format("for" if i == 0 else "", line) for i, line in enumerate(_for_lines(item))]
    if item.override is not None:
        out.append(pad.format("local", f"{item.override.path} (from {item.override.source})"))
        out.append(pad.format("checksum", "not checked (your own file)"))
    elif item.file is None:
        framework = item.ids[0].split("/", 1)[0]
        out.append(pad.format("source", f"none known in the {framework} convention for this detector/backbone"))
        out.append(pad.format("fix", f"point weights.files (workflows/config/config.yaml) or ${ENV_FILES} at your own "
                                     f"file: {item.ids[0]}=/path/to/checkpoint"))
    else:
        file = item.file
        recorded = lock.get(file.relpath)
        out.append(pad.format("what", file.what))
        source = file.url if not mirror else f"{mirror_url(file, mirror)} (mirror of {file.url})"
        out.append(pad.format("source", source))
        out.append(pad.format("local", str(s.local_path(file))))
        out.append(pad.format("size", _size_text(file, recorded)))
        out.append(pad.format("checksum", _checksum_text(file, recorded)))
        if file.notes:
            out.append(pad.format("convention", file.notes))
    return out


# ---- download -----------------------------------------------------------------------------------------
class _Retry(Exception):
    """A transient failure: the partial download is kept and the next try resumes it."""


def _part(local: Path) -> Path:
    return local.with_name(local.name + ".part")


def _part_meta(local: Path) -> Path:
    return local.with_name(local.name + ".part.json")


def mirror_url(file: manifest.WeightFile, mirror: str | None) -> str:
    """A mirror serves a copy of a cache: ``<mirror>/<host>/<path>`` (the cache layout)."""
    return file.url if not mirror else mirror.rstrip("/") + "/" + file.relpath


def sha256_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def verify(file: manifest.WeightFile, weight_id: str, digest: str, recorded: dict[str, Any] | None, where: Path) -> str:
    """Raise when ``digest`` contradicts the published checksum or the lock file; say what was checked."""
    checks = []
    if file.sha256:
        if digest != file.sha256:
            raise _mismatch(file, weight_id, where, digest, f"sha256 {file.sha256} (published)")
        checks.append("the published sha256")
    if file.sha256_prefix:
        if not digest.startswith(file.sha256_prefix):
            raise _mismatch(file, weight_id, where, digest,
                            f"a sha256 starting with {file.sha256_prefix} (published in the file name)")
        checks.append(f"the published prefix {file.sha256_prefix}")
    if recorded is not None:
        if digest != recorded.get("sha256"):
            raise _mismatch(file, weight_id, where, digest,
                            f"sha256 {recorded.get('sha256')} (recorded in {LOCK_NAME} at the first fetch, "
                            f"{recorded.get('first_fetched', '?')})")
        checks.append(LOCK_NAME)
    return " and ".join(checks) if checks else "nothing published: recorded now (trust on first use)"


def _mismatch(file: manifest.WeightFile, weight_id: str, where: Path, digest: str, expected: str) -> LtbenchError:
    if where.name.endswith(".part"):
        hint = "the download was corrupted or the server's file changed; the bad download was deleted, not installed"
    else:
        hint = f"the cached file is damaged or was replaced: delete {where} and fetch again"
    return LtbenchError(f"checksum mismatch for {file.url}: got sha256 {digest}", path=where, key=weight_id,
                        expected=expected, hint=hint)


def _validator(headers: Any) -> str | None:  # noqa: ANN401
    return headers.get("ETag") or headers.get("Last-Modified")


def _download_once(url: str, local: Path, weight_id: str, log: Log, timeout: float) -> tuple[str, int]:
    part, meta_path = _part(local), _part_meta(local)
    offset, meta = 0, None
    if part.is_file() and meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = None
        if isinstance(meta, dict) and meta.get("url") == url and meta.get("validator"):
            offset = part.stat().st_size
    if offset == 0:
        for stale in (part, meta_path):
            stale.unlink(missing_ok=True)
    from ltbench import __version__

    headers = {"User-Agent": f"ltbench/{__version__} (weights fetch)", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        headers["If-Range"] = meta["validator"]  # type: ignore[index]
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # our partial file is not a prefix the server can continue
            part.unlink(missing_ok=True)
            meta_path.unlink(missing_ok=True)
            raise _Retry(f"the server cannot resume at byte {offset} (HTTP 416); starting over") from None
        if exc.code in (408, 429) or exc.code >= 500:
            raise _Retry(f"HTTP {exc.code} {exc.reason}") from None
        raise LtbenchError(f"download failed: HTTP {exc.code} {exc.reason} for {url}", path=local, key=weight_id,
                           expected="HTTP 200", hint="check the URL (or --mirror / $LTBENCH_WEIGHTS_MIRROR)") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Retry(f"cannot reach {url}: {reason}") from None
    with response:
        status = response.status
        digest = hashlib.sha256()
        if status == 206 and offset:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {offset}-"):
                part.unlink(missing_ok=True)
                meta_path.unlink(missing_ok=True)
                raise _Retry(f"the server resumed at the wrong place ({content_range!r}); starting over")
            total_text = content_range.rsplit("/", 1)[-1]
            total = int(total_text) if total_text.isdigit() else None
            with open(part, "rb") as handle:
                while chunk := handle.read(CHUNK):
                    digest.update(chunk)
            mode, size = "ab", offset
            log(f"  resuming {local.name} at byte {offset}")
        elif status == 200:
            if offset:
                log(f"  {local.name}: the server sent the whole file (changed, or no resume support); starting over")
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            from ltbench.io import write_json

            local.parent.mkdir(parents=True, exist_ok=True)
            write_json(meta_path, {"url": url, "validator": _validator(response.headers), "size": total})
            mode, size = "wb", 0
            log(f"  downloading {url}" + (f" ({total} bytes)" if total is not None else ""))
        else:
            raise LtbenchError(f"download failed: unexpected HTTP {status} for {url}", path=local, key=weight_id,
                               expected="HTTP 200 (or 206 when resuming)")
        try:
            with open(part, mode) as out:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, OSError) and exc.errno in _LOCAL_ERRNOS:  # the disk, not the network: retrying won't help
                raise LtbenchError(f"cannot write {part}: {exc.strerror}", path=part, key=weight_id,
                                   expected="a writable cache folder with free space") from None
            raise _Retry(f"connection lost after {size} bytes: {exc}") from None
    if total is not None and size != total:
        raise _Retry(f"connection closed after {size} of {total} bytes")
    return digest.hexdigest(), size


def download(file: manifest.WeightFile, weight_id: str, s: Settings, *, mirror: str | None = None, retries: int = 3,
             log: Log = print, timeout: float = TIMEOUT_S, sleep: Callable[[float], None] = time.sleep) -> str:
    """Make ``file`` present and verified in the cache; returns what happened ("present, ..." / "downloaded, ...").

    Existing files are re-hashed and checked. Never leaves an unverified file under the final name.
    """
    local = s.local_path(file)
    url = mirror_url(file, mirror)
    with cache_lock(s.cache):
        lock = read_lock(s.cache)
        recorded = lock.get(file.relpath)
        if local.is_file():
            digest, size = sha256_file(local)
            checked = verify(file, weight_id, digest, recorded, local)
            action = "present"
        else:
            attempt = 0
            while True:
                try:
                    digest, size = _download_once(url, local, weight_id, log, timeout)
                    break
                except _Retry as exc:
                    attempt += 1
                    part = _part(local)
                    kept = part.stat().st_size if part.is_file() else 0
                    if attempt > retries:
                        raise LtbenchError(
                            f"download of {url} failed after {attempt} tries: {exc}", path=local, key=weight_id,
                            expected="a reachable URL",
                            hint=(f"{kept} bytes are kept in {part}; run the fetch again to resume" if kept else
                                  "check the network (or --mirror)")) from None
                    log(f"  {exc}; retrying ({attempt}/{retries})")
                    sleep(RETRY_SLEEP_S * attempt)
            part = _part(local)
            try:
                checked = verify(file, weight_id, digest, recorded, part)
            except LtbenchError:
                part.unlink(missing_ok=True)
                _part_meta(local).unlink(missing_ok=True)
                raise
            from ltbench.io import install_file

            install_file(part, local)
            _part_meta(local).unlink(missing_ok=True)
            action = "downloaded"
        if recorded is None:
            lock[file.relpath] = {
                "url": file.url, "sha256": digest, "size": size,
                "first_fetched": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
                "checked": checked,
            }
            write_lock(s.cache, lock)
    return f"{action}, verified: {checked}"
