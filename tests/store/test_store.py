"""Results store: records are atomic, concurrent writers lose nothing, corrupt records are skipped."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from ltbench.errors import LtbenchError
from support.store import VIEW, fake_run
from ltbench.store import load_records, make_record, record_path, write_record
from ltbench.store.records import (
    clear_failures,
    config_hash,
    load_failures,
    reason_from_log,
    run_id_matches,
    write_failure,
)


def test_record_round_trip_has_metrics_config_hash_and_provenance(tmp_path):
    run = fake_run()
    rec = make_record(run, VIEW, {"segm.AP": 21.94, "PwB": -1}, train_summary={"started": "t0"}, wall_time_s=3.5)
    path = write_record(rec, tmp_path)
    assert path == tmp_path / "records" / run["id"] / "plain.json"
    loaded = load_records(tmp_path)
    assert loaded.corrupt == [] and len(loaded.records) == 1
    got = loaded.records[0]
    assert got["metrics"] == {"segm.AP": 21.94, "PwB": -1.0}
    assert got["config_hash"] == config_hash(run, VIEW) and len(got["config_hash"]) == 64
    assert got["run_id_verified"] is True
    prov = got["provenance"]
    assert set(prov) >= {"git", "versions", "host", "gpu", "seed", "started", "ended", "wall_time_s"}
    assert prov["started"] == "t0" and prov["wall_time_s"] == 3.5 and prov["seed"] == 0
    assert set(prov["git"]) == {"commit", "dirty"}
    assert prov["versions"]["torch"] is not None


def test_config_hash_ignores_id_but_not_content():
    a, b = fake_run(0), fake_run(1)
    assert config_hash(a, VIEW) == config_hash({**a, "id": "other"}, VIEW)
    assert config_hash(a, VIEW) != config_hash(b, VIEW)
    assert config_hash(a, VIEW) != config_hash(a, {"id": "cm-val", "name": "cm_calibration"})
    assert not run_id_matches({**a, "id": "softmax-00000000"})


@pytest.mark.parametrize("bad", ["../x", "", ".hidden", "a/b", None])
def test_unsafe_ids_are_refused(tmp_path, bad):
    with pytest.raises(LtbenchError, match="filename-safe"):
        record_path("run-1", bad, tmp_path) if bad is not None else make_record({"id": bad}, VIEW, {})


def test_non_finite_metric_is_refused():
    with pytest.raises(LtbenchError, match="metrics.segm.AP"):
        make_record(fake_run(), VIEW, {"segm.AP": float("nan")})


def _write_many(args):
    results_dir, record, i = args
    record = dict(record, run_id=f"{record['run_id']}-w{i:02d}")
    write_record(record, results_dir)
    # Every writer also rewrites one shared record: the last rename wins, and it is always whole.
    write_record(dict(record, run_id="shared-run", metrics={"segm.AP": float(i)}), results_dir)
    return i


def test_64_concurrent_writer_processes_lose_nothing(tmp_path):
    base = make_record(fake_run(), VIEW, {"segm.AP": 1.0, "bbox.AP": 2.0})
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(16) as pool:
        done = pool.map(_write_many, [(tmp_path, base, i) for i in range(64)], chunksize=1)
    assert sorted(done) == list(range(64))
    loaded = load_records(tmp_path)
    assert loaded.corrupt == []
    ids = {r["run_id"] for r in loaded.records}
    assert ids == {f"{base['run_id']}-w{i:02d}" for i in range(64)} | {"shared-run"}
    shared = next(r for r in loaded.records if r["run_id"] == "shared-run")
    assert shared["metrics"]["segm.AP"] in {float(i) for i in range(64)}
    # No temporary file is left behind by any writer.
    assert not [p for p in (tmp_path / "records").rglob("*") if p.name.startswith(".")]


def test_processes_really_run_concurrently(tmp_path):
    """64 separate OS processes started together (not a pool): same guarantee."""
    script = textwrap.dedent(
        f"""
        import sys, json
        sys.path.insert(0, {str(os.getcwd())!r})
        from ltbench.store import write_record
        rec = json.loads(sys.stdin.read())
        for k in range(5):
            write_record(dict(rec, view_id=f"v{{k}}"), sys.argv[1])
        """
    )
    base = make_record(fake_run(), VIEW, {"segm.AP": 1.0})
    procs = []
    for i in range(64):
        rec = dict(base, run_id=f"proc-{i:02d}")
        p = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdin=subprocess.PIPE, text=True)
        p.stdin.write(json.dumps(rec))
        p.stdin.close()
        procs.append(p)
    assert [p.wait(timeout=120) for p in procs] == [0] * 64
    loaded = load_records(tmp_path)
    assert loaded.corrupt == [] and len(loaded.records) == 64 * 5


KILLED_WRITER = textwrap.dedent(
    """
    import json, sys, time
    import ltbench.io
    from ltbench.store import write_record

    real_dump = json.dump

    def slow_dump(obj, handle, **kw):
        text = json.dumps(obj, **kw)
        handle.write(text[: len(text) // 2])
        handle.flush()
        print("half-written", flush=True)
        time.sleep(60)  # killed here
        handle.write(text[len(text) // 2 :])

    ltbench.io.json.dump = slow_dump
    write_record(json.loads(sys.argv[2]), sys.argv[1])
    """
)


def test_writer_killed_mid_write_leaves_no_partial_record(tmp_path):
    rec = make_record(fake_run(), VIEW, {"segm.AP": 1.0})
    old = dict(rec, metrics={"segm.AP": 0.5})
    write_record(old, tmp_path)  # a previous complete record must survive the crash unchanged
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path), json.dumps(rec)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.getcwd(),
    )
    assert proc.stdout.readline().strip() == "half-written"
    # The half-written bytes really are on disk, in the temporary file.
    temps = [p for p in (tmp_path / "records").rglob(".*.tmp")]
    assert len(temps) == 1 and temps[0].stat().st_size > 0
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    loaded = load_records(tmp_path)
    assert loaded.corrupt == []
    assert [r["metrics"] for r in loaded.records] == [{"segm.AP": 0.5}]


def test_corrupt_records_are_reported_with_path_and_skipped(tmp_path, caplog):
    good = make_record(fake_run(), VIEW, {"segm.AP": 1.0})
    write_record(good, tmp_path)
    rdir = tmp_path / "records" / "broken-run"
    rdir.mkdir(parents=True)
    (rdir / "plain.json").write_text('{"run_id": "broken-run", "metrics": {"segm.AP": 1')  # truncated
    (rdir / "empty.json").write_text("")
    (rdir / "nometrics.json").write_text(json.dumps({"run_id": "broken-run", "view_id": "nometrics"}))
    moved = dict(good, view_id="elsewhere")  # valid content at the wrong path
    (rdir / "wrongplace.json").write_text(json.dumps(moved))
    (rdir / "strmetric.json").write_text(json.dumps(dict(good, run_id="broken-run", view_id="strmetric", metrics={"segm.AP": "21.9"})))
    with caplog.at_level("WARNING"):
        loaded = load_records(tmp_path)
    assert [r["run_id"] for r in loaded.records] == [good["run_id"]]
    reasons = {c.path.name: c.reason for c in loaded.corrupt}
    assert set(reasons) == {"plain.json", "empty.json", "nometrics.json", "wrongplace.json", "strmetric.json"}
    assert "truncated" in reasons["plain.json"]
    assert "empty" in reasons["empty.json"]
    assert "missing key" in reasons["nometrics.json"]
    assert "sits at" in reasons["wrongplace.json"]
    assert "not a number" in reasons["strmetric.json"]
    assert str(rdir / "plain.json") in caplog.text


def test_failure_notes_round_trip_and_clear(tmp_path):
    logf = tmp_path / "train.log"
    logf.write_text("iter 1 loss 3.2\nTraceback (most recent call last):\nRuntimeError: CUDA out of memory\n")
    assert reason_from_log(logf) == "RuntimeError: CUDA out of memory"
    ours = tmp_path / "ours.log"
    ours.write_text("iter 12/120 loss=4.8\nltbench: error: work/run-a: training diverged at iteration 23: loss is nan; expected a finite loss\n")
    assert reason_from_log(ours) == "training diverged at iteration 23: loss is nan; expected a finite loss"
    write_failure("run-a", "train", reason_from_log(logf), log_path=logf, results_dir=tmp_path)
    write_failure("run-a", "predict", "boom", view_id="cm-val", results_dir=tmp_path)
    fails = sorted(load_failures(tmp_path), key=lambda f: f.stage)
    assert [(f.stage, f.view_id, f.reason) for f in fails] == [
        ("predict", "cm-val", "boom"),
        ("train", None, "RuntimeError: CUDA out of memory"),
    ]
    clear_failures("run-a", "cm-val", results_dir=tmp_path)
    assert load_failures(tmp_path) == []
    with pytest.raises(LtbenchError, match="unknown stage"):
        write_failure("run-a", "bake", "x", results_dir=tmp_path)
