"""The batched products in `peasm bench kernels` (part `matmat`): each type's matmat body
(the prefill's matrix products, kernels_asm/ggml_mm_*.s) at the benchmark models' shapes,
against the same type's matvec, in the same run (peasm/bench.py explains the method).

For each type, shape (d x n) and batch B, three timings of the same work (d rows times B
inputs), each as ns per 32 weights per input (a Q4_0/Q4_1/Q8_0 block, 1/8 of a K super-block,
32 f32 columns):

* `matmat`: one call of the matmat body, weights streamed (rotating through the pool as
  the streamed matvec does, so every weight comes from DRAM once per call, as in a
  prefill); the B inputs (quantized once) and the outputs stay in cache. A type without a
  matmat body: one call of k_par_matmat alone (kernels_asm/parallel_matmat.s,
  no workers), the prefill's own fallback: the matvec once per input over tiles of rows
  kept in cache (for the R8 forms, which have bodies, a `#` line after theirs compares the
  body with that fallback, timed the same way);
* `hot`: the matvec body called B times on one matrix reused (in cache as far as it fits:
  what B matvec calls over cache-sized tiles would cost at best);
* `streamed`: the matvec body once per call with the weights streamed (decode's speed: one
  token reads every weight from DRAM).

One line per type, shape and B:

    kernel=matmat_q4_0 path=avx2 shape=2048x2048 B=64 ns_32w_input=0.88 hot_ns=1.65
        streamed_ns=1.69 speedup_vs_hot=1.88 speedup_vs_streamed=1.92

`speedup_vs_streamed` is what prefill gains per token over decode in these products: the
issue's prefill goal (a 64-token prompt >= 5x the decode tok/s) needs about 6 here.
"""
from __future__ import annotations

import struct

import numpy as np

# (type, d, n): SmolLM2-135M (Q4_1 layers, the Q8_0 tied classifier), TinyLlama-1.1B-shaped
# Q4_0 (q/o, k/v, ffn up/gate, ffn down), the same Q4_1 / Q4_0 / Q8_0 shapes in their R8
# forms (the pool packed by peasm/ggml_r8.py; those peasm/ggml.py declares), stories110M-shaped
# F32 and F32_R8
SHAPES = [("Q4_1", 576, 576), ("Q4_1", 1536, 576), ("Q4_1", 576, 1536),
          ("Q4_1_R8", 576, 576), ("Q4_1_R8", 1536, 576), ("Q4_1_R8", 576, 1536),
          ("Q8_0", 49152, 576), ("Q8_0_R8", 49152, 576),
          ("Q4_0", 2048, 2048), ("Q4_0", 256, 2048), ("Q4_0", 5632, 2048), ("Q4_0", 2048, 5632),
          ("Q4_0_R8", 2048, 2048), ("Q4_0_R8", 256, 2048), ("Q4_0_R8", 5632, 2048),
          ("Q4_0_R8", 2048, 5632),
          ("F32", 768, 768), ("F32", 2048, 768), ("F32", 768, 2048),
          ("F32_R8", 768, 768), ("F32_R8", 2048, 768), ("F32_R8", 768, 2048),
          ("Q4_K", 2048, 2048), ("Q4_K_R8", 2048, 2048), ("Q6_K", 2048, 2048), ("Q5_0", 2048, 2048),
          ("Q5_1", 2048, 2048)]
QUICK_SHAPES = [("Q4_1", 1536, 576), ("Q4_0", 2048, 2048), ("Q4_0_R8", 2048, 2048), ("Q8_0", 2048, 576), ("F32", 768, 768)]
BATCHES = (32, 64)
QUICK_BATCHES = (32,)


def _line(kind, d, n, B, mm, hot, streamed) -> str:
    return (f"kernel=matmat_{kind.lower()} path=avx2 shape={d}x{n} B={B} ns_32w_input={mm:.3f} "
            f"hot_ns={hot:.3f} streamed_ns={streamed:.3f} speedup_vs_hot={hot / mm:.2f} "
            f"speedup_vs_streamed={streamed / mm:.2f}")


