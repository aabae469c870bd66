"""The ggml type kernels (kernels_asm/ggml_*.s) against independent judges.

Every body is reached as the program reaches it: kernels_init for the path, then
ggml_type_body(type id, kind) (peasm.runners.kernels.Kernels.ggml_body). Three runs: the
SSE2 bodies under unicorn (guard pages against every buffer's end, ABI checks; small
inputs: unicorn is slow), and the SSE2 and AVX2 bodies natively (real shapes).

* dequantize-row: bit for bit equal to gguf-py's `gguf.quants.dequantize` on every tensor
  of these types in ../shared/models/quant/ (under unicorn: the first and last rows of
  each), and on random blocks whose f16 scales are any bit pattern (subnormal, inf, NaN: a
  NaN or inf result where numpy gives one, never a fault; NaN payloads are not compared,
  numpy keeps a signaling NaN signaling where the hardware quiets it).
* f16 <-> f32: the integer SSE2 conversions equal F16C's (vcvtph2ps / vcvtps2ph) for all
  65536 halves and for f32 specials (subnormals, ties, overflow, NaN payloads).
* quantize-row (Q8_0, Q8_1, F16, BF16): bit for bit equal to tests/reference/quant.py's
  numpy model of llama.cpp's CPU path; SSE2 and AVX2 write the same bytes.
* matvec: within (terms/2 + 16) u of the model's exact-sum result, relative to the sum of
  the terms' magnitudes (u = 2^-24; terms: blocks, or elements for F16/BF16/F32), which
  bounds f32 summation in partial sums; integer block dots are exact.
"""
from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFReader
from gguf.quants import dequantize as gguf_dequantize

from peasm import ggml
from peasm.runners import native
from peasm.runners.kernels import Kernels, open_machine
from tests.reference import quant as Q
from tests.support import MODELS, require

U = 2.0 ** -24
WEIGHTS = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"]
ACTIVATIONS = ["Q8_0", "Q8_1", "F16", "BF16"]
RUNS = [("unicorn", "sse2"), ("native", "sse2"), ("native", "avx2")]

_machines: dict = {}


def _machine(where: str, path: str):
    if where == "native":
        ok, why = native.supported()
        require(ok, why)
        if path == "avx2" and not native.host_has_avx2_fma():
            pytest.skip("this CPU lacks AVX2+FMA+F16C: the AVX2 bodies cannot run natively here")
    if where not in _machines:
        _machines[where] = open_machine(where)
    return _machines[where]


@pytest.fixture(params=RUNS, ids=[f"{w}-{p}" for w, p in RUNS])
def k(request) -> Kernels:
    where, path = request.param
    return Kernels(_machine(where, path), path)


def _native_pair():
    """(sse2, avx2) Kernels on the host, or skip."""
    return Kernels(_machine("native", "sse2"), "sse2"), Kernels(_machine("native", "avx2"), "avx2")


def _bits_equal(got: np.ndarray, want: np.ndarray) -> None:
    """Equal bits where want is not NaN; NaN exactly where want is NaN."""
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan), np.flatnonzero(np.isnan(got) != nan)[:10]
    bad = np.flatnonzero(got.view(np.uint32)[~nan] != want.view(np.uint32)[~nan])
    assert bad.size == 0, (bad[:10], got[~nan][bad[:5]], want[~nan][bad[:5]])


# ----------------------------------------------------------------------------------------
# the table


def test_type_body_follows_the_declaration(k):
    k.ggml_body("F32", "to_float")              # kernels_init for this path
    for t_id in [*range(ggml.TYPE_COUNT + 3), *range(ggml.INTERNAL_BASE, ggml.TABLE_ROWS + 3)]:
        t = ggml.BY_ID.get(t_id)
        for kind_index, kind in enumerate(ggml.BODY_KINDS):
            got = k.m.call("ggml_type_body", t_id, kind_index * 8).rax
            sym = ggml.body_symbol(t, kind, k.path) if t else None
            assert got == (k.m.address(sym) if sym else 0), (t_id, kind)
    for bad_kind in (4, 8 * len(ggml.BODY_KINDS), 8 * len(ggml.BODY_KINDS) + 8, 0xFFFF_FFF8):
        assert k.m.call("ggml_type_body", 8, bad_kind).rax == 0, bad_kind
    assert k.m.call("ggml_type_body", 0x1_0000_0008, 0x1_0000_0010).rax == k.m.address(
        f"matvec_q8_0_{k.path}")                # the upper halves are ignored
    assert k.m.call("ggml_type_body", 0xFFFF_FFFF, 0).rax == 0


