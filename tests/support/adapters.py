"""Helpers of the adapter tests that reach into a framework: its kill point, its checkpoint layout."""

from __future__ import annotations


def interrupt_at(framework: str, monkeypatch, iteration: int) -> None:
    """Make the next training of ``framework`` die (KeyboardInterrupt) when it reaches ``iteration``: the
    framework's own step function is wrapped, as a kill between two steps would leave it."""
    if framework == "torchvision":
        from adapters.engine.trainer import Trainer as loop_cls

        attribute, position = "run_step", lambda self: self.iter
    elif framework == "mmdet":
        from mmdet.registry import LOOPS

        from adapters.mmdet.registration import register

        register()
        loop_cls, attribute, position = LOOPS.get("LtbenchIterBasedTrainLoop"), "run_iter", lambda self: self._iter
    else:
        from detectron2.engine import SimpleTrainer as loop_cls

        attribute, position = "run_step", lambda self: self.iter
    real = getattr(loop_cls, attribute)

    def dying(self, *args, **kwargs):
        if position(self) == iteration:
            raise KeyboardInterrupt("simulated kill")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(loop_cls, attribute, dying)


def model_state(framework: str, checkpoint) -> dict:
    """The model tensors of a checkpoint file, whatever the framework's checkpoint layout."""
    import torch

    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    return state["state_dict"] if framework == "mmdet" else state["model"]


def optimizer_state(checkpoint) -> dict:
    import torch

    return torch.load(checkpoint, map_location="cpu", weights_only=False)["optimizer"]
