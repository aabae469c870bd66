"""The batched products (matmat bodies, kernels_asm/ggml_mm_*.s; AVX2 only) natively.

Every body is reached as the program reaches it (kernels_init, then ggml_type_body(type,
matmat)); each buffer ends at a guard page (Kernels.put / matmat_q), so a read past W or
the last input, or a write past the last output, faults. Judges:

* F32, Q5_0, Q5_1, Q8_0, Q4_K, Q6_K: the same type's matvec body, called once per input on
  the same W: their matmat bodies' contract is bit-for-bit equality with it (ggml_mm.inc),
  so outputs are compared as bits (NaN results: NaN in the same places, payloads aside);
  and the numpy model of llama.cpp's quantized math (tests/reference/quant.py): within
  (terms/2 + 16) u of its exact sum, relative to the sum of the terms' magnitudes, as
  tests/test_kernels_ggml.py bounds matvec (u = 2^-24; terms: blocks, or elements for F32);
* Q4_0, Q4_1 ("8 rows interleaved", ggml_mm8.inc): one f32 accumulator per row and input,
  each block's exact integer sum times f32(d_w) * f32(d_x) (rounded once) added by one FMA,
  in block order (Q4_1: then f32(m_w) * f32(s_x) by one more FMA). Against the float64 sum
  of exactly those terms (SUM8_TYPES, _sum8_exact): m terms a row (blocks; Q4_1: 2 x blocks)
  are m roundings of a running sum, each at most u times it, so the error is at most
  gamma_m = m u / (1 - m u) times the sum of the terms' magnitudes; the tests allow (m + 1) u
  (the float64 reference's own error is below m 2^-53). NaN and inf in the same places as
  the float64 terms give them (no f32 step can overflow: |term| < 2^48). And the body is
  consistent with itself, bit for bit: an input's outputs do not depend on the other inputs
  of the batch or on where its rows start (a row range split across cores gives the same
  bits as one call);
* nothing is written outside out[b * out_stride/4 + i] (i < d, b < B): the gaps between
  strided outputs keep their NaN filling, B = 0 or d = 0 writes nothing.

Types: F32, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (tests/reference/quant.py), Q4_K, Q6_K
(tests/reference/quant_k.py). Shapes: the benchmark models' (SmolLM2-135M Q4_1 with its
Q8_0 classifier, TinyLlama-1.1B Q4_0, stories110M F32), odd d (the last row alone; for
Q4_x a last tile of fewer than 32 rows, some of its sub-tiles of 8 empty), B from 1 to 9
and 32/64 (groups of 4, or 3 for F32, with the last group short), rows at and past the
scale table's cap (the fallback loop; Q4_x: rows of several chunks of 8 blocks), n = 0,
strides above the row size and 0, unaligned pointers, extreme scales and quants.
"""
from __future__ import annotations

import numpy as np
import pytest

from peasm import ggml
from peasm.runners import native
from peasm.runners.kernels import Kernels, open_machine
from tests.reference import quant as Q
from tests.support import require
from tests.test_kernels_ggml import _random_blocks, _random_weights

U = 2.0 ** -24
TYPES = ["F32", "Q4_0", "Q4_1", "Q8_0", "Q5_0", "Q5_1"]
SUM8_TYPES = ("Q4_0", "Q4_1")       # the 8-row bodies: not bit for bit the matvec
_machines: dict = {}


def _kernels(misalign: int = 0) -> Kernels:
    ok, why = native.supported()
    require(ok, why)
    if not native.host_has_avx2_fma():
        pytest.skip("this CPU lacks AVX2+FMA+F16C: the matmat bodies cannot run natively here")
    if "m" not in _machines:
        _machines["m"] = open_machine("native")
    return Kernels(_machines["m"], "avx2", misalign=misalign)


@pytest.fixture
def k() -> Kernels:
    return _kernels()


def _inputs(type_name: str, n: int, B: int, rng, x_pad: int = 0) -> tuple[list[bytes], bytes, int]:
    """B random inputs in the type's vec_dot_type: (each, packed at a stride, the stride)."""
    t = ggml.BY_NAME[type_name]
    xs = rng.standard_normal((max(B, 1), n)).astype(np.float32)
    each = [x.tobytes() if t.vec_dot_type == "F32" else Q.quantize(t.vec_dot_type, x) for x in xs[:B]]
    size = n * 4 if t.vec_dot_type == "F32" else n // 32 * ggml.BY_NAME[t.vec_dot_type].block_bytes
    stride = size + x_pad
    packed = b"".join(e + bytes(x_pad) for e in each)[:max(0, stride * (B - 1) + size)]
    return each, packed, stride


