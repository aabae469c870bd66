"""A numpy model of ggml's K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) and of their dot
products with an activation vector quantized to Q8_K, as the kernels compute them.

Facts (ggml-common.h block structs, ggml's dequantize_row_* and quantize_row_q8_K):

* A super-block holds 256 weights. Layouts (bytes):
    Q2_K  u8 scales[16] (low nibble scale, high nibble min, per 16 weights); u8 qs[64]
          (2 bits a weight); f16 d; f16 dmin                                       84
    Q3_K  u8 hmask[32] (the third bit); u8 qs[64] (low 2 bits); u8 scales[12] (16
          6-bit scales, stored +32); f16 d                                         110
    Q4_K  f16 d; f16 dmin; u8 scales[12] (8 6-bit scales and 8 6-bit mins, per 32
          weights); u8 qs[128] (4 bits)                                            144
    Q5_K  f16 d; f16 dmin; u8 scales[12]; u8 qh[32] (the fifth bit); u8 qs[128]    176
    Q6_K  u8 ql[128] (low 4 bits); u8 qh[64] (high 2 bits); i8 scales[16]; f16 d   210
    Q8_K  f32 d; i8 qs[256]; i16 bsums[16] (sums of 16 consecutive qs)             292
* Weight e (0..255) of a super-block is  d * sc[e/16] * q[e] - dmin * m[e/16]  (no min
  term for Q3_K and Q6_K), each product rounded to f32 (gguf-py computes it the same way).

Every K type is modelled here through one "unpacked" form, which is also what the SSE2
kernels build per super-block: `u` (256 unsigned quants), `off` (the type's zero point:
q = u - off; 4 for Q3_K, 32 for Q6_K, 0 else), `sc`/`mn` (signed scale and min per 16
weights), `d`/`dmin` (f32). The dot product of a super-block with a Q8_K block (yd, q8,
bsums) is then exact in integers:

    isum = sum_s sc[s] * (sum_{e in s} u[e] * q8[e] - off * bsums[s])
    msum = sum_s mn[s] * bsums[s]
    dot  = yd * d * isum - yd * dmin * msum

and the kernels round it to f32 per super-block and add the super-blocks of a row in f32.
`matvec` returns the same sum in f64 and `matvec_bound` a bound on the kernels' f32
rounding error (see there).
"""
from __future__ import annotations

import numpy as np

QK_K = 256
BLOCK_BYTES = {"Q2_K": 84, "Q3_K": 110, "Q4_K": 144, "Q5_K": 176, "Q6_K": 210, "Q8_K": 292}
OFFSET = {"Q2_K": 0, "Q3_K": 4, "Q4_K": 0, "Q5_K": 0, "Q6_K": 32}
HAS_MIN = {"Q2_K": True, "Q3_K": False, "Q4_K": True, "Q5_K": True, "Q6_K": False}
K_TYPES = tuple(OFFSET)

Q8_K_DTYPE = np.dtype([("d", "<f4"), ("qs", "i1", 256), ("bsums", "<i2", 16)])
assert Q8_K_DTYPE.itemsize == 292


# ----------------------------------------------------------------------------------------
# Q8_K: the activation format


def quantize_q8_k(x) -> np.ndarray:
    """x (n floats, n a multiple of 256) -> n/256 Q8_K blocks (a structured array), as
    ggml's quantize_row_q8_K (llama.cpp 0c1e570): max = the element of largest |x| (the
    first one), iscale = -127/max, q = round-half-even(iscale * x) capped at 127, d = 1/iscale, all in f32; a
    block of zeros gets d = 0 and q = 0."""
    x = np.asarray(x, np.float32).reshape(-1, QK_K)
    out = np.zeros(x.shape[0], Q8_K_DTYPE)
    for b, row in enumerate(x):
        a = np.abs(row)
        j = int(np.argmax(a))          # the first maximum
        if not a[j] > 0:
            continue
        iscale = np.float32(-127.0) / row[j]
        with np.errstate(over="ignore", invalid="ignore"):
            q = np.rint(np.float32(iscale) * row)
        q = np.minimum(q, 127).astype(np.int32)
        out[b]["d"] = np.float32(1.0) / np.float32(iscale)
        out[b]["qs"] = q.astype(np.int8)
        out[b]["bsums"] = q.reshape(16, 16).sum(axis=1).astype(np.int16)
    return out


# ----------------------------------------------------------------------------------------
# unpacking


