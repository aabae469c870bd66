"""numpy model of the quantized math the ggml type kernels compute (kernels_asm/ggml_*.s).

Written from ggml's documented block layouts (ggml-common.h) and the CPU path's algorithm
(llama.cpp: the input vector is quantized once to the weight type's `vec_dot_type`, then each
row is a sum over blocks of an integer dot product scaled by the two blocks' scales), not
from its code. What the reference forward needs:

    xq = quantize(vec_dot_type, x)            # bytes, as quantize_row_<t> writes them
    y = matvec(type_name, W_bytes, x, n, d)   # quantizes x, then every row's vec_dot
    v = vec_dot(type_name, W_row_bytes, xq)   # one row

Conventions: float64 results of float32 steps. Per block: the integer dot product (exact),
times f32(d_w) * f32(d_x) rounded to f32, plus f32(m_w) * f32(s_x) for the _1 types; the
blocks' terms summed in float64 (the kernels sum in f32 partial sums: compare within a
tolerance, `matvec_bound` gives the sum of |terms| to scale it by). F16/BF16/F32 weights:
each product of f32(w) * f32(x) exact in float64, summed in float64.

Activation quantization (quantize_q8_0 / quantize_q8_1), per block of 32, in float32:
amax = max |x|, d = amax / 127, id = 127 / amax (0 when amax is 0), q = x * id rounded to
nearest even (the result of cvtps2dq: out of int32 range or NaN gives -2^31), saturated to
int8; d stored as f16 (round to nearest even); Q8_1's s = f16(d * sum(q before
saturation, int32)).
"""
from __future__ import annotations

import numpy as np

from peasm import ggml

QK = 32


# -- 16-bit floats, as F16C converts them -----------------------------------------------------

def f16_bits_to_f32(h: np.ndarray) -> np.ndarray:
    """f16 bits -> f32 (vcvtph2ps: exact; a NaN keeps its payload, made quiet)."""
    h = np.asarray(h, np.uint16)
    out = h.view(np.float16).astype(np.float32)
    nan = (h & 0x7C00) == 0x7C00
    nan &= (h & 0x03FF) != 0
    if nan.any():
        hn = h[nan].astype(np.uint32)
        out.view(np.uint32)[nan] = ((hn & 0x8000) << 16) | 0x7FC00000 | ((hn & 0x3FF) << 13)
    return out


