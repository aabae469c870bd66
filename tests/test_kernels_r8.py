"""The "8 rows interleaved" bodies (Q4_0_R8, Q4_1_R8, Q8_0_R8; AVX2 only: matvec in
kernels_asm/ggml_r8.s, matmat in kernels_asm/ggml_mm_r8.s) natively,
reached as the program reaches them (kernels_init, then ggml_type_body) when peasm/ggml.py
declares the type, else by symbol (Q8_0_R8, until the loader's repack knows its layout).

Weights: gguf-py's quantizer (gguf.quants.quantize, an independent implementation of
ggml's) on random rows, among them extreme ones (zeros, huge and tiny scales, one large
value in a row of small ones, constant rows), packed into the R8 layout by
peasm.ggml_r8.pack (the statement of the layout the loader's repack writes); inputs
quantized by our own from_float bodies (Q8_0 / Q8_1), as the other kernel tests do. Judges:

* Q4_0: the plain-layout matmat body (matmat_q4_0_avx2, ggml_mm8.inc) on the unpacked rows:
  the R8 matvec rounds as it does (llama.cpp's repacked Q4_0 gemv), so the outputs must be
  equal bit for bit (NaN: in the same places). Q4_1: the plain-layout matvec body
  (matvec_q4_1_avx2, whose decode logits equal llama.cpp's: ggml's vec_dot_q4_1_q8_1,
  8 lane accumulators a row folded in hsum_float_8's order, then + the m s sum), bit for
  bit. (Q8_0's plain bodies round otherwise: the float64 bound alone judges Q8_0_R8's
  matvec, and its matmat is judged against that matvec);
* the float64 sum of exactly the terms that rounding adds: Q4_0, Q8_0 as
  tests/test_kernels_matmat.py's _sum8_check (within (m + 1) u, m = blocks); Q4_1 per
  ggml lane (_lanes_check: the terms f32(d_w d_x) times each lane's exact integer sum and
  f32(m_w) f32(s_x), within (K + 5) u of their magnitudes' sum, K = blocks);
* an input block holding -128 (ggml's quantizer never writes it, a Q8 block may hold it:
  the int16 bound of ggml_r8.s is stated with it), against rows of the largest quants;
* matmat (Q4_0_R8, Q4_1_R8, Q8_0_R8): each input's outputs bit for bit the R8 matvec's on
  that input (its contract), for B = 1, 2, 7, 32, 37, strides above the sizes and 0, tiles
  of 1 to 4 groups; Q4_1_R8 besides at every B from 1 to 9 and 17 against 8 to 64 rows and
  n from 32 to 5632 (its batches of inputs and chunks of blocks: one chunk up to n = 768,
  batches of 8 inputs beyond); k_par_matmat, the prefill's product, with the matmat body
  and without it (the matvec per input over tiles of rows), alone and with workers, bit for
  bit the matvec on each input alone (decode);
* nothing written outside the d outputs (guard floats on both sides, and a d that is not
  a multiple of 8 leaves its last d mod 8 outputs alone: the contract reads and writes
  whole groups of 8 rows only).

A wrong nibble order, a wrong Q4_0 correction or a wrong lane order changes the integer
block sums (Q4_1: the lane sums) of random rows, which both judges see (the float64 sum is
built from the plain layout, independently of the packing); Q4_1_R8's lane-to-accumulator
map or fold order, changed, changes the roundings, which the bit-for-bit judge sees.
"""
from __future__ import annotations

import struct
import time

import numpy as np
import pytest
from gguf import GGMLQuantizationType
from gguf.quants import quantize as gguf_quantize

from pathlib import Path

from peasm import ggml, ggml_r8
from peasm.runners.kernels import Kernels
from tests.reference import quant as Q
from tests.test_kernels_matmat import _bits_equal, _kernels, _sum8_check

BASES = ("Q4_0", "Q4_1", "Q8_0")
R8 = {"Q4_0": "Q4_0_R8", "Q4_1": "Q4_1_R8", "Q8_0": "Q8_0_R8"}
MATMAT_BASES = BASES               # their R8 forms have a matmat body
U = 2.0 ** -24


def _body(k: Kernels, base: str, kind: str) -> int:
    """An R8 body as the program finds it (ggml_type_body) when peasm/ggml.py declares the
    type, else by its symbol (Q8_0_R8's bodies exist before the loader can use them)."""
    name = R8[base]
    if name in ggml.BY_NAME:
        return k.ggml_body(name, kind)
    return k.m.address(f"{kind}_{name.lower()}_avx2")


