"""The math kernels against numpy references, on every body.

Three runs of each test: the SSE2 bodies under unicorn (every buffer between guard pages,
ABI checked after each call and at each call the kernel makes), and the SSE2 and AVX2/FMA
bodies natively (guard pages too, callee-saved registers checked by the thunk). The AVX2
run skips, with its reason, on a CPU without AVX2+FMA: that is a fact of the machine, not a
missing judge, so it skips under CI too.

Tolerances, per kernel (u = 2^-24, the f32 unit roundoff; references in float64):
  matvec, dot   |err| <= (n/4 + 16) u (|W| @ |x|)   (the bound for summing n products in
                                                     >= 4 partial sums; exact f64 reference)
  rmsnorm       |err| <= ((n/4 + 16)/2 + 6) u |ref|
  expf          <= 2 ulp where exp(x) is a normal f32; |err| <= 2^-149 below; 0 at x <= -104
  softmax       |err| <= (8 + |x - max| + n/4 + 16) u ref      (+ 2^-126 absolute)
  swiglu        |err| <= 8 u |ref|                  (+ 1e-30 |b| where exp(-v) saturates)
  add, scale    bit-exact to numpy's f32 arithmetic
  axpy          sse2: bit-exact (a*x then +y); avx2 (FMA): the exact a*x+y rounded once
  argmax        exact, the first maximum (numpy's rule)
  rope          table: |err| <= 2 u (freq and angle as llama2.c rounds them); apply:
                bit-exact to numpy's f32 arithmetic with the same table
  attention     |err| <= 3e-6 (max |v|) + 3e-6 |ref|
Real shapes run in full natively; under unicorn (slow) the big ones run once each.
"""
from __future__ import annotations

import numpy as np
import pytest

from peasm.runners import native
from peasm.runners.kernels import Kernels, open_machine
from tests.support import require

U = 2.0 ** -24
LENGTHS = [1, 7, 8, 9, 31, 33, 257]
REAL = [288, 768, 2048, 5632, 32000]
RUNS = [("unicorn", "sse2"), ("native", "sse2"), ("native", "avx2")]


def _machine_or_skip(where: str, path: str):
    if where == "native":
        ok, why = native.supported()
        require(ok, why)
        if path == "avx2" and not native.host_has_avx2_fma():
            pytest.skip("this CPU has no AVX2+FMA (/proc/cpuinfo): the AVX2 bodies cannot run "
                        "natively here (a legitimate skip, also under CI)")
    return open_machine(where)


_machines: dict = {}


@pytest.fixture(params=RUNS, ids=[f"{w}-{p}" for w, p in RUNS])
def k(request) -> Kernels:
    where, path = request.param
    if where not in _machines:
        _machines[where] = _machine_or_skip(where, path)
    elif where == "native":
        _machine_or_skip(where, path)
    return Kernels(_machines[where], path)


def big(k: Kernels, sizes: list[int]) -> list[int]:
    """All sizes natively; under unicorn only the largest (each big shape costs seconds)."""
    return sizes if k.m.where_name == "native" else sizes[-1:]


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def f64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def ulps(got, want) -> np.ndarray:
    """Distance in f32 ulps of the reference value (want in f64)."""
    want = f64(want)
    spacing = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    return np.abs(f64(got) - want) / spacing


# ----------------------------------------------------------------------------------------
# matvec


def check_matvec(k, W, x):
    out = k.matvec(W, x)
    ref = f64(W) @ f64(x)
    bound = (W.shape[1] / 4 + 16) * U * (np.abs(f64(W)) @ np.abs(f64(x))) + 1e-37
    err = np.abs(f64(out) - ref)
    assert out.shape == (W.shape[0],)
    assert np.all(err <= bound), f"worst row {np.argmax(err / bound)}: err {err.max():.3g}"


