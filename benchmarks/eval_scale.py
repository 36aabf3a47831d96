"""Time and peak memory of both evaluators as the val set grows: the figures behind paper-scale resources.

For each N in ``--images`` an LVIS-v1-like synthetic set is built once (ltbench.evaluation.synthetic:
1,203 categories in LVIS v1's r/c/f proportions with federated lists, 1-24 objects per 480x640 image,
300 detections per image with RLE masks plus 30 below LVIS' cap; detections generated and written
500 images at a time so that building 20,000 images needs little memory), then
``ltbench evaluate --iou-types bbox,segm`` runs as a child process with ``--evaluator lvis-api`` and
``--evaluator fast`` (once per ``--fast-workers`` value), as the paper-scale workflow runs it.

Measured per run:

- wall and CPU seconds (user + system of the CLI process and its forked workers: ``os.wait4``);
- peak PSS of the process tree: every ``--sample-s`` the benchmark sums ``Pss`` of
  ``/proc/<pid>/smaps_rollup`` over every process of the run's session (the CLI and its forked
  workers). PSS charges a page shared copy-on-write by k processes 1/k to each, so the sum is the
  memory the run really holds, which is what a cgroup-enforced SLURM limit charges
  (``ConstrainRAMSpace``; page cache aside, which the kernel reclaims before it kills). Sampled, so a
  peak shorter than the interval can be missed; the next figure bounds that for a single process;
- peak RSS of the largest single process (exact: the kernel's high-water mark via ``os.wait4``, the
  figure ``getrusage(RUSAGE_CHILDREN)`` reports);
- peak of the RSS summed over the tree (sampled): what a non-cgroup SLURM limit
  (``jobacct_gather/linux``) counts; it counts pages shared by the forked workers once per worker.

and, per N, the largest |difference| between the evaluators over every metric (AP points).

Memory guard (there may be no swap): before a run, the same evaluator's peak extrapolated from the
smaller sizes (plus 10%) must fit in MemAvailable minus ``--reserve-mb``; during a run, the run is
killed when MemAvailable falls below ``--reserve-mb``. Either way the table says where it stopped.

    .venv/bin/python benchmarks/eval_scale.py                                # 1,000 / 2,500 / 5,000 images
    .venv/bin/python benchmarks/eval_scale.py --images 1000,2500,5000,10000,20000 --fast-workers 1,2

The least-squares lines printed at the end (seconds and MB against images) are the constants of
``ltbench.evaluation.resources``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MB = 1024 * 1024
CHUNK_IMAGES = 500


# --------------------------------------------------------------------------------------------------
# Data.
# --------------------------------------------------------------------------------------------------
def build(workdir: Path, images: int, categories: int, per_image: int, seed: int) -> tuple[Path, Path]:
    """Ground truth and detections files for ``images`` images (built once, reused afterwards)."""
    from ltbench.evaluation.synthetic import make_detections, make_ground_truth
    from ltbench.io import write_json

    workdir.mkdir(parents=True, exist_ok=True)
    tag = f"i{images}-c{categories}-d{per_image}-s{seed}-chunked"
    gt_path, dets_path = workdir / f"gt-{tag}.json", workdir / f"dets-{tag}.json"
    if gt_path.is_file() and dets_path.is_file():
        return gt_path, dets_path
    start = time.perf_counter()
    gt = make_ground_truth(images, categories, seed=seed, max_objects=24, image_size=(480, 640))
    by_image: dict[int, list[dict]] = {}
    for ann in gt["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    tmp = dets_path.with_suffix(".part")
    count = 0
    with tmp.open("w") as handle:
        handle.write("[")
        for k in range(0, images, CHUNK_IMAGES):
            chunk = gt["images"][k:k + CHUNK_IMAGES]
            sub = {"images": chunk, "categories": gt["categories"],
                   "annotations": [a for img in chunk for a in by_image.get(img["id"], [])]}
            dets = make_detections(sub, per_image, seed=(seed + 1) * 1_000_003 + k, extra_per_image=per_image // 10)
            if dets:
                handle.write(("," if count else "") + json.dumps(dets, separators=(",", ":"))[1:-1])
            count += len(dets)
        handle.write("]")
    tmp.replace(dets_path)
    write_json(gt_path, gt, indent=None)
    print(f"built {images} images, {len(gt['annotations'])} objects, {count} detections "
          f"({dets_path.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - start:.0f} s", flush=True)
    return gt_path, dets_path


# --------------------------------------------------------------------------------------------------
# Measuring a run.
# --------------------------------------------------------------------------------------------------
def mem_available_mb() -> float:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/meminfo has no MemAvailable (Linux >= 3.14 needed)")


def session_pids(sid: int) -> list[int]:
    """Processes whose session id is ``sid`` (the CLI started in its own session, and its forked workers)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[3]) == sid:  # state ppid pgrp session ...
            pids.append(int(entry))
    return pids


