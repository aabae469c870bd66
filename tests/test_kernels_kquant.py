"""The K-quant kernels (Q2_K .. Q6_K, Q8_K) against independent judges, on every body.

Runs: the SSE2 bodies under unicorn (guard pages around every buffer, ABI checks; small
cases: it is slow), the SSE2 and the AVX2 bodies natively (the AVX2 run skips, with its
reason, on a CPU without AVX2+FMA+F16C). Bodies are called by symbol
(`dequantize_row_q4_k_avx2`, ...), as peasm/ggml.py names them.

* dequantize-row: bit for bit equal to gguf-py's `gguf.quants.dequantize` (the reference
  implementation of ggml's formats) on every K tensor of the real llama.cpp-quantized files
  ../shared/models/quant/tiny256-{Q2_K,Q3_K_M,Q4_K_M,Q5_K_M,Q6_K}.gguf and on random
  super-blocks whose f16 scales take extreme values (max, subnormal, zero, -0, inf, NaN).
* quantize_row_q8_k: byte for byte equal to the numpy model of ggml's quantize_row_q8_K
  (tests/reference/quant_k.py), on both paths, for finite inputs.
* matvec: within `quant_k.matvec_bound` of the exact dot products of the model (the
  integer part exact, f32 roundings bounded), for odd row counts and the TinyLlama-1.1B
  shapes (natively; unicorn runs small ones).
"""
from __future__ import annotations

import gguf
import numpy as np
import pytest
from gguf import GGUFReader
from gguf.quants import dequantize as gguf_dequantize

from peasm.runners import native
from peasm.runners.kernels import Kernels, open_machine
from tests.reference import quant_k as qk
from tests.support import model_file, require

RUNS = [("unicorn", "sse2"), ("native", "sse2"), ("native", "avx2")]
FILES = ["tiny256-Q2_K.gguf", "tiny256-Q3_K_M.gguf", "tiny256-Q4_K_M.gguf",
         "tiny256-Q5_K_M.gguf", "tiny256-Q6_K.gguf"]
BIG_SHAPES = [(2048, 2048), (256, 2048), (5632, 2048), (2048, 5632), (32000, 2048)]

_machines: dict = {}


def _host_has_f16c() -> bool:
    return "f16c" in native.host_cpu_flags()


@pytest.fixture(params=RUNS, ids=[f"{w}-{p}" for w, p in RUNS])
def k(request) -> Kernels:
    where, path = request.param
    if where == "native":
        ok, why = native.supported()
        require(ok, why)
        if path == "avx2" and not (native.host_has_avx2_fma() and _host_has_f16c()):
            pytest.skip("this CPU has no AVX2+FMA+F16C (/proc/cpuinfo): the AVX2 bodies cannot "
                        "run natively here (a legitimate skip, also under CI)")
    if where not in _machines:
        _machines[where] = open_machine(where)
    return Kernels(_machines[where], path)


# ----------------------------------------------------------------------------------------
# helpers: one body call each, buffers freed after


def run_dequantize(k: Kernels, kind: str, raw: bytes) -> np.ndarray:
    n = len(raw) // qk.BLOCK_BYTES[kind] * qk.QK_K
    try:
        pw = k.put(np.frombuffer(raw, np.uint8), "blocks")
        po = k.m.alloc(4 * n, "out")
        k.run(f"dequantize_row_{kind.lower()}", po, pw, n)
        return k.get(po, n)
    finally:
        k.m.free_all()


def run_quantize_q8_k(k: Kernels, x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, np.float32)
    nb = x.size // qk.QK_K
    try:
        px = k.put(x, "x")
        po = k.m.alloc(qk.Q8_K_DTYPE.itemsize * nb, "out")
        k.run("quantize_row_q8_k", po, px, x.size)
        return np.frombuffer(k.m.read(po, qk.Q8_K_DTYPE.itemsize * nb), qk.Q8_K_DTYPE).copy()
    finally:
        k.m.free_all()


def run_matvec(k: Kernels, kind: str, W: np.ndarray, xq: np.ndarray) -> np.ndarray:
    d, n = W.shape[0], xq.shape[0] * qk.QK_K
    try:
        pw = k.put(W, "W")
        px = k.put(np.frombuffer(xq.tobytes(), np.uint8), "xq")
        po = k.m.alloc(4 * d, "out")
        k.run(f"matvec_{kind.lower()}", po, pw, px, n, d)
        return k.get(po, d)
    finally:
        k.m.free_all()


def same_bits(got: np.ndarray, want: np.ndarray, where: str = "native") -> bool:
    """Bit for bit. Under unicorn a NaN only has to be a NaN: QEMU's softfloat picks between
    two NaN operands by the x87 rule (larger significand) where SSE hardware returns the
    first operand, so e.g. NaN(d*sc)*q - NaN(dmin*m) keeps another payload there."""
    if got.shape != want.shape:
        return False
    same = got.view(np.uint32) == want.view(np.uint32)
    if where == "unicorn":
        same |= np.isnan(got) & np.isnan(want)
    return bool(same.all())


