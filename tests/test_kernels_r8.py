"""The "8 rows interleaved" bodies (Q4_0_R8, Q4_1_R8; AVX2 only: matvec in
kernels_asm/ggml_r8.s, matmat in kernels_asm/ggml_mm_r8.s) natively, reached as the program reaches them (kernels_init, then ggml_type_body).

Weights: gguf-py's quantizer (gguf.quants.quantize, an independent implementation of
ggml's) on random rows, among them extreme ones (zeros, huge and tiny scales, one large
value in a row of small ones, constant rows), packed into the R8 layout by
peasm.ggml_r8.pack (the statement of the layout the loader's repack writes); inputs
quantized by our own from_float bodies (Q8_0 / Q8_1), as the other kernel tests do. Judges:

* the plain-layout matmat body of the base type (matmat_q4_<k>_avx2, ggml_mm8.inc) on the
  unpacked rows: the R8 matvec's contract is its rounding, so the outputs must be equal bit
  for bit (NaN: in the same places);
* the float64 sum of exactly the terms that rounding adds (tests/test_kernels_matmat.py's
  _sum8_check): within (m + 1) u of it, relative to the sum of the terms' magnitudes (m =
  blocks, Q4_1 2 x blocks; u = 2^-24), as ggml_mm8.inc states;
* an input block holding -128 (ggml's quantizer never writes it, a Q8 block may hold it:
  the int16 bound of ggml_r8.s is stated with it);
* matmat: each input's outputs bit for bit the R8 matvec's on that input (its contract),
  for B = 1, 2, 7, 32, 37, strides above the sizes and 0, tiles of 1 to 4 groups;
* nothing written outside the d outputs (guard floats on both sides, and a d that is not
  a multiple of 8 leaves its last d mod 8 outputs alone: the contract reads and writes
  whole groups of 8 rows only).

A wrong nibble order, a wrong Q4_0 correction or a wrong lane order changes the integer
block sums of random rows, which both judges see (the float64 sum is built from the plain
layout, independently of the packing).
"""
from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType
from gguf.quants import quantize as gguf_quantize

from peasm import ggml, ggml_r8
from peasm.runners.kernels import Kernels
from tests.test_kernels_matmat import _bits_equal, _kernels, _sum8_check

BASES = ("Q4_0", "Q4_1")
R8 = {"Q4_0": "Q4_0_R8", "Q4_1": "Q4_1_R8"}


@pytest.fixture
def k() -> Kernels:
    return _kernels()


def _weights(base: str, d: int, n: int, rng) -> bytes:
    """d rows of n, quantized by gguf-py: normal rows of several scales and extreme ones."""
    w = rng.standard_normal((d, n)).astype(np.float32)
    w *= np.exp2(rng.uniform(-12, 6, (d, 1))).astype(np.float32)
    extremes = [
        lambda r: r * 0,                                    # zeros
        lambda r: r * np.float32(6e4 / 8),                  # d near the f16 maximum, or inf
        lambda r: r * np.float32(1e-6),                     # subnormal f16 d
        lambda r: np.where(np.arange(n) % 32 == 5, 1e3, r * 1e-3).astype(np.float32),
        lambda r: np.full_like(r, -3.5),                    # constant (Q4_1: m only)
        lambda r: np.abs(r),                                # one sign
    ]
    for i, f in enumerate(extremes):
        if i < d:
            w[(7 * i + 3) % d] = f(w[(7 * i + 3) % d])
    with np.errstate(over="ignore"):
        return gguf_quantize(w, GGMLQuantizationType[base]).tobytes()


