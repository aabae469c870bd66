"""Attention as llama.cpp computes it (kernels_asm/attention_ggml.s, ATT_STYLE = 1): ggml's
flash attention for one query row, against the numpy model of it
(tests/reference/gguf_forward.py: flash_attention_row), f16 and f32 caches, grouped-query
heads. Runs as tests/test_kernels.py does: SSE2 under unicorn (guard pages, ABI checks),
SSE2 and AVX2/FMA natively.

What must agree exactly: head sizes below 32 with an f16 cache on the AVX2 path (the dot is
then ggml's sum in double of exact products, the accumulator updates one FMA and one f16
rounding each, as the model). Otherwise the kernels' summation order is ggml's (f32 lanes,
or the SSE2 path's product-then-sum updates), the model's an exact dot and FMA updates: an
f16 accumulator may then round the other way now and then, so the bound is a few f16 ulps
of the largest value (2^-9 relative) where the cache is f16, 1e-5 relative where it is f32.
"""
from __future__ import annotations

import numpy as np
import pytest

from tests.reference.gguf_forward import flash_attention_row
from tests.test_kernels import k, rng  # noqa: F401  (k: the fixture)

SHAPES = [(8, 4, 8, 0), (8, 4, 8, 5), (8, 4, 8, 37), (4, 2, 64, 9), (9, 3, 64, 20), (2, 1, 40, 13)]


def _model(q, kc, vc, pos, n_heads, n_kv_heads, hs, f16) -> np.ndarray:
    out = np.empty(n_heads * hs, np.float32)
    mul = n_heads // n_kv_heads
    for h in range(n_heads):
        sl = slice((h // mul) * hs, (h // mul + 1) * hs)
        out[h * hs:(h + 1) * hs] = flash_attention_row(q[h * hs:(h + 1) * hs], kc[:pos + 1, sl].astype(np.float32),
                                                       vc[:pos + 1, sl].astype(np.float32), f16)
    return out


@pytest.mark.parametrize("kv", ["f16", "f32"])
@pytest.mark.parametrize("n_heads, n_kv_heads, hs, pos", SHAPES)
def test_attention_ggml(k, kv, n_heads, n_kv_heads, hs, pos):
    r = rng(1000 + 7 * pos + hs + n_heads)
    seq = pos + 3
    kv_dim = n_kv_heads * hs
    q = (r.standard_normal(n_heads * hs) * 2).astype(np.float32)
    dt = np.float16 if kv == "f16" else np.float32
    kc = r.standard_normal((seq, kv_dim)).astype(dt)
    vc = r.standard_normal((seq, kv_dim)).astype(dt)
    out, att = k.attention(q, kc, vc, pos, n_heads, n_kv_heads, hs, seq, style=1)
    want = _model(q, kc, vc, pos, n_heads, n_kv_heads, hs, kv == "f16")
    assert not att.any()                               # att is not written
    scale = float(np.abs(vc[:pos + 1].astype(np.float32)).max())
    if kv == "f16" and hs < 32 and k.path == "avx2":
        assert np.array_equal(out, want), np.abs(out - want).max()
    else:
        tol = scale * (2.0 ** -9 if kv == "f16" else 1e-5)
        assert np.abs(out - want).max() <= tol, (np.abs(out - want).max(), tol)
