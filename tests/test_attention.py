"""Attention never attends padding: padded or batched sequences compute what they compute alone."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from f5_worker.tts.attention import BroadcastMaskAttnProcessor, use_broadcast_mask
from f5_worker.tts.f5_imports import f5_model_classes

f5_model_classes()
from f5_tts.model.modules import Attention, AttnProcessor  # noqa: E402
from x_transformers.x_transformers import RotaryEmbedding  # noqa: E402

HEADS, DIM_HEAD = 4, 8


def attention(pe_attn_head, qk_norm, seed=0) -> Attention:
    torch.manual_seed(seed)
    with pytest.warns(UserWarning, match="large GPU memory"):  # f5-tts's own warning about its expanded mask
        processor = AttnProcessor(pe_attn_head=pe_attn_head)
    return Attention(processor=processor, dim=HEADS * DIM_HEAD, heads=HEADS, dim_head=DIM_HEAD,
                     qk_norm=qk_norm).eval()


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 40), min_size=1, max_size=4),
    extra=st.integers(0, 9),
    pe_attn_head=st.sampled_from([None, 1, 2]),
    qk_norm=st.sampled_from([None, "rms_norm"]),
    with_rope=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_padded_sequences_compute_what_they_compute_alone(lengths, extra, pe_attn_head, qk_norm, with_rope, seed):
    attn = attention(pe_attn_head, qk_norm, seed)
    attn.processor.attn_mask_enabled = False  # as in f5-tts's released configs: upstream would attend the padding
    frames = max(lengths) + extra  # padded past the longest too, as a graph bucket pads
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), frames, HEADS * DIM_HEAD, generator=g) * 3  # the padding holds junk
    mask = torch.arange(frames)[None, :] < torch.tensor(lengths)[:, None]
    rope = RotaryEmbedding(DIM_HEAD).forward_from_seq_len(frames) if with_rope else None
    ours = BroadcastMaskAttnProcessor.like(attn.processor)
    with torch.no_grad():
        got = ours(attn, x.clone(), mask=mask, rope=rope)
        for row, n in enumerate(lengths):  # upstream on the unpadded sequence: no mask, no padding
            alone_rope = RotaryEmbedding(DIM_HEAD).forward_from_seq_len(n) if with_rope else None
            alone = attn.processor(attn, x[row:row + 1, :n].clone(), mask=None, rope=alone_rope)
            torch.testing.assert_close(got[row:row + 1, :n], alone, rtol=1e-5, atol=1e-6)
        masking = AttnProcessor.__new__(AttnProcessor)  # f5-tts's own processor with its masking on
        masking.__dict__.update(vars(attn.processor), attn_mask_enabled=True)
        torch.testing.assert_close(got, masking(attn, x.clone(), mask=mask, rope=rope), rtol=1e-5, atol=1e-6)
    assert not got[~mask].any()  # padded frames come out zero, as upstream's


def test_without_a_mask_it_is_upstreams_call():
    attn = attention(None, None)
    x = torch.randn(1, 12, HEADS * DIM_HEAD)
    ours = BroadcastMaskAttnProcessor.like(attn.processor)
    with torch.no_grad():
        assert torch.equal(ours(attn, x), attn.processor(attn, x))


def test_the_mask_is_never_expanded_to_heads_by_frames(monkeypatch):
    attn = attention(None, None)
    seen = []
    real = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, **kw):
        seen.append(tuple(attn_mask.shape))
        return real(q, k, v, attn_mask=attn_mask, **kw)

    monkeypatch.setattr("f5_worker.tts.attention.F.scaled_dot_product_attention", spy)
    mask = torch.tensor([[True] * 30, [True] * 20 + [False] * 10])
    BroadcastMaskAttnProcessor.like(attn.processor)(attn, torch.randn(2, 30, HEADS * DIM_HEAD), mask=mask)
    assert seen == [(2, 1, 1, 30)]


def test_the_loaded_dit_uses_it_and_a_padded_job_computes_what_it_computes_alone(tiny_settings):
    from f5_worker.tts.loading import load_models

    dit = load_models(dataclasses.replace(tiny_settings, device="cpu")).cfm.transformer
    assert all(type(b.attn.processor) is BroadcastMaskAttnProcessor for b in dit.transformer_blocks)
    assert use_broadcast_mask(dit.transformer_blocks) == 0  # already replaced: nothing to do twice
    upstream = copy.deepcopy(dit)
    for block in upstream.transformer_blocks:  # back to f5-tts's own processor, as the config sets it
        block.attn.processor = AttnProcessor.__new__(AttnProcessor)
        block.attn.processor.__dict__.update(vars(dit.transformer_blocks[0].attn.processor))
    assert upstream.transformer_blocks[0].attn.processor.attn_mask_enabled is False

    from f5_worker.tts.cuda_graphs import dit_tail  # the blocks, as a CUDA graph runs them on padded buffers

    g = torch.Generator().manual_seed(3)
    dim = dit.transformer_blocks[0].attn.to_q.in_features
    h = torch.randn(2, 61, dim, generator=g)  # a job's two packed sequences (conditional, unconditional)
    padded = torch.cat((h, torch.randn(2, 19, dim, generator=g)), dim=1)  # junk in the padding
    mask = (torch.arange(80)[None, :] < 61).expand(2, 80)
    time = torch.full((1,), 0.4)
    with torch.no_grad():
        alone = dit_tail(upstream, h, time, None)  # upstream's F5TTS.infer: one unpadded sequence
        ours = dit_tail(dit, padded, time, mask)
        theirs = dit_tail(upstream, padded, time, mask)
    torch.testing.assert_close(ours[:, :61], alone, rtol=1e-4, atol=1e-5)
    # f5-tts's processor lets the job attend the padding (attn_mask_enabled: False): the reason for ours
    assert not torch.allclose(theirs[:, :61], alone, rtol=1e-4, atol=1e-5)