# ----------------------------------------------------------------------------------------
# dequantize


@pytest.mark.parametrize("name", FILES)
def test_dequantize_every_k_tensor_of_real_files(k, name):
    reader = GGUFReader(model_file(f"quant/{name}"))
    seen = set()
    for t in reader.tensors:
        kind = t.tensor_type.name
        if kind not in qk.K_TYPES:
            continue
        raw = np.asarray(t.data).tobytes()
        want = gguf_dequantize(np.frombuffer(raw, np.uint8), t.tensor_type).reshape(-1)
        got = run_dequantize(k, kind, raw)
        assert same_bits(got, want, k.m.where_name), f"{name} {t.name} ({kind}): first differing weight " \
            f"{np.flatnonzero(got.view(np.uint32) != want.view(np.uint32))[:1]}"
        seen.add(kind)
    assert seen, f"{name} has no K tensor"


F16_EXTREMES = np.array([0x7bff, 0xfbff, 0x0001, 0x8001, 0x03ff, 0x0400, 0x0000, 0x8000,
                         0x7c00, 0xfc00, 0x7e00, 0x7c01, 0xfe55, 0x3c00, 0x1234],
                        np.uint16)   # max, -max, subnormals, min normal, +-0, +-inf, NaNs, 1


@pytest.mark.parametrize("kind", qk.K_TYPES)
def test_dequantize_random_blocks_extreme_scales(k, kind):
    rng = np.random.default_rng(qk.K_TYPES.index(kind) + 10)
    nb = 40 if k.m.where_name == "unicorn" else 400
    raw = rng.integers(0, 256, (nb, qk.BLOCK_BYTES[kind]), dtype=np.uint8)
    for off in qk.F16_FIELDS[kind]:
        pick = rng.integers(0, len(F16_EXTREMES) + 4, nb)
        vals = np.where(pick < len(F16_EXTREMES), F16_EXTREMES[np.minimum(pick, len(F16_EXTREMES) - 1)],
                        rng.integers(0, 1 << 16, nb).astype(np.uint16))
        raw[:, off:off + 2] = vals.astype("<u2").view(np.uint8).reshape(nb, 2)
    raw[0, :] = 0xff                  # every quant and scale at its largest
    raw[1, :] = 0x00
    want = gguf_dequantize(raw.reshape(-1), gguf.GGMLQuantizationType[kind]).reshape(-1)
    got = run_dequantize(k, kind, raw.tobytes())
    assert same_bits(got, want, k.m.where_name)
    assert np.isnan(got).any() and np.isinf(got).any()    # the extremes were exercised


def test_dequantize_n_counts_whole_super_blocks(k):
    raw = qk.random_blocks("Q4_K", 1, 512, np.random.default_rng(5)).tobytes()
    try:
        pw = k.put(np.frombuffer(raw, np.uint8), "blocks")
        po = k.m.alloc(4 * 256, "out")      # 256 floats: n = 511 must write only one block
        k.run("dequantize_row_q4_k", po, pw, 511)
        got = k.get(po, 256)
    finally:
        k.m.free_all()
    assert same_bits(got, qk.dequantize("Q4_K", raw[:144]))


# ----------------------------------------------------------------------------------------
# quantize_row_q8_k


def q8_cases(rng) -> np.ndarray:
    blocks = [rng.standard_normal(256),
              np.zeros(256),                                   # d = 0, all zeros
              rng.standard_normal(256) * 1e-30,                # tiny (but |max| >= 2^-119)
              rng.standard_normal(256) * 3e37,                 # huge
              np.linspace(-1, 1, 256),                         # a tie for max (-1 first)
              np.r_[np.full(128, 2.0), np.full(128, -2.0)],    # +2 first: the -2s give +127
              np.arange(256) - 127.5,                          # many .5 ties after scaling
              np.r_[np.zeros(255), -7.0]]                      # one element, negative
    return np.concatenate(blocks).astype(np.float32)


def test_quantize_q8_k_equals_the_model(k):
    rng = np.random.default_rng(8)
    x = q8_cases(rng)
    if k.m.where_name == "native":
        x = np.r_[x, rng.standard_normal(256 * 22).astype(np.float32) * 5]
    got = run_quantize_q8_k(k, x)
    want = qk.quantize_q8_k(x)
    assert got.tobytes() == want.tobytes(), \
        f"first differing block {np.flatnonzero([g.tobytes() != w.tobytes() for g, w in zip(got, want)])[:1]}"
    assert got["qs"].min() == -127 and got["qs"].max() == 127    # iscale = -127/max


def test_quantize_q8_k_nonfinite_input_does_not_fault(k):
    x = np.zeros(512, np.float32)
    x[3], x[300], x[301] = np.inf, np.nan, 1.0
    run_quantize_q8_k(k, x)          # quants unspecified (as documented), but no fault


# ----------------------------------------------------------------------------------------
# matvec