def _matvec(k: Kernels, base: str, P: bytes, xq: bytes, n: int, d: int) -> np.ndarray:
    body = _body(k, base, "matvec")
    try:
        pw = k.put(np.frombuffer(bytes(P), np.uint8), "W")
        px = k.put(np.frombuffer(bytes(xq), np.uint8), "xq")
        po = k.m.alloc(4 * d, "out")
        k.m.call(body, po, pw, px, n, d)
        return k.get(po, d)
    finally:
        k._done()


def _judge(k: Kernels, base: str, W: bytes, xq: bytes, n: int, d: int, got: np.ndarray, what) -> None:
    """got = one input's d outputs of an R8 body on the rows W (plain layout): the plain
    body's bits that rounds the same way (Q4_0: matmat, Q4_1: matvec), and always the
    float64 bound."""
    if base == "Q4_0":
        _bits_equal(got, k.matmat_q(base, W, xq, n, d, 1, len(xq), 4 * d), what)
    elif base == "Q4_1":
        _bits_equal(got, k.matvec_q(base, W, xq, n, d), what)
    with np.errstate(all="ignore"):
        if base == "Q4_1":
            _lanes_check(W, xq, n, d, got, what)
        else:
            _sum8_check(base, W, xq, n, d, got, what)


def _lanes_check(W: bytes, xq: bytes, n: int, d: int, got: np.ndarray, what) -> None:
    """Q4_1 as ggml's vec_dot_q4_1_q8_1 sums it: per row, for each block, the 8 lanes' exact
    integer sums (weights 4j..4j+3 of the block times the input's) each times f32(d_w) *
    f32(d_x) (rounded once) and f32(m_w) * f32(s_x); the float64 sum of those terms. A
    lane's accumulator adds its K terms by K roundings, 3 more fold it, 1 adds the m s sum
    (itself a product rounding and K additions): each term passes at most K + 4 roundings,
    so |error| <= gamma_(K+4) sum |terms| < (K + 5) u sum |terms|."""
    nb = n // 32
    dw, mw, qw = Q._fields("Q4_1", W, nb * d)
    dx, sx, qx = Q._fields("Q8_1", xq, nb)
    lanes = (qw.reshape(d, nb, 8, 4).astype(np.int64) * qx.reshape(1, nb, 8, 4)).sum(axis=3)
    scale = (dw.reshape(d, nb) * dx.reshape(1, nb)).astype(np.float32).astype(np.float64)
    terms = np.concatenate([(scale[:, :, None] * lanes).reshape(d, -1),
                            mw.reshape(d, nb).astype(np.float64) * sx.reshape(1, nb).astype(np.float64)],
                           axis=1)
    want, mag = terms.sum(axis=1), np.abs(terms).sum(axis=1)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan), (what, np.flatnonzero(np.isnan(got) != nan)[:10])
    inf = np.isinf(want)
    assert np.array_equal(got[inf], want[inf]), (what, "inf")
    ok = ~nan & ~inf
    err = np.abs(got[ok] - want[ok])
    tol = (nb + 5) * U * mag[ok]
    if err.size:
        worst = int(np.argmax(err - tol))
        assert np.all(err <= tol), (what, worst, got[ok][worst], want[ok][worst], err[worst] / (U * mag[ok][worst]))


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
        got = _matvec(k, base, P, xq, n, d)
        _judge(k, base, W, xq, n, d, got, (base, d, n, b))


def test_the_table_has_the_r8_bodies(k):
    declared = [base for base in BASES if R8[base] in ggml.BY_NAME]
    assert {"Q4_0", "Q4_1"} <= set(declared)
    for base in declared:
        name = R8[base]
        assert k.ggml_body(name, "matvec") == k.m.address(f"matvec_{name.lower()}_avx2")
        assert k.ggml_body(name, "matmat") == k.m.address(f"matmat_{name.lower()}_avx2")
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


