"""The GGUF attention's AVX2 path by runs of keys and groups of heads
(kernels_asm/attention_ggml_runs.s and attention_ggml_acc.s, the entry
attention_ggml_heads_avx2) against the key-by-key loop it reschedules (attention_ggml.s:
attention_ggml_heads_avx2_keywise), bit for bit: the same arithmetic on every value, so every
output bit must agree (f16 and f32 caches, any head size, pos up to seq_len - 1). Natively,
AVX2/FMA only (the SSE2 path is not rescheduled).

What a scheduling bug would show up on: positions around the run length (AR_RUN = 64 keys:
pos 0, 1, 62, 63, 64, 65, 127, 128, 129 and beyond); head sizes that take the inline dots or
the called ones (a multiple of 32 or not) and each of the accumulator's block widths (joint
32 columns for 2-3 heads, then 64, 32, 16, 8 and one by one: 5, 8, 48, 64, 67, 80, 128);
groups of 1, 2 and 3 query heads per KV head, and heads shared out in parts that split those
groups; scores whose maximum changes at run boundaries, at every key, or never after the
first; special scores: NaN and infinite scores before the first maximum (which then comes
later: S = 0 until it), and exponentials that underflow to 0.
"""
from __future__ import annotations

import numpy as np
import pytest

from peasm.runners import native
from peasm.runners.kernels import Kernels, open_machine
from tests.support import require

REF = "attention_ggml_heads_avx2_keywise"
RUN = 64                                          # AR_RUN in attention_ggml_runs.s


@pytest.fixture(scope="module")
def k() -> Kernels:
    ok, why = native.supported()
    require(ok, why)
    if not native.host_has_avx2_fma():
        pytest.skip("this CPU has no AVX2+FMA (/proc/cpuinfo): the AVX2 bodies cannot run "
                    "natively here (a legitimate skip, also under CI)")
    return Kernels(open_machine("native"), "avx2")


def _both(k, q, kc, vc, pos, n_heads, n_kv_heads, hs, seq, ranges=None):
    if ranges is None:
        out, att = k.attention(q, kc, vc, pos, n_heads, n_kv_heads, hs, seq, style=1)
    else:                                         # heads shared out as parallel.s does
        out, att = k.attention(q, kc, vc, pos, n_heads, n_kv_heads, hs, seq, style=1,
                               entry="attention_heads_avx2", ranges=ranges)
    ref, _ = k.attention(q, kc, vc, pos, n_heads, n_kv_heads, hs, seq, style=1, entry=REF)
    assert not att.any()                          # att is not written
    return out, ref


def _same(out, ref):
    bad = np.flatnonzero(out.view(np.uint32) != ref.view(np.uint32))
    assert bad.size == 0, f"{bad.size} outputs differ, first at {bad[0]}: {out[bad[0]]!r} vs {ref[bad[0]]!r}"


def _random(seed, pos, n_heads, n_kv_heads, hs, kv, extra=1):
    r = np.random.default_rng(seed)
    seq = pos + extra
    dt = np.float16 if kv == "f16" else np.float32
    q = (r.standard_normal(n_heads * hs) * 2).astype(np.float32)
    kc = r.standard_normal((seq, n_kv_heads * hs)).astype(dt)
    vc = r.standard_normal((seq, n_kv_heads * hs)).astype(dt)
    return q, kc, vc, seq


POSITIONS = [0, 1, 2, RUN - 2, RUN - 1, RUN, RUN + 1, 2 * RUN - 1, 2 * RUN, 2 * RUN + 1, 200]
HEAD_SIZES = [64, 48, 80, 128, 67, 8, 5]


@pytest.mark.parametrize("kv", ["f16", "f32"])
@pytest.mark.parametrize("hs", HEAD_SIZES)
@pytest.mark.parametrize("pos", POSITIONS)
def test_random_scores(k, kv, hs, pos):
    """Random caches, 6 heads on 2 KV heads (3 per KV head, as SmolLM2's 9 on 3)."""
    q, kc, vc, seq = _random(7 * pos + hs, pos, 6, 2, hs, kv, extra=1 + pos % 3)
    _same(*_both(k, q, kc, vc, pos, 6, 2, hs, seq))


@pytest.mark.parametrize("kv", ["f16", "f32"])
@pytest.mark.parametrize("heads", [(9, 3), (4, 4), (8, 1)])
def test_smollm2_shape_and_head_groups(k, kv, heads):
    n_heads, n_kv_heads = heads
    for pos in (RUN - 1, RUN, 511):
        q, kc, vc, seq = _random(pos + n_heads, pos, n_heads, n_kv_heads, 64, kv)
        _same(*_both(k, q, kc, vc, pos, n_heads, n_kv_heads, 64, seq))


