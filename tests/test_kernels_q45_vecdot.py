"""The plain-layout AVX2 Q4_0, Q4_1, Q5_0 and Q5_1 matvecs (kernels_asm/ggml_q4.s,
ggml_q5.s on ggml_quads.inc's GMV4_BODY_AVX2) round as ggml's AVX2 vec_dot_q4_0_q8_0,
vec_dot_q4_1_q8_1, vec_dot_q5_0_q8_0, vec_dot_q5_1_q8_1, bit for bit, on every row: the
rows of a 4-row group and of a last partial group alike (d = 1..9 and model shapes),
natively. The Q5_x matmat bodies (ggml_mm_q5.s) equal these matvecs bit for bit (their contract,
tests/test_kernels_matmat.py), so they round as ggml's vec_dot too; the Q4_x matmat bodies
round otherwise (ggml_mm8.inc: llama.cpp's repacked gemv) and are not judged here.

The judge is a numpy model of the rounding those AVX2 vec_dot functions state (ggml-cpu's
x86 quants): one __m256 accumulator a row, per block in order
acc = _mm256_fmadd_ps(set1(f32(d_w) * f32(d_x)), cvt(lane sums), acc), then hsum_float_8;
the _1 types besides summs += f32(m_w) * f32(s_x) (a product rounded to f32, then a sum in
f32, block by block) and the result hsum_float_8(acc) + summs. Lane j of a block is the
exact integer sum of the products of elements 4j..4j+3 (the unpacked quants in element
order: bytes_from_nibbles_32 puts the low nibbles, elements 0..15, in the low 128 bits;
Q4_0: q - 8, Q5_0: q - 16, the _1 types: q unsigned). The FMA and the fold are
tests/test_kernels_q8_0_vecdot.py's (fma_f32 checked there against exact rational
rounding). A body whose odd last row summed even and odd blocks apart (the former pair loop's
one-row loop) or folded otherwise differs from the model in the last bits of some of these random
rows; the tests compare bits.
"""
from __future__ import annotations

import numpy as np
import pytest

from peasm import ggml
from peasm.runners.kernels import Kernels
from tests.reference import quant as Q
from tests.test_kernels_matmat import _kernels
from tests.test_kernels_q8_0_vecdot import fma_f32, hsum_float_8

TYPES = ["Q4_0", "Q4_1", "Q5_0", "Q5_1"]


def vec_dot(type_name: str, W: bytes, xq: bytes, n: int, d: int) -> np.ndarray:
    """d rows of type_name blocks (n elements a row) times xq (the type's vec_dot_type),
    each row as ggml's AVX2 vec_dot_<type>_<vec_dot_type> rounds it."""
    t = ggml.BY_NAME[type_name]
    nb = n // 32
    dw, mw, qw = Q._fields(type_name, W, d * nb)          # qw: q - 8 / q - 16 / q
    dx, sx, qx = Q._fields(t.vec_dot_type, xq, nb)
    lanes = (qw.reshape(d, nb, 8, 4).astype(np.int64) * qx.reshape(1, nb, 8, 4)).sum(axis=3)
    scale = dw.reshape(d, nb).astype(np.float32) * dx.reshape(1, nb).astype(np.float32)
    acc = np.zeros((d, 8), np.float32)
    summs = np.zeros(d, np.float32)
    for b in range(nb):
        acc = fma_f32(np.repeat(scale[:, b:b + 1], 8, axis=1), lanes[:, b, :].astype(np.float32), acc)
        if mw is not None:
            summs = summs + mw.reshape(d, nb)[:, b].astype(np.float32) * np.float32(sx[b])
    out = hsum_float_8(acc)
    return out + summs if mw is not None else out


@pytest.fixture
def k() -> Kernels:
    return _kernels()


def _weights(type_name: str, d: int, n: int, rng) -> bytes:
    """d rows of random blocks: any quants (and qh bits), f16 scales of ordinary size over
    a wide range and both signs (Q4_1, Q5_1: m likewise)."""
    t = ggml.BY_NAME[type_name]
    nb = d * n // 32
    raw = rng.integers(0, 256, (nb, t.block_bytes), dtype=np.uint8)

    def f16(count):
        v = (np.abs(rng.standard_normal(count)) * np.exp2(rng.integers(-12, -2, count))
             * rng.choice([-1, 1], count)).astype(np.float32)
        return Q.f32_to_f16_bits(v).reshape(-1, 1).view(np.uint8)

    raw[:, 0:2] = f16(nb)
    if type_name in ("Q4_1", "Q5_1"):
        raw[:, 2:4] = f16(nb)
    return raw.tobytes()


