"""Self-attention that never attends padding: f5-tts's, with its padding mask honoured and broadcast.

Padding appears where a batch holds jobs of different lengths, and where the
CUDA graphs pad a length up to their bucket. f5-tts's released configs set
``attn_mask_enabled: False``, so its ``AttnProcessor`` lets every frame attend
the padding: a job's speech would then depend on its batch-mates and on the
bucket (0.03-0.15 % of the DiT's output per step, relative L2, on the tiny
model with 3 to 60 frames of padding: small, but not nothing). Here the padding
mask always applies, so a padded or batched job computes exactly what it
computes alone, as upstream's ``F5TTS.infer`` runs it (one unpadded sequence).

And where f5-tts does mask (``attn_mask_enabled: True``), it expands the mask to
(batch, heads, frames, frames) before ``scaled_dot_product_attention``, which
turns a boolean mask into an additive one of that whole shape (f5-tts warns it
"can consume large GPU memory"): for 16 jobs of 10 s (32 sequences with
guidance, 16 heads, ~1150 frames) 1.3 GB, written and read again in each of the
22 blocks of every step. A (batch, 1, 1, frames) mask broadcasts to the same
attention without being made whole.

Everything else is f5-tts's processor, line for line; tests/test_attention.py
checks it against f5-tts's own with masking enabled.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - the name f5-tts's modules use

from f5_worker.tts.f5_imports import f5_model_classes

f5_model_classes()  # f5_tts.model without its __init__ (see f5_imports.py); then its modules import as usual
from f5_tts.model.modules import AttnProcessor, apply_rotary_pos_emb  # noqa: E402


class BroadcastMaskAttnProcessor(AttnProcessor):
    """f5-tts's ``AttnProcessor`` for the torch backend; a given padding mask always applies, broadcast."""

    @classmethod
    def like(cls, upstream: AttnProcessor) -> BroadcastMaskAttnProcessor:
        processor = cls.__new__(cls)  # not __init__: f5-tts's would warn about the mask once more
        processor.__dict__.update(vars(upstream))  # pe_attn_head, attn_backend, attn_mask_enabled (ignored)
        return processor

    def __call__(self, attn, x, mask=None, rope=None) -> torch.Tensor:
        if mask is None or self.attn_backend != "torch":
            return super().__call__(attn, x, mask=mask, rope=rope)
        batch_size = x.shape[0]
        query = attn.to_q(x)
        key = attn.to_k(x)
        value = attn.to_v(x)
        inner_dim = key.shape[-1]
        head_dim = inner_dim // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.q_norm is not None:
            query = attn.q_norm(query)
        if attn.k_norm is not None:
            key = attn.k_norm(key)
        if rope is not None:
            freqs, xpos_scale = rope
            q_scale, k_scale = (xpos_scale, xpos_scale**-1.0) if xpos_scale is not None else (1.0, 1.0)
            if self.pe_attn_head is not None:
                pn = self.pe_attn_head
                query[:, :pn, :, :] = apply_rotary_pos_emb(query[:, :pn, :, :], freqs, q_scale)
                key[:, :pn, :, :] = apply_rotary_pos_emb(key[:, :pn, :, :], freqs, k_scale)
            else:
                query = apply_rotary_pos_emb(query, freqs, q_scale)
                key = apply_rotary_pos_emb(key, freqs, k_scale)
        attn_mask = mask[:, None, None, :]  # b n -> b 1 1 n: broadcast over heads and queries, never expanded
        x = F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask, dropout_p=0.0, is_causal=False)
        x = x.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)
        x = x.to(query.dtype)
        x = attn.to_out[0](x)
        x = attn.to_out[1](x)
        return x.masked_fill(~mask.unsqueeze(-1), 0.0)


def use_broadcast_mask(blocks) -> int:
    """Give each block's f5-tts attention the broadcasting processor; returns how many were replaced."""
    replaced = 0
    for block in blocks:
        attn = getattr(block, "attn", None)
        processor = getattr(attn, "processor", None)
        if type(processor) is AttnProcessor:  # exactly f5-tts's: a subclass may do its own thing
            attn.processor = BroadcastMaskAttnProcessor.like(processor)
            replaced += 1
    return replaced
