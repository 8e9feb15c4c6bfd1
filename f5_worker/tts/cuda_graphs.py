"""Run F5-TTS's DiT from CUDA graph replays (setting ``CUDA_GRAPHS``, on by default).

On a GPU, eager F5-TTS is bound by kernel launches, not arithmetic: one sampling
step of F5TTS_v1_Base is about a thousand small launches, and on an H200 a step
took 34 ms eagerly and about 10 ms replayed from a graph (docs/performance.md).

On the first step of a sampling run f5-tts computes the text embedding (with a
host sync for per-sample lengths) and caches it per thread; that part runs eagerly
(a few small convolutions). Then every step, the first included, replays one
graph for the whole step: both input embeddings (conditional and unconditional,
for classifier-free guidance) and the blocks. Calls without guidance replay a
graph of the blocks alone ("tail"), after an eager input embedding.

Sequence lengths are padded up to a multiple of ``bucket_frames`` under an
attention mask, so that jobs of similar length share a graph. The mask keeps the
padding out of attention only because the worker's attention processor always
applies it (tts/attention.py; f5-tts's released configs would ignore it).
Graphs are captured on first use of a (batch, padded length) shape (about three
eager passes), kept in an LRU of ``max_graphs``, and share one memory pool, which
is safe because every replay copies its inputs in and its output out, and only
the sampler thread replays.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from dataclasses import dataclass

import torch

from f5_worker.errors import summary

log = logging.getLogger(__name__)


def dit_tail(dit, x, time, mask):
    """f5-tts ``DiT.forward`` after the input embedding (time embedding, blocks, output norm and projection).

    With conditional and unconditional packed into ``x`` (2b sequences), ``time`` has b entries and
    is embedded once, then repeated, in the order DiT.forward does it.
    """
    t = dit.time_embed(time)
    if t.shape[0] != x.shape[0]:
        t = torch.cat((t, t), dim=0)
    rope = dit.rotary_embed.forward_from_seq_len(x.shape[1])
    residual = x
    for block in dit.transformer_blocks:
        x = block(x, t, mask=mask, rope=rope)
    if dit.long_skip_connection is not None:
        x = dit.long_skip_connection(torch.cat((x, residual), dim=-1))
    return dit.proj_out(dit.norm_out(x, t))


def fill_text_cache(dit, x, text, mask) -> None:
    """What ``DiT.get_input_embed`` caches on a run's first step (both text embeddings), and nothing else."""
    seq_len = x.shape[1] if mask is None else mask.sum(dim=1)  # as get_input_embed: per-sample valid lengths
    dit.text_cond = dit.text_embed(text, seq_len=seq_len, drop_text=False)
    dit.text_uncond = dit.text_embed(text, seq_len=seq_len, drop_text=True)


def dit_cfg_step(dit, x, cond, text_cond, text_uncond, time, mask):
    """f5-tts ``DiT.forward`` with ``cfg_infer`` and a full text cache: conditional and unconditional, packed."""
    h = torch.cat((
        dit.input_embed(x, cond, text_cond, drop_audio_cond=False, audio_mask=mask),
        dit.input_embed(x, cond, text_uncond, drop_audio_cond=True, audio_mask=mask),
    ), dim=0)
    return dit_tail(dit, h, time, torch.cat((mask, mask), dim=0))


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    inputs: list[torch.Tensor]  # padded along frames (dim 1)
    time: torch.Tensor
    mask: torch.Tensor
    out: torch.Tensor


