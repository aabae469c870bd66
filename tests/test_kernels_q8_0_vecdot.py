"""The AVX2 Q8_0 matvec (kernels_asm/ggml_q8.s, matvec_q8_0_avx2) rounds as ggml's AVX2
vec_dot_q8_0_q8_0, bit for bit, on every row (any d: four rows at a time, a last group of
1..3 rows included), natively.

The judge is a numpy model written from the rounding that ggml's AVX2 vec_dot_q8_0_q8_0
states (ggml-cpu's x86 quants: one __m256 accumulator a row, per block
acc = _mm256_fmadd_ps(set1(f32(d_w) * f32(d_x)), cvt(lane sums), acc), then hsum_float_8):

* lane j of a block: the exact integer sum of the products of bytes 4j..4j+3 (weights any
  int8, -128 included; activations from our quantizer, -127..127), exact in f32;
* the block's scale: f32(d_w) * f32(d_x) rounded once to f32 (numpy float32 multiply);
* the FMA: a single rounding of a * b + c to f32, modelled in float64 (a * b exact there)
  with an error-free sum and round-to-odd, then one rounding to f32 (53 >= 24 + 2 bits, so
  no double rounding); the model's FMA is itself checked against exact rational rounding;
* the fold: hsum_float_8's order, ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)), in f32.

A kernel that summed a row's blocks in another order, in two accumulators, or folded the
lanes otherwise differs from this model in the last bits of some rows of these random
inputs (each shape runs several hundred rows' worth of blocks); the tests assert equality
of the bits, so such a change fails them.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from peasm.runners.kernels import Kernels
from tests.reference import quant as Q
from tests.test_kernels_matmat import _kernels


def fma_f32(a, b, c) -> np.ndarray:
    """float32 a * b + c rounded once (as vfmadd231ps), for finite float32 arrays whose
    result does not overflow float64's range."""
    a64, b64, c64 = (np.asarray(v, np.float32).astype(np.float64) for v in (a, b, c))
    p = a64 * b64                                  # exact: two 24-bit significands
    s = p + c64
    bb = s - p                                     # TwoSum: s + e == p + c exactly
    e = (p - (s - bb)) + (c64 - bb)
    inexact = e != 0
    # round to odd: truncate toward zero (one step down in magnitude when |p + c| < |s|),
    # then set the last bit when inexact
    t = np.where(inexact & (np.signbit(e) != np.signbit(s)), np.nextafter(s, 0.0), s)
    bits = t.view(np.int64) | inexact.astype(np.int64)
    return bits.view(np.float64).astype(np.float32)


def hsum_float_8(acc: np.ndarray) -> np.ndarray:
    """ggml's hsum_float_8 of each row of acc (rows x 8, float32)."""
    r = acc[:, 4:] + acc[:, :4]
    r = r[:, :2] + r[:, 2:]
    return r[:, 0] + r[:, 1]


def vec_dot_q8_0(W: bytes, xq: bytes, n: int, d: int) -> np.ndarray:
    """d rows of Q8_0 blocks (n elements a row) times the Q8_0 vector xq, each row as
    ggml's AVX2 vec_dot_q8_0_q8_0 rounds it."""
    nb = n // 32
    dw, _, qw = Q._fields("Q8_0", W, d * nb)
    dx, _, qx = Q._fields("Q8_0", xq, nb)
    lanes = (qw.reshape(d, nb, 8, 4).astype(np.int64) * qx.reshape(1, nb, 8, 4)).sum(axis=3)
    scale = dw.reshape(d, nb).astype(np.float32) * dx.reshape(1, nb).astype(np.float32)
    acc = np.zeros((d, 8), np.float32)
    for b in range(nb):
        acc = fma_f32(np.repeat(scale[:, b:b + 1], 8, axis=1), lanes[:, b, :].astype(np.float32), acc)
    return hsum_float_8(acc)


# ----------------------------------------------------------------------------------------
# the judge's own check


def _round_f32_exact(x: Fraction) -> np.float32:
    """The float32 nearest the rational x (ties to even), by exact comparison."""
    c = np.float32(float(x))
    best = None
    for v in (np.nextafter(c, np.float32(-np.inf)), c, np.nextafter(c, np.float32(np.inf))):
        dist = abs(Fraction(float(v)) - x)
        even = int(np.array(v).view(np.uint32)) % 2 == 0
        key = (dist, not even)
        if best is None or key < best[0]:
            best = (key, v)
    return best[1]