def test_type_body_is_zero_before_kernels_init():
    m = open_machine("unicorn")
    assert m.call("ggml_type_body", ggml.BY_NAME["Q4_0"].id, 16).rax == 0


# ----------------------------------------------------------------------------------------
# dequantize-row


def _quant_files():
    require(MODELS.is_dir() and (MODELS / "quant").is_dir(), f"models directory {MODELS / 'quant'}")
    files = sorted((MODELS / "quant").glob("*.gguf"))
    require(bool(files), f"GGUF files in {MODELS / 'quant'}")
    return files


def test_dequantize_equals_gguf_on_every_real_tensor(k):
    seen = set()
    for f in _quant_files():
        for t in GGUFReader(f).tensors:
            name = t.tensor_type.name
            if name not in WEIGHTS:
                continue
            seen.add(name)
            data = np.asarray(t.data)
            rows = data.reshape(-1, data.shape[-1]) if data.ndim > 1 else data.reshape(1, -1)
            if k.m.where_name == "unicorn" and rows.shape[0] > 2:
                rows = rows[[0, -1]]               # unicorn is slow: first and last rows
            raw = np.ascontiguousarray(rows).view(np.uint8).reshape(rows.shape[0], -1)
            want = gguf_dequantize(raw, t.tensor_type).reshape(-1).astype(np.float32)
            got = k.dequantize(name, raw.tobytes(), want.size)
            assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), (f.name, t.name, name)
    assert seen == set(WEIGHTS), f"no real tensors of {set(WEIGHTS) - seen}"


def _random_blocks(type_name: str, n_blocks: int, rng) -> bytes:
    """Random blocks whose f16 fields (scales) are random bit patterns, all specials
    included; the rest random bytes."""
    t = ggml.BY_NAME[type_name]
    raw = rng.integers(0, 256, (n_blocks, t.block_bytes), dtype=np.uint8)
    h = rng.integers(0, 65536, (n_blocks, 2), dtype=np.uint16)
    specials = np.array([0x0000, 0x8000, 0x0001, 0x03FF, 0x0400, 0x7BFF, 0x7C00, 0xFC00, 0x7C01,
                         0x7E00, 0xFFFF, 0x3C00], np.uint16)
    h[:specials.size, 0] = specials
    h[:specials.size, 1] = specials[::-1]
    if type_name in ("Q4_1", "Q5_1"):
        raw[:, 0:4] = h.view(np.uint8)
    else:
        raw[:, 0:2] = h[:, :1].view(np.uint8)
    return raw.tobytes()


@pytest.mark.parametrize("type_name", ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"])
def test_dequantize_random_blocks_with_extreme_scales(k, type_name):
    rng = np.random.default_rng(ggml.BY_NAME[type_name].id)
    n_blocks = 64 if k.m.where_name == "unicorn" else 4096
    data = _random_blocks(type_name, n_blocks, rng)
    t = GGMLQuantizationType[type_name]
    with np.errstate(all="ignore"):
        want = gguf_dequantize(np.frombuffer(data, np.uint8), t).astype(np.float32)
    got = k.dequantize(type_name, data, n_blocks * 32)
    _bits_equal(got, want)


@pytest.mark.parametrize("type_name", ["F32", "F16", "BF16"])
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 15, 16, 17, 33, 1000])
def test_dequantize_float_types_any_length(k, type_name, n):
    rng = np.random.default_rng(n)
    width = 4 if type_name == "F32" else 2
    data = rng.integers(0, 256, n * width, dtype=np.uint8).tobytes()
    with np.errstate(all="ignore"):
        want = (gguf_dequantize(np.frombuffer(data, np.uint8), GGMLQuantizationType[type_name])
                .astype(np.float32) if n else np.zeros(0, np.float32))   # (gguf-py refuses 0)
    got = k.dequantize(type_name, data, n)
    _bits_equal(got, want.reshape(-1))
    if type_name == "F16":                     # with NaN payloads: the hardware's quiet NaN
        want = Q.f16_bits_to_f32(np.frombuffer(data, np.uint16))
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


def test_f16_to_f32_every_half_as_f16c(k):
    halves = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    if k.m.where_name == "unicorn":
        halves = halves[::7]                   # every exponent, both signs, NaN payloads
    got = k.dequantize("F16", halves.tobytes(), halves.size)
    want = Q.f16_bits_to_f32(halves)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