def _bits_equal(got: np.ndarray, want: np.ndarray, what) -> None:
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan), (what, np.flatnonzero(np.isnan(got) != nan)[:10])
    bad = np.flatnonzero(got[~nan].view(np.uint32) != want[~nan].view(np.uint32))
    assert bad.size == 0, (what, bad[:10], got[~nan][bad[:5]], want[~nan][bad[:5]])


def _sum8_exact(type_name: str, W: bytes, xq: bytes, n: int, d: int):
    """The 8-row bodies' terms, exactly (float64): per row, (their sum, the sum of their
    magnitudes, how many). A block's term is f32(f32(d_w) * f32(d_x)) times its exact
    integer sum (< 2^40 in magnitude: exact in float64); Q4_1's extra f32(m_w) * f32(s_x)
    is exact too (two f16 values)."""
    t = ggml.BY_NAME[type_name]
    nb = n // 32
    dw, mw, qw = Q._fields(type_name, W, nb * d)
    dx, sx, qx = Q._fields(t.vec_dot_type, xq, nb)
    isum = (qw.reshape(d, nb, 32).astype(np.int64) * qx.reshape(1, nb, 32)).sum(axis=2)
    with np.errstate(all="ignore"):
        scale = (dw.reshape(d, nb) * dx.reshape(1, nb)).astype(np.float32).astype(np.float64)
        terms = scale * isum
        if mw is not None:
            terms = np.concatenate([terms, mw.reshape(d, nb).astype(np.float64)
                                    * sx.reshape(1, nb).astype(np.float64)], axis=1)
        return terms.sum(axis=1), np.abs(terms).sum(axis=1), terms.shape[1]


def _sum8_check(type_name: str, W: bytes, xq: bytes, n: int, d: int, got: np.ndarray, what) -> None:
    """got within (m + 1) u of the exact sum of the body's m terms (module docstring)."""
    want, mag, m = _sum8_exact(type_name, W, xq, n, d)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan), (what, np.flatnonzero(np.isnan(got) != nan)[:10])
    inf = np.isinf(want)
    assert np.array_equal(got[inf], want[inf]), (what, "inf")
    ok = ~nan & ~inf
    err = np.abs(got[ok] - want[ok])
    tol = (m + 1) * U * mag[ok]
    if err.size:
        worst = int(np.argmax(err - tol))
        assert np.all(err <= tol), (what, worst, got[ok][worst], want[ok][worst], err[worst] / (U * mag[ok][worst]))


def _alone(k: Kernels, type_name: str, W: bytes, x: bytes, n: int, d: int) -> np.ndarray:
    """One input's outputs as the type's contract defines them alone: the matvec body, or
    for the 8-row bodies the same body with B = 1."""
    if type_name in SUM8_TYPES:
        return k.matmat_q(type_name, W, x, n, d, 1, len(x), 4 * d)
    return k.matvec_q(type_name, W, x, n, d)


