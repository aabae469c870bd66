"""ggml's K-quant dot products as llama.cpp's x86 AVX2 CPU build rounds them, in numpy: the
judge of the AVX2 K matvecs bit for bit (tests/test_kernels_kdot.py).

Facts read from llama.cpp 0c1e570 (ggml/src/ggml-cpu/arch/x86/quants.c, the __AVX2__
branches of ggml_vec_dot_q{2,3,4,5,6}_K_q8_K, and arch/x86/repack.cpp's gemv for block_q4_Kx8;
repack.cpp picks that gemv for a Q4_K weight whose rows are a multiple of 8 on an AVX2
host): the integer sums are exact, held in 8 i32 lanes (Q6_K also subtracts 32 * sc * bsums
in lanes of its own), and the floats are
  * vec_dot Q4_K: per super-block acc (8 lanes) = fma(yd * d, f32(isum lane), acc) and
    acc_m (4 lanes) = fma(-(yd * dmin), f32(prod lane), acc_m), prod lane i = m[2i] s[2i] +
    m[2i+1] s[2i+1] with s[j] = bsums[2j] + bsums[2j+1]; out = hsum_float_8(acc) +
    ((acc_m0 + acc_m2) + (acc_m1 + acc_m3));
  * vec_dot Q5_K: acc as Q4_K; summs = fma(-(yd * dmin), f32(msum), summs), one f32 (the
    compiled build fuses `summs += dmin * msum`, seen in its disassembly); out =
    hsum_float_8(acc) + summs;
  * vec_dot Q6_K: acc = fma(yd * d, f32(isum lane - 32 * offset lane), acc); out =
    hsum_float_8(acc);
  * vec_dot Q3_K: acc = fma(yd * d, f32(isum lane), acc), its isum of (u - 4) * q8 (no
    offset lanes); out = hsum_float_8(acc);
  * vec_dot Q2_K: acc = fma(-(yd * dmin), f32(min lane), acc) then acc = fma(yd * d,
    f32(isum lane), acc), min lane l = mn[2l] bsums[2l] + mn[2l+1] bsums[2l+1]; out =
    hsum_float_8(acc);
  * gemv q4_K_8x8 (repacked Q4_K): per row acc_row = fma(f32(isum), d * yd, acc_row) and
    acc_min = fma(f32(msum), dmin * yd, acc_min) over the super-blocks; out = acc_row -
    acc_min.
hsum_float_8(v) = ((v0+v4) + (v2+v6)) + ((v1+v5) + (v3+v7)) in f32. Lane l of isum holds
the weights e of a super-block with (e % 32) // 4 == l (every 32-byte load of quants and q8
puts bytes 4l..4l+3 in lane l); Q6_K's offset lane l is 32 * (sc[2l] bsums[2l] + sc[2l+1]
bsums[2l+1]). An FMA is modelled exactly: the product of two f32 is exact in f64, the sum
is rounded to odd in f64 (TwoSum), then to f32, which is the single rounding.
"""
from __future__ import annotations

import numpy as np

from . import quant_k as qk

F32 = np.float32


def fma32(a, b, c) -> np.ndarray:
    """f32 fused multiply-add a * b + c, one rounding (finite operands)."""
    a, b, c = (np.asarray(v, F32).astype(np.float64) for v in (a, b, c))
    s = a * b                                   # exact
    t = s + c
    bp = t - s
    e = (s - (t - bp)) + (c - bp)               # s + c = t + e exactly
    bits = t.view(np.int64)
    fix = (e != 0) & ((bits & 1) == 0)          # round to odd: t's last bit set when inexact
    t = np.where(fix, np.nextafter(t, np.where(e > 0, np.inf, -np.inf)), t)
    return t.astype(F32)


def hsum_float_8(v: np.ndarray) -> np.ndarray:
    """v [..., 8] f32 -> ggml's hsum_float_8 (AVX)."""
    v = v.astype(F32)
    r = v[..., 4:8] + v[..., 0:4]
    r2 = np.stack([r[..., 0] + r[..., 2], r[..., 1] + r[..., 3]], -1)
    return (r2[..., 0] + r2[..., 1]).astype(F32)