def test_the_fma_model_rounds_once():
    rng = np.random.default_rng(7)
    m = 3000
    a = (rng.standard_normal(m) * np.exp2(rng.integers(-30, 30, m))).astype(np.float32)
    b = rng.integers(-65536, 65537, m).astype(np.float32)          # lane sums
    c = (rng.standard_normal(m) * np.exp2(rng.integers(-30, 40, m))).astype(np.float32)
    # hard cases: c exactly half an ulp of the sum away from a representable value
    # (ties and near-ties), cancellation, zeros of both signs, subnormal results
    k = 600
    c[:k] = (-(a[:k].astype(np.float64) * b[:k]) * (1 + np.float64(2.0 ** -25) *
             rng.choice([-1, 1, 3, -3], k))).astype(np.float32)
    a[k:k + 10], c[k:k + 10] = np.float32(0), np.float32(-0.0)
    a[k + 10:k + 20], b[k + 10:k + 20], c[k + 10:k + 20] = np.float32(1e-30), 3, np.float32(-2e-30)
    got = fma_f32(a, b, c)
    for i in range(m):
        exact = Fraction(float(a[i])) * Fraction(float(b[i])) + Fraction(float(c[i]))
        want = _round_f32_exact(exact)
        if exact == 0:                             # the sign of an exact zero: IEEE's
            want = np.float32(-0.0) if (np.signbit(a[i]) != np.signbit(b[i]) and np.signbit(c[i])) \
                else np.float32(0.0)
        assert np.array(got[i]).view(np.uint32) == np.array(want).view(np.uint32), \
            (i, a[i], b[i], c[i], got[i], want)


# ----------------------------------------------------------------------------------------
# the kernel against the model


@pytest.fixture
def k() -> Kernels:
    return _kernels()


def _weights(d: int, n: int, rng) -> bytes:
    """d rows of random Q8_0 blocks: any int8 quants (-128 included), f16 scales of
    ordinary size, both signs."""
    nb = d * n // 32
    raw = rng.integers(0, 256, (nb, 34), dtype=np.uint8)
    scale = (np.abs(rng.standard_normal(nb)) * np.exp2(rng.integers(-12, -2, nb))
             * rng.choice([-1, 1], nb)).astype(np.float32)
    raw[:, 0:2] = Q.f32_to_f16_bits(scale).reshape(-1, 1).view(np.uint8)
    return raw.tobytes()


def _check(k: Kernels, d: int, n: int, seed: int, misalign: int = 0) -> None:
    rng = np.random.default_rng(seed)
    W = _weights(d, n, rng)
    x = rng.standard_normal(n).astype(np.float32)
    x *= np.exp2(rng.uniform(-6, 6, n // 32)).astype(np.float32).repeat(32)
    xq = k.quantize("Q8_0", x)
    assert xq == Q.quantize("Q8_0", x)
    ku = Kernels(k.m, k.path, misalign=misalign) if misalign else k
    got = ku.matvec_q("Q8_0", W, xq, n, d)
    want = vec_dot_q8_0(W, xq, n, d)
    bad = np.flatnonzero(got.view(np.uint32) != want.view(np.uint32))
    assert bad.size == 0, (d, n, bad[:10], got[bad[:3]], want[bad[:3]])


@pytest.mark.parametrize("d", range(1, 10))
def test_matvec_is_ggml_vec_dot_on_any_row_count(k, d):
    for i, n in enumerate((32, 64, 96, 576, 1536)):
        _check(k, d, n, seed=100 * d + i)


@pytest.mark.parametrize("d,n", [(13, 576), (576, 1536), (1536, 576), (4098, 64), (49152, 576)])
def test_matvec_is_ggml_vec_dot_at_model_shapes(k, d, n):
    _check(k, d, n, seed=d + n)


@pytest.mark.parametrize("misalign", [1, 3, 6])
def test_matvec_is_ggml_vec_dot_unaligned(k, misalign):
    for d in (3, 7, 8):
        _check(k, d, 96, seed=misalign * 10 + d, misalign=misalign)


def test_matvec_writes_only_its_outputs(k):
    """Outputs between guard floats: d of them written (any d mod 4), none around."""
    rng = np.random.default_rng(3)
    n = 64
    for d in range(1, 10):
        W = _weights(d, n, rng)
        xq = k.quantize("Q8_0", rng.standard_normal(n).astype(np.float32))
        body = k.ggml_body("Q8_0", "matvec")
        guard = np.float32(-7.25)
        try:
            pw = k.put(np.frombuffer(W, np.uint8), "W")
            px = k.put(np.frombuffer(xq, np.uint8), "xq")
            out = np.full(d + 8, guard, np.float32)
            po = k.put(out, "out")
            k.m.call(body, po + 16, pw, px, n, d)
            got = k.get(po, d + 8)
        finally:
            k._done()
        assert np.array_equal(got[:4], np.full(4, guard)) and np.array_equal(got[4 + d:], np.full(4, guard)), d
        want = vec_dot_q8_0(W, xq, n, d)
        assert np.array_equal(got[4:4 + d].view(np.uint32), want.view(np.uint32)), d


def test_matvec_is_ggml_vec_dot_on_smollm2s_classifier(k):
    """SmolLM2-135M's tied classifier (token_embd, Q8_0, 49152 x 576) against an activation
    of ordinary size: the real rows, bit for bit the model."""
    from gguf import GGUFReader

    from tests.support import model_file

    reader = GGUFReader(model_file("SmolLM2-135M-Instruct.Q4_1.gguf"))
    (t,) = [t for t in reader.tensors if t.name == "token_embd.weight"]
    assert t.tensor_type.name == "Q8_0"
    W = np.asarray(t.data).tobytes()
    n = 576
    d = len(W) // (n // 32 * 34)
    assert d == 49152
    x = np.random.default_rng(9).standard_normal(n).astype(np.float32)
    xq = k.quantize("Q8_0", x)
    got = k.matvec_q("Q8_0", W, xq, n, d)
    want = vec_dot_q8_0(W, xq, n, d)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
