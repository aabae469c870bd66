"""llama.cpp's SwiGLU (ggml-cpu's ggml_vec_swiglu_f32) in numpy, the statement
kernels_asm/swiglu_ggml.s is judged by: whole vectors take ggml's vector exponential
ggml_v_expf, the rest v / (1 + expf(-v)) * g with a correctly rounded expf.

Two builds: fma=True is ggml's AVX2+FMA build (8 lanes, each multiply-add one fused rounding),
fma=False its SSE2 build (4 lanes, a rounded product then a rounded sum). The algorithm and
constants are ggml_v_expf's (kernels_asm/swiglu_ggml.s states them); this model matched
llama.cpp 0c1e570's own swiglu outputs bit for bit on SmolLM2-135M's FFN (AVX2 build, 10
layers x 1536 values, recorded through llama.cpp's eval callback).
"""
from __future__ import annotations

import numpy as np

F32 = np.float32
U32 = np.uint32


def _c(hexfloat: str) -> np.float32:
    return F32(float.fromhex(hexfloat))


R, LOG2E, LN2_HI, LN2_LO = _c("0x1.8p23"), _c("0x1.715476p+0"), _c("0x1.62e4p-1"), _c("0x1.7f7d1cp-20")
C5, C4, C3, C2, C1 = (_c("0x1.0e4020p-7"), _c("0x1.573e2ep-5"), _c("0x1.555e66p-3"),
                      _c("0x1.fffdb6p-2"), _c("0x1.ffffecp-1"))


def fma32(a, b, c) -> np.ndarray:
    """a * b + c rounded once to f32 (a, b, c f32 arrays): the product is exact in double;
    the double sum's error, found by TwoSum, breaks the one case a double rounding gets
    wrong (a sum exactly halfway between two floats)."""
    a, b, c = (np.asarray(v, F32).astype(np.float64) for v in (a, b, c))
    p = a * b
    s = p + c
    bb = s - p
    err = (p - (s - bb)) + (c - bb)
    r = s.astype(F32)
    half = (r.astype(np.float64) != s) & (err != 0)
    if np.any(half):
        # s lies between two floats; only a tie needs the error's sign
        lo = np.where(r.astype(np.float64) > s, np.nextafter(r, F32(-np.inf)), r).astype(F32)
        hi = np.nextafter(lo, F32(np.inf)).astype(F32)
        mid = (lo.astype(np.float64) + hi.astype(np.float64)) / 2
        tie = half & (s == mid)
        r = np.where(tie & (err > 0), hi, np.where(tie & (err < 0), lo, r))
    return np.asarray(r, F32)


def _madd(a, b, c, fma: bool) -> np.ndarray:
    return fma32(a, b, c) if fma else (np.asarray(a, F32) * b + c).astype(F32)


def _nmadd(a, b, c, fma: bool) -> np.ndarray:            # c - a * b
    return fma32(-np.asarray(a, F32), b, c) if fma else (c - np.asarray(a, F32) * b).astype(F32)


def v_expf(x: np.ndarray, fma: bool) -> np.ndarray:
    x = np.asarray(x, F32)
    with np.errstate(over="ignore", invalid="ignore"):
        z = _madd(x, LOG2E, R, fma)
        n = (z - R).astype(F32)
        b = _nmadd(n, LN2_LO, _nmadd(n, LN2_HI, x, fma), fma)
        e = (z.view(U32) << U32(23)).astype(U32)
        k = (e + np.array(1, F32).view(U32)).astype(U32).view(F32)
        c = np.abs(n) > F32(126)
        u = (b * b).astype(F32)
        j = _madd(_madd(_madd(C5, b, C4, fma), u, _madd(C3, b, C2, fma), fma), u,
                  (C1 * b).astype(F32), fma)
        plain = _madd(j, k, k, fma)
        if not c.any():
            return plain
        g = np.where(n <= 0, U32(0x82000000), U32(0)).astype(U32)
        s1 = (g + U32(0x7F000000)).astype(U32).view(F32)
        s2 = (e - g).astype(U32).view(F32)
        d = np.abs(n) > F32(192)
        big = (_madd(s2, j, s2, fma) * s1).astype(F32)
        return np.where(d, (s1 * s1).astype(F32), np.where(c, big, plain)).astype(F32)


def expf(x: np.ndarray) -> np.ndarray:
    """exp rounded once to f32 (glibc's expf; overflow to inf)."""
    with np.errstate(over="ignore"):
        return np.exp(np.asarray(x, F32).astype(np.float64)).astype(F32)


def swiglu(a: np.ndarray, b: np.ndarray, fma: bool) -> np.ndarray:
    """silu(a) * b as ggml's build (fma: AVX2+FMA, 8 lanes; else SSE2, 4 lanes) computes it."""
    a, b = np.asarray(a, F32), np.asarray(b, F32)
    lanes = 8 if fma else 4
    m = len(a) - len(a) % lanes
    out = np.empty_like(a)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        v = a[:m]
        e = v_expf((F32(0) - v).astype(F32), fma)
        out[:m] = ((v / (F32(1) + e).astype(F32)).astype(F32) * b[:m]).astype(F32)
        t = a[m:]
        out[m:] = ((t / (F32(1) + expf(-t)).astype(F32)).astype(F32) * b[m:]).astype(F32)
    return out