def rss_pss_kb(pid: int) -> tuple[int, int]:
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def run_cli(evaluator: str, gt: Path, dets: Path, out: Path, workers: int | None, sample_s: float,
            reserve_mb: float) -> dict:
    """One ``ltbench evaluate`` run, measured (see the module docstring)."""
    cmd = [sys.executable, "-m", "ltbench", "evaluate", "--gt", str(gt), "--detections", str(dets),
           "--iou-types", "bbox,segm", "--evaluator", evaluator, "--out", str(out)]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    out.unlink(missing_ok=True)
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True,
                            stdout=subprocess.DEVNULL)
    peak_pss = peak_rss_sum = 0
    most_procs = 0
    min_avail = mem_available_mb()
    stopped = None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        pids = session_pids(proc.pid)
        sizes = [rss_pss_kb(p) for p in pids]
        peak_rss_sum = max(peak_rss_sum, sum(r for r, _ in sizes))
        peak_pss = max(peak_pss, sum(p for _, p in sizes))
        most_procs = max(most_procs, len(pids))
        avail = mem_available_mb()
        min_avail = min(min_avail, avail)
        if avail < reserve_mb and stopped is None:
            stopped = f"killed by the memory guard: MemAvailable {avail:.0f} MB < {reserve_mb:.0f} MB"
            os.killpg(proc.pid, signal.SIGKILL)  # the session this benchmark started
        time.sleep(sample_s)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if stopped is None and proc.returncode != 0:
        stopped = f"exit status {proc.returncode}"
    return {
        "evaluator": evaluator, "workers": workers, "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_pss_mb": peak_pss / 1024, "peak_rss_sum_mb": peak_rss_sum / 1024,
        "max_proc_rss_mb": usage.ru_maxrss / 1024, "procs": most_procs,
        "min_available_mb": min_avail, "load_start": load_start, "load_end": os.getloadavg()[0],
        "stopped": stopped, "metrics": None if stopped else json.loads(out.read_text()),
        # The sampled PSS can miss a short peak; the exact peak of the largest process bounds it from below.
        "peak_mb": max(peak_pss, usage.ru_maxrss) / 1024,
    }


def max_diff(ref: dict, other: dict) -> tuple[float, str]:
    if set(ref) != set(other):
        return float("inf"), "metric keys differ: " + ",".join(sorted(set(ref) ^ set(other)))
    key = max(ref, key=lambda k: abs(ref[k] - other[k]))
    return abs(ref[key] - other[key]), key


