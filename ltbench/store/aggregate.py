"""Aggregate records into one pandas table (``results/metrics.parquet``) and query it.

The table is long: one row per (run_id, view_id, seed, metric) with ``value`` unrounded, plus the
columns that a query filters on (scale, framework, dataset, config_hash, git commit/dirty, host, gpu,
wall time). Long form keeps every metric key without a schema change when a paper adds one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ltbench import io, paths
from ltbench.store.records import LoadedRecords, load_records

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = [
    "run_id",
    "view_id",
    "seed",
    "scale",
    "framework",
    "dataset",
    "metric",
    "value",
    "config_hash",
    "git_commit",
    "git_dirty",
    "host",
    "gpu",
    "wall_time_s",
    "recorded",
]


def _rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    prov = record.get("provenance") or {}
    git = prov.get("git") or {}
    base = {
        "run_id": record["run_id"],
        "view_id": record["view_id"],
        "seed": record.get("seed"),
        "scale": record.get("scale"),
        "framework": record.get("framework"),
        "dataset": record.get("dataset"),
        "config_hash": record.get("config_hash"),
        "git_commit": git.get("commit"),
        "git_dirty": git.get("dirty"),
        "host": prov.get("host"),
        "gpu": ", ".join(prov.get("gpu") or []) or None,
        "wall_time_s": prov.get("wall_time_s"),
        "recorded": prov.get("recorded"),
    }
    return [{**base, "metric": key, "value": float(value)} for key, value in sorted(record["metrics"].items())]


def to_frame(loaded: LoadedRecords) -> pd.DataFrame:
    import pandas as pd

    rows = [row for record in loaded.records for row in _rows(record)]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["value"] = frame["value"].astype("float64")
    frame["seed"] = frame["seed"].astype("Int64")
    frame["wall_time_s"] = frame["wall_time_s"].astype("float64")
    frame["git_dirty"] = frame["git_dirty"].astype("boolean")
    return frame.sort_values(["run_id", "view_id", "seed", "metric"], kind="stable").reset_index(drop=True)


def parquet_path(results_dir: str | Path | None = None) -> Path:
    return paths.results_dir(results_dir) / "metrics.parquet"


def write_parquet(results_dir: str | Path | None = None, out: str | Path | None = None) -> tuple[Path, LoadedRecords]:
    """Aggregate every valid record under ``results_dir`` into ``out`` (atomic). Returns (path, loaded)."""
    loaded = load_records(results_dir)
    frame = to_frame(loaded)
    target = Path(out) if out is not None else parquet_path(results_dir)
    with io.atomic_open(target, "wb") as handle:
        frame.to_parquet(handle, index=False)
    return target, loaded


def load_frame(results_dir: str | Path | None = None, *, note=None) -> tuple[pd.DataFrame, LoadedRecords | None]:
    """The metrics table: from ``metrics.parquet`` when it is newer than every record, else re-aggregated.

    The records are the truth and the parquet file only a cache of them: a cache that cannot be read (truncated,
    not parquet, other columns) is rebuilt from the records, and ``note`` (default: print to stderr) is told why.
    Returns the frame and, when it was re-aggregated, the loaded records (with any corrupt ones).
    """
    import pandas as pd

    target = parquet_path(results_dir)
    records_dir = target.parent / "records"
    if target.is_file():
        newest = max((p.stat().st_mtime for p in records_dir.glob("*/*.json")), default=0.0)
        if records_dir.is_dir():
            newest = max(newest, max((d.stat().st_mtime for d in records_dir.iterdir()), default=0.0))
        if target.stat().st_mtime >= newest:
            problem = None
            try:
                frame = pd.read_parquet(target)
            except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ValueError, ... for a damaged file
                problem = f"{type(exc).__name__}: {exc}"
            else:
                missing = [c for c in COLUMNS if c not in frame.columns]
                if not missing:
                    return frame, None
                problem = "no column " + ", ".join(missing)
            _note(note, f"note: {target} is unreadable ({_first_line(problem)}); rebuilding it from {records_dir}")
            try:
                _, loaded = write_parquet(results_dir)
            except OSError as exc:  # a read-only copy of someone's results: answer from the records all the same
                _note(note, f"note: could not rewrite {target}: {exc}")
                loaded = load_records(results_dir)
            return to_frame(loaded), loaded
    loaded = load_records(results_dir)
    return to_frame(loaded), loaded


def _first_line(text: str, limit: int = 200) -> str:
    line = (text.strip().splitlines() or [""])[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _note(note, text: str) -> None:
    if note is not None:
        note(text)
        return
    import sys

    print(text, file=sys.stderr, flush=True)


def query(
    frame: pd.DataFrame, *, run_id: str | None = None, pairs: set[tuple[str, str]] | None = None
) -> pd.DataFrame:
    """Filter by run id (prefix match, so a readable slug without its hash works) and/or (run, view) pairs."""
    out = frame
    if run_id is not None:
        out = out[(out["run_id"] == run_id) | out["run_id"].str.startswith(run_id)]
    if pairs is not None:
        keys = list(zip(out["run_id"], out["view_id"]))
        out = out[[k in pairs for k in keys]]
    return out


def wide(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, view, seed), one column per metric."""
    if frame.empty:
        return frame
    return frame.pivot_table(index=["run_id", "view_id", "seed"], columns="metric", values="value", aggfunc="first")


KEY_COLUMNS = ["run_id", "view_id", "seed"]


def select_columns(frame: pd.DataFrame, spec: str | None, *, long: pd.DataFrame | None = None) -> pd.DataFrame:
    """The columns named in ``spec`` (comma-separated; shell-style patterns such as ``segm.AP*`` allowed), in order.

    ``frame``: the table as shown (wide: run_id, view_id, seed + one column per metric; or long). ``long``: the
    long frame a wide one came from: its per-record columns (framework, host, wall_time_s, ...) can be named too.
    The key columns run_id, view_id, seed lead unless ``spec`` names one of them itself. Unknown names are an
    error that lists the available columns.
    """
    import fnmatch

    from ltbench.errors import LtbenchError, did_you_mean

    if spec is None:
        return frame
    wanted = [name.strip() for name in spec.split(",") if name.strip()]
    if not wanted:
        raise LtbenchError("--columns is empty", key="--columns", expected="comma-separated column names, e.g. segm.AP,bbox.AP")
    extra = [c for c in (long.columns if long is not None else []) if c not in frame.columns and c not in ("metric", "value")]
    available = [str(c) for c in frame.columns] + extra
    chosen: list[str] = []
    for name in wanted:
        matches = fnmatch.filter(available, name) if any(ch in name for ch in "*?[") else [name] if name in available else []
        if not matches:
            raise LtbenchError(f"no column {name!r}{did_you_mean(name, available)}", key="--columns",
                               expected="one of " + ", ".join(available))
        chosen += [m for m in matches if m not in chosen]
    if not any(c in KEY_COLUMNS for c in chosen):
        chosen = [c for c in KEY_COLUMNS if c in available] + chosen
    out = frame
    needed = [c for c in chosen if c in extra]
    if needed:
        per_record = long.drop_duplicates(KEY_COLUMNS)[KEY_COLUMNS + needed]
        out = out.merge(per_record, on=KEY_COLUMNS, how="left")
    return out[chosen]