def f32_to_f16_bits(x: np.ndarray) -> np.ndarray:
    """f32 -> f16 bits, round to nearest even (vcvtps2ph rounding 0); a NaN becomes a quiet
    NaN with the top 9 payload bits kept."""
    x = np.ascontiguousarray(x, np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        out = x.astype(np.float16).view(np.uint16).copy()
    u = x.view(np.uint32)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    if nan.any():
        un = u[nan]
        out[nan] = (((un >> 16) & 0x8000) | 0x7E00 | ((un >> 13) & 0x3FF)).astype(np.uint16)
    return out


def f32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """f32 -> bf16 bits as ggml: NaN quiet (top 16 bits | 0x40), else round to nearest even."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    u = np.where(nan, (u & 0xFFFF0000) | 0x00400000, u)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_bits_to_f32(b: np.ndarray) -> np.ndarray:
    return (np.asarray(b, np.uint16).astype(np.uint32) << 16).view(np.float32)


# -- activation formats -----------------------------------------------------------------------

def _q8_blocks(x: np.ndarray):
    """(d f32, q int8, the int32 sum of the unsaturated quants) per block of 32."""
    x = np.ascontiguousarray(x, np.float32).reshape(-1, QK)
    with np.errstate(all="ignore"):
        amax = np.abs(x).max(axis=1)
        d = (amax / np.float32(127)).astype(np.float32)
        iden = np.where(amax != 0, np.float32(127) / amax, np.float32(0)).astype(np.float32)
        v = x * iden[:, None]
        bad = np.isnan(v) | (np.abs(v) >= np.float32(2.0 ** 31))
        r = np.where(bad, -(2 ** 31), np.rint(np.where(bad, 0, v))).astype(np.int64)
    q = np.clip(r, -128, 127).astype(np.int8)
    s = (r.sum(axis=1) + 2 ** 31) % 2 ** 32 - 2 ** 31          # int32 wrap-around
    return d, q, s.astype(np.int32)


def quantize_q8_0(x) -> bytes:
    d, q, _ = _q8_blocks(x)
    out = np.zeros((d.size, 34), np.uint8)
    out[:, 0:2] = f32_to_f16_bits(d).reshape(-1, 1).view(np.uint8)
    out[:, 2:] = q.view(np.uint8)
    return out.tobytes()


def quantize_q8_1(x) -> bytes:
    d, q, s = _q8_blocks(x)
    with np.errstate(all="ignore"):
        sv = (d * s.astype(np.float32)).astype(np.float32)
    out = np.zeros((d.size, 36), np.uint8)
    out[:, 0:2] = f32_to_f16_bits(d).reshape(-1, 1).view(np.uint8)
    out[:, 2:4] = f32_to_f16_bits(sv).reshape(-1, 1).view(np.uint8)
    out[:, 4:] = q.view(np.uint8)
    return out.tobytes()


def quantize(type_name: str, x) -> bytes:
    """x (f32) in an activation format: Q8_0, Q8_1, F16, BF16 (F32: the bytes of x)."""
    x = np.ascontiguousarray(x, np.float32)
    if type_name == "Q8_0":
        return quantize_q8_0(x)
    if type_name == "Q8_1":
        return quantize_q8_1(x)
    if type_name == "F16":
        return f32_to_f16_bits(x).tobytes()
    if type_name == "BF16":
        return f32_to_bf16_bits(x).tobytes()
    if type_name == "F32":
        return x.tobytes()
    raise ValueError(f"{type_name} is not an activation format")


# -- weights: block fields --------------------------------------------------------------------

def _fields(type_name: str, data: bytes, n_blocks: int):
    """(d f32, m f32 or None, integer quants (n_blocks, 32) int32) of a block type's data."""
    t = ggml.BY_NAME[type_name]
    b = np.frombuffer(bytes(data), np.uint8)[:n_blocks * t.block_bytes].reshape(n_blocks, t.block_bytes)
    d = f16_bits_to_f32(b[:, 0:2].copy().view(np.uint16).reshape(-1))
    m = None
    if type_name in ("Q4_1", "Q5_1", "Q8_1"):
        m = f16_bits_to_f32(b[:, 2:4].copy().view(np.uint16).reshape(-1))
    if type_name in ("Q8_0", "Q8_1"):
        return d, m, b[:, -32:].copy().view(np.int8).astype(np.int32)
    qs = b[:, -16:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int32)
    if type_name in ("Q5_0", "Q5_1"):
        off = 2 if type_name == "Q5_0" else 4
        qh = b[:, off:off + 4].copy().view(np.uint32).reshape(-1, 1)
        q |= (((qh >> np.arange(32, dtype=np.uint32)) & 1) << 4).astype(np.int32)
    if type_name == "Q4_0":
        q -= 8
    elif type_name == "Q5_0":
        q -= 16
    return d, m, q


def _float_row(type_name: str, data: bytes, n: int) -> np.ndarray:
    raw = np.frombuffer(bytes(data), np.uint8)
    if type_name == "F32":
        return raw[:4 * n].view(np.float32).astype(np.float32)
    if type_name == "F16":
        return f16_bits_to_f32(raw[:2 * n].view(np.uint16))
    if type_name == "BF16":
        return bf16_bits_to_f32(raw[:2 * n].view(np.uint16))
    raise ValueError(type_name)


def block_terms(type_name: str, W: bytes, xq: bytes, n: int, d: int, *, absolute: bool = False
                ) -> np.ndarray:
    """(d, terms) float64: the terms each row's result sums (per block for block types, per
    element for float types). absolute=True: each term's magnitude bound instead, |scale|
    times the sum of |products| (what a summation error is proportional to)."""
    t = ggml.BY_NAME[type_name]
    if t.block_size == 1:
        w = _float_row(type_name, W, n * d).reshape(d, n).astype(np.float64)
        x = _float_row(t.vec_dot_type, xq, n).astype(np.float64)
        return np.abs(w * x) if absolute else w * x
    nb = n // QK
    dw, mw, qw = _fields(type_name, W, nb * d)
    dx, sx, qx = _fields(t.vec_dot_type, xq, nb)
    prod = qw.reshape(d, nb, QK).astype(np.int64) * qx.reshape(1, nb, QK)
    isum = np.abs(prod).sum(axis=2) if absolute else prod.sum(axis=2)
    with np.errstate(all="ignore"):
        scale = (dw.reshape(d, nb) * dx.reshape(1, nb)).astype(np.float32)
        terms = (scale * isum.astype(np.float32)).astype(np.float64)
        if mw is not None:
            terms = np.concatenate([terms, (mw.reshape(d, nb) * sx.reshape(1, nb)).astype(np.float32)
                                    .astype(np.float64)], axis=1)
    return np.abs(terms) if absolute else terms


def matvec_q(type_name: str, W: bytes, xq: bytes, n: int, d: int) -> np.ndarray:
    """What matvec_<type> computes from W and an already-quantized xq (float64)."""
    return block_terms(type_name, W, xq, n, d).sum(axis=1)


def matvec_bound(type_name: str, W: bytes, xq: bytes, n: int, d: int) -> np.ndarray:
    """Per row, the sum of the terms' magnitude bounds: the scale of the f32 summation
    error (the |W| @ |x| of a float matvec)."""
    return block_terms(type_name, W, xq, n, d, absolute=True).sum(axis=1)


def vec_dot(type_name: str, W_row: bytes, xq: bytes) -> float:
    t = ggml.BY_NAME[type_name]
    n = len(xq) // ggml.BY_NAME[t.vec_dot_type].block_bytes * ggml.BY_NAME[t.vec_dot_type].block_size
    return float(matvec_q(type_name, W_row, xq, n, 1)[0])


def matvec(type_name: str, W: bytes, x, n: int, d: int) -> np.ndarray:
    """x (f32) quantized to the type's vec_dot_type, then every row's dot (float64)."""
    t = ggml.BY_NAME[type_name]
    return matvec_q(type_name, W, quantize(t.vec_dot_type, x), n, d)
