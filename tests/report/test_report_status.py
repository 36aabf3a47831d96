"""``ltbench status`` on a fabricated half-finished campaign: done, running, stalled, failed and pending runs."""

from __future__ import annotations

import json
import time

import pytest

from ltbench.cli import main
from ltbench.report.run_progress import parse_progress_lines, read_progress
from ltbench.report.status import campaign_status
from ltbench.report.status_model import DONE, FAILED, PENDING, RUNNING, STALLED

from support.report import half_finished_campaign, write_workdir

NOW = 1_800_000_000.0  # a fixed clock: 2027-01-15 08:00 UTC


@pytest.fixture
def campaign(tmp_path):
    return half_finished_campaign(tmp_path, NOW)


def test_every_state_with_its_evidence(campaign):
    status = campaign_status(papers=["pcb"], table="2", scale="smoke", results_dir=campaign["results"],
                             work_dir=campaign["work"], now=NOW)
    runs = status.runs
    assert len(runs) == 16
    assert {r for r in runs if runs[r].state == DONE} == set(campaign["done"])
    assert {r for r in runs if runs[r].state == RUNNING} == set(campaign["running"])
    assert runs[campaign["stalled"]].state == STALLED and runs[campaign["failed"]].state == FAILED
    assert {r for r in runs if runs[r].state == PENDING} == set(campaign["pending"])

    busy = runs[campaign["running"][0]]  # iter 42/60 at 2 s/it, logged 5 s ago: 36 s logged ETA - 5 s
    assert busy.progress.iteration == 42 and busy.progress.max_iterations == 60 and busy.progress.every == 6
    assert busy.eta_s == pytest.approx(31.0) and "iter 42/60 loss=2.5000 2.00s/it · ETA 0:00:31" == busy.detail
    stalled = runs[campaign["stalled"]]
    assert stalled.since == pytest.approx(NOW - 7200)
    assert "stalled since 06:00 UTC (2:00:00 ago): last at iter 24/60" in stalled.detail
    assert "resumes from model_0000020.pth (iter 20)" in stalled.detail
    failed = runs[campaign["failed"]]
    assert failed.reason == "RuntimeError: CUDA out of memory" and failed.stage == "train"
    assert failed.detail == "train failed: RuntimeError: CUDA out of memory"
    assert runs[campaign["done"][0]].wall_s == 240.0

    # cost: done runs in full, a run at iteration 42 of 60 by that fraction of its training
    total = sum(r.hours for r in runs.values())
    spent = sum(runs[r].hours for r in campaign["done"]) + runs[campaign["running"][0]].train_hours * 42 / 60 \
        + runs[campaign["running"][1]].train_hours * 12 / 60 + runs[campaign["stalled"]].train_hours * 24 / 60
    assert status.hours == pytest.approx(total) and status.hours_spent == pytest.approx(spent)
    assert status.hours_left == pytest.approx(total - spent) and status.unit == "CPU-hours"
    assert status.hours_failed == pytest.approx(runs[campaign["failed"]].hours)
    # ETA: what is left at the rate observed since the first run started: the stalled run's files, 2 hours ago
    assert status.started == pytest.approx(NOW - 7200)
    rate = spent / 2.0
    assert status.rate == pytest.approx(rate) and status.eta_s == pytest.approx((total - spent) / rate * 3600)

    [table] = status.tables
    assert table.ref == "pcb/2" and table.state == FAILED
    assert table.counts == {DONE: 6, RUNNING: 2, STALLED: 1, FAILED: 1, PENDING: 6}
    assert table.views_done == 6 and table.views_total == 16