def test_q4_1_matvec_random_shapes(k):
    """Q4_1_R8 at SmolLM2-135M's shapes and random ones (d 8..520, n 32..5632): bit for bit
    the plain matvec (ggml's vec_dot_q4_1_q8_1), three inputs each."""
    rng = np.random.default_rng(41)
    shapes = [(576, 576), (1536, 576), (576, 1536), (8, 5632), (520, 32)]
    shapes += [(8 * int(rng.integers(1, 66)), 32 * int(rng.integers(1, 177))) for _ in range(12)]
    for i, (d, n) in enumerate(shapes):
        _check(k, "Q4_1", d, n, seed=500 + i, inputs=3)


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
    sb = ggml_r8.SCALE_BYTES[base]
    raw[0, :, sb:] = 0xff                                   # Q4: all 15; Q8_0: all -1
    raw[1, :, sb:] = 0x00
    raw[2, :, sb:] = 0xf0
    if base == "Q8_0":                                      # the largest magnitudes
        raw[0, :, sb:] = 127
        raw[2, :, sb:] = np.uint8(0x81)                     # -127
        raw[3, :, sb::2], raw[3, :, sb + 1::2] = 127, np.uint8(0x81)
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
    got = _matvec(k, base, ggml_r8.pack(W, base, d, n), xq, n, d)
    _judge(k, base, W, xq, n, d, got, base)
    # row 0 against the all -128 block: exact in f32 here (small integers times 2^-k)
    assert np.isfinite(got).all()