def _f16(b: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(b).view("<f2").astype(np.float32).reshape(-1)


def _scale_min_k4(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_K/Q5_K's 12 scale bytes -> (sc[8], m[8]) 6-bit values, per block."""
    s = s.astype(np.int32)
    sc = np.empty((s.shape[0], 8), np.int32)
    m = np.empty((s.shape[0], 8), np.int32)
    sc[:, :4] = s[:, 0:4] & 63
    m[:, :4] = s[:, 4:8] & 63
    sc[:, 4:] = (s[:, 8:12] & 15) | ((s[:, 0:4] >> 6) << 4)
    m[:, 4:] = (s[:, 8:12] >> 4) | ((s[:, 4:8] >> 6) << 4)
    return sc, m


def unpack(kind: str, blocks) -> dict[str, np.ndarray]:
    """Super-blocks (bytes, a multiple of the block size) -> the unpacked form."""
    raw = np.frombuffer(bytes(blocks), np.uint8).reshape(-1, BLOCK_BYTES[kind])
    nb = raw.shape[0]
    u = np.zeros((nb, QK_K), np.uint8)
    sc = np.zeros((nb, 16), np.int32)
    mn = np.zeros((nb, 16), np.int32)
    dmin = np.zeros(nb, np.float32)
    if kind == "Q2_K":
        scales, qs = raw[:, 0:16].astype(np.int32), raw[:, 16:80].astype(np.int32)
        d, dmin = _f16(raw[:, 80:82]), _f16(raw[:, 82:84])
        sc, mn = scales & 15, scales >> 4
        for e in range(QK_K):
            n, j, l = e // 128, (e % 128) // 32, e % 32
            u[:, e] = (qs[:, 32 * n + l] >> (2 * j)) & 3
    elif kind == "Q3_K":
        hmask, qs = raw[:, 0:32].astype(np.int32), raw[:, 32:96].astype(np.int32)
        s, d = raw[:, 96:108].astype(np.int32), _f16(raw[:, 108:110])
        for i in range(16):
            low = s[:, i] & 15 if i < 8 else s[:, i - 8] >> 4
            high = (s[:, 8 + i % 4] >> (2 * (i // 4))) & 3
            sc[:, i] = (low | (high << 4)) - 32
        for e in range(QK_K):
            n, j, l = e // 128, (e % 128) // 32, e % 32
            u[:, e] = ((qs[:, 32 * n + l] >> (2 * j)) & 3) + 4 * ((hmask[:, l] >> (4 * n + j)) & 1)
    elif kind in ("Q4_K", "Q5_K"):
        d, dmin = _f16(raw[:, 0:2]), _f16(raw[:, 2:4])
        s8, m8 = _scale_min_k4(raw[:, 4:16])
        sc, mn = np.repeat(s8, 2, axis=1), np.repeat(m8, 2, axis=1)
        if kind == "Q4_K":
            qs = raw[:, 16:144].astype(np.int32)
        else:
            qh, qs = raw[:, 16:48].astype(np.int32), raw[:, 48:176].astype(np.int32)
        for e in range(QK_K):
            j, half, l = e // 64, (e % 64) // 32, e % 32
            u[:, e] = (qs[:, 32 * j + l] >> (4 * half)) & 15
            if kind == "Q5_K":
                u[:, e] += (16 * ((qh[:, l] >> (2 * j + half)) & 1)).astype(np.uint8)
    elif kind == "Q6_K":
        ql, qh = raw[:, 0:128].astype(np.int32), raw[:, 128:192].astype(np.int32)
        sc = raw[:, 192:208].view(np.int8).astype(np.int32)
        d = _f16(raw[:, 208:210])
        for e in range(QK_K):
            n, k, l = e // 128, (e % 128) // 32, e % 32
            low = (ql[:, 64 * n + 32 * (k & 1) + l] >> (4 * (k >> 1))) & 15
            u[:, e] = low | (((qh[:, 32 * n + l] >> (2 * k)) & 3) << 4)
    else:
        raise ValueError(f"not a K-quant weight type: {kind}")
    return {"u": u, "off": OFFSET[kind], "sc": sc, "mn": mn, "d": d, "dmin": dmin,
            "has_min": HAS_MIN[kind]}


def dequantize(kind: str, blocks) -> np.ndarray:
    """The f32 weights: (d*sc) * q - (dmin*m), each operation rounded to f32."""
    p = unpack(kind, blocks)
    q = (p["u"].astype(np.int32) - p["off"]).astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        dl = (p["d"][:, None] * p["sc"].astype(np.float32)).repeat(16, axis=1)
        y = dl * q
        if p["has_min"]:
            y = y - (p["dmin"][:, None] * p["mn"].astype(np.float32)).repeat(16, axis=1)
    return y.reshape(-1).astype(np.float32)


# ----------------------------------------------------------------------------------------
# dot products


def block_terms(kind: str, W, xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per super-block of each row: (yd*d*isum - yd*dmin*msum in f64, and a bound on the
    magnitude of any partial sum of its terms). W: rows x (n/256 blocks) bytes."""
    nbr = xq.shape[0]
    p = unpack(kind, W)
    u = p["u"].reshape(-1, nbr, 16, 16).astype(np.int32)
    q8 = xq["qs"].reshape(nbr, 16, 16).astype(np.int32)
    bs = xq["bsums"].astype(np.int64)
    sc = p["sc"].reshape(-1, nbr, 16).astype(np.int64)
    mn = p["mn"].reshape(-1, nbr, 16).astype(np.int64)
    isum = (sc * ((u * q8[None]).sum(-1) - p["off"] * bs[None])).sum(-1)
    msum = (mn * bs[None]).sum(-1)
    # the same sums of absolute values: a bound on any partial sum of their terms, in
    # whatever grouping (lanes) a kernel adds them
    isum_abs = (np.abs(sc) * ((u * np.abs(q8)[None]).sum(-1) + p["off"] * np.abs(bs)[None])).sum(-1)
    msum_abs = (np.abs(mn) * np.abs(bs)[None]).sum(-1)
    yd = xq["d"].astype(np.float64)[None]
    dd = yd * p["d"].reshape(-1, nbr).astype(np.float64)
    dm = yd * p["dmin"].reshape(-1, nbr).astype(np.float64)
    return dd * isum - dm * msum, np.abs(dd) * isum_abs + np.abs(dm) * msum_abs


def _row_chunks(kind: str, W, xq: np.ndarray, rows_per_chunk: int = 256):
    """W as rows of n/256 blocks, in chunks of rows (bounded memory for 32000-row shapes)."""
    row_bytes = xq.shape[0] * BLOCK_BYTES[kind]
    raw = np.frombuffer(bytes(W), np.uint8).reshape(-1, row_bytes)
    for i in range(0, raw.shape[0], rows_per_chunk):
        yield block_terms(kind, raw[i:i + rows_per_chunk].tobytes(), xq)


def matvec(kind: str, W, xq: np.ndarray) -> np.ndarray:
    """Row i of W dotted with the Q8_K vector xq, exactly (f64 of exact integer sums)."""
    parts = [terms.sum(axis=1) for terms, _ in _row_chunks(kind, W, xq)]
    return np.concatenate(parts) if parts else np.zeros(0)


U = 2.0 ** -24


def matvec_bound(kind: str, W, xq: np.ndarray) -> np.ndarray:
    """What the kernels may differ from `matvec` by. Per super-block, isum and msum are
    exact integers (whole or in lanes), converted to f32 (one rounding of each part), and
    the super-block's value takes up to 4 more f32 roundings (yd*d, times isum, the same for
    the min term, their difference or an FMA); a row adds its super-blocks in f32, in lanes
    or not, then adds the lanes (at most nb + 8 roundings of a partial sum). Every partial
    sum is bounded by `block_terms`' absolute bound, so |err| <= (nb + 16) u sum(bounds)."""
    nb = xq.shape[0]
    parts = [(nb + 16) * U * absterms.sum(axis=1) + 1e-30 for _, absterms in _row_chunks(kind, W, xq)]
    return np.concatenate(parts) if parts else np.zeros(0)


F16_FIELDS = {"Q2_K": (80, 82), "Q3_K": (108,), "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,)}


def random_blocks(kind: str, rows: int, n: int, rng: np.random.Generator, *,
                  scale: float = 1e-3) -> np.ndarray:
    """rows x (n/256) random super-blocks (uint8, rows x row bytes): random quants and
    scale bytes, finite f16 d/dmin of magnitude ~scale (any sign)."""
    nb = n // QK_K
    raw = rng.integers(0, 256, (rows, nb, BLOCK_BYTES[kind]), dtype=np.uint8)
    for off in F16_FIELDS[kind]:
        vals = (rng.standard_normal((rows, nb)) * scale).astype(np.float16)
        raw[:, :, off:off + 2] = vals.view(np.uint8).reshape(rows, nb, 2)
    return raw.reshape(rows, nb * BLOCK_BYTES[kind])
