"""The AVX2 K-quant products bit for bit as llama.cpp's x86 AVX2 CPU build computes them
(natively; the bodies are found as the program finds them, ggml_type_body):

* matvec Q2_K .. Q6_K (the file's layout) against tests/reference/ggml_kdot.py's
  `vec_dot` (ggml_vec_dot_q{2..6}_K_q8_K's AVX2 roundings, restated in numpy);
* matvec Q4_K_R8 (Q4_K repacked into 8-row groups by peasm/ggml_r8.py's packing, the bytes
  the loader's repack writes) against `gemv_q4_k_8x8` (llama.cpp's repacked Q4_K gemv);
* the batched bodies the prefill runs (matmat Q4_K, Q6_K, Q4_K_R8) give the same bits per
  input;
on random super-blocks of several shapes (odd rows, 1 to 22 super-blocks a row) and on the
K tensors of the llama.cpp-quantized tiny256 Q2_K / Q3_K_M / Q4_K_M / Q5_K_M / Q6_K files, the inputs
quantized by the kernels' own Q8_K (byte for byte ggml's quantize_row_q8_K:
test_kernels_kquant.py). The numpy model is itself held to the exact sums
(quant_k.matvec within matvec_bound), so it cannot drift from the mathematics.
The SSE2 bodies keep 4 lanes and no FMA: their bits are not these (test_kernels_kquant.py
holds them to the bound).
"""
from __future__ import annotations

import numpy as np
import pytest
from gguf import GGUFReader

from peasm import ggml_r8
from tests.reference import ggml_kdot as gk
from tests.reference import quant_k as qk
from tests.support import model_file
from tests.test_kernels_matmat import _kernels

SHAPES = [(1, 256), (3, 512), (7, 768), (13, 1024), (33, 2048), (5, 5632), (130, 256)]
R8_SHAPES = [(8, 256), (16, 512), (24, 768), (40, 2048), (136, 1024), (8, 5632)]


@pytest.fixture
def k():
    return _kernels()


def _xq(rng, n: int, scale: float = 1.0) -> np.ndarray:
    return qk.quantize_q8_k((rng.standard_normal(n) * scale).astype(np.float32))


def _check_model(kind: str, W: bytes, xq: np.ndarray, want: np.ndarray) -> None:
    exact, bound = qk.matvec(kind, W, xq), qk.matvec_bound(kind, W, xq)
    assert np.all(np.abs(want.astype(np.float64) - exact) <= bound), kind


def _same(got: np.ndarray, want: np.ndarray, what) -> None:
    bad = np.flatnonzero(got.view(np.uint32) != want.view(np.uint32))
    assert bad.size == 0, (what, bad[:5], got[bad[:3]], want[bad[:3]])