def test_text_and_json_output(campaign, capsys, monkeypatch):
    monkeypatch.setattr(time, "time", lambda: NOW)
    args = ["status", "--paper", "pcb", "--table", "2", "--results-dir", str(campaign["results"]),
            "--work-dir", str(campaign["work"])]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "smoke scale (detected: 10 run directories of the smoke-scale plan)" in text
    assert "Runs: 16 — done 6 · running 2 · stalled 1 · failed 1 · pending 6" in text
    assert "CPU-hours (cost-model estimate):" in text and "ETA: " in text and "at the observed" in text
    assert "pcb 2    failed   16 runs: 2 running, 1 stalled, 1 failed, 6 pending, 6 done · 6/16 records" in text
    order = [line.split()[0] for line in text.split("Runs:\n", 1)[1].splitlines()[1:]]
    assert order == [RUNNING] * 2 + [STALLED] + [FAILED] + [PENDING] * 6 + [DONE] * 6
    assert main(args + ["--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["counts"] == {"done": 6, "running": 2, "stalled": 1, "failed": 1, "pending": 6}
    assert data["now"] == "2027-01-15T08:00:00+00:00" and data["tables"][0]["state"] == "failed"
    failed = next(r for r in data["runs"] if r["state"] == "failed")
    assert failed["reason"] == "RuntimeError: CUDA out of memory" and failed["since"] == "2027-01-15T07:30:10+00:00"


def test_stale_limit_and_a_retry_that_runs_again(campaign):
    kwargs = dict(papers=["pcb"], table="2", scale="smoke", results_dir=campaign["results"], work_dir=campaign["work"])
    # with a 3-hour stale limit the stalled run counts as running again
    status = campaign_status(**kwargs, now=NOW, stale_after=3 * 3600)
    assert status.runs[campaign["stalled"]].state == RUNNING
    # the failed run restarted (its log is newer than the failure note): running, not failed
    write_workdir(campaign["work"], campaign["failed"], iterations=[6, 12], max_iterations=60, mtime=NOW - 2)
    status = campaign_status(**kwargs, now=NOW)
    assert status.runs[campaign["failed"]].state == RUNNING


def test_nothing_active_has_no_eta_but_says_why(campaign):
    status = campaign_status(papers=["pcb"], table="2", scale="smoke", results_dir=campaign["results"],
                             work_dir=campaign["work"], now=NOW + 4 * 3600)
    assert status.counts[RUNNING] == 0 and status.counts[STALLED] == 3 and status.eta_s is None
    assert "no run is active" in status.eta_line() and "resumes from the last checkpoint" in status.eta_line()


def test_trained_run_waiting_for_its_evaluation(campaign):
    results, work = campaign["results"], campaign["work"]
    run_id = campaign["pending"][0]
    write_workdir(work, run_id, iterations=list(range(6, 61, 6)), max_iterations=60, mtime=NOW - 100, done=True)
    status = campaign_status(papers=["pcb"], table="2", scale="smoke", results_dir=results, work_dir=work, now=NOW)
    run = status.runs[run_id]
    assert run.state == PENDING and run.detail == "trained; waiting for predictions · 0/1 views recorded"
    assert run.hours_spent == pytest.approx(run.train_hours)
    log = results / "logs" / run_id / "predict_plain.log"
    log.parent.mkdir(parents=True)
    log.write_text("predicting\n")
    status = campaign_status(papers=["pcb"], table="2", scale="smoke", results_dir=results, work_dir=work,
                             now=log.stat().st_mtime + 1)
    assert status.runs[run_id].state == RUNNING and status.runs[run_id].stage == "predict"


def test_progress_parser_reads_both_log_formats(tmp_path):
    ours = parse_progress_lines(["iter 20/60 loss=3.1 lr=0.002 0.84s/it eta=0:00:34",
                                 "iter 40/60 loss=nan loss_cls=nan lr=0.002 0.80s/it eta=0:00:16"], logged_at=100.0)
    assert (ours.iteration, ours.max_iterations, ours.every, ours.eta_s) == (40, 60, 20, 16.0)
    assert ours.remaining_s(110.0) == 6.0 and ours.remaining_s(200.0) == 0.0
    d2 = parse_progress_lines(["[12/04 02:45:10 d2.utils.events]:  eta: 1 day, 2:03:04  iter: 19  total_loss: 1.234  "
                               "loss_cls: 0.5  time: 0.5012  data_time: 0.01  lr: 0.0002  max_mem: 3000M"],
                              logged_at=0.0, max_iterations=90000)
    assert (d2.iteration, d2.max_iterations, d2.loss, d2.lr, d2.seconds_per_iteration) == (20, 90000, 1.234, 0.0002, 0.5012)
    assert d2.eta_s == 86400 + 2 * 3600 + 3 * 60 + 4
    assert read_progress(tmp_path / "missing.txt") is None


def test_errors_name_the_option(campaign):
    from ltbench.errors import LtbenchError

    with pytest.raises(LtbenchError, match="--table needs exactly one --paper"):
        campaign_status(papers=["pcb", "bags"], table="2", scale="smoke", now=NOW)
    with pytest.raises(LtbenchError, match="no table '99'"):
        campaign_status(papers=["pcb"], table="99", scale="smoke", now=NOW)


def test_a_killed_workflow_leaves_fresh_logs_but_nothing_runs(campaign):
    """Snakemake holds files in .snakemake/locks while it runs: without one, fresh logs are left-overs."""
    kwargs = dict(papers=["pcb"], table="2", scale="smoke", results_dir=campaign["results"], work_dir=campaign["work"])
    locks = campaign["results"].parent / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    status = campaign_status(**kwargs, now=NOW)
    assert status.workflow is False and status.counts[RUNNING] == 0
    killed = status.runs[campaign["running"][0]]
    assert killed.state == STALLED and "(no workflow holds the lock: the job was stopped)" in killed.detail
    assert "resumes from model_0000040.pth (iter 40)" in killed.detail
    (locks / "0.input.lock").write_text("")
    status = campaign_status(**kwargs, now=NOW)
    assert status.workflow is True and {r for r in status.runs if status.runs[r].state == RUNNING} == set(campaign["running"])


def test_a_table_is_done_when_its_own_records_are_even_if_its_runs_serve_other_tables(tmp_path):
    from support.report import fill

    fill(tmp_path / "results", lambda row, seed: {"segm.AP": 20.0})
    status = campaign_status(papers=["pcb"], scale="smoke", results_dir=tmp_path / "results", work_dir=tmp_path / "work",
                             now=NOW)
    tables = {t.ref: t for t in status.tables}
    assert tables["pcb/2"].state == DONE and tables["pcb/2"].counts == {DONE: 16}
    assert tables["pcb/2"].hours_spent == pytest.approx(tables["pcb/2"].hours)
    # Table 1 reads Table 2's Softmax and RFS runs through two more views each (MS and CM calibration)
    assert tables["pcb/1"].views_done == 2 and tables["pcb/1"].views_total == 6 and tables["pcb/1"].state == "partial"
    softmax = next(r for r in status.runs.values() if r.run_id.startswith("v0.5-mask-r50-random-ce-s0-"))
    assert softmax.state == PENDING and softmax.views_done == 1 and softmax.views_total == 3  # campaign-wide: not done
    for table in tables.values():  # nothing runs, failed or stalled: done, partial or pending by the records alone
        expected = DONE if table.views_done == table.views_total else "partial" if table.views_done else PENDING
        assert table.state == expected, table.ref