def fit_power(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least squares in log-log: y = c * (x / 1000) ** p; returns (c, p)."""
    import math

    a, p = fit_line([math.log(x / 1000) for x in xs], [math.log(y) for y in ys])
    return math.exp(a), p


def fit_line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least squares y = a + b*x; returns (a, b)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    return my - b * mx, b


# --------------------------------------------------------------------------------------------------
# Main.
# --------------------------------------------------------------------------------------------------
def label(run: dict) -> str:
    name = "lvis-api" if run["evaluator"] == "lvis-api" else f"fast w={run['workers']}"
    return f"{name} {run['tag']}" if run.get("tag") else name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default="1000,2500,5000", help="comma-separated val-set sizes, ascending")
    ap.add_argument("--categories", type=int, default=1203)
    ap.add_argument("--dets-per-image", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fast-workers", default="2", help="comma-separated --workers values for the fast path")
    ap.add_argument("--skip-lvis-api", action="store_true")
    ap.add_argument("--sample-s", type=float, default=0.25, help="memory sampling interval")
    ap.add_argument("--reserve-mb", type=float, default=2500, help="MemAvailable kept free (the guard)")
    ap.add_argument("--workdir", type=Path, default=None, help="default: $LTBENCH_DATA/eval_scale")
    ap.add_argument("--json", type=Path, default=None, help="also write every measurement here")
    ap.add_argument("--tag", default="", help="a label for this run's rows (e.g. the code version measured)")
    ap.add_argument("--report", type=Path, nargs="+", default=None,
                    help="run nothing: print one table of these --json files (the LVIS API rows of one file are the "
                         "reference of every fast row of the same size: same synthetic files, same metrics)")
    args = ap.parse_args(argv)
    if args.report is not None:
        rows = [row for path in args.report for row in json.loads(path.read_text())]
        print_table(rows, sorted({r["images"] for r in rows}), args)
        return 0 if all_equal(rows, sorted({r["images"] for r in rows})) else 1
    sizes = sorted(int(s) for s in args.images.split(","))
    fast_workers = [int(w) for w in args.fast_workers.split(",") if w]
    if args.workdir is None:
        from ltbench.paths import data_root

        args.workdir = data_root() / "eval_scale"  # data/ is never versioned

    configs = [("fast", w) for w in fast_workers] + ([] if args.skip_lvis_api else [("lvis-api", None)])
    peaks: dict[tuple[str, int | None], list[tuple[int, float]]] = {}  # (images, peak MB) of finished runs
    stopped_configs: dict[tuple[str, int | None], str] = {}
    rows: list[dict] = []
    for n in sizes:
        gt, dets = build(args.workdir, n, args.categories, args.dets_per_image, args.seed)
        for evaluator, workers in configs:
            key = (evaluator, workers)
            if key in stopped_configs:
                rows.append({"images": n, "evaluator": evaluator, "workers": workers, "tag": args.tag,
                             "stopped": "not run: stopped at a smaller size"})
                continue
            if key in peaks:
                predicted, avail = predict_peak_mb(peaks[key], n), mem_available_mb()
                if predicted > avail - args.reserve_mb:
                    reason = (f"not run: predicted peak {predicted / 1024:.1f} GB > MemAvailable {avail / 1024:.1f} GB "
                              f"- reserve {args.reserve_mb / 1024:.1f} GB")
                    stopped_configs[key] = reason
                    rows.append({"images": n, "evaluator": evaluator, "workers": workers, "tag": args.tag,
                                 "stopped": reason})
                    print(f"{n} images, {label(rows[-1])}: {reason}", flush=True)
                    continue
            out = args.workdir / f"metrics-{n}-{evaluator}-{workers}.json"
            run = run_cli(evaluator, gt, dets, out, workers, args.sample_s, args.reserve_mb)
            run["images"], run["tag"] = n, args.tag
            rows.append(run)
            print(f"{n} images, {label(run)}: {run['wall_s']:.1f} s wall, {run['cpu_s']:.1f} s CPU, peak PSS "
                  f"{run['peak_pss_mb']:.0f} MB, max process RSS {run['max_proc_rss_mb']:.0f} MB, peak {run['peak_mb']:.0f} MB, "
                  f"load {run['load_start']:.1f}->{run['load_end']:.1f}"
                  + (f"  [{run['stopped']}]" if run["stopped"] else ""), flush=True)
            if run["stopped"]:
                stopped_configs[key] = run["stopped"]
            else:
                peaks.setdefault(key, []).append((n, run["peak_mb"]))
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))

    print_table(rows, sizes, args)
    return 0 if all_equal(rows, sizes) else 1


def predict_peak_mb(done: list[tuple[int, float]], n: int) -> float:
    """The peak at ``n`` images, extrapolated: the line through the last two sizes (proportional from one),
    plus 10%."""
    if len(done) == 1:
        return done[0][1] * n / done[0][0] * 1.1
    (n0, m0), (n1, m1) = done[-2:]
    return (m1 + (m1 - m0) / (n1 - n0) * (n - n1)) * 1.1


def all_equal(rows: list[dict], sizes: list[int]) -> bool:
    for n in sizes:
        ref = [r for r in rows if r["images"] == n and r["evaluator"] == "lvis-api" and r.get("metrics")]
        for r in rows:
            if r["images"] == n and r["evaluator"] == "fast" and r.get("metrics") and ref:
                if max_diff(ref[0]["metrics"], r["metrics"])[0] > 1e-9:
                    return False
    return True


def print_table(rows: list[dict], sizes: list[int], args: argparse.Namespace) -> None:
    load = os.getloadavg()
    print()
    print(f"{args.categories} categories, {args.dets_per_image} (+{args.dets_per_image // 10} below the cap) "
          f"detections/image with masks, bbox+segm, {os.cpu_count()} CPUs, "
          f"{mem_available_mb() / 1024:.1f} GB available now, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    head = (f"{'images':>7} {'evaluator':<16} {'wall s':>8} {'CPU s':>8} {'PSS MB':>8} {'maxRSS':>8} {'RSSsum':>8} "
            f"{'peak MB':>8} {'procs':>5} {'load':>9} | {'wall x':>6} {'CPU x':>6} {'mem x':>6} {'max|diff| AP pts':>17}")
    print(head)
    print("-" * len(head))
    for n in sizes:
        mine = sorted((r for r in rows if r["images"] == n), key=lambda r: (r["evaluator"], r["workers"] or 0, r.get("tag", "")))
        refs = [r for r in mine if r["evaluator"] == "lvis-api" and r.get("metrics")]
        for r in mine:
            # The LVIS API run with the same tag (measured alongside), else the first one.
            ref = next((q for q in refs if q.get("tag", "") == r.get("tag", "")), refs[0] if refs else None)
            if "wall_s" not in r:  # not run
                print(f"{n:>7} {label(r):<16} {r['stopped']}")
                continue
            line = (f"{n:>7} {label(r):<16} {r['wall_s']:>8.1f} {r['cpu_s']:>8.1f} {r['peak_pss_mb']:>8.0f} "
                    f"{r['max_proc_rss_mb']:>8.0f} {r['peak_rss_sum_mb']:>8.0f} {r['peak_mb']:>8.0f} {r['procs']:>5} "
                    f"{r['load_start']:>4.1f}-{r['load_end']:<4.1f}")
            if r["stopped"]:
                line += f" | {r['stopped']}"
            elif r["evaluator"] == "fast" and ref is not None:
                diff, key = max_diff(ref["metrics"], r["metrics"])
                line += (f" | {ref['wall_s'] / r['wall_s']:>6.2f} {ref['cpu_s'] / r['cpu_s']:>6.2f} "
                         f"{ref['peak_mb'] / r['peak_mb']:>6.2f} {diff:>9.3g} {key}")
            print(line)
    print("wall x, CPU x, mem x: lvis-api / fast (the LVIS API row of the same tag, else the first). PSS MB: peak PSS summed over the CLI and its workers (sampled "
          f"every {args.sample_s} s); maxRSS: exact peak RSS of the largest process; RSSsum: peak of the summed RSS "
          "(sampled); peak MB: max(PSS MB, maxRSS), the figure fitted below.")
    print()
    print("least squares against N images: a + b*N, and c*(N/1000)^p in log-log (for ltbench.evaluation.resources):")
    for evaluator, workers, tag in sorted({(r["evaluator"], r["workers"], r.get("tag", "")) for r in rows}, key=str):
        ok = [r for r in rows if (r["evaluator"], r["workers"], r.get("tag", "")) == (evaluator, workers, tag)
              and r.get("metrics")]
        if len(ok) < 2:
            continue
        xs = [float(r["images"]) for r in ok]
        name = label(ok[0])
        for field, unit in (("wall_s", "s wall"), ("cpu_s", "s CPU"), ("peak_mb", "MB peak")):
            ys = [r[field] for r in ok]
            a, b = fit_line(xs, ys)
            c, p = fit_power(xs, ys)
            worst = max(abs(a + b * x - y) / y for x, y in zip(xs, ys))
            worst_p = max(abs(c * (x / 1000) ** p - y) / y for x, y in zip(xs, ys))
            print(f"  {name:<16} {unit:<7} = {a:8.1f} + {b * 1000:8.2f} per 1,000 images (worst residual {worst * 100:3.0f}%)"
                  f"  = {c:8.2f} * (N/1000)^{p:.3f} (worst {worst_p * 100:3.0f}%)  [{len(ok)} sizes {int(min(xs))}-{int(max(xs))}]")


if __name__ == "__main__":
    sys.exit(main())
