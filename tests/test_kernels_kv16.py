"""Attention over an f16 KV cache (kernels_asm/attention.s, ATT_KV_TYPE = GGML_TYPE_F16)
against numpy: the cache values are the f16 numbers (widened exactly, as ggml reads its f16
cache), the arithmetic f32. Runs as tests/test_kernels.py does: SSE2 under unicorn (guard
pages, ABI checks), SSE2 and AVX2/FMA natively.

Tolerances: the f16 bodies do the f32 bodies' arithmetic on the widened values, so the
judge is the f32 kernels' own (tests/test_kernels.py) on the f16 values: attention
|err| <= 3e-6 (max |v|) + 3e-6 |ref|; dot |err| <= (n/4 + 16) u (|a| @ |b|); axpy exact to
numpy's a*x + y (SSE2: product then sum; AVX2: one FMA rounding).
"""
from __future__ import annotations

import numpy as np
import pytest

from tests.test_kernels import U, attention_ref, f64, k, rng  # noqa: F401  (k: the fixture)

LENGTHS = [0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 64, 257]


def _f16_specials(r, n: int) -> np.ndarray:
    """n f16 values: random ones of every exponent, subnormals, zeros of both signs, the
    largest finite, the smallest normal and subnormal."""
    bits = r.integers(0, 0x7C00, n, dtype=np.uint16) | (r.integers(0, 2, n, dtype=np.uint16) << 15)
    edges = np.array([0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x7BFF, 0xFBFF, 0x3C00,
                      0x0200, 0x83FF], np.uint16)
    bits[:min(n, edges.size)] = edges[:n]
    return bits.view(np.float16)


@pytest.mark.parametrize("n", LENGTHS)
def test_dot_f16(k, n):
    r = rng(100 + n)
    a = r.standard_normal(n).astype(np.float32)
    b = _f16_specials(r, n)
    got = k.m.call(f"dot_f16_{k.path}", k.put(a, "a"), k.put(b, "b"), n).f32
    k._done()
    want = f64(a) @ f64(b.astype(np.float32))
    bound = (n / 4 + 16) * U * (np.abs(f64(a)) @ np.abs(f64(b.astype(np.float32))))
    assert abs(got - want) <= bound, (got, want, bound)
    assert got == k.dot(a, b.astype(np.float32))   # the f32 body's order on the widened row


@pytest.mark.parametrize("n", LENGTHS)
def test_axpy_f16(k, n):
    r = rng(200 + n)
    y = r.standard_normal(n).astype(np.float32)
    x = _f16_specials(r, n)
    a = np.float32(0.7431)
    py = k.put(y, "y")
    k.m.call(f"axpy_f16_{k.path}", py, k.put(x, "x"), n, float(a))
    got = k.get(py, n)
    k._done()
    xf = x.astype(np.float32)
    if k.path == "sse2":
        want = (a * xf).astype(np.float32) + y                     # two roundings
    else:
        want = (np.float64(a) * f64(xf) + f64(y)).astype(np.float32)   # one (the product is exact in f64)
    assert np.array_equal(got, want)


def test_dot_axpy_f16_inf_and_nan(k):
    a = np.ones(9, np.float32)
    for bits, want in ((0x7C00, np.inf), (0xFC00, -np.inf), (0x7E00, np.nan)):
        b = np.zeros(9, np.uint16)
        b[3] = bits
        got = k.m.call(f"dot_f16_{k.path}", k.put(a, "a"), k.put(b, "b"), 9).f32
        k._done()
        assert (np.isnan(got) if np.isnan(want) else got == want), (hex(bits), got)


@pytest.mark.parametrize("n_heads,n_kv_heads,hs,seq_len,pos", [
    (1, 1, 1, 1, 0), (2, 1, 7, 9, 8), (6, 6, 48, 256, 37), (8, 4, 8, 64, 63),
    (8, 2, 9, 33, 20), (12, 12, 64, 40, 39), (4, 1, 33, 17, 16), (9, 3, 64, 130, 129)])
def test_attention_f16_cache(k, n_heads, n_kv_heads, hs, seq_len, pos):
    r = rng(7000 + n_heads * 100 + hs + pos)
    kv_dim = n_kv_heads * hs
    q = r.standard_normal(n_heads * hs).astype(np.float32)
    kc = r.standard_normal((seq_len, kv_dim)).astype(np.float16)
    vc = (3 * r.standard_normal((seq_len, kv_dim))).astype(np.float16)
    kc[pos + 1:] = np.nan                      # rows past pos must not be read
    vc[pos + 1:] = np.nan
    out, att = k.attention(q, kc, vc, pos, n_heads, n_kv_heads, hs, seq_len)
    ref, atts = attention_ref(q, kc.astype(np.float32), vc.astype(np.float32), pos, n_heads,
                              n_kv_heads, hs)
    vmax = np.abs(vc[:pos + 1].astype(np.float32)).max()
    assert np.all(np.abs(f64(out) - ref) <= 3e-6 * vmax + 3e-6 * np.abs(ref))
    for h in range(n_heads):
        assert np.allclose(att[h, :pos + 1], atts[h], rtol=1e-5, atol=1e-7)
        assert np.all(att[h, pos + 1:] == 0)


def test_attention_f32_cache_unchanged_by_the_field(k):
    """The f16 bodies do the f32 bodies' arithmetic on exactly widened values: an f16 cache
    gives bit for bit what the same values in an f32 cache give (head size 13: the 8-, 4-
    and 1-element steps of both bodies)."""
    r = rng(42)
    n_heads, n_kv_heads, hs, seq_len, pos = 4, 2, 13, 20, 19
    q = r.standard_normal(n_heads * hs).astype(np.float32)
    kc = r.standard_normal((seq_len, n_kv_heads * hs)).astype(np.float16)
    vc = r.standard_normal((seq_len, n_kv_heads * hs)).astype(np.float16)
    out16, att16 = k.attention(q, kc, vc, pos, n_heads, n_kv_heads, hs, seq_len)
    out32, att32 = k.attention(q, kc.astype(np.float32), vc.astype(np.float32), pos, n_heads,
                               n_kv_heads, hs, seq_len)
    assert np.array_equal(att16, att32)
    assert np.array_equal(out16, out32)
