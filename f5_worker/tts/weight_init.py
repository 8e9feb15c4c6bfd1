"""Build a model whose weights are about to be loaded without first initialising them at random.

Constructing F5TTS_v1_Base runs ``reset_parameters`` on 336M parameters (about
2 s on a small CPU) only for ``load_state_dict`` to overwrite every value. Inside
``skipped_weight_init`` the ``torch.nn.init`` fill functions leave tensors as they
are (the same trick as transformers' ``no_init_weights``). It is only safe when a
*strict* ``load_state_dict`` follows, which fails on any parameter or persistent
buffer the checkpoint lacks; buffers computed in ``__init__`` (rotary
frequencies, mel filter banks) don't go through ``torch.nn.init`` and are kept.
The patch is process-wide while active, so use it only where no other thread
builds models from scratch (model loading). Two loads (two models asked for by
jobs at once) take turns: each would otherwise save the other's patch as the
"original" and leave initialisation switched off for good.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

INIT_FUNCTIONS = (
    "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_",
)

_PATCHING = threading.Lock()  # one patch at a time, process-wide like the patch itself


def _keep(tensor, *args, **kwargs):
    return tensor


@contextmanager
def skipped_weight_init() -> Iterator[None]:
    from torch.nn import init

    with _PATCHING:
        saved = {name: getattr(init, name) for name in INIT_FUNCTIONS if hasattr(init, name)}
        for name in saved:
            setattr(init, name, _keep)
        try:
            yield
        finally:
            for name, fn in saved.items():
                setattr(init, name, fn)