@pytest.mark.parametrize("kv", ["f16", "f32"])
@pytest.mark.parametrize("ranges", [[(0, 5), (5, 4)], [(0, 1), (1, 2), (3, 4), (7, 2)], [(0, 4), (4, 1), (5, 4)],
                                    [(2, 7), (0, 2)]])
def test_heads_in_parts(k, kv, ranges):
    """Heads shared out in ranges that split the groups of 3 query heads per KV head (each
    range's groups start where it does): every head's row as from one call."""
    for pos in (RUN - 1, RUN + 2):
        q, kc, vc, seq = _random(pos + len(ranges), pos, 9, 3, 64, kv)
        _same(*_both(k, q, kc, vc, pos, 9, 3, 64, seq, ranges))


def _staircase(levels, hs, n_heads, n_kv_heads, kv, seed):
    """Caches whose key t scores levels[t] * (a positive number per head): k[t] = levels[t] u,
    every q_h close to u (so the order of the scores is the order of levels for every head)."""
    r = np.random.default_rng(seed)
    seq = len(levels)
    u = r.standard_normal(hs).astype(np.float32)
    u /= np.linalg.norm(u)
    q = np.concatenate([u + 0.05 * r.standard_normal(hs) for _ in range(n_heads)]).astype(np.float32)
    dt = np.float16 if kv == "f16" else np.float32
    kc = (np.asarray(levels, np.float32)[:, None] * np.tile(u, n_kv_heads)[None, :]).astype(dt)
    vc = r.standard_normal((seq, n_kv_heads * hs)).astype(dt)
    return q, kc, vc, seq


