"""F32_R8, the "8 rows interleaved" form of f32 weights (peasm/ggml.py states the layout;
matvec_f32_r8_avx2 in kernels_asm/matvec.s; AVX2 only), natively, reached as the program
reaches it (kernels_init, then ggml_type_body). Weights random rows of several scales,
packed by peasm.ggml_r8.pack (the statement of what the loader's repack writes; the repack
itself: tests/test_kernels_repack.py). Judges:

* the rounding the body states, emulated in numpy: per row 8 lane sums, lane j taking
  columns 8c + j for c in order, each step one FMA (the exact product plus the sum, rounded
  once: float64 holds the product of two f32 exactly), then the fold
  ((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7)) in f32: bit for bit. A wrong chunk order, lane
  map or fold order changes roundings of random rows;
* the float64 sum: within (n/8 + 3) u of sum |w x| (n/8 FMAs into a lane, 3 folds);
  integer rows exactly;
* the prefill's product (k_par_matmat with the matmat body, matmat_f32_r8_avx2, and
  without it: the matvec per input over tiles of whole groups; alone and with 2 worker
  threads; B = 1..9 and 17, so every count of inputs in the body's last group of 3):
  every input's outputs bit for bit the matvec's on all rows (decode); nothing written
  between the strided outputs;
* whole groups only: a d that is not a multiple of 8 leaves its last d mod 8 outputs (and
  every float around the outputs) alone;
* the SSE2 path has no F32_R8 body, matvec or matmat (so the loader never repacks for it).
"""
from __future__ import annotations

import numpy as np
import pytest

from peasm import ggml, ggml_r8
from peasm.runners.kernels import Kernels
from tests.test_kernels_matmat import _bits_equal, _kernels
from tests.test_kernels_r8 import _par_matmat

U = 2.0 ** -24
SHAPES = [(8, 8), (8, 16), (16, 64), (24, 96), (40, 288), (64, 64), (768, 768), (2048, 768),
          (768, 2048)]


@pytest.fixture
def k() -> Kernels:
    return _kernels()


def _rows(rng, d: int, n: int) -> np.ndarray:
    w = rng.standard_normal((d, n)).astype(np.float32)
    return w * np.exp2(rng.uniform(-12, 6, (d, 1))).astype(np.float32)


def _matvec(k: Kernels, W: np.ndarray, x: np.ndarray, d_arg: int | None = None,
            guard: int = 16) -> np.ndarray:
    """The F32_R8 matvec on W (plain layout, packed here) with d_arg (default all rows);
    the out buffer with `guard` NaN floats on both sides, returned whole."""
    d, n = W.shape
    d_arg = d if d_arg is None else d_arg
    P = np.frombuffer(ggml_r8.pack(W.tobytes(), "F32", d, n), np.float32)
    try:
        pw, px = k.put(P, "W"), k.put(x, "x")
        po = k.put(np.full(d + 2 * guard, np.nan, np.float32), "out")
        k.m.call(k.ggml_body("F32_R8", "matvec"), po + 4 * guard, pw, px, n, d_arg)
        return k.get(po, d + 2 * guard)
    finally:
        k._done()


