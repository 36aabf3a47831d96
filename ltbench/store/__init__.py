"""The results store: one JSON record per (run, view, seed), written atomically, plus aggregation.

Layout under a results directory (default ``<repo>/results``)::

    records/<run_id>/<view_id>.json     one record: metrics, resolved config + hash, provenance
    failures/<run_id>/<stage>[-<view_id>].json   why a stage failed (rendered as "failed (reason)")
    metrics.parquet                     every record, one row per (run, view, seed, metric)

Records are written with ``ltbench.io`` (temp file + fsync + rename), so hundreds of cluster jobs never
contend for one file and a killed writer never leaves a half record under its final name.
"""

from ltbench.store.records import (
    CorruptRecord,
    Failure,
    LoadedRecords,
    config_hash,
    failure_path,
    load_failures,
    load_records,
    make_record,
    record_path,
    write_failure,
    write_record,
)

__all__ = [
    "CorruptRecord",
    "Failure",
    "LoadedRecords",
    "config_hash",
    "failure_path",
    "load_failures",
    "load_records",
    "make_record",
    "record_path",
    "write_failure",
    "write_record",
]