def test_f16_sse2_equals_f16c_hardware():
    sse2, avx2 = _native_pair()
    halves = np.arange(65536, dtype=np.uint32).astype(np.uint16).tobytes()
    a = sse2.dequantize("F16", halves, 65536)
    b = avx2.dequantize("F16", halves, 65536)
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
    x = _f32_specials(np.random.default_rng(5), 200_000)
    assert sse2.quantize("F16", x) == avx2.quantize("F16", x)


# ----------------------------------------------------------------------------------------
# quantize-row


def _f32_specials(rng, n: int) -> np.ndarray:
    """f32 bit patterns over every exponent, plus f16 rounding ties and limits."""
    bits = rng.integers(0, 2 ** 32, n, dtype=np.uint64).astype(np.uint32)
    edges = np.array([0, 0x80000000, 1, 0x7F800000, 0xFF800000, 0x7F800001, 0x7FC00000, 0xFFFFFFFF,
                      0x7FBFFFFF, 0x477FE000, 0x477FEFFF, 0x477FF000, 0x477FF001, 0x38800000,
                      0x387FFFFF, 0x387FF000, 0x33800000, 0x33000000, 0x33000001, 0x32FFFFFF,
                      0x33C00000, 0x3F801000, 0x3F803000, 0x3F800FFF, 0xC77FF000], np.uint32)
    bits[:edges.size] = edges
    # f16 ties: a random f16, plus half its ulp
    h = rng.integers(0, 0x7C00, n // 4, dtype=np.uint16)
    f = Q.f16_bits_to_f32(h).view(np.uint32)
    bits[edges.size:edges.size + f.size] = np.where(h >= 0x400, f + 0x1000, bits[edges.size:edges.size + f.size])
    return bits.view(np.float32)


@pytest.mark.parametrize("type_name", ["F16", "BF16"])
def test_quantize_16_bit_floats_bit_for_bit(k, type_name):
    n = 4099 if k.m.where_name == "unicorn" else 200_003
    x = _f32_specials(np.random.default_rng(11), n)
    assert k.quantize(type_name, x) == Q.quantize(type_name, x)
    for m in (0, 1, 7, 9):
        assert k.quantize(type_name, x[:m]) == Q.quantize(type_name, x[:m])


def _activations(rng, n: int) -> np.ndarray:
    """Vectors of many scales: normal, tiny, huge, zero blocks, a block with an inf."""
    x = rng.standard_normal(n).astype(np.float32)
    blocks = x.reshape(-1, 32)
    scales = np.exp2(rng.uniform(-140, 120, blocks.shape[0])).astype(np.float32)
    blocks *= scales[:, None]
    blocks[0] = 0
    if blocks.shape[0] > 2:
        blocks[1, 5] = np.inf
        blocks[2] = rng.integers(-127, 128, 32).astype(np.float32)   # exact ties of x*id
    if blocks.shape[0] > 3:
        blocks[3, :] = -0.0
    return blocks.reshape(-1)


@pytest.mark.parametrize("type_name", ["Q8_0", "Q8_1"])
def test_quantize_q8_bit_for_bit(k, type_name):
    n = 32 * (40 if k.m.where_name == "unicorn" else 20_000)
    x = _activations(np.random.default_rng(3), n)
    with np.errstate(all="ignore"):
        assert k.quantize(type_name, x) == Q.quantize(type_name, x)
        assert k.quantize(type_name, x[:32]) == Q.quantize(type_name, x[:32])
        assert k.quantize(type_name, x[:0]) == b""


@pytest.mark.parametrize("type_name", ACTIVATIONS)
def test_quantize_sse2_and_avx2_write_the_same_bytes(type_name):
    sse2, avx2 = _native_pair()
    x = _activations(np.random.default_rng(4), 32 * 10_000)
    assert sse2.quantize(type_name, x) == avx2.quantize(type_name, x)


# ----------------------------------------------------------------------------------------
# matvec


def _random_weights(type_name: str, d: int, n: int, rng) -> bytes:
    """d rows of n: random quants, scales f16 of |N(0, 1)| / 64 (m signed); floats N(0, 1)."""
    t = ggml.BY_NAME[type_name]
    if t.block_size == 1:
        w = rng.standard_normal(d * n).astype(np.float32)
        return Q.quantize(type_name, w) if type_name != "F32" else w.tobytes()
    nb = d * n // 32
    raw = rng.integers(0, 256, (nb, t.block_bytes), dtype=np.uint8)
    if type_name == "Q8_0":                    # llama.cpp writes -127..127
        raw[:, 2:] = np.clip(raw[:, 2:].view(np.int8), -127, 127).view(np.uint8)
    scale = Q.f32_to_f16_bits((np.abs(rng.standard_normal(nb)) / 64).astype(np.float32))
    raw[:, 0:2] = scale.reshape(-1, 1).view(np.uint8)
    if type_name in ("Q4_1", "Q5_1"):
        m = Q.f32_to_f16_bits((rng.standard_normal(nb) / 8).astype(np.float32))
        raw[:, 2:4] = m.reshape(-1, 1).view(np.uint8)
    return raw.tobytes()


def _check_matvec(k, type_name: str, d: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = ggml.BY_NAME[type_name]
    W = _random_weights(type_name, d, n, rng)
    x = rng.standard_normal(n).astype(np.float32)
    xq = k.quantize(t.vec_dot_type, x) if t.vec_dot_type != "F32" else x.tobytes()
    assert xq == Q.quantize(t.vec_dot_type, x)
    got = k.matvec_q(type_name, W, xq, n, d)
    row_bytes = n // t.block_size * t.block_bytes
    terms = n if t.block_size == 1 else 2 * n // 32
    for r0 in range(0, d, 4096):                   # the model, in slices of rows
        r1 = min(d, r0 + 4096)
        part = W[r0 * row_bytes:r1 * row_bytes]
        want = Q.matvec_q(type_name, part, xq, n, r1 - r0)
        bound = Q.matvec_bound(type_name, part, xq, n, r1 - r0)
        err = np.abs(got[r0:r1] - want)
        tol = (terms / 2 + 16) * U * bound + 1e-30
        worst = int(np.argmax(err / tol))
        assert np.all(err <= tol), (type_name, d, n, r0 + worst, got[r0 + worst], want[worst],
                                    err[worst] / bound[worst])


SMALL = [(1, 32), (3, 64), (7, 96), (37, 256)]


@pytest.mark.parametrize("type_name", WEIGHTS)
def test_matvec_small_shapes(k, type_name):
    for i, (d, n) in enumerate(SMALL):
        _check_matvec(k, type_name, d, n, seed=i)
    if ggml.BY_NAME[type_name].block_size == 1:     # float types take any n (F16's SSE2
                                                    # body: tiles of 1024 columns)
        for i, (d, n) in enumerate([(2, 1), (3, 7), (5, 9), (3, 17), (2, 33), (3, 1100)]):
            _check_matvec(k, type_name, d, n, seed=10 + i)


# SmolLM2's shapes (q/k/v/o, ffn, output over the 49152-token vocabulary: quantized types
# only there, the float types' numpy model at that size is slow and adds nothing), and a long row
REAL = [(t, d, n) for t in WEIGHTS for d, n in [(576, 1536), (1536, 576), (49152, 576), (5, 4096)]
        if d != 49152 or ggml.BY_NAME[t].block_size == 32]


@pytest.mark.parametrize("type_name,d,n", REAL)
def test_matvec_real_shapes_natively(type_name, d, n):
    for k in _native_pair():
        if d == 49152 and k.path == "sse2":
            continue                              # the largest once, on the app's fast path
        _check_matvec(k, type_name, d, n, seed=d + n)


@pytest.mark.parametrize("type_name", ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"])
def test_matvec_with_extreme_scales_does_not_fault(k, type_name):
    """inf/NaN scales give inf/NaN results (as the math says), never a fault."""
    rng = np.random.default_rng(8)
    d, n = 12, 96
    W = _random_blocks(type_name, d * n // 32, rng)
    xq = Q.quantize(ggml.BY_NAME[type_name].vec_dot_type, rng.standard_normal(n).astype(np.float32))
    got = k.matvec_q(type_name, W, xq, n, d)
    with np.errstate(all="ignore"):
        want = Q.matvec_q(type_name, W, xq, n, d)
    finite = np.isfinite(want)
    assert np.array_equal(np.isnan(got[~finite]), np.isnan(want[~finite]))


def test_matvec_zero_rows_writes_nothing(k):
    for type_name in WEIGHTS:
        t = ggml.BY_NAME[type_name]
        out = k.matvec_q(type_name, bytes(t.block_bytes), bytes(ggml.BY_NAME[t.vec_dot_type].block_bytes
                                                                if t.vec_dot_type != "F32" else 4),
                         t.block_size, 0)
        assert out.size == 0


@pytest.mark.parametrize("misalign", [1, 3, 6])
def test_unaligned_buffers(k, misalign):
    """Inputs off any alignment (k bytes of slack after each, so their starts move)."""
    ku = Kernels(k.m, k.path, misalign=misalign)
    rng = np.random.default_rng(misalign)
    x = rng.standard_normal(96).astype(np.float32)
    for type_name in WEIGHTS:
        t = ggml.BY_NAME[type_name]
        W = _random_weights(type_name, 3, 96, rng)
        want = gguf_dequantize(np.frombuffer(W, np.uint8), GGMLQuantizationType[type_name]).reshape(-1)
        got = ku.dequantize(type_name, W, 3 * 96)
        assert np.array_equal(got.view(np.uint32), want.astype(np.float32).view(np.uint32)), type_name
        xq = Q.quantize(t.vec_dot_type, x)
        if t.vec_dot_type != "F32":
            assert ku.quantize(t.vec_dot_type, x) == xq, type_name
        got = ku.matvec_q(type_name, W, xq, 96, 3)
        want = Q.matvec_q(type_name, W, xq, 96, 3)
        bound = Q.matvec_bound(type_name, W, xq, 96, 3)
        assert np.all(np.abs(got - want) <= 64 * U * bound), type_name


@pytest.mark.parametrize("type_name", ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"])
def test_the_model_reads_blocks_as_gguf_py_does(type_name):
    """tests/reference/quant.py's block decoding (which the matvec checks rest on) against
    gguf-py: d * q (+ m) from its fields equals gguf's dequantize bit for bit."""
    rng = np.random.default_rng(21)
    data = _random_weights(type_name, 64, 256, rng)
    d, m, q = Q._fields(type_name, data, 64 * 256 // 32)
    with np.errstate(all="ignore"):
        mine = d[:, None] * q.astype(np.float32)
        if m is not None:
            mine = mine + m[:, None]
    want = gguf_dequantize(np.frombuffer(data, np.uint8), GGMLQuantizationType[type_name])
    assert np.array_equal(mine.astype(np.float32).reshape(-1).view(np.uint32),
                          want.astype(np.float32).reshape(-1).view(np.uint32))


def test_the_model_quantizes_q8_0_as_gguf_py_except_at_ties():
    """Our model rounds x * id to nearest even (the AVX2 path's cvtps2dq); gguf-py's Q8_0
    quantizer rounds half away from zero (ggml's scalar reference): equal but at exact ties."""
    from gguf.quants import quantize as gguf_quantize

    x = np.random.default_rng(22).standard_normal(32 * 4096).astype(np.float32)
    mine = np.frombuffer(Q.quantize_q8_0(x), np.uint8).reshape(-1, 34)
    want = gguf_quantize(x.reshape(-1, 32), GGMLQuantizationType.Q8_0).reshape(-1, 34)
    assert np.array_equal(mine[:, :2], want[:, :2])
    differ = mine[:, 2:] != want[:, 2:]
    assert differ.mean() < 1e-3
    amax = np.abs(x.reshape(-1, 32)).max(axis=1)
    v = x.reshape(-1, 32) * np.where(amax != 0, np.float32(127) / amax, 0)[:, None]
    assert np.all(np.abs(np.abs(v[differ]) % 1 - 0.5) < 1e-6)    # only ties differ


def test_matvec_f16_subnormal_and_special_weights(k):
    """F16 weights that are subnormal (exact products), and rows holding inf or NaN."""
    rng = np.random.default_rng(30)
    d, n = 9, 67
    w = rng.standard_normal((d, n)).astype(np.float16).view(np.uint16)
    w[0:4] = rng.integers(1, 0x400, (4, n), dtype=np.uint16) | rng.choice(
        np.array([0, 0x8000], np.uint16), (4, n))                     # every subnormal sign
    w[5, 3] = 0x7C00
    w[6, 10] = 0xFC01                                                  # a signaling NaN
    w[7, 0] = 0x7E00
    x = rng.standard_normal(n).astype(np.float32)
    xq = Q.quantize("F16", x)
    got = k.matvec_q("F16", w.tobytes(), xq, n, d)
    with np.errstate(all="ignore"):
        want = Q.matvec_q("F16", w.tobytes(), xq, n, d)
    bound = Q.matvec_bound("F16", w.tobytes(), xq, n, d)
    finite = np.isfinite(want)
    assert np.all(np.abs(got[finite] - want[finite]) <= (n / 2 + 16) * U * bound[finite] + 1e-45)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(got[np.isinf(want)], want[np.isinf(want)].astype(np.float32))