@pytest.mark.parametrize("kind", ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"])
@pytest.mark.parametrize("d,n", SHAPES)
def test_matvec_as_ggml_vec_dot(k, kind, d, n):
    rng = np.random.default_rng(d * 7 + n)
    W = qk.random_blocks(kind, d, n, rng).tobytes()
    for rep in range(2):
        xq = _xq(rng, n, scale=10.0 ** rep)
        want = gk.vec_dot(kind, W, xq)
        _check_model(kind, W, xq, want)
        _same(k.matvec_q(kind, W, xq.tobytes(), n, d), want, (kind, d, n, rep))


@pytest.mark.parametrize("d,n", R8_SHAPES)
def test_q4_k_r8_matvec_as_ggml_repacked_gemv(k, d, n):
    rng = np.random.default_rng(d + 3 * n)
    W = qk.random_blocks("Q4_K", d, n, rng).tobytes()
    P = ggml_r8.pack(W, "Q4_K", d, n)
    assert ggml_r8.unpack(P, "Q4_K", d, n) == W
    for rep in range(2):
        xq = _xq(rng, n, scale=0.01 if rep else 1.0)
        want = gk.gemv_q4_k_8x8(W, xq)
        _check_model("Q4_K", W, xq, want)
        _same(k.matvec_q("Q4_K_R8", P, xq.tobytes(), n, d), want, (d, n, rep))
    # the two roundings of llama.cpp's Q4_K differ somewhere here (the judge can fail)
    assert not np.array_equal(gk.gemv_q4_k_8x8(W, xq), gk.vec_dot("Q4_K", W, xq)) or d < 16


@pytest.mark.parametrize("name", ["tiny256-Q2_K.gguf", "tiny256-Q3_K_M.gguf", "tiny256-Q4_K_M.gguf",
                                  "tiny256-Q5_K_M.gguf", "tiny256-Q6_K.gguf"])
def test_real_k_tensors(k, name):
    rng = np.random.default_rng(5)
    for t in GGUFReader(model_file(f"quant/{name}")).tensors:
        kind = t.tensor_type.name
        if kind not in ("Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"):
            continue
        n, d = (int(v) for v in t.shape[:2])
        W = np.asarray(t.data).tobytes()
        xq = _xq(rng, n)
        _same(k.matvec_q(kind, W, xq.tobytes(), n, d), gk.vec_dot(kind, W, xq), (name, t.name))
        if kind == "Q4_K" and d % 8 == 0:
            P = ggml_r8.pack(W, "Q4_K", d, n)
            _same(k.matvec_q("Q4_K_R8", P, xq.tobytes(), n, d), gk.gemv_q4_k_8x8(W, xq),
                  (name, t.name, "R8"))


@pytest.mark.parametrize("kind", ["Q4_K", "Q6_K"])
def test_matmat_bodies_as_ggml_vec_dot(k, kind):
    rng = np.random.default_rng(11)
    d, n, B = 37, 1024, 6
    W = qk.random_blocks(kind, d, n, rng).tobytes()
    xs = [_xq(rng, n) for _ in range(B)]
    size = xs[0].nbytes
    out = k.matmat_q(kind, W, b"".join(x.tobytes() for x in xs), n, d, B, size, 4 * d)
    for b, x in enumerate(xs):
        _same(out[b * d:(b + 1) * d], gk.vec_dot(kind, W, x), (kind, b))


@pytest.mark.parametrize("d,n,B", [(8, 256, 1), (16, 512, 3), (24, 768, 4), (40, 2048, 7),
                                   (8, 5632, 2), (64, 1024, 32)])
def test_q4_k_r8_matmat_as_ggml_repacked_gemv(k, d, n, B):
    """Q4_K_R8's matmat (two inputs at a time; an odd last one alone): every input's outputs
    the repacked gemv's bits; strided inputs and outputs, nothing written into the gaps."""
    rng = np.random.default_rng(d * n + B)
    W = qk.random_blocks("Q4_K", d, n, rng).tobytes()
    P = ggml_r8.pack(W, "Q4_K", d, n)
    xs = [_xq(rng, n) for _ in range(B)]
    x_stride, out_stride = xs[0].nbytes + 20, 4 * d + 12
    packed = b"".join(x.tobytes() + bytes(20) for x in xs)[:x_stride * (B - 1) + xs[0].nbytes]
    out = k.matmat_q("Q4_K_R8", P, packed, n, d, B, x_stride, out_stride)
    written = np.zeros(out.size, bool)
    for b, x in enumerate(xs):
        at = b * out_stride // 4
        written[at:at + d] = True
        _same(out[at:at + d], gk.gemv_q4_k_8x8(W, x), (d, n, B, b))
    assert np.all(np.isnan(out[~written]))


def test_fma_model_is_one_rounding():
    """fma32 against exact rational arithmetic on cases where two roundings differ."""
    from fractions import Fraction
    rng = np.random.default_rng(2)
    a = rng.standard_normal(2000).astype(np.float32)
    b = rng.standard_normal(2000).astype(np.float32)
    c = (-(a.astype(np.float64) * b) * (1 + rng.standard_normal(2000) * 1e-7)).astype(np.float32)
    got = gk.fma32(a, b, c)
    for i in range(2000):
        exact = Fraction(float(a[i])) * Fraction(float(b[i])) + Fraction(float(c[i]))
        # the f32 nearest to exact, ties to even: compare neighbours
        g = got[i]
        lo, hi = np.nextafter(g, np.float32(-np.inf)), np.nextafter(g, np.float32(np.inf))
        dg = abs(Fraction(float(g)) - exact)
        assert dg <= abs(Fraction(float(lo)) - exact) and dg <= abs(Fraction(float(hi)) - exact), i
    assert not np.array_equal(got, (a * b + c).astype(np.float32))    # the cases do need it
