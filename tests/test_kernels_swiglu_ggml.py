"""swiglu_ggml (kernels_asm/swiglu_ggml.s), the SwiGLU of GGUF models, bit for bit against
tests/reference/ggml_swiglu.py (llama.cpp's ggml_vec_swiglu_f32 in numpy: its AVX2+FMA build
for the AVX2 body, its SSE2 build for the SSE2 body). The reference itself was checked against
llama.cpp's own outputs (its docstring says how); here it is also held to the exponential it
approximates, so a wrong constant in both would not pass."""
from __future__ import annotations

import numpy as np
import pytest

from tests.reference import ggml_swiglu as G
from tests.test_kernels import k  # noqa: F401  (fixture: unicorn sse2, native sse2, native avx2)

F32 = np.float32


def _same(got: np.ndarray, want: np.ndarray) -> None:
    bad = np.flatnonzero(got.view(np.uint32) != want.view(np.uint32))
    assert bad.size == 0, (bad[:8], got[bad[:8]], want[bad[:8]])


@pytest.mark.parametrize("n", [1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 64, 100, 1536])
def test_as_ggml_on_activations(k, n):
    rng = np.random.default_rng(n)
    a = (rng.standard_normal(n) * 4).astype(F32)
    b = (rng.standard_normal(n) * 2).astype(F32)
    _same(k.swiglu_ggml(a, b), G.swiglu(a, b, fma=k.path == "avx2"))



@pytest.mark.parametrize("scale", [30.0, 90.0, 100.0, 150.0, 1e6])
def test_far_out_every_path(k, scale):
    """Arguments where exp(-v) leaves the normal range: ggml's branches for |n| > 126 and
    > 192 (and the elements past the last whole vector through expf's overflow)."""
    rng = np.random.default_rng(int(scale))
    n = 8 * 13 + 5
    a = (rng.uniform(-1, 1, n) * scale).astype(F32)
    a[:6] = [-88.5, -88.8, -89.0, -103.0, -104.5, 87.9]
    a[-3:] = [-90.0, -89.0, 95.0]                    # in the scalar tail
    b = rng.uniform(-2, 2, n).astype(F32)
    _same(k.swiglu_ggml(a, b), G.swiglu(a, b, fma=k.path == "avx2"))


def test_signed_zeros_and_tiny(k):
    a = np.array([0.0, -0.0, 1e-30, -1e-30, 1e-40, -1e-40, 3.0, -3.0, 0.5] * 3, F32)
    b = np.array([1.0, -1.0, 2.0, 3.0, -4.0, 5.0, 6.0, 7.0, 8.0] * 3, F32)
    _same(k.swiglu_ggml(a, b), G.swiglu(a, b, fma=k.path == "avx2"))


def test_reference_exp_is_an_exponential():
    """ggml's stated accuracy (1.45 + 0.5 ulp) holds for the model, both builds: a typo in a
    constant, shared by the asm and the model, would show here."""
    x = np.linspace(-87, 88, 200001).astype(F32)
    want = np.exp(x.astype(np.float64))
    for fma in (True, False):
        got = G.v_expf(x, fma).astype(np.float64)
        ulp = np.spacing(want.astype(F32)).astype(np.float64)
        assert np.max(np.abs(got - want) / ulp) < 2.5, fma


def test_reference_fma_rounds_once():
    """fma32 against exact rational arithmetic on values whose double sum rounds twice."""
    from fractions import Fraction
    rng = np.random.default_rng(7)
    a = rng.standard_normal(4000).astype(F32)
    b = rng.standard_normal(4000).astype(F32)
    c = (rng.standard_normal(4000) * 2.0 ** rng.integers(-30, 30, 4000)).astype(F32)
    got = G.fma32(a, b, c)
    for i in range(0, 4000, 7):
        exact = Fraction(float(a[i])) * Fraction(float(b[i])) + Fraction(float(c[i]))
        lo = F32(float(exact))                       # nearest double, then to f32 ...
        cands = [np.nextafter(lo, F32(-np.inf)), lo, np.nextafter(lo, F32(np.inf))]
        best = min(cands, key=lambda v: (abs(Fraction(float(v)) - exact),
                                         int(np.array(v, F32).view(np.uint32)) & 1))
        assert got[i] == best, i


def test_pieces_on_whole_vectors_give_the_whole_call(k):
    """The FFN job (kernels_asm/parallel_queue.s, k_par_rows_flush_glu) applies the SwiGLU to
    each chunk's rows; chunks start at multiples of PAR_GRAIN = 8, so pieces that start on a
    whole vector and end on one, or at n, must give the whole call's bits."""
    rng = np.random.default_rng(3)
    n = 8 * 11 + 5
    a = (rng.standard_normal(n) * 6).astype(F32)
    b = rng.standard_normal(n).astype(F32)
    whole = k.swiglu_ggml(a, b)
    for cut in ([0, 16, 40, n], [0, 8, 88, n], [0, 88, n]):
        got = np.concatenate([k.swiglu_ggml(a[s:e], b[s:e]) for s, e in zip(cut, cut[1:])])
        _same(got, whole)
