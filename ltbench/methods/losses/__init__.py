"""Classification losses of the long-tail methods, as plain PyTorch functions and modules.

Each module holds one loss family: its functional core (tested against the equations) and, where the
loss keeps state across iterations (Seesaw's sample counts, EQL v2's gradient statistics, online label
smoothing's soft-label matrix), an ``nn.Module`` whose state lives in buffers so that it is saved in the
checkpoint and a resumed run continues it. The box heads that use these losses are in
``ltbench.methods.heads``.

Submodules are imported by the code that needs them (``from ltbench.methods.losses.seesaw import ...``);
this package imports nothing eagerly so that ``ltbench --help`` never pulls in torch.
"""
