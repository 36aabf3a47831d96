"""Write, read and validate result records and failure notes.

A record (``results/records/<run_id>/<view_id>.json``)::

    {"schema": 1, "run_id": str, "view_id": str, "seed": int, "scale": "smoke" | "paper",
     "framework": str, "dataset": str, "status": "ok",
     "metrics": {"segm.AP": 21.93, ...},          # AP points, unrounded, -1 where undefined
     "config": {...run config...}, "view": {...view config...},
     "config_hash": sha256 hex of the canonical JSON of {"run": config without id, "view": view},
     "run_id_verified": bool,                    # the id's hash8 matches the config (see CONTRACTS.md)
     "train": {...the adapter's done.json...} | null,
     "provenance": {...ltbench.store.provenance.collect()...}}

A failure note (``results/failures/<run_id>/<stage>[-<view_id>].json``) says why a stage failed, so a
table can show "failed (reason)" instead of "pending". A record always wins over a failure note.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltbench import io, paths
from ltbench.errors import LtbenchError

log = logging.getLogger(__name__)

RECORD_SCHEMA_VERSION = 1
# Run and view ids become path components: keep them filename-safe (no separators, no leading dot).
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")
REQUIRED_KEYS = ("run_id", "view_id", "metrics", "config", "config_hash", "provenance")
STAGES = ("train", "predict", "evaluate", "record")


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace: the text that config hashes are computed over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def config_hash(run_config: dict[str, Any], view_config: dict[str, Any] | None = None) -> str:
    """sha256 (hex) over the canonical JSON of ``{"run": run config without "id", "view": view config}``."""
    run = {k: v for k, v in run_config.items() if k != "id"}
    return hashlib.sha256(canonical_json({"run": run, "view": view_config}).encode("utf-8")).hexdigest()


def run_id_matches(run_config: dict[str, Any]) -> bool:
    """Whether ``run_config["id"]`` ends with the first 8 hex digits of sha256(canonical config w/o id)."""
    run_id = str(run_config.get("id", ""))
    body = {k: v for k, v in run_config.items() if k != "id"}
    digest = hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()[:8]
    return run_id.endswith("-" + digest) or run_id == digest


def check_id(value: object, what: str, *, path: str | Path | None = None) -> str:
    if not isinstance(value, str) or not SAFE_ID.match(value):
        raise LtbenchError(
            f"{what} {value!r} is not a filename-safe id",
            path=path,
            key=what,
            expected="letters, digits and . _ + = - (not starting with . or -)",
        )
    return value


def record_path(run_id: str, view_id: str, results_dir: str | Path | None = None) -> Path:
    root = paths.results_dir(results_dir)
    return root / "records" / check_id(run_id, "run_id") / f"{check_id(view_id, 'view_id')}.json"


def failure_path(run_id: str, stage: str, view_id: str | None = None, results_dir: str | Path | None = None) -> Path:
    if stage not in STAGES:
        raise LtbenchError(f"unknown stage {stage!r}", key="stage", expected="one of " + ", ".join(STAGES))
    root = paths.results_dir(results_dir)
    name = stage if view_id is None else f"{stage}-{check_id(view_id, 'view_id')}"
    return root / "failures" / check_id(run_id, "run_id") / f"{name}.json"


def make_record(
    run_config: dict[str, Any],
    view_config: dict[str, Any],
    metrics: dict[str, float],
    *,
    train_summary: dict[str, Any] | None = None,
    started: str | None = None,
    ended: str | None = None,
    wall_time_s: float | None = None,
) -> dict[str, Any]:
    """Assemble a record (does not write it). Metrics must be finite numbers keyed by canonical names."""
    from ltbench.store import provenance

    run_id = check_id(run_config.get("id"), "run_id")
    view_id = check_id(view_config.get("id"), "view_id")
    clean_metrics: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise LtbenchError(f"metric {key!r} is {value!r}", key=["metrics", key], expected="a finite number (-1 if undefined)")
        clean_metrics[str(key)] = float(value)
    seed = run_config.get("seed")
    if started is None and train_summary:
        started = train_summary.get("started")
    return {
        "schema": RECORD_SCHEMA_VERSION,
        "run_id": run_id,
        "view_id": view_id,
        "seed": seed,
        "scale": run_config.get("scale"),
        "framework": run_config.get("framework"),
        "dataset": run_config.get("dataset"),
        "status": "ok",
        "metrics": clean_metrics,
        "config": run_config,
        "view": view_config,
        "config_hash": config_hash(run_config, view_config),
        "run_id_verified": run_id_matches(run_config),
        "train": train_summary,
        "provenance": provenance.collect(seed=seed, started=started, ended=ended, wall_time_s=wall_time_s),
    }


def write_record(record: dict[str, Any], results_dir: str | Path | None = None) -> Path:
    """Atomically write ``record`` to ``records/<run_id>/<view_id>.json``; returns the path."""
    problem = validate_record(record)
    if problem:
        raise LtbenchError(f"refusing to write an invalid record: {problem}", expected="a record from make_record()")
    target = record_path(record["run_id"], record["view_id"], results_dir)
    io.write_json(target, record)
    return target


def validate_record(obj: Any) -> str | None:
    """None if ``obj`` looks like a record, else what is wrong with it."""
    if not isinstance(obj, dict):
        return f"expected a JSON object, found {type(obj).__name__}"
    missing = [k for k in REQUIRED_KEYS if k not in obj]
    if missing:
        return "missing key(s) " + ", ".join(missing)
    for key in ("run_id", "view_id"):
        if not isinstance(obj[key], str) or not SAFE_ID.match(obj[key]):
            return f"{key} {obj[key]!r} is not a filename-safe id"
    if not isinstance(obj["metrics"], dict):
        return "metrics is not an object"
    for key, value in obj["metrics"].items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"metrics.{key} is {value!r}, not a number"
    if not isinstance(obj["config"], dict):
        return "config is not an object"
    return None


@dataclass(frozen=True)
class CorruptRecord:
    """A file under ``records/`` that could not be used, and why."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class LoadedRecords:
    records: list[dict[str, Any]] = field(default_factory=list)
    corrupt: list[CorruptRecord] = field(default_factory=list)

    def by_key(self) -> dict[tuple[str, str], dict[str, Any]]:
        return {(r["run_id"], r["view_id"]): r for r in self.records}