def _emulated(W: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The body's rounding in numpy: 8 lanes a row, one FMA a chunk, then the fold."""
    d, n = W.shape
    lanes = np.zeros((d, 8), np.float32)
    w64 = W.astype(np.float64).reshape(d, n // 8, 8)
    x64 = x.astype(np.float64).reshape(n // 8, 8)
    for c in range(n // 8):
        lanes = (w64[:, c, :] * x64[c] + lanes.astype(np.float64)).astype(np.float32)
    l_ = lanes
    return (((l_[:, 0] + l_[:, 1]) + (l_[:, 2] + l_[:, 3])) +
            ((l_[:, 4] + l_[:, 5]) + (l_[:, 6] + l_[:, 7])))


def test_body_only_on_avx2(k):
    assert k.ggml_body("F32_R8", "matvec") == k.m.address("matvec_f32_r8_avx2")
    assert k.ggml_body("F32_R8", "matmat") == k.m.address("matmat_f32_r8_avx2")
    assert ggml.body_symbol(ggml.BY_NAME["F32_R8"], "matvec", "sse2") is None
    assert ggml.body_symbol(ggml.BY_NAME["F32_R8"], "matmat", "sse2") is None
    assert ggml.BY_NAME["F32_R8"].group_rows == ggml.R8_GROUP


def test_matvec_rounds_as_stated_and_within_the_bound(k):
    for i, (d, n) in enumerate(SHAPES):
        rng = np.random.default_rng(100 + i)
        W, x = _rows(rng, d, n), rng.standard_normal(n).astype(np.float32)
        out = _matvec(k, W, x)
        got, guard = out[16:16 + d], np.concatenate([out[:16], out[16 + d:]])
        assert np.all(np.isnan(guard)), (d, n, "wrote outside the outputs")
        _bits_equal(got, _emulated(W, x), (d, n))
        exact = W.astype(np.float64) @ x.astype(np.float64)
        mag = np.abs(W.astype(np.float64)) @ np.abs(x.astype(np.float64))
        assert np.all(np.abs(got - exact) <= (n / 8 + 3) * U * mag), (d, n)


def test_matvec_exact_on_integers(k):
    rng = np.random.default_rng(3)
    W = rng.integers(-50, 50, (48, 1024)).astype(np.float32)
    x = rng.integers(-50, 50, 1024).astype(np.float32)
    got = _matvec(k, W, x)[16:16 + 48]
    assert np.array_equal(got, (W.astype(np.int64) @ x.astype(np.int64)).astype(np.float32))


def test_whole_groups_only(k):
    rng = np.random.default_rng(4)
    W, x = _rows(rng, 24, 64), rng.standard_normal(64).astype(np.float32)
    full = _matvec(k, W, x)[16:16 + 24]
    for d_arg in (0, 7, 15, 23):
        out = _matvec(k, W, x, d_arg)
        done = d_arg // 8 * 8
        _bits_equal(out[16:16 + done], full[:done], d_arg)
        assert np.all(np.isnan(out[16 + done:])) and np.all(np.isnan(out[:16])), d_arg


CASES = ([(8, 8, 1, 0, 0), (768, 768, 5, 4, 12), (64, 2048, 3, 0, 4), (2048, 768, 8, 36, 0),
          (40, 96, 37, 4, 8), (24, 2048, 17, 12, 4), (16, 8, 17, 0, 0)]
         + [(48 + 8 * B, (8, 768, 64)[B % 3], B, 4 * (B % 2), 4 * (B % 3)) for B in range(1, 10)])
# d, n, B, input and output padding (bytes)


@pytest.mark.parametrize("body", [True, False], ids=["matmat", "matvec_tiles"])
@pytest.mark.parametrize("workers", [0, 2])
def test_prefill_product_is_the_decode_matvec(k, workers, body):
    if workers:
        k.m.start_workers(workers)
    try:
        for d, n, B, x_pad, out_pad in CASES:
            rng = np.random.default_rng(600 + d + n + B)
            W = _rows(rng, d, n)
            P = ggml_r8.pack(W.tobytes(), "F32", d, n)
            xs = rng.standard_normal((B, n)).astype(np.float32)
            x_stride = 4 * n + x_pad
            packed = b"".join(x.tobytes() + bytes(x_pad) for x in xs)[:x_stride * (B - 1) + 4 * n]
            out_stride = 4 * d + out_pad
            out, g = _par_matmat(k, "F32_R8", P, packed, n, d, B, x_stride, out_stride, workers,
                                body=body)
            written = np.zeros(out.size, bool)
            for b in range(B):
                o = g + b * out_stride // 4
                written[o:o + d] = True
                want = _matvec(k, W, xs[b])[16:16 + d]
                _bits_equal(out[o:o + d], want, (d, n, B, b))
            assert np.all(np.isnan(out[~written])), (d, n, B, "wrote outside the outputs")
    finally:
        k.m.stop_workers()
