"""glibc's sinf/cosf/sincosf (sysdeps/ieee754/flt-32, glibc 2.28 on: 2.36 is Debian 12's) in
numpy, the statement kernels_asm/sincosf_glibc.s is judged by: llama.cpp's RoPE cache takes
its cos/sin from these functions, which are not correctly rounded (about 2% of the RoPE angles
of a 512-position context round differently from the exact value).

The algorithm (facts from glibc's s_sinf.c, s_cosf.c, s_sincosf.c, s_sincosf.h,
sincosf_poly.h, s_sincosf_data.c): the float argument y goes to double x; by the top 12 bits
of |y|:
  below pi/4:   tiny (< 2^-12) sin = y, cos = 1; else the polynomials on x, quadrant 0
  below 120:    r = x * (2/pi * 2^24); n = (int32(trunc r) + 2^23) >> 24 (arithmetic);
                x = x - n * (pi/2)
  finite:       a 32 x 96-bit fixed-point product with 4/pi (__inv_pio4, 8 new bits per
                word) gives n (0..3) and the remainder as a 2.62 fixed-point int64, times
                2pi * 2^-64
  inf / NaN:    y - y
then with the sign s = {1, -1, -1, 1}[q & 3] (q = n, or n + sign bit of y on the large path)
and the table (entry 1, whose cosine polynomial is negated, when q & 2): on xs = x * s and
x2 = x * x (the reduced x, unsigned)
  S = (xs + x3*s1) + x5*(s2 + x2*s3)               x3 = xs*x2, x5 = x3*x2
  C = (c0 + x2*c1 + x4*c2) + x6*(c3 + x2*c4)       x4 = x2*x2, x6 = x4*x2
sin = S, cos = C for even n, swapped for odd n, each rounded to f32.

Two builds, as x86-64 glibc has them (sysdeps/x86_64/fpu/multiarch: the ifunc picks the
-mfma -mavx2 build on a CPU with FMA and AVX2, the SSE2 one otherwise): fma=True contracts
every `a + b*c` whose product has no other use into one fused multiply-add (GCC's
-ffp-contract=fast): the reduction x - n*hpi and the six polynomial steps; fma=False rounds
each product. The host's libm is the judge of both (tests/test_kernels_rope_glibc.py: the
FMA build through ctypes, the SSE2 build in a child process whose GLIBC_TUNABLES masks FMA
and AVX2 so the ifunc picks it).
"""
from __future__ import annotations

import numpy as np

F32, F64, U32, U64, I64 = np.float32, np.float64, np.uint32, np.uint64, np.int64


def _h(s: str) -> float:
    return float.fromhex(s)


HPI_INV = _h("0x1.45F306DC9C883p+23")     # 2/pi * 2^24
HPI = _h("0x1.921FB54442D18p0")           # pi/2
PI63 = _h("0x1.921FB54442D18p-62")        # 2pi * 2^-64
SIGN = np.array([1.0, -1.0, -1.0, 1.0])
C0, C1, C2, C3, C4 = (1.0, _h("-0x1.ffffffd0c621cp-2"), _h("0x1.55553e1068f19p-5"),
                      _h("-0x1.6c087e89a359dp-10"), _h("0x1.99343027bf8c3p-16"))
S1, S2, S3 = _h("-0x1.555545995a603p-3"), _h("0x1.1107605230bc4p-7"), _h("-0x1.994eb3774cf24p-13")
INV_PIO4 = np.array([
    0xa2, 0xa2f9, 0xa2f983, 0xa2f9836e, 0xf9836e4e, 0x836e4e44, 0x6e4e4415, 0x4e441529,
    0x441529fc, 0x1529fc27, 0x29fc2757, 0xfc2757d1, 0x2757d1f5, 0x57d1f534, 0xd1f534dd,
    0xf534ddc0, 0x34ddc0db, 0xddc0db62, 0xc0db6295, 0xdb629599, 0x6295993c, 0x95993c43,
    0x993c4390, 0x3c439041], np.uint64)

TOP_PIO4, TOP_TINY, TOP_120, TOP_INF = 0x3F4, 0x398, 0x42F, 0x7F8   # abstop12 bounds


# ---------------------------------------------------------------------------------------
# a fused multiply-add in double, vectorized: TwoProduct + TwoSum, the tail added with
# rounding to odd, then one rounding to nearest (Boldo and Melquiond, "Emulation of FMA and
# correctly rounded sums: proved algorithms using rounding to odd", IEEE TC 2008). Valid
# while nothing overflows or goes subnormal (true of every value here).

_SPLIT = 134217729.0   # 2^27 + 1