def check_matvec(k: Kernels, kind: str, d: int, n: int, seed: int, *, scale: float = 1e-3):
    rng = np.random.default_rng(seed)
    W = qk.random_blocks(kind, d, n, rng, scale=scale)
    x = rng.standard_normal(n).astype(np.float32)
    xq = run_quantize_q8_k(k, x)           # the kernels' own Q8_K, checked against the model
    assert xq.tobytes() == qk.quantize_q8_k(x).tobytes()
    got = run_matvec(k, kind, W, xq)
    want = qk.matvec(kind, W.tobytes(), xq)
    bound = qk.matvec_bound(kind, W.tobytes(), xq)
    err = np.abs(got.astype(np.float64) - want)
    assert got.shape == (d,)
    assert np.all(err <= bound), f"{kind} {d}x{n}: worst row {np.argmax(err / bound)}, " \
        f"err {err.max():.3g} bound {bound[np.argmax(err / bound)]:.3g}"


@pytest.mark.parametrize("kind", qk.K_TYPES)
@pytest.mark.parametrize("d,n", [(1, 256), (3, 512), (5, 256), (7, 768), (9, 1024)])
def test_matvec_odd_rows(k, kind, d, n):
    check_matvec(k, kind, d, n, seed=d * 1000 + n)


@pytest.mark.parametrize("kind", qk.K_TYPES)
def test_matvec_extreme_quants_and_scales(k, kind):
    """All-0xff / all-0x00 blocks (every quant and scale at an end) with large finite
    scales: no i16 step may saturate."""
    rng = np.random.default_rng(21)
    n, d = 512, 4
    W = qk.random_blocks(kind, d, n, rng, scale=1.0)
    bb = qk.BLOCK_BYTES[kind]
    keep = {o: W[:, o:o + 2].copy() for b in range(2) for o in [b * bb + f for f in qk.F16_FIELDS[kind]]}
    W[0, :] = 0xff
    W[1, :] = 0x00
    W[2, :bb] = 0xff
    for o, v in keep.items():
        W[:, o:o + 2] = v
    x = np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(np.float32)   # q8 at +-127/-128
    x[::7] *= 0.999
    xq = qk.quantize_q8_k(x)
    got = run_matvec(k, kind, W, xq)
    want = qk.matvec(kind, W.tobytes(), xq)
    assert np.all(np.abs(got - want) <= qk.matvec_bound(kind, W.tobytes(), xq))


@pytest.mark.parametrize("kind", qk.K_TYPES)
def test_matvec_a_real_shape_under_unicorn(k, kind):
    if k.m.where_name != "unicorn":
        pytest.skip("the native runs cover every real shape (test_matvec_tinyllama_shapes)")
    check_matvec(k, kind, 17, 2048, seed=99)


@pytest.mark.parametrize("kind", qk.K_TYPES)
@pytest.mark.parametrize("d,n", BIG_SHAPES, ids=[f"{d}x{n}" for d, n in BIG_SHAPES])
def test_matvec_tinyllama_shapes(k, kind, d, n):
    if k.m.where_name != "native":
        pytest.skip("native only (TinyLlama-1.1B shapes; unicorn runs 17x2048)")
    check_matvec(k, kind, d, n, seed=d + n)


# ----------------------------------------------------------------------------------------
# the type table's names


def test_every_k_body_named_in_the_type_table_is_linked():
    """peasm/ggml.py names the K rows' bodies; the kernels link (kernels.toml) defines them
    all, so the generated table (ggml_table.inc) resolves once it is linked in."""
    from peasm import ggml
    from peasm.runners.kernels import kernels_image

    image = kernels_image()
    names = {s.name for s in image.symbols}
    for tname in (*qk.K_TYPES, "Q8_K"):
        t = ggml.BY_NAME[tname]
        assert t.vec_dot_type == ("Q8_K" if tname != "Q8_K" else None)
        for kind in ggml.BODY_KINDS:
            for path in ggml.PATHS:
                sym = ggml.body_symbol(t, kind, path)
                assert sym is None or sym in names, f"{tname} {kind} {path}: {sym} not linked"
        assert (ggml.runnable(t)) == (tname != "Q8_K")


@pytest.mark.parametrize("kind", qk.K_TYPES)
def test_matvec_empty_shapes(k, kind):
    """d = 0 writes nothing (the output buffer ends at a guard page); n = 0 (and n < 256:
    no whole super-block) gives zeros."""
    xq = qk.quantize_q8_k(np.ones(256, np.float32))
    W = qk.random_blocks(kind, 2, 256, np.random.default_rng(1))
    try:
        pw = k.put(W, "W")
        px = k.put(np.frombuffer(xq.tobytes(), np.uint8), "xq")
        po = k.put(np.full(2, 7.0, np.float32), "out")
        k.run(f"matvec_{kind.lower()}", po, pw, px, 256, 0)
        assert list(k.get(po, 2)) == [7.0, 7.0]
        for n in (0, 255):
            k.run(f"matvec_{kind.lower()}", po, pw, px, n, 2)
            assert list(k.get(po, 2)) == [0.0, 0.0]
    finally:
        k.m.free_all()
