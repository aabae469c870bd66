#!/usr/bin/env python3
"""One layer's GGUF attention (ATT_STYLE_GGML, the AVX2 path), old against new, natively.

    .venv/bin/python scripts/bench_attention_ggml.py [--pos 64,256,511] [--trials 15]
        [--heads 9 --kv-heads 3 --head-size 64 --kv f16] [--wall]

Times kernels_asm's attention_ggml_heads_avx2_keywise (the key-by-key loop, the reference)
and attention_ggml_heads_avx2 (attention_ggml_runs.s: the same arithmetic by runs of keys)
on one layer's shape (default SmolLM2-135M: 9 heads, 3 KV heads, head size 64, f16 cache),
all heads in one call, at each position. The two alternate, trial by trial, each trial a
batch of calls timed by this thread's CPU time (--wall: the wall clock); the fastest trial
of each is kept, so a shared host's time slicing mostly drops out. The outputs of the two
are checked bit for bit first. Prints us per layer and the ratio old / new.
"""
from __future__ import annotations

import argparse
import struct
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

OLD, NEW = "attention_ggml_heads_avx2_keywise", "attention_ggml_heads_avx2"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pos", default="64,256,511", help="query positions, comma-separated")
    ap.add_argument("--trials", type=int, default=15, help="timed batches of each; the fastest is kept")
    ap.add_argument("--seconds", type=float, default=0.05, help="about how long one batch runs")
    ap.add_argument("--heads", type=int, default=9)
    ap.add_argument("--kv-heads", type=int, default=3)
    ap.add_argument("--head-size", type=int, default=64)
    ap.add_argument("--kv", choices=("f16", "f32"), default="f16", help="the caches' element type")
    ap.add_argument("--wall", action="store_true", help="time by the wall clock, not CPU time")
    args = ap.parse_args()
    try:
        positions = [int(p) for p in args.pos.split(",")]
    except ValueError:
        ap.error(f"--pos: comma-separated integers, not {args.pos!r}")
    if min(positions) < 0 or args.trials < 1 or args.heads < 1 or args.kv_heads < 1 \
            or args.heads % args.kv_heads or args.head_size < 1:
        ap.error("positions >= 0, trials >= 1, heads a multiple of kv-heads, head size >= 1")
    from peasm.runners import native
    ok, why = native.supported()
    if not ok:
        print(f"bench_attention_ggml: the native runner cannot run here: {why}", file=sys.stderr)
        return 1
    if not native.host_has_avx2_fma():
        print("bench_attention_ggml: this CPU has no AVX2+FMA", file=sys.stderr)
        return 1
    return run(args, positions, native)


def run(args, positions: list[int], native) -> int:
    import numpy as np

    from peasm import generated
    from peasm.runners.kernels import kernels_image

    C = generated.constants()
    for line in (REPO / "kernels_asm" / "kernels.inc").read_text().splitlines():   # ATT_* there
        if line.startswith(".equ ATT_"):
            name, value = line[5:].split("#")[0].split(",")
            C[name.strip()] = int(value)
    if struct.calcsize("<5Q7I4x") != C["ATT_SIZE"]:
        print("bench_attention_ggml: the ATT_* block changed (kernels.inc): update this script",
              file=sys.stderr)
        return 1
    clock = time.perf_counter if args.wall else time.thread_time
    img = native.NativeImage(kernels_image())
    nh, nkv, hs = args.heads, args.kv_heads, args.head_size
    seq = max(positions) + 1
    dt = np.float16 if args.kv == "f16" else np.float32
    r = np.random.default_rng(0)
    kc = r.standard_normal((seq, nkv * hs)).astype(dt)
    vc = r.standard_normal((seq, nkv * hs)).astype(dt)
    q0 = (r.standard_normal(nh * hs) * 2).astype(np.float32)
    q = q0.copy()
    out = np.zeros(nh * hs, np.float32)
    kv_type = C["GGML_TYPE_F16"] if args.kv == "f16" else C["GGML_TYPE_F32"]
    print(f"# attention, ggml style, AVX2: {nh} heads, {nkv} KV heads, head size {hs}, {args.kv} "
          f"cache; us per layer (all heads), fastest of {args.trials} "
          f"({'wall' if args.wall else 'this thread CPU'} time)")
    print(f"{'pos':>5}  {'old us':>9}  {'new us':>9}  {'old/new':>7}")
    for pos in positions:
        block = np.frombuffer(struct.pack("<5Q7I4x", out.ctypes.data, q.ctypes.data, kc.ctypes.data,
                                          vc.ctypes.data, 0, pos, nh, nkv, hs, seq, kv_type,
                                          C["ATT_STYLE_GGML"]), np.uint8).copy()
        got = {}
        for name in (OLD, NEW):                      # the two agree bit for bit
            q[:] = q0
            native.call_many(img.address(name), [(block.ctypes.data, 0, nh)])
            got[name] = out.view(np.uint32).copy()
        if not np.array_equal(got[OLD], got[NEW]):
            print(f"bench_attention_ggml: pos {pos}: the two entries disagree", file=sys.stderr)
            return 1
        probe = native.Batch(img.address(OLD), [(block.ctypes.data, 0, nh)] * 4)
        t0 = time.perf_counter()
        probe.run()
        calls = max(4, int(args.seconds / max((time.perf_counter() - t0) / 4, 1e-7)))
        batches = {n: native.Batch(img.address(n), [(block.ctypes.data, 0, nh)] * calls) for n in (OLD, NEW)}
        best = {OLD: float("inf"), NEW: float("inf")}
        for _ in range(args.trials):
            for name in (OLD, NEW):
                t0 = clock()
                batches[name].run()
                best[name] = min(best[name], (clock() - t0) / calls)
        print(f"{pos:>5}  {best[OLD] * 1e6:>9.1f}  {best[NEW] * 1e6:>9.1f}  {best[OLD] / best[NEW]:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