def _run(k: Kernels, type_name: str, d: int, n: int, B: int, seed: int, *, x_pad: int = 0,
         out_pad: int = 0, numpy_inputs: int = 2, W: bytes | None = None) -> None:
    """matmat on d x n, B inputs: bit for bit the matvec per input (the 8-row bodies: the
    same body on that input alone, first and last input), untouched gaps, and (for
    `numpy_inputs` of the inputs, first and last; every input for the 8-row bodies) within
    the bound of the numpy model."""
    rng = np.random.default_rng(seed)
    t = ggml.BY_NAME[type_name]
    if W is None:
        W = _random_weights(type_name, d, n, rng)
    each, packed, x_stride = _inputs(type_name, n, B, rng, x_pad)
    out_stride = 4 * d + out_pad
    out = k.matmat_q(type_name, W, packed, n, d, B, x_stride, out_stride)
    assert out.size == ((B - 1) * out_stride // 4 + d if B and d else 0)
    written = np.zeros(out.size, bool)
    for b in range(B):
        written[b * out_stride // 4:b * out_stride // 4 + d] = True
    assert np.all(np.isnan(out[~written])), (type_name, d, n, B, "wrote into a gap")
    check = {0, B - 1} if numpy_inputs > 1 else {0}
    terms = n if t.block_size == 1 else 2 * n // 32
    for b in range(B):
        got = out[b * out_stride // 4:b * out_stride // 4 + d]
        if type_name in SUM8_TYPES:
            _sum8_check(type_name, W, each[b], n, d, got, (type_name, d, n, B, b))
            if b in check:
                _bits_equal(got, _alone(k, type_name, W, each[b], n, d), (type_name, d, n, B, b))
            continue
        _bits_equal(got, k.matvec_q(type_name, W, each[b], n, d), (type_name, d, n, B, b))
        if b in check:
            want = Q.matvec_q(type_name, W, each[b], n, d)
            bound = Q.matvec_bound(type_name, W, each[b], n, d)
            err = np.abs(got - want)
            tol = (terms / 2 + 16) * U * bound + 1e-30
            worst = int(np.argmax(err / tol))
            assert np.all(err <= tol), (type_name, d, n, B, b, worst, got[worst], want[worst])


def test_the_table_has_the_matmat_bodies(k):
    for name in TYPES + ["Q4_K", "Q6_K"]:
        assert k.ggml_body(name, "matmat") == k.m.address(f"matmat_{name.lower()}_avx2")


@pytest.mark.parametrize("type_name", TYPES)
def test_small_shapes_every_batch_size(k, type_name):
    shapes = [(1, 32), (2, 32), (3, 64), (5, 96), (8, 64), (37, 256)]
    if type_name == "F32":                      # any n: the 8- and 1-column tails
        shapes += [(3, 1), (4, 7), (5, 9), (3, 17), (2, 33), (6, 40), (3, 1100)]
    for i, (d, n) in enumerate(shapes):
        for B in range(1, 10):
            _run(k, type_name, d, n, B, seed=100 * i + B, numpy_inputs=1)


@pytest.mark.parametrize("type_name", TYPES)
def test_strides_above_the_sizes_and_gaps_untouched(k, type_name):
    for i, (d, n, B, x_pad, out_pad) in enumerate([(7, 64, 5, 8, 12), (6, 96, 9, 3, 4),
                                                   (37, 128, 6, 130, 64), (4, 32, 3, 1, 4000)]):
        _run(k, type_name, d, n, B, seed=7 + i, x_pad=x_pad, out_pad=out_pad)


@pytest.mark.parametrize("type_name", TYPES)
def test_zero_stride_reads_one_input(k, type_name):
    rng = np.random.default_rng(3)
    d, n, B = 9, 96, 6
    W = _random_weights(type_name, d, n, rng)
    each, packed, _ = _inputs(type_name, n, 1, rng)
    out = k.matmat_q(type_name, W, packed, n, d, B, 0, 4 * d)
    want = _alone(k, type_name, W, each[0], n, d)
    for b in range(B):
        _bits_equal(out[b * d:(b + 1) * d], want, b)


@pytest.mark.parametrize("type_name", TYPES)
def test_nothing_for_zero_rows_or_zero_inputs(k, type_name):
    rng = np.random.default_rng(4)
    t = ggml.BY_NAME[type_name]
    n = 64
    W = _random_weights(type_name, 3, n, rng)
    _, packed, stride = _inputs(type_name, n, 2, rng)
    body = k.ggml_body(type_name, "matmat")
    try:
        pw = k.put(np.frombuffer(W, np.uint8), "W")
        px = k.put(np.frombuffer(packed, np.uint8), "xq")
        po = k.put(np.full(16, np.nan, np.float32), "out")
        for d, B in [(0, 2), (3, 0), (0, 0)]:
            k.m.call(body, po, pw, px, n, d, B, 4 * 3, stride)
            assert np.all(np.isnan(k.get(po, 16))), (d, B)
    finally:
        k._done()
    assert t.block_size in (1, 32)


# the benchmark models' matrices (rows x columns), batches of a prompt's size
MODEL_SHAPES = [("Q4_1", 576, 576, 64), ("Q4_1", 1536, 576, 33), ("Q4_1", 576, 1536, 32),
                ("Q4_1", 192, 576, 7),
                ("Q8_0", 4099, 576, 9),           # the tied classifier's rows, a slice
                ("Q4_0", 256, 2048, 64), ("Q4_0", 2048, 2048, 5), ("Q4_0", 301, 5632, 32),
                ("F32", 768, 768, 64), ("F32", 2048, 768, 32), ("F32", 768, 2048, 7),
                ("Q5_0", 513, 2048, 9), ("Q5_1", 577, 576, 33)]   # the other block types


@pytest.mark.parametrize("type_name,d,n,B", MODEL_SHAPES)
def test_model_shapes(k, type_name, d, n, B):
    _run(k, type_name, d, n, B, seed=d + n + B)


# MM_XS_CAP0 = 192 blocks (the _0 types), MM_XS_CAP1 = 96 (the _1 types): at the cap, and past it;
# the 8-row bodies (Q4_x): chunks of M8_KC_MAX = 8 blocks, a row of one, two, several chunks
@pytest.mark.parametrize("type_name,n", [("Q4_1", 8 * 32), ("Q4_1", 9 * 32), ("Q4_1", 48 * 32),
                                         ("Q4_1", 4096 + 64), ("Q4_0", 8 * 32), ("Q4_0", 17 * 32),
                                         ("Q4_0", 193 * 32), ("Q8_0", 8192 + 96),
                                         ("Q5_0", 193 * 32), ("Q5_1", 97 * 32)])
def test_rows_longer_than_the_scale_table(k, type_name, n):
    """Past MM_XS_CAP* blocks a row's activation scales are converted in the block loop; the
    8-row bodies sum a row chunk by chunk into the outputs."""
    _run(k, type_name, 5, n, 6, seed=n)
    if type_name in SUM8_TYPES:
        _run(k, type_name, 45, n, 9, seed=n + 1)


@pytest.mark.parametrize("type_name", SUM8_TYPES)
def test_sum8_rows_and_inputs_independent(k, type_name):
    """The 8-row bodies: any range of rows (a core's chunk: any first row, tiles of 32 from
    there, a last tile of fewer) and any batch give each (row, input) the same bits."""
    rng = np.random.default_rng(31)
    d, n, B = 70, 17 * 32, 7
    W = _random_weights(type_name, d, n, rng)
    each, packed, stride = _inputs(type_name, n, B, rng)
    full = k.matmat_q(type_name, W, packed, n, d, B, stride, 4 * d).reshape(B, d)
    row_bytes = len(W) // d
    for a, b in [(1, 70), (3, 20), (8, 69), (33, 70), (30, 65), (64, 70), (69, 70), (5, 6), (0, 40)]:
        part = k.matmat_q(type_name, W[a * row_bytes:b * row_bytes], packed, n, b - a, B,
                          stride, 4 * (b - a)).reshape(B, b - a)
        _bits_equal(part.reshape(-1), full[:, a:b].reshape(-1), (a, b))
    for i in range(B):
        _bits_equal(_alone(k, type_name, W, each[i], n, d), full[i], i)
    two = k.matmat_q(type_name, W, each[5] + each[2], n, d, 2, len(each[0]), 4 * d).reshape(2, d)
    _bits_equal(two.reshape(-1), full[[5, 2]].reshape(-1), "5, 2")


@pytest.mark.parametrize("misalign", [1, 3])
@pytest.mark.parametrize("type_name", TYPES)
def test_unaligned_buffers(type_name, misalign):
    _run(_kernels(misalign), type_name, 5, 96, 6, seed=misalign, x_pad=misalign)


@pytest.mark.parametrize("type_name", ["Q4_0", "Q4_1", "Q8_0", "Q5_0", "Q5_1"])
def test_extreme_scales_as_matvec(k, type_name):
    """Blocks with any f16 scale bits (subnormal, inf, NaN): the matvec's results (the 8-row
    bodies: the exact terms' sum, NaN and inf where it has them), never a fault."""
    rng = np.random.default_rng(9)
    d, n, B = 12, 96, 5
    W = _random_blocks(type_name, d * n // 32, rng)
    with np.errstate(all="ignore"):
        rng2 = np.random.default_rng(10)
        each, packed, stride = _inputs(type_name, n, B, rng2)
        out = k.matmat_q(type_name, W, packed, n, d, B, stride, 4 * d)
    for b in range(B):
        if type_name in SUM8_TYPES:
            _sum8_check(type_name, W, each[b], n, d, out[b * d:(b + 1) * d], b)
            continue
        _bits_equal(out[b * d:(b + 1) * d], k.matvec_q(type_name, W, each[b], n, d), b)


# ----------------------------------------------------------------------------------------
# Q4_K, Q6_K (super-blocks of 256, Q8_K inputs): judged by their matvec bodies (bit for
# bit) and tests/reference/quant_k.py's exact model and bound (as test_kernels_kquant.py)


def _run_k(k: Kernels, kind: str, d: int, n: int, B: int, seed: int, *, x_pad: int = 0,
           out_pad: int = 0, W: np.ndarray | None = None) -> None:
    from tests.reference import quant_k as qk

    rng = np.random.default_rng(seed)
    if W is None:
        W = qk.random_blocks(kind, d, n, rng)
    xs = [qk.quantize_q8_k(rng.standard_normal(n).astype(np.float32)) for _ in range(B)]
    size = n // 256 * 292
    x_stride, out_stride = size + x_pad, 4 * d + out_pad
    packed = b"".join(x.tobytes() + bytes(x_pad) for x in xs)[:max(0, x_stride * (B - 1) + size)]
    out = k.matmat_q(kind, W.tobytes(), packed, n, d, B, x_stride, out_stride)
    written = np.zeros(out.size, bool)
    for b in range(B):
        written[b * out_stride // 4:b * out_stride // 4 + d] = True
    assert np.all(np.isnan(out[~written])), (kind, d, n, B, "wrote into a gap")
    for b in range(B):
        got = out[b * out_stride // 4:b * out_stride // 4 + d]
        _bits_equal(got, k.matvec_q(kind, W.tobytes(), xs[b].tobytes(), n, d), (kind, d, n, B, b))
        if b in (0, B - 1):
            want = qk.matvec(kind, W.tobytes(), xs[b])
            assert np.all(np.abs(got - want) <= qk.matvec_bound(kind, W.tobytes(), xs[b])), (kind, b)


K_KINDS = ["Q4_K", "Q6_K"]


@pytest.mark.parametrize("kind", K_KINDS)
@pytest.mark.parametrize("d,n,B", [(1, 256, 1), (3, 512, 5), (7, 768, 9), (4, 256, 4), (5, 1024, 2),
                                   (2048, 2048, 9), (301, 5632, 32), (256, 2048, 64)])
def test_k_shapes(k, kind, d, n, B):
    _run_k(k, kind, d, n, B, seed=d + n + B)


@pytest.mark.parametrize("kind", K_KINDS)
def test_k_strides_and_extreme_blocks(k, kind):
    from tests.reference import quant_k as qk

    _run_k(k, kind, 6, 512, 7, seed=5, x_pad=12, out_pad=20)
    rng = np.random.default_rng(21)
    W = qk.random_blocks(kind, 4, 512, rng, scale=1.0)     # every quant and scale at an end
    bb = qk.BLOCK_BYTES[kind]
    keep = {o: W[:, o:o + 2].copy() for b in range(2) for o in [b * bb + f for f in qk.F16_FIELDS[kind]]}
    W[0, :] = 0xff
    W[1, :] = 0x00
    W[2, :bb] = 0xff
    for o, v in keep.items():
        W[:, o:o + 2] = v
    _run_k(k, kind, 4, 512, 5, seed=22, W=W)


@pytest.mark.parametrize("type_name", TYPES + ["Q4_K", "Q6_K"])
def test_empty_rows_give_zeros_as_matvec(k, type_name):
    """n = 0 (no blocks): every output 0.0, as the matvec body writes; nothing read."""
    body = k.ggml_body(type_name, "matmat")
    try:
        pw = k.put(np.zeros(1, np.uint8), "W")
        px = k.put(np.zeros(1, np.uint8), "xq")
        po = k.put(np.full(2 * 5, np.nan, np.float32), "out")
        k.m.call(body, po, pw, px, 0, 5, 2, 4 * 5, 0)
        got = k.get(po, 10)
    finally:
        k._done()
    assert np.array_equal(got.view(np.uint32), np.zeros(10, np.uint32)), got