class GraphedDiT(torch.nn.Module):
    """Drop-in for f5-tts's DiT inside CFM: same call, same outputs, replayed from CUDA graphs."""

    def __init__(self, dit, *, bucket_frames: int = 64, max_graphs: int = 64):
        super().__init__()
        self.dit = dit
        self.bucket_frames = bucket_frames
        self.max_graphs = max_graphs
        self.captures = 0
        self.failed: str | None = None  # why capturing failed, after which every call runs eagerly
        self._graphs: OrderedDict[tuple, _Graph] = OrderedDict()
        self._pool = None

    def clear_cache(self) -> None:
        self.dit.clear_cache()

    def forward(self, x, cond, text, time, mask=None, drop_audio_cond=False, drop_text=False, cfg_infer=False,
                cache=False):
        dit = self.dit
        if time.ndim == 0:
            time = time.repeat(x.shape[0])
        graphs = x.is_cuda and not torch.is_grad_enabled() and self.failed is None
        if graphs and cfg_infer and cache:
            if dit.text_cond is None or dit.text_uncond is None:  # a run's first step
                fill_text_cache(dit, x, text, mask)
            return self.run_graph("step", dit_cfg_step, [x, cond, dit.text_cond, dit.text_uncond], time, mask)
        if cfg_infer:  # pack cond & uncond: b n d -> 2b n d, as DiT.forward does
            h = torch.cat((
                dit.get_input_embed(x, cond, text, drop_audio_cond=False, drop_text=False, cache=cache,
                                    audio_mask=mask),
                dit.get_input_embed(x, cond, text, drop_audio_cond=True, drop_text=True, cache=cache,
                                    audio_mask=mask),
            ), dim=0)
            mask = torch.cat((mask, mask), dim=0) if mask is not None else None
        else:
            h = dit.get_input_embed(x, cond, text, drop_audio_cond=drop_audio_cond, drop_text=drop_text,
                                    cache=cache, audio_mask=mask)
        if not graphs:
            return dit_tail(dit, h, time, mask)
        return self.run_graph("tail", dit_tail, [h], time, mask)

    def padded_length(self, frames: int) -> int:
        return math.ceil(frames / self.bucket_frames) * self.bucket_frames

    @staticmethod
    def pad_inputs(tensors, time, mask, buffers, time_buffer, mask_buffer) -> None:
        """Write one call's inputs into (padded) static buffers; padded frames are zero and masked out."""
        n = tensors[0].shape[1]
        for tensor, buffer in zip(tensors, buffers, strict=True):
            buffer[:, :n].copy_(tensor)
            buffer[:, n:].zero_()  # finite: masked keys still meet their values in attention (0 * NaN is NaN)
        time_buffer.copy_(time)
        mask_buffer[:, n:].fill_(False)
        if mask is None:
            mask_buffer[:, :n].fill_(True)
        else:
            mask_buffer[:, :n].copy_(mask)

    def run_graph(self, kind: str, body, tensors, time, mask):
        """``body(*tensors, time, mask)`` on inputs padded to the frame bucket, from a graph captured on first use."""
        frames = tensors[0].shape[1]
        padded = self.padded_length(frames)
        key = (kind, padded, time.shape[0], time.dtype,
               tuple((t.shape[0], *t.shape[2:], t.dtype) for t in tensors))
        entry = self._graphs.get(key)
        if entry is None:
            buffers = [t.new_empty((t.shape[0], padded, *t.shape[2:])) for t in tensors]
            time_in = time.new_empty(time.shape)
            mask_in = torch.empty(tensors[0].shape[0], padded, device=time.device, dtype=torch.bool)
            self.pad_inputs(tensors, time, mask, buffers, time_in, mask_in)
            try:
                entry = self._capture(key, body, buffers, time_in, mask_in)
            except torch.OutOfMemoryError:
                self._graphs.clear()  # their pool's memory goes back for later captures; they are re-captured
                raise  # this job fails for memory, as it would eagerly; graphs stay on for the next ones
            except Exception as exc:  # noqa: BLE001 - an op or driver that cannot be captured: stay eager
                self.failed = summary(exc)
                self._graphs.clear()
                log.error("CUDA graph capture failed, running eagerly from now on: %s", self.failed)
                return body(self.dit, *buffers, time_in, mask_in)[:, :frames].clone()
        else:
            self._graphs.move_to_end(key)
            self.pad_inputs(tensors, time, mask, entry.inputs, entry.time, entry.mask)
        entry.graph.replay()
        return entry.out[:, :frames].clone()

    def _capture(self, key, body, buffers, time_in, mask_in) -> _Graph:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up outside the graph: lazy init, autotuning, compilation
            for _ in range(2):
                body(self.dit, *buffers, time_in, mask_in)
        torch.cuda.current_stream().wait_stream(side)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        # thread_local: other threads (e.g. Whisper for a voice upload) may use the GPU meanwhile
        with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
            out = body(self.dit, *buffers, time_in, mask_in)
        entry = _Graph(graph=graph, inputs=buffers, time=time_in, mask=mask_in, out=out)
        self._graphs[key] = entry
        self.captures += 1
        while len(self._graphs) > self.max_graphs:
            self._graphs.popitem(last=False)
        log.debug("captured a CUDA graph: %s (%d held)", key, len(self._graphs))
        return entry