def _inputs(k: Kernels, base: str, n: int, count: int, rng) -> list[bytes]:
    vdt = ggml.BY_NAME[base].vec_dot_type
    out = []
    for i in range(count):
        x = rng.standard_normal(n).astype(np.float32)
        x *= np.exp2(rng.uniform(-8, 8, (n // 32, 1))).astype(np.float32).repeat(32, axis=1).reshape(-1)
        if i == 1 and n >= 64:
            x[32:64] = 0                                    # a zero block
        out.append(k.quantize(vdt, x))
    return out


def _check(k: Kernels, base: str, d: int, n: int, seed: int, inputs: int = 2) -> None:
    rng = np.random.default_rng(seed)
    W = _weights(base, d, n, rng)
    P = ggml_r8.pack(W, base, d, n)
    for b, xq in enumerate(_inputs(k, base, n, inputs, rng)):
        got = k.matvec_q(R8[base], P, xq, n, d)
        want = k.matmat_q(base, W, xq, n, d, 1, len(xq), 4 * d)
        _bits_equal(got, want, (base, d, n, b))
        with np.errstate(all="ignore"):
            _sum8_check(base, W, xq, n, d, got, (base, d, n, b))


def test_the_table_has_the_r8_bodies(k):
    for base in BASES:
        name = R8[base]
        for kind in ("matvec", "matmat"):
            assert k.ggml_body(name, kind) == k.m.address(f"{kind}_{name.lower()}_avx2")
        t = ggml.BY_NAME[name]
        assert (t.base, t.group_rows, t.vec_dot_type) == (base, 8, ggml.BY_NAME[base].vec_dot_type)


def test_pack_round_trips():
    rng = np.random.default_rng(1)
    for base in BASES:
        W = _weights(base, 16, 96, rng)
        assert ggml_r8.unpack(ggml_r8.pack(W, base, 16, 96), base, 16, 96) == W


@pytest.mark.parametrize("base", BASES)
def test_matvec_small_shapes(k, base):
    for i, (d, n) in enumerate([(8, 32), (16, 64), (24, 32), (40, 96), (8, 2048), (32, 64),
                                (56, 160), (64, 256)]):
        _check(k, base, d, n, seed=i)


@pytest.mark.parametrize("base", BASES)
def test_matvec_model_shapes(k, base):
    for i, (d, n) in enumerate([(520, 2048), (40, 5632), (256, 2048), (2048, 64)]):
        _check(k, base, d, n, seed=100 + i, inputs=1)


@pytest.mark.parametrize("base", BASES)
def test_matvec_rows_longer_than_a_chunk(k, base):
    """n above 16384 (R8V_KC_MAX blocks): the outputs carry the sums between chunks."""
    for i, (d, n) in enumerate([(16, 512 * 32 + 64), (40, 1024 * 32)]):
        _check(k, base, d, n, seed=200 + i, inputs=1)


@pytest.mark.parametrize("base", BASES)
def test_matvec_input_holding_minus_128(k, base):
    rng = np.random.default_rng(5)
    d, n = 40, 256
    vt = ggml.BY_NAME[ggml.BY_NAME[base].vec_dot_type]
    W = _weights(base, d, n, rng)
    # rows of all-15 and all-0 nibbles with ordinary scales: the largest int16 sums
    raw = np.frombuffer(W, np.uint8).reshape(d, n // 32, -1).copy()
    sb = 2 if base == "Q4_0" else 4
    raw[0, :, sb:] = 0xff
    raw[1, :, sb:] = 0x00
    raw[2, :, sb:] = 0xf0
    W = raw.tobytes()
    xq = np.zeros((n // 32, vt.block_bytes), np.uint8)
    xoff = vt.block_bytes - 32
    qs = rng.integers(-128, 128, (n // 32, 32)).astype(np.int8)
    qs[0] = -128
    qs[1] = 127
    qs[2, ::2], qs[2, 1::2] = -128, 127
    qs[3:, :8] = -128
    xq[:, xoff:] = qs.view(np.uint8)
    xq[:, 0:2] = np.array([0.01], np.float16).view(np.uint8)
    if xoff == 4:                                           # Q8_1: s = d * sum(qs)
        s = (np.float32(np.float16(0.01)) * qs.astype(np.float32).sum(axis=1)).astype(np.float16)
        xq[:, 2:4] = s.view(np.uint8).reshape(-1, 2)
    xq = xq.tobytes()
    got = k.matvec_q(R8[base], ggml_r8.pack(W, base, d, n), xq, n, d)
    _bits_equal(got, k.matmat_q(base, W, xq, n, d, 1, len(xq), 4 * d), base)
    _sum8_check(base, W, xq, n, d, got, base)
    # row 0 against the all -128 block: exact in f32 here (small integers times 2^-k)
    assert np.isfinite(got).all()


@pytest.mark.parametrize("base", BASES)
def test_matvec_writes_only_its_outputs(k, base):
    rng = np.random.default_rng(6)
    n = 64
    body = k.ggml_body(R8[base], "matvec")
    for d_rows, d_arg in ((8, 8), (40, 40), (40, 45), (32, 39), (8, 0), (8, 7)):
        W = _weights(base, d_rows, n, rng)
        P = ggml_r8.pack(W, base, d_rows, n)
        xq = _inputs(k, base, n, 1, rng)[0]
        guard = 16
        try:
            pw = k.put(np.frombuffer(P, np.uint8), "W")
            px = k.put(np.frombuffer(xq, np.uint8), "xq")
            po = k.put(np.full(d_arg + 2 * guard, np.nan, np.float32), "out")
            k.m.call(body, po + 4 * guard, pw, px, n, d_arg)
            out = k.get(po, d_arg + 2 * guard)
        finally:
            k._done()
        done = d_arg // 8 * 8
        assert np.all(np.isnan(out[:guard])), (base, d_arg)
        assert np.all(np.isnan(out[guard + done:])), (base, d_arg)
        if done:
            want = k.matmat_q(base, W[:done * len(W) // d_rows], xq, n, done, 1, len(xq), 4 * done)
            _bits_equal(out[guard:guard + done], want, (base, d_arg))


@pytest.mark.parametrize("base", BASES)
def test_matvec_no_columns_gives_zeros(k, base):
    vt = ggml.BY_NAME[ggml.BY_NAME[base].vec_dot_type]
    body = k.ggml_body(R8[base], "matvec")
    try:
        pw = k.put(np.zeros(16, np.uint8), "W")
        px = k.put(np.zeros(vt.block_bytes, np.uint8), "xq")
        po = k.put(np.full(16, np.nan, np.float32), "out")
        k.m.call(body, po, pw, px, 0, 16)
        out = k.get(po, 16)
    finally:
        k._done()
    assert np.array_equal(out, np.zeros(16, np.float32))


# ----------------------------------------------------------------------------------------
# matmat


def _guarded_matmat(k: Kernels, name: str, P: bytes, xq: bytes, n: int, d: int, B: int,
                    x_stride: int, out_stride: int, guard: int = 16) -> tuple[np.ndarray, int]:
    """The matmat body on out buffers with `guard` NaN floats before the first output and
    NaN in every gap; (the whole buffer, the first output's index)."""
    body = k.ggml_body(name, "matmat")
    size = (B - 1) * out_stride // 4 + d if B and d else 0
    try:
        pw = k.put(np.frombuffer(P, np.uint8), "W")
        px = k.put(np.frombuffer(xq, np.uint8), "xq")
        po = k.put(np.full(size + guard, np.nan, np.float32), "out")
        k.m.call(body, po + 4 * guard, pw, px, n, d, B, out_stride, x_stride)
        return k.get(po, size + guard), guard
    finally:
        k._done()


def _check_matmat(k: Kernels, base: str, d: int, n: int, B: int, seed: int, *, x_pad: int = 0,
                  out_pad: int = 0, d_arg: int | None = None) -> None:
    """matmat on d rows (called with d_arg, default d) and B inputs: every input's outputs
    the R8 matvec's bit for bit; nothing else written."""
    rng = np.random.default_rng(seed)
    d_arg = d if d_arg is None else d_arg
    W = _weights(base, d, n, rng)
    P = ggml_r8.pack(W, base, d, n)
    each = _inputs(k, base, n, B, rng)
    size = len(each[0])
    x_stride = size + x_pad
    packed = b"".join(e + bytes(x_pad) for e in each)[:x_stride * (B - 1) + size]
    out_stride = 4 * d_arg + out_pad
    out, g = _guarded_matmat(k, R8[base], P, packed, n, d_arg, B, x_stride, out_stride)
    done = d_arg // 8 * 8
    written = np.zeros(out.size, bool)
    for b in range(B):
        o = g + b * out_stride // 4
        written[o:o + done] = True
        want = k.matvec_q(R8[base], P[:done * len(P) // d], each[b], n, done)
        _bits_equal(out[o:o + done], want, (base, d, n, B, b))
    assert np.all(np.isnan(out[~written])), (base, d, n, B, "wrote outside the outputs")


@pytest.mark.parametrize("base", BASES)
def test_matmat_every_batch_size_small(k, base):
    for i, (d, n) in enumerate([(8, 32), (16, 64), (24, 96), (40, 64), (32, 288)]):
        for B in (1, 2, 7, 32, 37):
            _check_matmat(k, base, d, n, B, seed=10 * i + B)


@pytest.mark.parametrize("base", BASES)
def test_matmat_model_shapes(k, base):
    for i, (d, n, B) in enumerate([(520, 2048, 7), (40, 5632, 37), (256, 2048, 32), (72, 2048, 2)]):
        _check_matmat(k, base, d, n, B, seed=300 + i)


@pytest.mark.parametrize("base", BASES)
def test_matmat_odd_strides_and_partial_groups(k, base):
    for i, (d, n, B, x_pad, out_pad, d_arg) in enumerate([
            (16, 64, 5, 3, 4, None), (40, 96, 9, 1, 12, None), (24, 32, 7, 130, 4000, None),
            (48, 64, 3, 0, 8, 45), (8, 32, 4, 5, 0, 7), (520, 64, 2, 7, 36, 519)]):
        _check_matmat(k, base, d, n, B, seed=400 + i, x_pad=x_pad, out_pad=out_pad, d_arg=d_arg)


@pytest.mark.parametrize("base", BASES)
def test_matmat_equals_the_plain_layout_body(k, base):
    """The R8 matmat and the plain matmat (ggml_mm_q4.s) on the same rows and batch: the
    same bits (both ggml_mm8.inc's rounding)."""
    rng = np.random.default_rng(17)
    d, n, B = 104, 2048, 37
    W = _weights(base, d, n, rng)
    xq = b"".join(_inputs(k, base, n, B, rng))
    stride = len(xq) // B
    got = k.matmat_q(R8[base], ggml_r8.pack(W, base, d, n), xq, n, d, B, stride, 4 * d)
    _bits_equal(got, k.matmat_q(base, W, xq, n, d, B, stride, 4 * d), base)


@pytest.mark.parametrize("base", BASES)
def test_matmat_zero_stride_zero_rows_zero_inputs(k, base):
    rng = np.random.default_rng(8)
    d, n = 24, 96
    W = _weights(base, d, n, rng)
    P = ggml_r8.pack(W, base, d, n)
    x = _inputs(k, base, n, 1, rng)[0]
    out, g = _guarded_matmat(k, R8[base], P, x, n, d, 5, 0, 4 * d)
    want = k.matvec_q(R8[base], P, x, n, d)
    for b in range(5):
        _bits_equal(out[g + b * d:g + (b + 1) * d], want, b)
    for d_arg, B in ((0, 3), (24, 0), (7, 3)):
        out, g = _guarded_matmat(k, R8[base], P, x, n, d_arg, B, 0, 4 * max(d_arg, 1))
        assert np.all(np.isnan(out)), (d_arg, B)
