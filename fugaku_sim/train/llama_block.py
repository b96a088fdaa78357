"""The Llama decoder layer (Hugging Face ``LlamaDecoderLayer``) as a forward/backward pair,
on one tensor rank's share.

Shape key: B batch, T sequence, C channels, Hl/Kl this rank's query and key/value heads,
D head size, Fl this rank's share of the MLP width.

``x + o_proj(attn(rotary(q_proj(h)), rotary(k_proj(h)), v_proj(h)))`` with
h = RMSNorm(x), then ``+ down_proj(silu(gate_proj(h2)) * up_proj(h2))`` with h2 =
RMSNorm(.). Under tensor parallelism (Megatron-LM, Shoeybi et al. 2019, section 3) the
q/k/v, gate and up projections are column-parallel (a rank holds its heads, or a copy of
one key/value head when there are fewer than tp, and its share of the MLP width) and o and
down are row-parallel; each region is entered and left through the block's
:class:`~fugaku_sim.train.layers.Region`. A copied key/value head gets only this rank's
share of its gradient here: the trainer sums the copies' gradients before the optimizer.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from fugaku_sim.spec import ModelSpec
from fugaku_sim.train import layers as L
from fugaku_sim.train import llama_layers as LL
from fugaku_sim.train.params import Names, Params, RankShare, add_grad, optional


class LlamaBlockCache(NamedTuple):
    names: Names
    norm_1: LL.RMSNormCache
    q: L.LinearCache  # the three projections share their input h
    k: L.LinearCache
    v: L.LinearCache
    rot_q: LL.RotaryCache
    rot_k: LL.RotaryCache
    attn: LL.GroupedAttentionCache
    o: L.LinearCache
    norm_2: LL.RMSNormCache
    gate: L.LinearCache
    up: L.LinearCache
    swiglu: LL.SwiGLUCache
    down: L.LinearCache


def llama_block_forward(
    p: Params, n: Names, model: ModelSpec, x: np.ndarray, share: RankShare,
    region: L.Region = L.SINGLE_RANK, keep_probs: bool = True,
) -> tuple[np.ndarray, LlamaBlockCache]:
    """One Llama decoder layer on this rank's share; ``n`` maps roles to tensor names.
    x [B, T, C] -> [B, T, C]. ``keep_probs``: see
    :func:`fugaku_sim.train.layers.attention_core_forward`."""
    eps, theta = model.norm_eps, model.rope_theta
    h, c_n1 = LL.rmsnorm_forward(x, p[n["attn_norm"]], eps)
    hg = region.enter(h)  # f: [B, T, C]; the caches keep h, gathered again in the backward
    q, c_q = LL.dense_forward(hg, p[n["q"]], optional(p, n, "q_bias"))  # [B, T, Hl D]
    k, c_k = LL.dense_forward(hg, p[n["k"]], optional(p, n, "k_bias"))  # [B, T, Kl D]
    v, c_v = LL.dense_forward(hg, p[n["v"]], optional(p, n, "v_bias"))
    c_q, c_k, c_v = (c._replace(x=h) for c in (c_q, c_k, c_v))
    del hg, h
    q, c_rq = LL.rotary_forward(q, share.heads, theta)
    k, c_rk = LL.rotary_forward(k, share.kv_heads, theta)
    a, c_att = LL.grouped_attention_forward(q, k, v, share.kv_heads, keep_probs)  # [B,T,Hl D]
    o, c_o = LL.dense_forward(a, p[n["attn_out"]], None)  # [B, T, C] partial
    o = region.leave(o)  # g
    if "attn_out_bias" in n:
        o += p[n["attn_out_bias"]]
    x2 = x + o  # residual
    del o
    h2, c_n2 = LL.rmsnorm_forward(x2, p[n["mlp_norm"]], eps)
    hg = region.enter(h2)  # f
    gate, c_g = LL.dense_forward(hg, p[n["mlp_gate"]], optional(p, n, "mlp_gate_bias"))  # [B,T,Fl]
    up, c_u = LL.dense_forward(hg, p[n["mlp_up"]], optional(p, n, "mlp_up_bias"))
    c_g, c_u = (c._replace(x=h2) for c in (c_g, c_u))
    del hg, h2
    s, c_s = LL.swiglu_forward(gate, up)
    m, c_d = LL.dense_forward(s, p[n["mlp_out"]], None)  # [B, T, C] partial
    m = region.leave(m)  # g
    if "mlp_out_bias" in n:
        m += p[n["mlp_out_bias"]]
    x2 += m  # residual; x2 is not cached, so in place is safe
    return x2, LlamaBlockCache(n, c_n1, c_q, c_k, c_v, c_rq, c_rk, c_att, c_o, c_n2, c_g, c_u,
                               c_s, c_d)


def llama_block_backward(
    dout: np.ndarray, cache: LlamaBlockCache, grads: Params, region: L.Region = L.SINGLE_RANK,
) -> np.ndarray:
    """Backward of :func:`llama_block_forward`: adds the parameter gradients into ``grads``
    and returns dx [B, T, C]. ``dout`` is not modified; intermediate gradients are let go as
    soon as they are used."""
    n, c = cache.names, cache
    add_grad(grads, n, "mlp_out_bias", dout.sum(axis=(0, 1)))
    ds, dw, _ = LL.dense_backward(region.leave_backward(dout), c.down)
    grads[n["mlp_out"]] += dw
    dgate, dup = LL.swiglu_backward(ds, c.swiglu)
    del ds
    dh2 = _columns_backward([("mlp_gate", dgate), ("mlp_up", dup)],
                            L.reentered([c.gate, c.up], region), grads, n)
    del dgate, dup
    dx2, dw = LL.rmsnorm_backward(region.enter_backward(dh2), c.norm_2)  # f
    del dh2
    grads[n["mlp_norm"]] += dw
    dx2 += dout  # gradient of the first residual sum
    add_grad(grads, n, "attn_out_bias", dx2.sum(axis=(0, 1)))
    da, dw, _ = LL.dense_backward(region.leave_backward(dx2), c.o)
    grads[n["attn_out"]] += dw
    dq, dk, dv = LL.grouped_attention_backward(da, c.attn)
    del da
    (dq,) = LL.rotary_backward(dq, c.rot_q)
    (dk,) = LL.rotary_backward(dk, c.rot_k)
    dh = _columns_backward([("q", dq), ("k", dk), ("v", dv)], L.reentered([c.q, c.k, c.v], region),
                           grads, n)
    del dq, dk, dv
    dx, dw = LL.rmsnorm_backward(region.enter_backward(dh), c.norm_1)  # f
    grads[n["attn_norm"]] += dw
    dx += dx2
    return dx


def _columns_backward(grads_out: list[tuple[str, np.ndarray]], caches: list[L.LinearCache],
                      grads: Params, n: Names) -> np.ndarray:
    """Backward of column-parallel layers sharing one (entered) input: adds their weight and
    bias gradients into ``grads``; returns the sum of their input gradients [B, T, C]."""
    dh: np.ndarray | None = None
    for (role, d), lin in zip(grads_out, caches):
        dh_part, dw, db = LL.dense_backward(d, lin)
        grads[n[role]] += dw
        add_grad(grads, n, f"{role}_bias", db)
        if dh is None:
            dh = dh_part
        else:
            dh += dh_part
    assert dh is not None
    return dh
