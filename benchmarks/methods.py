"""Forward+backward time of the box-classification head per method, at LVIS scale by default.

One iteration = ``head(pooled)`` on R RoIs of (256, 7, 7) -> classification losses + an L1 loss on the
regression deltas of the foreground RoIs -> ``backward()``. Defaults: C = 1203 (LVIS v1), R = 512 RoIs x 16
images = 8192, 25% foreground, class-specific deltas (4C, mmdet/detectron2), background last. Methods:
plain softmax CE, PCB (3-step recurrent head + PCB regulariser with its gate open), balanced group
softmax, Seesaw, EQL v2. Prints ms/iteration (median over repeats) and the ratio to plain CE.

    python benchmarks/methods.py                 # LVIS scale, CUDA if available
    python benchmarks/methods.py --quick         # fewer repeats
    python benchmarks/methods.py --rois 1024     # fewer RoIs (CPU)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

METHODS = ("softmax", "pcb", "group_softmax", "seesaw", "eqlv2")


def instance_counts(num_classes: int) -> list[int]:
    """A long-tailed count profile spanning the BAGS bins (<10, 10-99, 100-999, >=1000)."""
    return [max(1, int(20000 * (k + 1) ** -1.5)) for k in range(num_classes)]


def build(method: str, num_classes: int, background: str):
    import ltbench.methods  # noqa: F401  (registers every head)
    from ltbench.data.lvis_meta import ClassStats
    from ltbench.methods.box_head import build_box_head

    stats = ClassStats.from_counts(instance_counts=instance_counts(num_classes))
    head = build_box_head(method, num_classes=num_classes, background=background, num_box_deltas=4 * num_classes, class_stats=stats)
    if method == "pcb":
        head.set_progress(20, 24, 0, 1)  # past the start epoch ...
        head.confusion.seen.fill_(1)  # ... and every class seen: the PCB terms are computed
    return head


class Case:
    """One method's head and a fixed batch: R pooled RoIs, 25% foreground labels."""

    def __init__(self, method: str, args, device) -> None:
        import torch

        torch.manual_seed(0)
        self.head = build(method, args.classes, args.background).to(device)
        self.pooled = torch.randn(args.rois, 256, 7, 7, device=device)
        self.num_fg = args.rois // 4
        bg_label = args.classes if args.background == "last" else 0
        fg = torch.randint(0, args.classes, (self.num_fg,), device=device) + (1 if args.background == "first" else 0)
        self.labels = torch.cat([fg, torch.full((args.rois - self.num_fg,), bg_label, device=device)])
        self.device = device

    def iteration_ms(self) -> float:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = self.head(self.pooled)
        losses = self.head.classification_losses(out, self.labels)
        deltas = self.head.regression_deltas(out)
        loss = sum(losses.values()) + deltas[: self.num_fg].abs().mean()
        loss.backward()
        self.head.zero_grad(set_to_none=True)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) * 1000


def time_methods(methods: list[str], args, device) -> dict[str, list[float]]:
    """Times per method; methods are interleaved within each repeat so that load from other processes
    (shared CPUs) affects every method alike."""
    cases = {method: Case(method, args, device) for method in methods}
    times: dict[str, list[float]] = {method: [] for method in methods}
    for i in range(args.warmup + args.repeats):
        for method, case in cases.items():
            elapsed = case.iteration_ms()
            if i >= args.warmup:
                times[method].append(elapsed)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classes", type=int, default=1203)
    parser.add_argument("--rois", type=int, default=8192, help="RoIs per iteration (512 x 16 images)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="3 repeats, 1 warm-up")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    parser.add_argument("--background", choices=("first", "last"), default="last")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup = 3, 1

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {name}; C={args.classes}, R={args.rois} RoIs of 256x7x7, {args.repeats} repeats (median)")
    results: dict[str, float] = {}
    for method, times in time_methods(args.methods.split(","), args, device).items():
        results[method] = statistics.median(times)
        print(f"  {method:14s} {results[method]:10.1f} ms/iter  (min {min(times):.1f}, max {max(times):.1f})", flush=True)
    base = results.get("softmax")
    if base:
        print("ratio to plain CE (softmax):")
        for method, value in results.items():
            print(f"  {method:14s} {value / base:6.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