def _two_prod(a, b):
    p = a * b
    ca = _SPLIT * a
    ah = ca - (ca - a)
    al = a - ah
    cb = _SPLIT * b
    bh = cb - (cb - b)
    bl = b - bh
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _add_odd(a, b):
    """a + b rounded to odd: truncated, its last bit set when inexact."""
    s, e = _two_sum(a, b)
    inexact = e != 0
    even = (s.view(U64) & U64(1)) == 0
    # rounding to nearest went away from the exact sum when e has the opposite sign of s
    # (for |s|): step back toward it, which lands on an odd neighbour
    toward = np.where(e > 0, np.inf, -np.inf)
    fix = inexact & even
    return np.where(fix, np.nextafter(s, toward), s)


def fma64(a, b, c):
    a, b, c = (np.asarray(v, F64) for v in (a, b, c))
    uh, ul = _two_prod(a, b)
    th, tl = _two_sum(c, uh)
    v = _add_odd(tl, ul)
    return th + v


def _madd(a, b, c, fma: bool):          # a*b + c
    return fma64(a, b, c) if fma else a * b + c


# ---------------------------------------------------------------------------------------

def _reduce_large(xi: np.ndarray):
    """(x, n) for the bits xi (|y| >= 120, finite), as reduce_large."""
    xi = xi.astype(U64)
    idx = ((xi >> U64(26)) & U64(15)).astype(np.int64)
    shift = (xi >> U64(23)) & U64(7)
    m = (((xi & U64(0xFFFFFF)) | U64(0x800000)) << shift) & U64(0xFFFFFFFF)
    with np.errstate(over="ignore"):
        r0 = (m * INV_PIO4[idx]) & U64(0xFFFFFFFF)
        r1 = m * INV_PIO4[idx + 4]
        r2 = m * INV_PIO4[idx + 8]
        r0 = (r2 >> U64(32)) | (r0 << U64(32))
        r0 = r0 + r1
        n = (r0 + (U64(1) << U64(61))) >> U64(62)
        r0 = r0 - (n << U64(62))
    return r0.view(I64).astype(F64) * PI63, n.astype(np.int64)


def sincosf(y, fma: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(sinf(y), cosf(y)) as glibc computes them, y any f32 array."""
    with np.errstate(all="ignore"):            # inf and NaN go through the polynomials too
        return _sincosf(np.atleast_1d(np.asarray(y, F32)), fma)


def _sincosf(y: np.ndarray, fma: bool) -> tuple[np.ndarray, np.ndarray]:
    bits = y.view(U32)
    top = (bits >> U32(20)) & U32(0x7FF)
    x = y.astype(F64)
    n = np.zeros(y.shape, np.int64)
    q = np.zeros(y.shape, np.int64)
    xr = x.copy()

    mid = (top >= TOP_PIO4) & (top < TOP_120)
    if np.any(mid):
        r = x[mid] * HPI_INV
        nm = (np.trunc(r).astype(np.int64).astype(np.int32) + 0x800000) >> 24
        n[mid] = nm
        q[mid] = nm
        xr[mid] = _madd(-nm.astype(F64), HPI, x[mid], fma)
    big = (top >= TOP_120) & (top < TOP_INF)
    if np.any(big):
        xb, nb = _reduce_large(bits[big])
        xr[big] = xb
        n[big] = nb
        q[big] = nb + (bits[big] >> U32(31)).astype(np.int64)

    s = SIGN[q & 3]
    neg = (q & 2) != 0
    xs = xr * s
    x2 = xr * xr
    x3 = xs * x2
    x5 = x3 * x2
    sp = _madd(x2, S3, S2, fma)
    sv = _madd(x3, S1, xs, fma)
    sv = _madd(x5, sp, sv, fma)
    sg = np.where(neg, -1.0, 1.0)                    # entry 1: the cosine table negated
    x4 = x2 * x2
    x6 = x4 * x2
    cp = _madd(x2, sg * C4, sg * C3, fma)
    cv = _madd(x2, sg * C1, sg * C0, fma)
    cv = _madd(x4, sg * C2, cv, fma)
    cv = _madd(x6, cp, cv, fma)

    odd = (n & 1) != 0
    sin = np.where(odd, cv, sv).astype(F32)
    cos = np.where(odd, sv, cv).astype(F32)
    tiny = top < TOP_TINY
    sin[tiny] = y[tiny]
    cos[tiny] = F32(1.0)
    bad = top >= TOP_INF
    sin[bad] = y[bad] - y[bad]
    cos[bad] = y[bad] - y[bad]
    return sin, cos
