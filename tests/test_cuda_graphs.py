"""The CUDA-graph wrapper of the DiT: its eager path and its padding, checked on CPU.

Graph capture and replay themselves need CUDA: tests/test_gpu.py checks them.
"""

import dataclasses

import pytest
import torch

from f5_worker.tts.cuda_graphs import GraphedDiT, dit_cfg_step, dit_tail, fill_text_cache


@pytest.fixture(scope="module")
def dit(tiny_settings):
    from f5_worker.tts.loading import load_models

    return load_models(dataclasses.replace(tiny_settings, device="cpu")).cfm.transformer


def dit_inputs(dit, batch, frames, seed, with_mask):
    g = torch.Generator().manual_seed(seed)
    mel = dit.proj_out.out_features
    x = torch.randn(batch, frames, mel, generator=g)
    cond = torch.randn(batch, frames, mel, generator=g)
    text = torch.randint(0, 20, (batch, frames // 3), generator=g)
    time = torch.rand((), generator=g)
    mask = None
    if with_mask:
        lengths = torch.randint(frames // 2, frames + 1, (batch,), generator=g)
        lengths[0] = frames
        mask = torch.arange(frames)[None, :] < lengths[:, None]
    return dict(x=x, cond=cond, text=text, time=time, mask=mask)


@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("cfg_infer", [False, True])
def test_wrapper_matches_upstream_dit_exactly(dit, with_mask, cfg_infer):
    graphed = GraphedDiT(dit)
    batch = 3 if with_mask else 1
    with torch.inference_mode():
        for step in range(2):  # the second step reads f5-tts's text cache
            inputs = dit_inputs(dit, batch, 90, seed=step, with_mask=with_mask)
            ours = graphed(**inputs, cfg_infer=cfg_infer, cache=True)
            upstream = dit(**inputs, cfg_infer=cfg_infer, cache=True)
            assert torch.equal(ours, upstream)
        graphed.clear_cache()
        assert dit.text_cond is None and dit.text_uncond is None
    assert graphed.captures == 0  # no graphs on CPU


@pytest.mark.parametrize("frames,with_mask", [(70, False), (64, False), (100, True)])
def test_padding_to_a_bucket_leaves_the_valid_frames_unchanged(dit, frames, with_mask):
    """What a graph computes on padded, masked buffers equals the unpadded computation on the real frames."""
    graphed = GraphedDiT(dit, bucket_frames=64)
    padded = graphed.padded_length(frames)
    assert padded % 64 == 0 and frames <= padded < frames + 64
    batch = 2 if with_mask else 1
    dim = dit.transformer_blocks[0].attn.to_q.in_features
    g = torch.Generator().manual_seed(frames)
    h = torch.randn(batch, frames, dim, generator=g)
    time = torch.rand(batch, generator=g)
    mask = (torch.arange(frames)[None, :] < torch.tensor([frames, frames - 17])[:, None]) if with_mask else None
    x_buf = torch.full((batch, padded, dim), float("nan"))  # stale contents must not leak in
    t_buf, m_buf = torch.empty(batch), torch.empty(batch, padded, dtype=torch.bool)
    with torch.inference_mode():
        graphed.pad_inputs([h], time, mask, [x_buf], t_buf, m_buf)
        got = dit_tail(dit, x_buf, t_buf, m_buf)[:, :frames]
        want = dit_tail(dit, h, time, mask)
    assert torch.isfinite(got).all()
    valid = mask if mask is not None else torch.ones(batch, frames, dtype=torch.bool)
    torch.testing.assert_close(got[valid], want[valid], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 3])
def test_whole_step_on_padded_inputs_matches_upstream_cached_step(dit, batch):
    """The step graph's body (both input embeddings and the blocks) against DiT.forward on a full text cache."""
    graphed = GraphedDiT(dit, bucket_frames=64)
    inputs = dit_inputs(dit, batch, 90, seed=7, with_mask=batch > 1)
    padded = graphed.padded_length(90)
    with torch.inference_mode():
        dit(**inputs, cfg_infer=True, cache=True)  # first step: fills the text cache
        want = dit(**inputs, cfg_infer=True, cache=True)
        tensors = [inputs["x"], inputs["cond"], dit.text_cond, dit.text_uncond]
        buffers = [torch.full((t.shape[0], padded, *t.shape[2:]), float("nan")) for t in tensors]
        t_buf, m_buf = torch.empty(batch), torch.empty(batch, padded, dtype=torch.bool)
        graphed.pad_inputs(tensors, inputs["time"].repeat(batch), inputs["mask"], buffers, t_buf, m_buf)
        got = dit_cfg_step(dit, *buffers, t_buf, m_buf)[:, :90]
        dit.clear_cache()
    valid = inputs["mask"] if inputs["mask"] is not None else torch.ones(batch, 90, dtype=torch.bool)
    valid = torch.cat((valid, valid))  # conditional rows, then unconditional
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got[valid], want[valid], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 3])
def test_first_step_from_the_step_graphs_body_matches_upstreams_first_step(dit, batch):
    """On CUDA the first step fills the text cache eagerly, then replays the whole-step graph."""
    inputs = dit_inputs(dit, batch, 90, seed=11, with_mask=batch > 1)
    time = inputs["time"].repeat(batch)
    with torch.inference_mode():
        want = dit(**inputs, cfg_infer=True, cache=True)  # upstream's first step fills the cache itself
        upstream_cache = (dit.text_cond, dit.text_uncond)
        dit.clear_cache()
        fill_text_cache(dit, inputs["x"], inputs["text"], inputs["mask"])
        assert torch.equal(dit.text_cond, upstream_cache[0]) and torch.equal(dit.text_uncond, upstream_cache[1])
        mask = inputs["mask"] if inputs["mask"] is not None else torch.ones(batch, 90, dtype=torch.bool)
        got = dit_cfg_step(dit, inputs["x"], inputs["cond"], dit.text_cond, dit.text_uncond, time, mask)
        dit.clear_cache()
    valid = torch.cat((mask, mask))
    torch.testing.assert_close(got[valid], want[valid], rtol=1e-5, atol=1e-6)


