"""Mixed precision through each framework's own AMP: Lightning Fabric's ``MixedPrecision`` (torchvision),
mmengine's ``AmpOptimWrapper`` (mmdet), detectron2's ``AMPTrainer``. On a CPU it runs as bfloat16 autocast
(``--precision bf16-mixed``), the code path CUDA float16 takes with its dynamic loss scaling switched off
(bfloat16 needs none). Checked while a tiny run trains, with the softmax head and PCB's 3-step head:

- the convolutions run in bfloat16 (autocast is on), the box head's classification losses get float32
  logits and return float32 losses, and PCB's confusion-matrix statistics stay float32 (as the official
  code keeps losses in float32: mmdet's ``force_fp32``);
- the losses stay finite and ``done.json`` records the precision;
- without a request, ``fp16: true`` on a CPU trains in float32 (float16 autocast needs CUDA), and asking
  for float16 on a CPU is an error that says so.
"""

from __future__ import annotations

import json
import math
import re

import pytest

from adapters import get_adapter
from support.runs import STAGE1_FAMILIES, tiny_run

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow


def record_dtypes(monkeypatch) -> dict[str, set]:
    """Patch Conv2d and every registered box head's ``classification_losses`` to record dtypes."""
    import ltbench.methods  # noqa: F401  (registers every head)
    from ltbench.methods.box_head import BOX_HEADS

    seen: dict[str, set] = {"conv": set(), "logits": set(), "losses": set(), "autocast": set()}
    conv_forward = torch.nn.Conv2d.forward

    def conv(self, x):
        out = conv_forward(self, x)
        seen["conv"].add(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.Conv2d, "forward", conv)
    defining = {c for name in BOX_HEADS.names() for c in BOX_HEADS.get(name).__mro__ if "classification_losses" in vars(c)}
    for cls in defining:
        original = vars(cls)["classification_losses"]

        def losses(self, output, labels, _original=original):
            seen["logits"].update(t.dtype for t in output.class_logits)
            seen["autocast"].add(torch.is_autocast_enabled("cpu"))
            result = _original(self, output, labels)
            seen["losses"].update(v.dtype for v in result.values() if isinstance(v, torch.Tensor))
            return result

        monkeypatch.setattr(cls, "classification_losses", losses)
    return seen


def final_losses(workdir) -> dict[str, float]:
    line = (workdir / "log.txt").read_text().splitlines()[-1]
    return {k: float(v) for k, v in re.findall(r"(loss\w*)=([-\d.naif]+)", line)}


@pytest.mark.parametrize("family", ["softmax", "pcb_ce"])
def test_bf16_autocast_trains_with_float32_losses_and_statistics(framework, family, tiny_data, tmp_path, monkeypatch) -> None:
    run = tiny_run(id=f"tiny-{framework}-amp-{family}-00000000", framework=framework, fp16=True,
                   **STAGE1_FAMILIES.get(family, {}))
    seen = record_dtypes(monkeypatch)
    workdir = tmp_path / "amp"
    if framework == "detectron2":  # its AMPTrainer asserts CUDA and uses torch.cuda.amp: no CPU path to test
        from ltbench.errors import LtbenchError

        with pytest.raises(LtbenchError, match="AMPTrainer runs on CUDA only"):
            get_adapter(framework).train(run, workdir, tiny_data, device="cpu", precision="bf16-mixed")
        return
    final = get_adapter(framework).train(run, workdir, tiny_data, device="cpu", precision="bf16-mixed")
    assert torch.bfloat16 in seen["conv"], seen
    assert seen["logits"] == {torch.float32} and seen["losses"] == {torch.float32}, seen
    assert seen["autocast"] == {False}, seen  # the losses are computed outside autocast
    losses = final_losses(workdir)
    assert losses and all(math.isfinite(v) for v in losses.values()), losses
    assert json.loads((workdir / "done.json").read_text())["training"]["precision"] == "bf16-mixed"
    if family == "pcb_ce":
        from support.adapters import model_state

        state = model_state(framework, final)
        confusion = [k for k in state if "confusion" in k]
        assert confusion and all(state[k].dtype in (torch.float32, torch.float64, torch.int64, torch.bool)
                                 for k in confusion), {k: state[k].dtype for k in confusion}


def test_fp16_on_a_cpu_is_float32_unless_bfloat16_is_asked_for(tmp_path) -> None:
    from adapters.engine.devices import resolve_precision
    from ltbench.errors import LtbenchError

    assert resolve_precision({"fp16": True}, "cpu") == "32-true"
    assert resolve_precision({"fp16": True}, "cuda") == "16-mixed"
    assert resolve_precision({"fp16": False}, "cuda") == "32-true"
    assert resolve_precision({"fp16": True}, "cpu", "bf16-mixed") == "bf16-mixed"
    with pytest.raises(LtbenchError, match="float16 mixed precision needs CUDA"):
        resolve_precision({"fp16": True}, "cpu", "16-mixed")
