"""The K-quant matvecs in `peasm bench kernels` (part `kquant`): Q2_K .. Q6_K at the
TinyLlama-1.1B shapes, weights streamed from DRAM, as GB/s of weights and the ratio to
`stream_read` measured in the same run (peasm/bench.py explains the method).

The benchmark's pool is reused as the weights: for each type its super-blocks are laid over
the pool and their f16 scale fields rewritten to finite values (random bytes elsewhere are
valid quants for every K layout), so no weight is NaN or inf and every call does the
arithmetic of a real model. Q4_K_R8 (Q4_K in 8-row groups, AVX2 only) is timed on the same
kind of pool, its f16 fields where the group layout has them. The activation vector is quantized to Q8_K once, in cache.

    kernel=matvec_q4_k path=avx2 shape=2048x2048 mode=streamed bytes=... gbs=... bw_ratio=...
"""
from __future__ import annotations

import numpy as np

K_TYPES = ("Q2_K", "Q3_K", "Q4_K", "Q4_K_R8", "Q5_K", "Q6_K")
BLOCK_BYTES = {"Q2_K": 84, "Q3_K": 110, "Q4_K": 144, "Q4_K_R8": 144, "Q5_K": 176, "Q6_K": 210}
F16_FIELDS = {"Q2_K": (80, 82), "Q3_K": (108,), "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,),
              "Q4_K_R8": tuple(range(0, 32, 2))}   # per 8-row group block: 8 d, then 8 dmin
FIELD_STRIDE = {"Q4_K_R8": 8 * 144}                # the unit the f16 fields repeat in
AVX2_ONLY = ("Q4_K_R8",)                           # Q4_K repacked into 8-row groups
TINYLLAMA_SHAPES = [(2048, 2048), (256, 2048), (5632, 2048), (2048, 5632), (32000, 2048)]
QUICK_SHAPES = [(256, 2048), (2048, 2048)]
TARGET_TYPES = ("Q4_K", "Q4_K_R8", "Q6_K")
TARGET = 0.85


def _finite_scales(bench, kind: str) -> None:
    """Rewrite the f16 fields of every super-block laid over the pool (from bench.base)."""
    bb = FIELD_STRIDE.get(kind, BLOCK_BYTES[kind])
    start = bench.base - bench.pool.ctypes.data
    raw = bench.pool.view(np.uint8)[start:]
    nblocks = raw.size // bb
    blocks = raw[:nblocks * bb].reshape(nblocks, bb)
    rng = np.random.default_rng(2)
    for off in F16_FIELDS[kind]:
        vals = (rng.standard_normal(nblocks) * 1e-3).astype(np.float16)
        blocks[:, off:off + 2] = vals.view(np.uint8).reshape(nblocks, 2)


def _q8_k(x: np.ndarray) -> bytes:
    """x quantized to Q8_K (numpy, as quantize_row_q8_k; only the layout matters here)."""
    x = x.reshape(-1, 256)
    out = bytearray()
    for row in x:
        j = int(np.argmax(np.abs(row)))
        iscale = np.float32(-127.0) / row[j]
        q = np.minimum(np.rint(iscale * row), 127).astype(np.int8)
        out += np.float32(1.0 / iscale).tobytes() + q.tobytes()
        out += q.astype(np.int16).reshape(16, 16).sum(axis=1).astype("<i2").tobytes()
    return bytes(out)


def kquant_matvec(bench, path: str, kind: str, d: int, n: int, xq_addr: int):
    from peasm.bench import Result

    row = n // 256 * BLOCK_BYTES[kind]
    mat = d * row
    count = max(1, bench.pool_bytes // mat)
    mats = [bench.base + (i % count) * mat for i in range(count)]
    out = np.zeros(d, np.float32)
    bench._kq_keep = out
    sec = bench.timed(f"matvec_{kind.lower()}_{path}",
                      lambda i: (out.ctypes.data, mats[i % len(mats)], xq_addr, n, d), mat)
    return Result(f"matvec_{kind.lower()}", path, f"{d}x{n}", "streamed", mat, sec, bench.bw)


def run(bench, paths: list[str], *, quick: bool = False, out=print) -> None:
    """One line per type, path and shape; then, per path, the worst ratio of the targets."""
    shapes = QUICK_SHAPES if quick else TINYLLAMA_SHAPES
    rng = np.random.default_rng(3)
    xq = np.frombuffer(_q8_k(rng.standard_normal(5632).astype(np.float32)), np.uint8)
    keep = np.empty(xq.size + 64, np.uint8)
    off = (-keep.ctypes.data) % 64
    keep[off:off + xq.size] = xq
    xq_addr = keep.ctypes.data + off
    got = []
    for kind in K_TYPES:
        _finite_scales(bench, kind)
        for path in paths:
            if kind in AVX2_ONLY and path != "avx2":
                continue
            for d, n in shapes:
                if d * n // 256 * BLOCK_BYTES[kind] > bench.pool_bytes:
                    continue
                r = kquant_matvec(bench, path, kind, d, n, xq_addr)
                bench.emit(r)
                got.append((kind, r))
    for path in [p for p in paths if p == "avx2"]:     # the goal is for the AVX2 bodies
        rs = [r for kind, r in got if kind in TARGET_TYPES and r.path == path]
        if rs:
            worst = min(rs, key=lambda r: r.bw_ratio)
            verdict = "met" if worst.bw_ratio >= TARGET else "NOT met"
            out(f"# target K-quant matvec {path} ({', '.join(TARGET_TYPES)}) bw_ratio >= "
                f"{TARGET:.2f}: worst {worst.bw_ratio:.3f} at {worst.kernel} {worst.shape} ({verdict})")
