"""``ltbench`` for end-to-end workflow tests: the real commands (``step train``, ``step predict``, ``results
record``, ``results collect``, ``render``, ...), with a fake framework adapter, fake data and a fake evaluation,
so that a whole Snakemake campaign of a small table runs in seconds and still exercises the real steps, store,
collect and render.

    python tests/support/fake_ltbench.py <ltbench argv...>

The fake adapter trains "instantly": ``model_final.pth`` holds a unique token (which training wrote it) and
``log.txt`` says whether it started fresh or resumed. ``FAKE_TRAIN_SLEEP`` (seconds) makes it train that long;
``FAKE_TRAIN_FAIL=1`` makes it fail after its first checkpoint. Like the real adapters
(``adapters.checkpoints.start_training``) it returns at once when ``done.json`` exists.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

# run as a script, this folder comes first on sys.path, and its adapters.py would shadow the adapters package
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

METRICS = {f"{iou}.{m}": 20.0 + i for iou in ("bbox", "segm")
           for i, m in enumerate(("AP", "AP50", "AP75", "APr", "APc", "APf", "APs", "APm", "APl", "AP1", "AP2", "AP3", "AP4"))}
METRICS.update({"PwB": 10.0, "cls.ACC": 50.0})


class FakeAdapter:
    name = "fake"
    background = "first"

    def train(self, run_config, workdir, data, *, stage1_workdir=None, init_workdir=None, device=None, precision=None,
              ranks=1):
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        done = workdir / "done.json"
        if done.is_file():  # as adapters.checkpoints.start_training: a finished run returns its checkpoint
            return workdir / json.loads(done.read_text())["checkpoint"]
        pointer = workdir / "last_checkpoint"
        resumed = pointer.read_text().strip() if pointer.is_file() else None
        with open(workdir / "log.txt", "a") as log:
            log.write(f"resumed from {resumed}\n" if resumed else "started from scratch\n")
        (workdir / "run_config.json").write_text(json.dumps(run_config))
        (workdir / "model_0000001.pth").write_text("checkpoint 1")
        pointer.write_text("model_0000001.pth\n")
        if os.environ.get("FAKE_TRAIN_FAIL"):
            raise RuntimeError("fake training failed")
        time.sleep(float(os.environ.get("FAKE_TRAIN_SLEEP", "0")))
        final = workdir / "model_final.pth"
        final.write_text(f"trained {time.time_ns()} by pid {os.getpid()}")
        done.write_text(json.dumps({"run_id": run_config.get("id"), "checkpoint": final.name, "iterations": 2,
                                    "framework": "fake", "finished_at": time.time()}))
        return final

    def predict(self, run_config, view_config, workdir, data, *, split="val", out_dir, device=None):
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "detections.json").write_text("[]")
        (out_dir / "proposal_stats.npz").write_bytes(b"fake")
        return {"detections": 0}


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def main(argv: list[str]) -> int:
    if argv[:2] == ["data", "resolve"]:  # the data rule: nothing to generate
        print(f"fake dataset {argv[2]}")
        return 0
    import adapters
    from ltbench.data import datasets

    adapters.get_adapter = lambda framework: FakeAdapter()
    fake_paths = SimpleNamespace(train=Path("train.json"), val=Path("val.json"), image_root=Path("images"))
    datasets.ensure = datasets.resolve = lambda *args, **kwargs: fake_paths
    if argv[:2] == ["step", "evaluate"]:  # the real step, around a fake `ltbench evaluate`
        from ltbench.workflow import steps

        real = steps.run_ltbench

        def evaluate(args):
            if args[0] != "evaluate":
                return real(args)
            out = Path(_option(list(args), "--out"))
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(METRICS))

        steps.run_ltbench = evaluate
    from ltbench.cli import main as ltbench_main

    return ltbench_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