def _parts(kind: str, W, xq: np.ndarray, rows: int):
    nb = xq.shape[0]
    p = qk.unpack(kind, W)
    u = p["u"].reshape(rows, nb, 256).astype(np.int64)
    sc = p["sc"].reshape(rows, nb, 16).astype(np.int64)
    mn = p["mn"].reshape(rows, nb, 16).astype(np.int64)
    q8 = xq["qs"].astype(np.int64)                       # [nb, 256]
    bs = xq["bsums"].astype(np.int64)                     # [nb, 16]
    q = u - 4 if kind == "Q3_K" else u                    # Q3_K: ggml takes u - 4 per word
    terms = np.repeat(sc, 16, axis=2) * q * q8[None]      # [rows, nb, 256]
    lanes = terms.reshape(rows, nb, 8, 8, 4).sum(axis=(2, 4))   # e = 32a + 4l + t
    d = p["d"].reshape(rows, nb).astype(F32)
    dmin = p["dmin"].reshape(rows, nb).astype(F32)
    yd = xq["d"].astype(F32)[None]
    return lanes, sc, mn, bs, d, dmin, yd


def vec_dot(kind: str, W, xq: np.ndarray) -> np.ndarray:
    """Each row of W (Q2_K .. Q6_K) dotted with the Q8_K vector xq as ggml's AVX2
    vec_dot rounds it: f32 per row."""
    nb = xq.shape[0]
    rows = len(bytes(W)) // (nb * qk.BLOCK_BYTES[kind]) if nb else 0
    if rows == 0:
        return np.zeros(0, F32)
    lanes, sc, mn, bs, d, dmin, yd = _parts(kind, W, xq, rows)
    dd = (yd * d).astype(F32)                              # y.d * fp16(x.d)
    dm = (-(yd * dmin)).astype(F32)                        # -y.d * fp16(x.dmin)
    acc = np.zeros((rows, 8), F32)
    if kind == "Q6_K":
        off = 32 * (sc * bs[None]).reshape(rows, nb, 8, 2).sum(-1)
        for b in range(nb):
            acc = fma32(dd[:, b, None], (lanes[:, b] - off[:, b]).astype(F32), acc)
        return hsum_float_8(acc)
    if kind == "Q3_K":
        for b in range(nb):
            acc = fma32(dd[:, b, None], lanes[:, b].astype(F32), acc)
        return hsum_float_8(acc)
    if kind == "Q2_K":
        prod16 = (mn * bs[None]).reshape(rows, nb, 8, 2).sum(-1)   # lane l: mins 2l, 2l+1
        for b in range(nb):
            acc = fma32(dm[:, b, None], prod16[:, b].astype(F32), acc)
            acc = fma32(dd[:, b, None], lanes[:, b].astype(F32), acc)
        return hsum_float_8(acc)
    s = bs.reshape(nb, 8, 2).sum(-1)                       # [nb, 8]
    m8 = mn[:, :, ::2]                                     # the 8 mins (sc/mn come per 16)
    prod = (m8 * s[None]).reshape(rows, nb, 4, 2).sum(-1)  # [rows, nb, 4]
    if kind == "Q4_K":
        acc_m = np.zeros((rows, 4), F32)
        for b in range(nb):
            acc = fma32(dd[:, b, None], lanes[:, b].astype(F32), acc)
            acc_m = fma32(dm[:, b, None], prod[:, b].astype(F32), acc_m)
        m = ((acc_m[:, 0] + acc_m[:, 2]) + (acc_m[:, 1] + acc_m[:, 3])).astype(F32)
        return (hsum_float_8(acc) + m).astype(F32)
    if kind == "Q5_K":
        summs = np.zeros(rows, F32)
        for b in range(nb):
            acc = fma32(dd[:, b, None], lanes[:, b].astype(F32), acc)
            summs = fma32(dm[:, b], prod[:, b].sum(-1).astype(F32), summs)
        return (hsum_float_8(acc) + summs).astype(F32)
    raise ValueError(f"no AVX2 vec_dot model for {kind}")


def gemv_q4_k_8x8(W, xq: np.ndarray) -> np.ndarray:
    """Each row of a Q4_K W (the file's layout; the 8-row packing moves bytes only) as
    llama.cpp's repacked q4_K_8x8 gemv rounds it."""
    nb = xq.shape[0]
    rows = len(bytes(W)) // (nb * 144) if nb else 0
    if rows == 0:
        return np.zeros(0, F32)
    lanes, sc, mn, bs, d, dmin, yd = _parts("Q4_K", W, xq, rows)
    isum = lanes.sum(-1)
    msum = (mn * bs[None]).sum(-1)
    dd = (d * yd).astype(F32)
    dm = (dmin * yd).astype(F32)
    acc_row = np.zeros(rows, F32)
    acc_min = np.zeros(rows, F32)
    for b in range(nb):
        acc_row = fma32(isum[:, b].astype(F32), dd[:, b], acc_row)
        acc_min = fma32(msum[:, b].astype(F32), dm[:, b], acc_min)
    return (acc_row - acc_min).astype(F32)
