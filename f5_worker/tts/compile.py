"""Regional ``torch.compile`` of the DiT's blocks (setting ``TORCH_COMPILE``)."""

from __future__ import annotations

from f5_worker.tts.f5_imports import f5_model_classes

COMPILE_BACKEND = "inductor"  # tests use "aot_eager": the same tracing and guards, no C compiler needed


def is_dit(transformer) -> bool:
    """f5-tts's DiT backbone (the F5-TTS models), as opposed to E2-TTS's UNetT."""
    _, backbones = f5_model_classes()
    return isinstance(transformer, backbones["DiT"])


def dit_blocks(transformer):
    """The DiT's blocks, whether or not the DiT is wrapped for CUDA graphs."""
    return getattr(transformer, "dit", transformer).transformer_blocks


def compile_transformer_blocks(transformer) -> None:
    """torch.compile each DiT block in place (regional compilation).

    The blocks hold nearly all of the compute and share one code path, so they
    share one compiled graph; the forward around them keeps f5-tts's per-thread
    text cache, which would otherwise split the graph and multiply recompiles.
    """
    for block in dit_blocks(transformer):
        block.compile(dynamic=True, backend=COMPILE_BACKEND)  # in place: parameter names stay as they are


def uncompile_transformer_blocks(transformer) -> None:
    for block in dit_blocks(transformer):
        block._compiled_call_impl = None  # noqa: SLF001 - what nn.Module.compile set