@pytest.mark.parametrize("base", BASES)
def test_matvec_writes_only_its_outputs(k, base):
    rng = np.random.default_rng(6)
    n = 64
    body = _body(k, base, "matvec")
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
            _judge(k, base, W[:done * len(W) // d_rows], xq, n, done, out[guard:guard + done], (base, d_arg))


@pytest.mark.parametrize("base", BASES)
def test_matvec_no_columns_gives_zeros(k, base):
    vt = ggml.BY_NAME[ggml.BY_NAME[base].vec_dot_type]
    body = _body(k, base, "matvec")
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


def _guarded_matmat(k: Kernels, base: str, P: bytes, xq: bytes, n: int, d: int, B: int,
                    x_stride: int, out_stride: int, guard: int = 16) -> tuple[np.ndarray, int]:
    """The matmat body on out buffers with `guard` NaN floats before the first output and
    NaN in every gap; (the whole buffer, the first output's index)."""
    body = _body(k, base, "matmat")
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
    out, g = _guarded_matmat(k, base, P, packed, n, d_arg, B, x_stride, out_stride)
    done = d_arg // 8 * 8
    written = np.zeros(out.size, bool)
    for b in range(B):
        o = g + b * out_stride // 4
        written[o:o + done] = True
        want = _matvec(k, base, P[:done * len(P) // d], each[b], n, done)
        _bits_equal(out[o:o + done], want, (base, d, n, B, b))
    assert np.all(np.isnan(out[~written])), (base, d, n, B, "wrote outside the outputs")


@pytest.mark.parametrize("base", MATMAT_BASES)
def test_matmat_every_batch_size_small(k, base):
    for i, (d, n) in enumerate([(8, 32), (16, 64), (24, 96), (40, 64), (32, 288)]):
        for B in (1, 2, 7, 32, 37):
            _check_matmat(k, base, d, n, B, seed=10 * i + B)


def test_q4_1_matmat_every_small_batch(k):
    """Q4_1_R8's matmat (one unpack of a group's blocks for a batch of inputs, ggml_mm_r8.s)
    at every B from 1 to 9 and 17, rows of 1 to 8 groups, n from 32 to 1536 (one chunk of
    blocks: all inputs one batch; the inputs' scales from a table when 8 B K bytes fit
    beside the chunk, (48 - K) 320: at n = 1280 up to B = 8, converted per block from B =
    9) and above (n > 1536: chunks of 24 blocks, the accumulators carried between them,
    batches of 8 inputs: B = 9 and 17 leave a batch of 1): each input's outputs bit for bit
    the matvec's, nothing else written."""
    rng = np.random.default_rng(77)
    shapes = [(8, 32), (16, 64), (24, 96), (64, 736), (8, 768), (16, 800), (16, 1280),
              (24, 1536), (40, 2080), (8, 3104)]
    shapes += [(8 * int(rng.integers(1, 9)), 32 * int(rng.integers(1, 30))) for _ in range(4)]
    for i, (d, n) in enumerate(shapes):
        for B in (1, 2, 3, 4, 5, 6, 7, 8, 9, 17):
            _check_matmat(k, "Q4_1", d, n, B, seed=700 + 20 * i + B)


@pytest.mark.parametrize("base", MATMAT_BASES)
def test_matmat_no_columns_gives_zeros(k, base):
    """n = 0: every input's d outputs 0 (as the matvec writes), nothing else written."""
    vt = ggml.BY_NAME[ggml.BY_NAME[base].vec_dot_type]
    d, B = 16, 3
    out, g = _guarded_matmat(k, base, bytes(16), bytes(vt.block_bytes), 0, d, B, 0, 4 * d + 8)
    written = np.zeros(out.size, bool)
    for b in range(B):
        o = g + b * (d + 2)
        written[o:o + d] = True
        assert np.array_equal(out[o:o + d], np.zeros(d, np.float32)), (base, b)
    assert np.all(np.isnan(out[~written])), base


@pytest.mark.parametrize("base", MATMAT_BASES)
def test_matmat_model_shapes(k, base):
    for i, (d, n, B) in enumerate([(520, 2048, 7), (40, 5632, 37), (256, 2048, 32), (72, 2048, 2)]):
        _check_matmat(k, base, d, n, B, seed=300 + i)


@pytest.mark.parametrize("base", MATMAT_BASES)
def test_matmat_odd_strides_and_partial_groups(k, base):
    for i, (d, n, B, x_pad, out_pad, d_arg) in enumerate([
            (16, 64, 5, 3, 4, None), (40, 96, 9, 1, 12, None), (24, 32, 7, 130, 4000, None),
            (48, 64, 3, 0, 8, 45), (8, 32, 4, 5, 0, 7), (520, 64, 2, 7, 36, 519)]):
        _check_matmat(k, base, d, n, B, seed=400 + i, x_pad=x_pad, out_pad=out_pad, d_arg=d_arg)


@pytest.mark.parametrize("base", ("Q4_0",))
def test_matmat_equals_the_plain_layout_body(k, base):
    """The Q4_0_R8 matmat and the plain matmat (ggml_mm_q4.s) on the same rows and batch:
    the same bits (both ggml_mm8.inc's rounding)."""
    rng = np.random.default_rng(17)
    d, n, B = 104, 2048, 37
    W = _weights(base, d, n, rng)
    xq = b"".join(_inputs(k, base, n, B, rng))
    stride = len(xq) // B
    got, g = _guarded_matmat(k, base, ggml_r8.pack(W, base, d, n), xq, n, d, B, stride, 4 * d)
    _bits_equal(got[g:], k.matmat_q(base, W, xq, n, d, B, stride, 4 * d), base)


@pytest.mark.parametrize("base", MATMAT_BASES)
def test_matmat_zero_stride_zero_rows_zero_inputs(k, base):
    rng = np.random.default_rng(8)
    d, n = 24, 96
    W = _weights(base, d, n, rng)
    P = ggml_r8.pack(W, base, d, n)
    x = _inputs(k, base, n, 1, rng)[0]
    out, g = _guarded_matmat(k, base, P, x, n, d, 5, 0, 4 * d)
    want = _matvec(k, base, P, x, n, d)
    for b in range(5):
        _bits_equal(out[g + b * d:g + (b + 1) * d], want, b)
    for d_arg, B in ((0, 3), (24, 0), (7, 3)):
        out, g = _guarded_matmat(k, base, P, x, n, d_arg, B, 0, 4 * max(d_arg, 1))
        assert np.all(np.isnan(out)), (d_arg, B)


# ----------------------------------------------------------------------------------------
# Q4_1_R8's batched product: k_par_matmat with its matmat body, and without (tiles of the
# matvec: what a type without one runs)

MM = {}
for _line in (Path(__file__).resolve().parents[1] / "kernels_asm" / "kernels.inc").read_text().splitlines():
    if _line.startswith(".equ MATMAT_"):
        _k, _v = _line[5:].split(",", 1)
        MM[_k.strip()] = int(_v.split("#")[0].strip(), 0)


def _par_matmat(k: Kernels, name: str, P: bytes, xq: bytes, n: int, d: int, B: int,
                x_stride: int, out_stride: int, workers: int, guard: int = 16,
                body: bool = True) -> tuple[np.ndarray, int]:
    """k_par_matmat with `workers` of the machine's started workers on a MATMAT block as
    app_asm/forward_batch.s fills it for the type (its matmat slot, or 0 when not `body`,
    its matvec, its group rows); (the out buffer, the first output's index)."""
    t = ggml.BY_NAME[name]
    size = (B - 1) * out_stride // 4 + d
    try:
        pw = k.put(np.frombuffer(P, np.uint8), "W")
        px = k.put(np.frombuffer(xq, np.uint8), "xq")
        po = k.put(np.full(size + guard, np.nan, np.float32), "out")
        blk = bytearray(MM["MATMAT_SIZE"])
        for key, v in (("OUT", po + 4 * guard), ("W", pw), ("XQ", px), ("OUT_STRIDE", out_stride),
                       ("XQ_STRIDE", x_stride), ("ROW_BYTES", n // t.block_size * t.block_bytes),
                       ("BODY", k.ggml_body(name, "matmat") if body else 0),
                       ("MATVEC", k.ggml_body(name, "matvec"))):
            struct.pack_into("<Q", blk, MM[f"MATMAT_{key}"], v)
        for key, v in (("N", n), ("D", d), ("B", B), ("GROUP_ROWS", t.group_rows)):
            struct.pack_into("<I", blk, MM[f"MATMAT_{key}"], v)
        pb = k.put(np.frombuffer(bytes(blk), np.uint8), "block")
        k.m.call("k_par_set_workers", workers)
        k.m.call("k_par_matmat", pb)
        return k.get(po, size + guard), guard
    finally:
        k.m.call("k_par_set_workers", 0)
        k._done()


def _worker_chunks(k: Kernels) -> int:
    return struct.unpack("<Q", k.m.read(k.m.address("k_par_worker_chunks"), 8))[0]


@pytest.mark.parametrize("body", [True, False], ids=["matmat", "matvec_tiles"])
@pytest.mark.parametrize("workers", [0, 2])
def test_q4_1_prefill_product_is_the_decode_matvec(k, workers, body):
    """The prefill's product of a Q4_1_R8 weight (k_par_matmat with its matmat body, and
    without one: the rows in cache-sized tiles of whole groups, the matvec per input per
    tile) gives every input's outputs bit for bit as the matvec alone on all rows (decode),
    which is the plain Q4_1 matvec's; nothing written between the strided outputs. Shapes of
    one tile, of many (SmolLM2's 576 x 576: tiles of 40 rows, the last 16) and rows longer
    than a tile (one group a tile); alone and with 2 worker threads taking chunks of whole
    groups."""
    if workers:
        k.m.start_workers(workers)
    try:
        before = _worker_chunks(k)
        _prefill_cases(k, workers, CASES, body)
        deadline = time.monotonic() + 10          # a busy host's threads may wake late:
        while workers and _worker_chunks(k) == before and time.monotonic() < deadline:
            _prefill_cases(k, workers, CASES[3:4], body)  # the largest again until they take one
        assert (_worker_chunks(k) > before) == (workers > 0)
    finally:
        k.m.stop_workers()


CASES = [(8, 32, 1, 0, 0), (576, 576, 5, 4, 12), (64, 5632, 3, 0, 4), (1536, 576, 8, 36, 0),
         (40, 96, 37, 1, 8)]      # d, n, B, input and output padding


def _prefill_cases(k: Kernels, workers: int, cases, body: bool) -> None:
    for d, n, B, x_pad, out_pad in cases:
        rng = np.random.default_rng(600 + d + n + B)
        W = _weights("Q4_1", d, n, rng)
        P = ggml_r8.pack(W, "Q4_1", d, n)
        each = _inputs(k, "Q4_1", n, B, rng)
        x_stride = len(each[0]) + x_pad
        packed = b"".join(e + bytes(x_pad) for e in each)[:x_stride * (B - 1) + len(each[0])]
        out_stride = 4 * d + out_pad
        out, g = _par_matmat(k, "Q4_1_R8", P, packed, n, d, B, x_stride, out_stride, workers,
                             body=body)
        written = np.zeros(out.size, bool)
        for b in range(B):
            o = g + b * out_stride // 4
            written[o:o + d] = True
            want = _matvec(k, "Q4_1", P, each[b], n, d)
            _bits_equal(out[o:o + d], want, (d, n, B, b))
            if b < 2:
                _bits_equal(want, k.matvec_q("Q4_1", W, each[b], n, d), (d, n, B, b, "plain"))
        assert np.all(np.isnan(out[~written])), (d, n, B, "wrote outside the outputs")