@pytest.mark.parametrize("d", [1, 3, 4, 5, 7, 8, 9])
@pytest.mark.parametrize("n", LENGTHS)
def test_matvec_small(k, n, d):
    r = rng(n * 100 + d)
    check_matvec(k, r.standard_normal((d, n)).astype(np.float32), r.standard_normal(n).astype(np.float32))


@pytest.mark.parametrize("d,n", [(288, 288), (768, 288), (288, 768), (2048, 768), (768, 2048),
                                 (5632, 288), (288, 5632), (32000, 288)])
def test_matvec_real_shapes(k, d, n):
    if k.m.where_name == "unicorn" and (d, n) not in [(288, 288), (288, 5632), (32000, 288)]:
        pytest.skip("covered natively; unicorn runs three real shapes")
    r = rng(d + n)
    check_matvec(k, r.standard_normal((d, n)).astype(np.float32), r.standard_normal(n).astype(np.float32))


def test_matvec_real_shapes_large_native(k):
    if k.m.where_name != "native":
        pytest.skip("native only (stories110M-sized: 32000 x 768 and 2048 x 5632)")
    r = rng(7)
    for d, n in [(32000, 768), (768, 5632), (5632, 768)]:
        check_matvec(k, r.standard_normal((d, n)).astype(np.float32), r.standard_normal(n).astype(np.float32))


@pytest.mark.parametrize("d,n", [(5, 2047), (5, 2048), (7, 2049), (3, 4096), (9, 4097), (6, 6151)])
def test_matvec_column_tiles(k, d, n):
    """Rows longer than one column tile (2048 floats): tiles add into out; partial blocks."""
    r = rng(d * n)
    check_matvec(k, r.standard_normal((d, n)).astype(np.float32), r.standard_normal(n).astype(np.float32))


def test_matvec_large_magnitudes(k):
    r = rng(3)
    W = (r.standard_normal((13, 257)) * 1e15).astype(np.float32)
    x = (r.standard_normal(257) * 1e15).astype(np.float32)
    check_matvec(k, W, x)
    W = (r.standard_normal((6, 33)) * 1e-15).astype(np.float32)
    check_matvec(k, W, x[:33])


def test_matvec_exact_on_integers(k):
    # small integers: every partial sum is exact, so any order gives the exact answer
    r = rng(4)
    W = r.integers(-8, 9, (37, 257)).astype(np.float32)
    x = r.integers(-8, 9, 257).astype(np.float32)
    assert np.array_equal(k.matvec(W, x), (W.astype(np.int64) @ x.astype(np.int64)).astype(np.float32))


def test_matvec_zero_rows_or_columns(k):
    assert k.matvec(np.zeros((0, 8), np.float32), np.ones(8, np.float32)).shape == (0,)
    assert np.array_equal(k.matvec(np.zeros((5, 0), np.float32), np.zeros(0, np.float32)), np.zeros(5))


# ----------------------------------------------------------------------------------------
# rmsnorm


@pytest.mark.parametrize("n", LENGTHS + REAL)
def test_rmsnorm(k, n):
    if n in REAL and n not in big(k, REAL):
        pytest.skip("covered natively")
    r = rng(n)
    x = (r.standard_normal(n) * 3).astype(np.float32)
    w = r.standard_normal(n).astype(np.float32)
    ref = f64(w) * f64(x) / np.sqrt(np.mean(f64(x) ** 2) + 1e-5)
    tol = ((n / 4 + 16) / 2 + 6) * U * np.abs(ref) + 1e-37
    out = k.rmsnorm(x, w, 1e-5)
    assert np.all(np.abs(f64(out) - ref) <= tol)
    inplace = k.rmsnorm(x, w, 1e-5, inplace=True)
    assert np.array_equal(inplace, out)


