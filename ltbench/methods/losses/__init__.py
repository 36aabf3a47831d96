"""Classification losses of the long-tail methods, as plain PyTorch functions and modules.

Each module holds one loss family: its functional core (tested against the equations) and, where the
loss keeps state across iterations (Seesaw's sample counts, EQL v2's gradient statistics, online label
smoothing's soft-label matrix), an ``nn.Module`` whose state lives in buffers so that it is saved in the
checkpoint and a resumed run continues it. The box heads that use these losses are in
``ltbench.methods.heads``.

Modules: ``seesaw``, ``eqlv2``, ``eql`` (EQL v1 and sigmoid BCE), ``focal`` (softmax and sigmoid),
``reweight``, ``class_margin``, ``label_smoothing``, ``online_label_smoothing``, ``group_softmax``, and
``distributed`` (the all-reduce the stateful losses share). docs/methods.md lists their equations and options.

Submodules are imported by the code that needs them (``from ltbench.methods.losses.seesaw import ...``);
this package imports nothing eagerly so that ``ltbench --help`` never pulls in torch.
"""
