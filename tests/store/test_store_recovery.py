"""The records are the one truth: a damaged cache is rebuilt from them, a damaged record says so where it is shown."""

from __future__ import annotations

import os
import subprocess
import sys

from ltbench import paths
from ltbench.store import make_record, write_record
from ltbench.store.aggregate import load_frame, write_parquet
from support.store import VIEW, fake_run


def _store(root):
    run = fake_run(0)
    write_record(make_record(run, VIEW, {"segm.AP": 21.9, "segm.APr": 4.6}), root)
    write_parquet(root)
    return run


def _results(root, *args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(paths.REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "ltbench", "results", "--results-dir", str(root), *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_a_truncated_metrics_parquet_is_rebuilt_from_the_records_with_a_note(tmp_path):
    """Reproduction (issue 15, 4): a truncated results/metrics.parquet made every `ltbench results` call end in
    a raw pyarrow traceback. Now the cache is rebuilt from the records, with a note on stderr."""
    run = _store(tmp_path)
    cache = tmp_path / "metrics.parquet"
    cache.write_bytes(cache.read_bytes()[:100])  # truncated, and still newer than every record
    proc = _results(tmp_path, "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"{cache} is unreadable" in proc.stderr and "rebuilding it from" in proc.stderr
    assert run["id"] in proc.stdout and "21.9" in proc.stdout
    import pandas as pd

    assert len(pd.read_parquet(cache)) == 2  # the cache itself is whole again
    again = _results(tmp_path, "--format", "csv")
    assert again.returncode == 0 and "unreadable" not in again.stderr


def test_load_frame_rebuilds_a_cache_that_is_not_parquet_or_lacks_columns(tmp_path):
    _store(tmp_path)
    notes = []
    (tmp_path / "metrics.parquet").write_text("not parquet at all")
    frame, loaded = load_frame(tmp_path, note=notes.append)
    assert len(frame) == 2 and loaded is not None and "unreadable" in notes[-1]
    import pandas as pd

    pd.DataFrame({"run_id": ["x"]}).to_parquet(tmp_path / "metrics.parquet")
    frame, _ = load_frame(tmp_path, note=notes.append)
    assert len(frame) == 2 and "no column view_id" in notes[-1]
    frame, loaded = load_frame(tmp_path, note=notes.append)
    assert loaded is None and len(frame) == 2 and len(notes) == 2  # rebuilt: read as the cache again


def test_a_corrupt_record_renders_as_corrupt_with_its_path_not_as_pending(tmp_path):
    """Reproduction (issue 15, 2): a truncated record made its cells say "pending". Every rendered cell comes
    from a record that exists and parses, or says why not: here "corrupt record" with the file's path."""
    from ltbench.plan import build_plan
    from ltbench.render.tables import render_table

    plan = build_plan(targets=["tables/pcb_table5.md"], scale="smoke")
    views = {(v.run_id, v.view_id): v.view_config for v in plan.views}
    for (run_id, view_id), view in views.items():
        write_record(make_record(plan.runs[run_id].config, view, {"segm.AP": 20.0, "segm.APr": 10.0, "segm.APc": 20.0,
                                                                  "segm.APf": 30.0, "bbox.AP": 21.0}), tmp_path)
    broken_run, broken_view = sorted(views)[0]
    record = tmp_path / "records" / broken_run / f"{broken_view}.json"
    record.write_bytes(record.read_bytes()[:50])
    text = render_table("pcb", "5", scale="smoke", results_dir=tmp_path).markdown
    assert "pending" not in text.split("**Summary:**")[0]
    assert "corrupt record" in text and str(record) in text
    assert "(0 pending, 5 failed)" in text


def test_provenance_names_the_machine_that_trained_not_the_one_that_recorded():
    from ltbench.store.provenance import training_machine

    record = {"provenance": {"host": "login1", "gpu": []},
              "train": {"training": {"host": "gpu-node-7", "device": "cuda", "device_names": ["NVIDIA H100"] * 2}}}
    assert training_machine(record) == ("gpu-node-7", ["NVIDIA H100", "NVIDIA H100"])
    assert training_machine({"provenance": {"host": "old", "gpu": []}}) == ("old", ["CPU"])
    assert training_machine({"provenance": {}, "train": {"training": {"host": "vm", "device": "cpu"}}}) == ("vm", ["CPU"])
    on_cpu = {"host": "vm", "device": "cpu", "cpu_capability": "AVX512"}
    assert training_machine({"provenance": {}, "train": {"training": on_cpu}}) == ("vm", ["CPU (AVX512)"])