def load_records(results_dir: str | Path | None = None) -> LoadedRecords:
    """Every valid record under ``results_dir/records``; corrupt ones are reported (logged) and skipped.

    A record must sit at the path its own ids name: a file copied to the wrong place is corrupt, not
    silently attributed to another run. Temporary files of writers in flight (``.*.tmp``) are ignored.
    """
    root = paths.results_dir(results_dir) / "records"
    loaded = LoadedRecords()
    if not root.is_dir():
        return loaded
    for path in sorted(root.glob("*/*.json")):
        if path.name.startswith("."):
            continue
        obj, problem = read_record(path)
        if problem:
            loaded.corrupt.append(CorruptRecord(path, problem))
            continue
        loaded.records.append(obj)
    for bad in loaded.corrupt:
        log.warning("skipping corrupt result record %s", bad)
    return loaded


def read_record(path: str | Path) -> tuple[dict[str, Any] | None, str | None]:
    """One record file: ``(record, None)``, or ``(None, why it cannot be used)`` ("missing", invalid JSON, a key
    missing, the ids of another place, ...). What ``load_records`` keeps and the workflow's record check use."""
    path = Path(path)
    if not path.is_file():
        return None, "missing"
    try:
        obj = io.read_json(path)
    except LtbenchError as exc:
        return None, exc.message
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"unreadable: {exc}"
    problem = validate_record(obj)
    if problem is None and (path.parent.name, path.stem) != (obj["run_id"], obj["view_id"]):
        problem = f"record names run {obj['run_id']!r} view {obj['view_id']!r} but sits at {path.parent.name}/{path.name}"
    return (None, problem) if problem else (obj, None)


@dataclass(frozen=True)
class Failure:
    run_id: str
    view_id: str | None
    stage: str
    reason: str
    log: str | None
    time: str | None


def write_failure(
    run_id: str,
    stage: str,
    reason: str,
    *,
    view_id: str | None = None,
    log_path: str | Path | None = None,
    results_dir: str | Path | None = None,
) -> Path:
    from ltbench.store.provenance import utc_now

    target = failure_path(run_id, stage, view_id, results_dir)
    io.write_json(
        target,
        {
            "run_id": run_id,
            "view_id": view_id,
            "stage": stage,
            "reason": reason.strip() or "unknown error",
            "log": None if log_path is None else str(log_path),
            "time": utc_now(),
        },
    )
    return target


def clean_reason(line: str) -> str:
    """``ltbench: error: work/<run>: training diverged ...`` -> ``training diverged ...``."""
    line = re.sub(r"^ltbench: error: ", "", line.strip())
    if "/" in line.split(":", 1)[0]:
        line = re.sub(r"^[^\s:]+: (?=\w)", "", line, count=1)
    return line


def reason_from_log(log_path: str | Path, max_chars: int = 160) -> str:
    """The most telling line of a failed job's log: the last error-looking line, else the last line."""
    p = Path(log_path)
    if not p.is_file():
        return f"no log at {p}"
    lines = [ln.strip() for ln in p.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    if not lines:
        return "failed with an empty log"
    pattern = re.compile(r"(error|exception|killed|out of memory|nan|traceback)", re.IGNORECASE)
    errorish = [ln for ln in lines if pattern.search(ln) and not ln.startswith("Traceback")]
    line = clean_reason(errorish[-1] if errorish else lines[-1])
    return line if len(line) <= max_chars else line[: max_chars - 1] + "…"


def load_failures(results_dir: str | Path | None = None) -> list[Failure]:
    root = paths.results_dir(results_dir) / "failures"
    out: list[Failure] = []
    if not root.is_dir():
        return out
    for path in sorted(root.glob("*/*.json")):
        if path.name.startswith("."):
            continue
        try:
            obj = io.read_json(path)
            out.append(
                Failure(
                    run_id=str(obj["run_id"]),
                    view_id=obj.get("view_id"),
                    stage=str(obj["stage"]),
                    reason=clean_reason(str(obj["reason"])),
                    log=obj.get("log"),
                    time=obj.get("time"),
                )
            )
        except (LtbenchError, KeyError, TypeError, OSError) as exc:
            log.warning("skipping unreadable failure note %s: %s", path, exc)
    return out


def clear_failures(run_id: str, view_id: str | None = None, results_dir: str | Path | None = None) -> None:
    """Remove the failure notes that a later success makes stale (train notes of the run; the view's notes)."""
    root = paths.results_dir(results_dir) / "failures" / check_id(run_id, "run_id")
    if not root.is_dir():
        return
    for path in root.glob("*.json"):
        stem = path.stem
        if stem == "train" or (view_id is not None and stem.endswith("-" + view_id)):
            path.unlink(missing_ok=True)