def test_rmsnorm_eps_and_magnitudes(k):
    r = rng(11)
    for scale, eps in [(1e15, 1e-5), (1e-3, 1e-6), (0.0, 1e-5), (1.0, 0.5)]:
        x = (r.standard_normal(33) * scale).astype(np.float32)
        w = r.standard_normal(33).astype(np.float32)
        ref = f64(w) * f64(x) / np.sqrt(np.mean(f64(x) ** 2) + np.float32(eps))
        out = k.rmsnorm(x, w, eps)
        assert np.all(np.abs(f64(out) - ref) <= 30 * U * np.abs(ref) + 1e-37), (scale, eps)


# ----------------------------------------------------------------------------------------
# expf, softmax, swiglu


def check_expf(k, x):
    out = k.expf(x)
    ref = np.exp(f64(x))
    normal = ref >= np.finfo(np.float32).tiny
    assert np.all(ulps(out[normal], ref[normal]) <= 2.0), f"max ulps {ulps(out[normal], ref[normal]).max()}"
    sub = (ref < np.finfo(np.float32).tiny) & (f64(x) > -104)
    assert np.all(np.abs(f64(out[sub]) - ref[sub]) <= 2.0 ** -149)
    return out


@pytest.mark.parametrize("n", LENGTHS)
def test_expf_lengths(k, n):
    check_expf(k, rng(n).uniform(-20, 20, n).astype(np.float32))


