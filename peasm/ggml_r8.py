"""The "8 rows interleaved" (R8) weight layout of peasm/ggml.py's internal types, in numpy:
the tests' statement of what the loader's repack writes (kernels_asm) and the R8 kernels
read. The layout itself is described once, in peasm/ggml.py's module text.
"""
from __future__ import annotations

import numpy as np

from . import ggml

SCALE_BYTES = {"Q4_0": 2, "Q4_1": 4, "Q8_0": 2,   # f16 d, or f16 d + f16 m, per row and block
               "Q4_K": 16}                          # f16 d, f16 dmin, the 12 scale bytes
QS_BYTES = 16                               # the 32 nibbles of a Q4 block (Q8_0: 32 bytes)


CHUNK = 8                                   # F32_R8: columns per row chunk (32 bytes)


def _chunks(base: str, rows: int, n: int) -> bool:
    """True for a block-size-1 base (F32: 32-byte chunks of 8 columns), after checking the
    shape; False for the 4-bit block layouts."""
    if base != "F32":
        return False
    if rows % ggml.R8_GROUP or n % CHUNK:
        raise ValueError(f"{rows} rows of {n}: rows must be a multiple of {ggml.R8_GROUP}, "
                         f"n of {CHUNK}")
    return True


def _shape(base: str, rows: int, n: int) -> tuple[int, int]:
    t = ggml.BY_NAME[base]
    if base not in SCALE_BYTES:
        raise ValueError(f"{base} has no R8 form")
    if rows % ggml.R8_GROUP or n % t.block_size:
        raise ValueError(f"{rows} rows of {n}: rows must be a multiple of {ggml.R8_GROUP}, "
                         f"n of {t.block_size}")
    return t.block_bytes, n // t.block_size


def packable(base: str, rows: int, n: int) -> bool:
    """Whether the loader's repack (kernels_asm/ggml_repack.s) puts a weight of `rows` rows
    of `n` elements of file type `base` into its R8 form: the type has one, the rows are
    whole groups of 8 and the row whole blocks (F32: whole 32-byte chunks, n % 8 == 0)."""
    if base not in ggml.R8_OF or rows % ggml.R8_GROUP or rows == 0:
        return False
    return n % (CHUNK if base == "F32" else ggml.BY_NAME[base].block_size) == 0 and n > 0


def pack(raw: bytes | np.ndarray, base: str, rows: int, n: int) -> bytes:
    """ggml's row-major blocks of `rows` rows of `n` elements of type `base` -> R8 bytes
    (the same size)."""
    if _chunks(base, rows, n):
        a = np.frombuffer(bytes(raw), np.uint8).reshape(rows // 8, 8, n // CHUNK, 4 * CHUNK)
        return a.transpose(0, 2, 1, 3).tobytes()
    bb, k = _shape(base, rows, n)
    sb = SCALE_BYTES[base]
    a = np.frombuffer(bytes(raw), np.uint8).reshape(rows // 8, 8, k, bb)
    scales = a[..., :sb]                                   # [g, r, b, sb]
    qb = bb - sb                                           # quant bytes: 4 per vector
    qs = a[..., sb:].reshape(rows // 8, 8, k, qb // 4, 4)  # [g, r, b, v, j]
    out = np.empty((rows // 8, k, 8 * bb), np.uint8)
    # d of the 8 rows, then (Q4_1) m of the 8 rows
    for s in range(sb // 2):
        out[..., 16 * s:16 * s + 16] = scales[..., 2 * s:2 * s + 2].transpose(0, 2, 1, 3) \
            .reshape(rows // 8, k, 16)
    # vector v, dword lane r = row r's qs[4v..4v+3]
    out[..., 8 * sb:] = qs.transpose(0, 2, 3, 1, 4).reshape(rows // 8, k, 8 * qb)
    return out.tobytes()


def unpack(packed: bytes | np.ndarray, base: str, rows: int, n: int) -> bytes:
    """The inverse of pack."""
    if _chunks(base, rows, n):
        p = np.frombuffer(bytes(packed), np.uint8).reshape(rows // 8, n // CHUNK, 8, 4 * CHUNK)
        return p.transpose(0, 2, 1, 3).tobytes()
    bb, k = _shape(base, rows, n)
    sb = SCALE_BYTES[base]
    p = np.frombuffer(bytes(packed), np.uint8).reshape(rows // 8, k, 8 * bb)
    out = np.empty((rows // 8, 8, k, bb), np.uint8)
    for s in range(sb // 2):
        out[..., 2 * s:2 * s + 2] = p[..., 16 * s:16 * s + 16].reshape(rows // 8, k, 8, 2) \
            .transpose(0, 2, 1, 3)
    qb = bb - sb
    out[..., sb:] = p[..., 8 * sb:].reshape(rows // 8, k, qb // 4, 8, 4).transpose(0, 3, 1, 2, 4) \
        .reshape(rows // 8, 8, k, qb)
    return out.tobytes()