def _check(k: Kernels, type_name: str, d: int, n: int, seed: int, misalign: int = 0) -> None:
    t = ggml.BY_NAME[type_name]
    rng = np.random.default_rng(seed)
    W = _weights(type_name, d, n, rng)
    x = rng.standard_normal(n).astype(np.float32)
    x *= np.exp2(rng.uniform(-6, 6, n // 32)).astype(np.float32).repeat(32)
    xq = k.quantize(t.vec_dot_type, x)
    assert xq == Q.quantize(t.vec_dot_type, x)
    ku = Kernels(k.m, k.path, misalign=misalign) if misalign else k
    got = ku.matvec_q(type_name, W, xq, n, d)
    want = vec_dot(type_name, W, xq, n, d)
    bad = np.flatnonzero(got.view(np.uint32) != want.view(np.uint32))
    assert bad.size == 0, (type_name, d, n, bad[:10], got[bad[:3]], want[bad[:3]])


@pytest.mark.parametrize("type_name", TYPES)
@pytest.mark.parametrize("d", range(1, 10))
def test_matvec_is_ggml_vec_dot_on_any_row_count(k, type_name, d):
    for i, n in enumerate((32, 64, 96, 576, 1536)):
        _check(k, type_name, d, n, seed=1000 * ggml.BY_NAME[type_name].id + 100 * d + i)


@pytest.mark.parametrize("type_name", TYPES)
@pytest.mark.parametrize("d,n", [(13, 576), (577, 1536), (1537, 576), (3, 5632)])
def test_matvec_is_ggml_vec_dot_at_model_shapes(k, type_name, d, n):
    _check(k, type_name, d, n, seed=d + n)


@pytest.mark.parametrize("type_name", ["Q5_0", "Q5_1"])
@pytest.mark.parametrize("d", [1, 3, 5, 9])
def test_q5_matmat_odd_row_is_ggml_vec_dot(k, type_name, d):
    """The Q5_x matmat's odd last row, for each input of a batch, is the model's."""
    t = ggml.BY_NAME[type_name]
    rng = np.random.default_rng(50 + d)
    n, B = 1536, 5
    W = _weights(type_name, d, n, rng)
    xs = [k.quantize(t.vec_dot_type, rng.standard_normal(n).astype(np.float32)) for _ in range(B)]
    got = k.matmat_q(type_name, W, b"".join(xs), n, d, B, len(xs[0]), 4 * d).reshape(B, d)
    for b in range(B):
        want = vec_dot(type_name, W, xs[b], n, d)
        assert np.array_equal(got[b].view(np.uint32), want.view(np.uint32)), (type_name, d, b)


@pytest.mark.parametrize("type_name", TYPES)
@pytest.mark.parametrize("misalign", [1, 3, 6])
def test_matvec_is_ggml_vec_dot_unaligned(k, type_name, misalign):
    for d in (3, 7, 8):
        _check(k, type_name, d, 96, seed=misalign * 10 + d, misalign=misalign)


@pytest.mark.parametrize("type_name", TYPES)
def test_matvec_writes_only_its_outputs(k, type_name):
    """Outputs between guard floats: d of them written (any d mod 4), none around."""
    t = ggml.BY_NAME[type_name]
    rng = np.random.default_rng(3)
    n = 64
    for d in range(1, 10):
        W = _weights(type_name, d, n, rng)
        xq = k.quantize(t.vec_dot_type, rng.standard_normal(n).astype(np.float32))
        body = k.ggml_body(type_name, "matvec")
        guard = np.float32(-7.25)
        try:
            pw = k.put(np.frombuffer(W, np.uint8), "W")
            px = k.put(np.frombuffer(xq, np.uint8), "xq")
            po = k.put(np.full(d + 8, guard, np.float32), "out")
            k.m.call(body, po + 16, pw, px, n, d)
            got = k.get(po, d + 8)
        finally:
            k._done()
        assert np.array_equal(got[:4], np.full(4, guard)) and np.array_equal(got[4 + d:], np.full(4, guard)), d
        want = vec_dot(type_name, W, xq, n, d)
        assert np.array_equal(got[4:4 + d].view(np.uint32), want.view(np.uint32)), d