def test_expf_sweep(k):
    count = 1 << 20 if k.m.where_name == "native" else 1 << 14
    x = np.linspace(-103.9, 88.0, count, dtype=np.float32)
    check_expf(k, x)
    x = np.concatenate([np.linspace(-1, 1, count // 4), np.linspace(-0.36, 0.36, count // 4)]).astype(np.float32)
    check_expf(k, x)


def test_expf_extremes(k):
    x = np.array([0.0, -0.0, -104, -105, -1000, -3e38, -np.inf, 88, 88.5, 100, 3e38, np.inf,
                  -87.3, -87.4, -100, -103.27, np.nan, 1e-30, -1e-30], np.float32)
    out = k.expf(x)
    assert out[0] == 1 and out[1] == 1
    assert np.all(out[2:7] == 0), out[2:7]
    limit = np.float32(np.exp(np.float64(88)))
    assert np.all(ulps(out[7:12], np.full(5, np.exp(np.float64(88)))) <= 2), (out[7:12], limit)
    assert np.all(np.isfinite(out)) and not np.any(np.isnan(out))
    assert out[16] == 0                     # NaN -> 0, as documented
    assert out[17] == 1 and out[18] == 1
    assert 0 < out[15] < 2 * 2.0 ** -149 + 1e-45 or out[15] == 2.0 ** -149  # exp(-103.27): smallest subnormals
    inplace = k.expf(x[:16], inplace=True)
    assert np.array_equal(inplace, out[:16])


def softmax_ref(x):
    x = f64(x)
    e = np.exp(x - x.max())
    return e / e.sum()


def check_softmax(k, x):
    out = k.softmax(x)
    ref = softmax_ref(x)
    gap = np.abs(f64(x) - f64(x).max())
    tol = (8 + np.minimum(gap, 1e6) + x.size / 4 + 16) * U * ref + 2.0 ** -126
    assert np.all(np.abs(f64(out) - ref) <= tol), np.max(np.abs(f64(out) - ref) / tol)
    assert np.all(np.isfinite(out))
    return out


@pytest.mark.parametrize("n", LENGTHS + REAL)
def test_softmax(k, n):
    if n in REAL and n not in big(k, REAL):
        pytest.skip("covered natively")
    check_softmax(k, (rng(n).standard_normal(n) * 4).astype(np.float32))


@pytest.mark.parametrize("n", [1, 7, 8, 9, 33, 257])
def test_softmax_all_equal(k, n):
    out = k.softmax(np.full(n, 3.5, np.float32))
    assert np.array_equal(out, np.full(n, np.float32(1) / np.float32(n)))


def test_softmax_extremes(k):
    check_softmax(k, np.array([1e4, -1e4, 0, 1e4 - 1, -3e38, 3e38 / 2], np.float32))
    out = check_softmax(k, np.array([-3e38, 3e38, 0, -1, 5, 3e38, -np.inf, 7, 1], np.float32))
    assert out[1] == out[5] == 0.5
    check_softmax(k, (rng(5).standard_normal(257) * 200).astype(np.float32))
    check_softmax(k, np.full(9, -1e30, np.float32))


def swiglu_ref(a, b):
    a = f64(a)
    e = np.exp(-np.abs(a))                 # the overflow-free form of a / (1 + exp(-a))
    return a * np.where(a >= 0, 1 / (1 + e), e / (1 + e)) * f64(b)


@pytest.mark.parametrize("n", LENGTHS + REAL)
def test_swiglu(k, n):
    if n in REAL and n not in big(k, REAL):
        pytest.skip("covered natively")
    r = rng(n)
    a = (r.standard_normal(n) * 4).astype(np.float32)
    b = r.standard_normal(n).astype(np.float32)
    out = k.swiglu(a, b)
    ref = swiglu_ref(a, b)
    assert np.all(np.abs(f64(out) - ref) <= 8 * U * np.abs(ref) + 1e-37)


def test_swiglu_extremes(k):
    a = np.array([0, -0.0, 1e-30, -100, -1e30, -3e38, 100, 1e30, 3e38, 88, -88, -89, 20, -20],
                 np.float32)
    b = np.linspace(-2, 3, a.size).astype(np.float32)
    out = k.swiglu(a, b)
    ref = swiglu_ref(a, b)
    assert np.all(np.isfinite(out))
    assert np.all(np.abs(f64(out) - ref) <= 8 * U * np.abs(ref) + 1e-30 * np.abs(f64(b)) + 1e-37)


# ----------------------------------------------------------------------------------------
# add, scale, axpy, dot


@pytest.mark.parametrize("n", LENGTHS + REAL)
def test_add_scale(k, n):
    if n in REAL and n not in big(k, REAL):
        pytest.skip("covered natively")
    r = rng(n)
    a, b = r.standard_normal(n).astype(np.float32), r.standard_normal(n).astype(np.float32)
    assert np.array_equal(k.add(a, b), a + b)
    s = np.float32(-0.7071)
    assert np.array_equal(k.scale(a, float(s)), a * s)


@pytest.mark.parametrize("n", LENGTHS + [288, 2048])
def test_axpy(k, n):
    r = rng(n)
    y, x = r.standard_normal(n).astype(np.float32), r.standard_normal(n).astype(np.float32)
    a = np.float32(0.3183)
    out = k.axpy(y, x, float(a))
    if k.path == "sse2":
        assert np.array_equal(out, y + a * x)
    else:
        fused = (f64(a) * f64(x) + f64(y))
        assert np.all(ulps(out, fused) <= 0.5 + 1e-9)


@pytest.mark.parametrize("n", LENGTHS + REAL)
def test_dot(k, n):
    if n in REAL and n not in big(k, REAL):
        pytest.skip("covered natively")
    r = rng(n)
    a, b = r.standard_normal(n).astype(np.float32), r.standard_normal(n).astype(np.float32)
    got = k.dot(a, b)
    bound = (n / 4 + 16) * U * float(np.abs(f64(a)) @ np.abs(f64(b)))
    assert abs(got - float(f64(a) @ f64(b))) <= bound


# ----------------------------------------------------------------------------------------
# argmax


@pytest.mark.parametrize("n", LENGTHS + REAL)
def test_argmax(k, n):
    if n in REAL and n not in big(k, REAL):
        pytest.skip("covered natively")
    x = rng(n).standard_normal(n).astype(np.float32)
    assert k.argmax(x) == int(np.argmax(x))
    x[n // 3] = 1e30
    x[-1] = 1e30
    assert k.argmax(x) == int(np.argmax(x)) == n // 3 if n > 1 else True


@pytest.mark.parametrize("n", [1, 7, 8, 9, 31, 33, 257, 32000])
def test_argmax_ties(k, n):
    assert k.argmax(np.full(n, -2.5, np.float32)) == 0
    x = np.zeros(n, np.float32)
    for first in sorted({n - 1, n // 2, min(n - 1, 8), min(n - 1, 5)}):
        y = x.copy()
        y[first:] = 7.0
        assert k.argmax(y) == first
    z = np.full(n, -np.inf, np.float32)
    z[-1] = -3e38
    assert k.argmax(z) == n - 1
    s = np.full(n, -1.0, np.float32)
    s[n - 1] = 0.0
    s[(n - 1) // 2] = -0.0                  # -0 == +0: the first one wins, as in numpy
    assert k.argmax(s) == int(np.argmax(s))


def test_argmax_empty(k):
    assert k.argmax(np.zeros(0, np.float32)) == 0


# ----------------------------------------------------------------------------------------
# RoPE


def rope_table_ref(pos: int, hs: int) -> np.ndarray:
    """llama2.c's float math: hd/hs, powf, 1/p, pos*freq rounded to f32; cos/sin exact."""
    C, S = np.zeros(hs), np.zeros(hs)
    for j in range(0, hs - 1, 2):
        e = np.float32(j) / np.float32(hs)
        p = np.float32(np.float64(10000.0) ** np.float64(e))
        freq = np.float32(1) / p
        v = np.float32(pos) * freq
        C[j] = C[j + 1] = np.cos(np.float64(v))
        S[j], S[j + 1] = -np.sin(np.float64(v)), np.sin(np.float64(v))
    return np.concatenate([C, S])


@pytest.mark.parametrize("hs", [2, 4, 6, 8, 16, 48, 64, 128])
@pytest.mark.parametrize("pos", [0, 1, 2, 7, 255, 1023, 4095])
def test_rope_table(k, hs, pos):
    if k.path == "avx2":
        pytest.skip("rope_table_x87 is one body for both paths (run by the sse2 rows)")
    got = k.rope_table(pos, hs)
    assert np.all(np.abs(f64(got) - rope_table_ref(pos, hs)) <= 2 * U)


def rope_apply_ref(v, table, hs):
    v = v.reshape(-1, hs).copy()
    C, S = table[:hs], table[hs:]
    sw = v.reshape(-1, hs // 2, 2)[:, :, ::-1].reshape(-1, hs)
    return (v * C + sw * S).reshape(-1)


@pytest.mark.parametrize("hs,n", [(2, 2), (4, 4), (6, 18), (8, 8), (10, 30), (16, 48), (48, 288),
                                  (64, 768), (64, 128), (128, 4096)])
def test_rope_apply(k, hs, n):
    r = rng(hs * n)
    table = rope_table_ref(37, hs).astype(np.float32)
    v = r.standard_normal(n).astype(np.float32)
    assert np.array_equal(k.rope_apply(v, table, hs), rope_apply_ref(v, table, hs))


def test_rope_like_llama2c(k):
    """q and k of stories15M (dim 288, 6 heads) and a GQA shape, against llama2.c's loop."""
    for dim, kv_dim, hs, pos in [(288, 288, 48, 5), (64, 32, 8, 3), (768, 256, 64, 200)]:
        r = rng(dim + pos)
        q, kk = r.standard_normal(dim).astype(np.float32), r.standard_normal(kv_dim).astype(np.float32)
        q2, k2 = k.rope(q, kk, pos, hs)
        qr, kr = f64(q).copy(), f64(kk).copy()
        for i in range(0, dim, 2):
            hd = i % hs
            freq = 1.0 / 10000.0 ** (hd / hs)
            c, s = np.cos(pos * freq), np.sin(pos * freq)
            for vec, limit in ((qr, dim), (kr, kv_dim)):
                if i < limit:
                    a, b = vec[i], vec[i + 1]
                    vec[i], vec[i + 1] = a * c - b * s, a * s + b * c
        tol = 1e-5 * (1 + pos * 1e-2)
        assert np.allclose(q2, qr, atol=tol, rtol=0) and np.allclose(k2, kr, atol=tol, rtol=0)


# ----------------------------------------------------------------------------------------
# attention


def attention_ref(q, kc, vc, pos, n_heads, n_kv_heads, hs):
    kv_mul = n_heads // n_kv_heads
    out = np.zeros(n_heads * hs)
    atts = []
    for h in range(n_heads):
        kvh = h // kv_mul
        qh = f64(q[h * hs:(h + 1) * hs])
        keys = f64(kc[:pos + 1, kvh * hs:(kvh + 1) * hs])
        vals = f64(vc[:pos + 1, kvh * hs:(kvh + 1) * hs])
        s = keys @ qh / np.sqrt(hs)
        p = np.exp(s - s.max())
        p /= p.sum()
        atts.append(p)
        out[h * hs:(h + 1) * hs] = p @ vals
    return out, atts


@pytest.mark.parametrize("n_heads,n_kv_heads,hs,seq_len,pos", [
    (1, 1, 1, 1, 0), (2, 1, 7, 9, 8), (6, 6, 48, 256, 0), (6, 6, 48, 256, 37),
    (8, 4, 8, 64, 63), (8, 2, 9, 33, 20), (12, 12, 64, 40, 39), (4, 1, 33, 17, 16)])
def test_attention(k, n_heads, n_kv_heads, hs, seq_len, pos):
    r = rng(n_heads * 1000 + hs * 10 + pos)
    kv_dim = n_kv_heads * hs
    q = r.standard_normal(n_heads * hs).astype(np.float32)
    kc = r.standard_normal((seq_len, kv_dim)).astype(np.float32)
    vc = r.standard_normal((seq_len, kv_dim)).astype(np.float32)
    kc[pos + 1:] = np.nan                      # rows past pos must not be read
    vc[pos + 1:] = np.nan
    out, att = k.attention(q, kc, vc, pos, n_heads, n_kv_heads, hs, seq_len)
    ref, atts = attention_ref(q, kc, vc, pos, n_heads, n_kv_heads, hs)
    assert np.all(np.abs(f64(out) - ref) <= 3e-6 * np.abs(vc[:pos + 1]).max() + 3e-6 * np.abs(ref))
    for h in range(n_heads):
        assert np.allclose(att[h, :pos + 1], atts[h], rtol=1e-5, atol=1e-7)
        assert np.all(att[h, pos + 1:] == 0)   # scratch beyond pos untouched


# ----------------------------------------------------------------------------------------
# unaligned pointers on vector-multiple lengths


@pytest.mark.parametrize("misalign", [4, 8, 12])
def test_unaligned_inputs(k, misalign):
    m = Kernels(k.m, k.path, misalign=misalign)
    r = rng(misalign)
    W, x = r.standard_normal((9, 64)).astype(np.float32), r.standard_normal(64).astype(np.float32)
    check_matvec(m, W, x)
    a, b = r.standard_normal(64).astype(np.float32), r.standard_normal(64).astype(np.float32)
    assert np.array_equal(m.add(a, b), a + b)
    check_softmax(m, a)
    check_expf(m, a)
    assert np.allclose(m.swiglu(a, b), swiglu_ref(a, b), rtol=1e-6, atol=1e-37)
    assert m.argmax(a) == int(np.argmax(a))
    assert abs(m.dot(a, b) - float(f64(a) @ f64(b))) < 1e-4
    assert np.allclose(m.rmsnorm(a, b), f64(b) * f64(a) / np.sqrt(np.mean(f64(a) ** 2) + 1e-5), rtol=1e-5)
    t = rope_table_ref(3, 16).astype(np.float32)
    assert np.array_equal(m.rope_apply(a, t, 16), rope_apply_ref(a, t, 16))