def _levels(kind: str, n: int) -> list[float]:
    t = np.arange(n, dtype=np.float64)
    if kind == "increasing":                      # a new maximum at every key
        return list(0.05 * t)
    if kind == "decreasing":                      # the first key the only maximum
        return list(10.0 - 0.05 * t)
    if kind == "run_boundaries":                  # jumps at the first key of each run and the last
        return [float(3 * (i // RUN) + (2 if i % RUN == RUN - 1 else 0) + 0.001 * (i % 7)) for i in range(n)]
    if kind == "underflow":                       # weights e^-150 and less next to a jump of 400
        return [float(400.0 * (i // 50) - 0.01 * i) for i in range(n)]
    if kind == "alternating":                     # small new maxima now and then, ties too
        return [float((i % 5) * 0.25 + (i // 9) * 0.2) for i in range(n)]
    raise ValueError(kind)


@pytest.mark.parametrize("kv", ["f16", "f32"])
@pytest.mark.parametrize("hs", [64, 48, 67])
@pytest.mark.parametrize("kind", ["increasing", "decreasing", "run_boundaries", "underflow", "alternating"])
def test_maximum_changes(k, kv, hs, kind):
    n = 3 * RUN + 5
    q, kc, vc, seq = _staircase(_levels(kind, n), hs, 6, 2, kv, seed=hs)
    for pos in (RUN - 1, RUN, RUN + 1, 2 * RUN, n - 1):
        _same(*_both(k, q, kc, vc, pos, 6, 2, hs, seq))


@pytest.mark.parametrize("kv", ["f16", "f32"])
@pytest.mark.parametrize("first", [1, 3, RUN - 1, RUN, RUN + 2])
def test_special_scores(k, kv, first):
    """Keys before `first` score NaN or -inf (M stays -inf, S = 0: the first maximum comes at
    key `first`, maybe in a later run); later keys mix +inf, NaN and huge scores in."""
    hs, n_heads, n_kv_heads = 48, 4, 2
    pos = first + RUN + 3
    q, kc, vc, seq = _random(first, pos, n_heads, n_kv_heads, hs, kv)
    q[:] = np.abs(q) + 0.1                        # positive: an all-inf key row scores +inf
    for t in range(first):
        kc[t] = np.nan if t % 2 == 0 else -np.inf  # NaN scores, -inf scores
    kc[first + 5] = np.inf                        # +inf: a new maximum, then inf - inf = NaN
    kc[first + 9, :3] = np.nan
    kc[first + RUN] *= 1000 if kv == "f32" else 30   # a much larger score: the rest underflow
    for p in (first - 1, first, first + 4, first + 5, first + 6, pos):
        _same(*_both(k, q, kc, vc, p, n_heads, n_kv_heads, hs, seq))


def test_last_position_of_the_cache(k):
    """pos = seq_len - 1 (the caches' last row, right before the guard page)."""
    for kv in ("f16", "f32"):
        q, kc, vc, seq = _random(3, 3 * RUN + 10, 9, 3, 64, kv, extra=1)
        _same(*_both(k, q, kc, vc, seq - 1, 9, 3, 64, seq))


# -- the exponentials, four at a time (ar_expf_run), against ag_expf and a model of it ----

def _const(k, name: str) -> float:
    """One of ag_expf's double constants (attention_ggml.s's .rdata), read from the image."""
    return float(np.frombuffer(k.m.read(k.m.address(name), 8), np.float64)[0])


def _ag_expf_model(k, x, double: bool = False) -> np.ndarray:
    """ag_expf's steps in numpy float64 (IEEE products and sums, one at a time, in its order;
    rint: cvtsd2si's nearest-even), rounded once to f32: bit for bit what ag_expf gives
    (double: the float64 value before that rounding)."""
    c = {n: _const(k, n) for n in ("ag_lo", "ag_hi", "ag_log2e", "ag_ln2_hi", "ag_ln2_lo",
                                   *(f"ag_c{i}" for i in range(11)))}
    xd = np.asarray(x, np.float32).astype(np.float64)
    out = np.zeros(xd.shape, np.float64 if double else np.float32)
    keep = xd >= c["ag_lo"]                       # NaN: not kept
    v = np.minimum(xd[keep], c["ag_hi"])
    n = np.rint(c["ag_log2e"] * v)
    r = (v - c["ag_ln2_hi"] * n) - n * c["ag_ln2_lo"]
    r2 = r * r
    a0 = c["ag_c1"] * r + c["ag_c0"]
    a1 = c["ag_c3"] * r + c["ag_c2"]
    a2 = c["ag_c5"] * r + c["ag_c4"]
    a3 = c["ag_c7"] * r + c["ag_c6"]
    a4 = r * c["ag_c9"] + c["ag_c8"]
    b0 = a0 + a1 * r2
    b1 = a2 + a3 * r2
    b2 = a4 + c["ag_c10"] * r2
    r4 = r2 * r2
    p = b0 + b1 * r4
    p = p + b2 * (r4 * r4)
    y = p * np.ldexp(1.0, n.astype(np.int64))
    out[keep] = y if double else y.astype(np.float32)
    return out


def _near_ties(k, count: int) -> np.ndarray:
    """Arguments whose exponential falls nearest to halfway between two f32 values (of 2M
    random ones): there a change of the double steps by 1e-14 or so shows in the f32 result."""
    x = np.random.default_rng(9).uniform(-87, 88, 2_000_000).astype(np.float32)
    y = _ag_expf_model(k, x, double=True)
    f = y.astype(np.float32)
    off = np.abs(np.abs(y - f.astype(np.float64)) / np.spacing(f).astype(np.float64) - 0.5)
    return x[np.argsort(off)[:count]]


def _special_arguments() -> np.ndarray:
    f = np.float32
    lo, hi = f(-104.0), f(88.7)
    vals = [-np.inf, np.inf, np.nan, -np.nan, 0.0, -0.0, lo, np.nextafter(lo, f(0)), np.nextafter(lo, f(-200)),
            hi, np.nextafter(hi, f(0)), np.nextafter(hi, f(100)), 88.72, 89.0, 1e30, -1e30,
            -87.3, -100.0, -103.97, 1e-30, -1e-30, 1.4e-45, 0.6931472, -0.6931472, 0.34657359]
    return np.asarray(vals, np.float32)


def test_expf_run_bit_for_bit(k):
    r = np.random.default_rng(5)
    x = np.concatenate([_special_arguments(), _near_ties(k, 4000), r.uniform(-110, 95, 200_000),
                        r.standard_normal(40_000) * 3,
                        -np.abs(r.standard_normal(40_000)) * 20]).astype(np.float32)
    x = x[: x.size // 4 * 4]
    want = _ag_expf_model(k, x)
    try:
        px = k.put(x, "x")
        k.m.call("ar_expf_run", px, x.size)
        got = k.get(px, x.size)
    finally:
        k._done()
    bad = np.flatnonzero(got.view(np.uint32) != want.view(np.uint32))
    assert bad.size == 0, (bad.size, x[bad[:5]], got[bad[:5]], want[bad[:5]])
    # the model is ag_expf's: the scalar routine itself on the special values and a sample
    for v in np.concatenate([_special_arguments(), x[::997]]):
        one = k.m.call("ag_expf", np.float32(v)).f32   # x in xmm0 (the first slot)
        assert np.float32(one).view(np.uint32) == _ag_expf_model(k, [v]).view(np.uint32)[0], v