def measure(bench, kind: str, d: int, n: int, batches) -> list[str]:
    from peasm import ggml

    t = ggml.BY_NAME[kind]
    bench.fill_pool_ggml(kind)
    if t.block_size == 256:                  # K super-blocks: finite d / dmin everywhere
        from peasm import bench_kquant

        bench_kquant._finite_scales(bench, kind)
        bench._pool_type = None              # (the next fill starts afresh)
    row = n // t.block_size * t.block_bytes
    mat = d * row
    if mat > bench.pool_bytes:
        return []
    count = max(1, bench.pool_bytes // mat)
    mats = [bench.base + (i % count) * mat for i in range(count)]
    B_max = max(batches)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((B_max, n)).astype(np.float32)
    if t.vec_dot_type == "F32":
        xq = x.reshape(-1).view(np.uint8).copy()
        xq_stride = 4 * n
    else:
        vt = ggml.BY_NAME[t.vec_dot_type]
        xq_stride = n // vt.block_size * vt.block_bytes
        xq = np.zeros(B_max * xq_stride + 64, np.uint8)
        quantize = bench.addr(f"quantize_row_{t.vec_dot_type.lower()}_avx2")
        for b in range(B_max):
            bench.native.call(quantize, xq.ctypes.data + b * xq_stride, x[b].ctypes.data, n)
    out = np.zeros(B_max * d + 16, np.float32)
    bench._mm_keep = (xq, out)
    blocks = d * n // 32                     # 32-weight units, per input
    mv = ggml.body_symbol(t, "matvec", "avx2")
    xa, oa = xq.ctypes.data, out.ctypes.data
    streamed = bench.timed(mv, lambda i: (oa, mats[i % len(mats)], xa, n, d), mat)
    hot = bench.timed(mv, lambda i: (oa, mats[0], xa + (i % B_max) * xq_stride, n, d), mat)
    lines = []
    body = ggml.body_symbol(t, "matmat", "avx2")
    for B in batches:
        blocks_mm = _matmat_blocks(bench, mats, oa, xa, 4 * d, xq_stride, row, n, d, B,
                                   bench.addr(mv))
        bench._mm_keep += (blocks_mm,)
        if body:
            sec = bench.timed(body, lambda i: (oa, mats[i % len(mats)], xa, n, d, B, 4 * d, xq_stride), mat)
        if not body or t.group_rows > 1:    # (the R8 forms: their bodies against the fallback)
            tiles = bench.timed("k_par_matmat", lambda i: (blocks_mm.ctypes.data + 80 * (i % len(mats)),), mat)
        if not body:
            sec = tiles
        lines.append(_line(kind, d, n, B, sec / (blocks * B) * 1e9, hot / blocks * 1e9,
                           streamed / blocks * 1e9))
        if body and t.group_rows > 1:
            lines.append(f"# matmat_{kind.lower()} shape={d}x{n} B={B}: the matvec over cached "
                         f"tiles (no matmat body) {tiles / (blocks * B) * 1e9:.3f} ns, the body "
                         f"{tiles / sec:.2f}x faster")
    return lines


def _matmat_blocks(bench, mats, out, xq, out_stride, xq_stride, row_bytes, n, d, B, matvec) -> np.ndarray:
    """One MATMAT block (kernels_asm/kernels.inc) per matrix of the pool, 80 bytes apart,
    as app_asm/forward_batch.s fills it for a type without a matmat body."""
    from pathlib import Path

    off = {}
    for line in (Path(__file__).resolve().parents[1] / "kernels_asm" / "kernels.inc").read_text().splitlines():
        if line.startswith(".equ MATMAT_"):
            k, v = line[5:].split(",", 1)
            off[k.strip()] = int(v.split("#")[0].strip(), 0)
    assert off["MATMAT_SIZE"] == 80
    blocks = np.zeros((len(mats), 80), np.uint8)
    for i, w in enumerate(mats):
        for k, v, fmt in (("OUT", out, "<Q"), ("W", w, "<Q"), ("XQ", xq, "<Q"), ("OUT_STRIDE", out_stride, "<Q"),
                          ("XQ_STRIDE", xq_stride, "<Q"), ("ROW_BYTES", row_bytes, "<Q"), ("BODY", 0, "<Q"),
                          ("MATVEC", matvec, "<Q"), ("N", n, "<I"), ("D", d, "<I"), ("B", B, "<I")):
            struct.pack_into(fmt, blocks[i], off[f"MATMAT_{k}"], v)
    return blocks


def run(bench, paths: list[str], *, quick: bool = False, out=print) -> None:
    if "avx2" not in paths:
        out("# matmat: AVX2 bodies only (no --path avx2): skipped")
        return
    from peasm import ggml

    for kind, d, n in (QUICK_SHAPES if quick else SHAPES):
        if kind not in ggml.BY_NAME:
            continue
        for line in measure(bench, kind, d, n, QUICK_BATCHES if quick else BATCHES):
            out(line)