def test_a_failed_capture_falls_back_to_eager_for_good(dit, caplog):
    """Where a graph cannot be captured (here: no CUDA at all), the call still returns the right result."""
    graphed = GraphedDiT(dit, bucket_frames=64)
    inputs = dit_inputs(dit, 2, 90, seed=3, with_mask=True)
    dim = dit.transformer_blocks[0].attn.to_q.in_features
    h = torch.randn(4, 90, dim)
    time = torch.rand(4)
    mask = torch.cat((inputs["mask"], inputs["mask"]))
    with torch.inference_mode():
        got = graphed.run_graph("tail", dit_tail, [h], time, mask)
        want = dit_tail(dit, h, time, mask)
    assert graphed.failed and "capture failed" in caplog.text and graphed.captures == 0
    torch.testing.assert_close(got[mask], want[mask], rtol=1e-4, atol=1e-5)


def test_out_of_memory_in_a_capture_fails_that_call_and_keeps_graphs_on(dit, monkeypatch):
    """One oversized job must not leave the worker running eagerly (3x slower on an H200) for the rest of its life.

    The capture itself needs CUDA; its out-of-memory error is raised where torch raises it.
    """
    graphed = GraphedDiT(dit, bucket_frames=64)

    def capture_out_of_memory(*args):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 30.00 GiB")

    monkeypatch.setattr(graphed, "_capture", capture_out_of_memory)
    dim = dit.transformer_blocks[0].attn.to_q.in_features
    with torch.inference_mode(), pytest.raises(torch.OutOfMemoryError):
        graphed.run_graph("tail", dit_tail, [torch.randn(2, 70, dim)], torch.rand(2), None)
    assert graphed.failed is None
