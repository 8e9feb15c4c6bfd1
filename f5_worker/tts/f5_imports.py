"""Import F5-TTS's model modules without paying, at cold start, for code inference never runs.

``f5_tts.model.modules`` and the backbones import two heavy libraries for very
little:

* ``x_transformers`` (for ``RotaryEmbedding`` and ``apply_rotary_pos_emb``) imports
  ``einx`` at module level, which pulls in sympy and ``torch._dynamo`` (seconds on
  a small CPU). Neither rotary function touches einx. We register einx as a lazy
  module: the real einx code runs the first time any of its functions is looked
  up, so behaviour is unchanged; only the cost moves to a moment that never comes
  during synthesis.
* ``librosa.filters.mel`` is only used for BigVGAN mel spectrograms, but importing
  it loads scipy.signal, scipy.stats and numba. While the f5_tts modules import,
  ``librosa.filters`` resolves to a stand-in whose ``mel`` imports and calls the real
  function on first use; the stand-in is removed afterwards, so any later
  ``import librosa.filters`` gets the real module.
* ``torchdiffeq`` imports ``scipy.integrate.solve_ivp`` (scipy.optimize, sparse,
  spatial...) for its ``scipy_solver`` method; F5-TTS integrates with ``euler``.
  Same stand-in treatment.
* ``pypinyin`` (``lazy_pinyin``, ``Style``) loads its phrase tables at import (about
  0.4 s); f5_tts only calls it for Chinese segments of a text. Same treatment: the
  first Chinese job imports it.

The model classes are the real upstream classes either way, so a state dict gives
bit-identical outputs (``tests/test_f5_imports.py`` checks this against a plain
``import f5_tts.model``). ``F5_WORKER_LEAN_IMPORTS=0`` turns the shims off. The module paths and names
are f5-tts 1.1.22's (pinned in pyproject.toml; docs/architecture.md, "Where the worker depends on a
library's internals").
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager

from f5_worker.config import lean_imports_enabled

LAZY_MODULES = ("einx",)
# module -> names (functions, a class) f5_tts or torchdiffeq imports but inference never uses
DEFERRED_NAMES = {
    "librosa.filters": ("mel",),  # BigVGAN mel spectrograms only
    "scipy.integrate": ("solve_ivp",),  # torchdiffeq's method="scipy_solver" only; F5 uses euler
    "pypinyin": ("lazy_pinyin", "Style"),  # f5_tts.model.utils: only for Chinese text (its phrase tables: ~0.4 s)
}


def lazy_import(name: str) -> types.ModuleType | None:
    """Register ``name`` so that its code runs on first use of one of its attributes.

    Like ``importlib.util.LazyLoader``, except that the module's identity attributes
    (``__file__``, ``__spec__``, ``__path__``...) are there before it runs: torch calls
    ``inspect.getmodule`` while registering ops, which reads ``__file__`` of every
    module in ``sys.modules`` and would otherwise load the lazy one straight away.
    A PEP 562 module ``__getattr__`` runs the real module on the first other access.
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    lock = threading.RLock()
    started = False

    def __getattr__(attr: str):  # noqa: N807
        nonlocal started
        with lock:
            if not started:
                started = True  # set first: the module's own code may look itself up while it runs
                try:
                    spec.loader.exec_module(module)
                finally:
                    if module.__dict__.get("__getattr__") is __getattr__:
                        del module.__dict__["__getattr__"]
        try:
            return module.__dict__[attr]
        except KeyError:
            raise AttributeError(f"module {name!r} has no attribute {attr!r}") from None

    module.__getattr__ = __getattr__
    sys.modules[name] = module
    return module


class Deferred:
    """Stands for ``module_name.attr`` until used: a call or an attribute lookup imports the module.

    A function (``mel``) is called through it; a class or enum (``pypinyin.Style``)
    hands out its attributes (``Style.TONE3`` is the real member).
    """

    def __init__(self, module_name: str, attr: str):
        self._module_name, self._attr = module_name, attr
        self.__name__ = self.__qualname__ = attr
        self.__doc__ = f"``{module_name}.{attr}``, imported on first use."

    def _target(self):
        module = sys.modules.get(self._module_name)
        if module is None or getattr(module, "_f5_worker_stand_in", False):
            sys.modules.pop(self._module_name, None)  # used while the stand-in is registered: load the real one
            module = importlib.import_module(self._module_name)
        return getattr(module, self._attr)

    def __call__(self, *args, **kwargs):
        return self._target()(*args, **kwargs)

    def __getattr__(self, name: str):
        if name.startswith("__"):  # copy/pickle/inspect probing: not a use
            raise AttributeError(name)
        return getattr(self._target(), name)

    def __repr__(self) -> str:
        return f"<deferred {self._module_name}.{self._attr}>"


@contextmanager
def stand_ins(deferred: dict[str, tuple[str, ...]]) -> Iterator[None]:
    """While the block runs, ``from MODULE import NAME`` yields deferring functions for the listed names.

    Only modules not imported yet get a stand-in; the stand-ins leave ``sys.modules``
    when the block ends, so later imports get the real modules.
    """
    added = {}
    for module_name, names in deferred.items():
        if module_name in sys.modules:
            continue
        stand_in = types.ModuleType(module_name, f"Stand-in for {module_name} while f5_tts imports.")
        stand_in._f5_worker_stand_in = True  # noqa: SLF001
        for attr in names:
            setattr(stand_in, attr, Deferred(module_name, attr))
        sys.modules[module_name] = added[module_name] = stand_in
    try:
        yield
    finally:
        for module_name, stand_in in added.items():
            if sys.modules.get(module_name) is stand_in:
                del sys.modules[module_name]


@contextmanager
def lean_f5_imports() -> Iterator[None]:
    """Wrap the import of f5_tts model modules; a no-op when F5_WORKER_LEAN_IMPORTS=0."""
    if not lean_imports_enabled():
        yield
        return
    for name in LAZY_MODULES:
        lazy_import(name)
    with stand_ins(DEFERRED_NAMES):
        yield


def f5_model_classes():
    """Import CFM and the backbones without running ``f5_tts.model.__init__``.

    That ``__init__`` imports the Trainer, which drags in wandb, datasets and
    accelerate and costs seconds of cold start. Registering the package as a
    plain namespace first lets the submodules import on their own;
    ``lean_f5_imports`` keeps einx and librosa's scipy/numba stack out of cold
    start as well.
    """
    if "f5_tts.model" not in sys.modules:
        spec = importlib.util.find_spec("f5_tts.model")
        package = types.ModuleType("f5_tts.model")
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = spec
        sys.modules["f5_tts.model"] = package
    with lean_f5_imports():
        from f5_tts.model.backbones.dit import DiT
        from f5_tts.model.backbones.mmdit import MMDiT
        from f5_tts.model.backbones.unett import UNetT
        from f5_tts.model.cfm import CFM

    package = sys.modules["f5_tts.model"]
    for cls in (CFM, DiT, MMDiT, UNetT):
        setattr(package, cls.__name__, cls)
    return CFM, {"DiT": DiT, "MMDiT": MMDiT, "UNetT": UNetT}
