"""`peasm bench kernels`: the kernels' speed natively, as ratios to this host's bandwidth.

Absolute speeds on shared machines are noise (DESIGN.md, "Truth in tests"), so every figure
is set against a bandwidth measured in the same run, by the same kind of code:

1. bandwidth: `stream_read` (kernels_asm/stream.s) reads a pool far larger than the last-level
   cache (default max(256 MiB, 8 x LLC)) front to back, one core; best of `repeats` runs,
   measured at the start and again at the end (the larger is used: a neighbour's burst can
   only make a run slower).
2. matvec, `mode=streamed`: the pool is cut into as many matrices of the shape as fit, and the
   timed calls rotate through them, so between two uses of one matrix the whole pool has been
   read: every weight comes from DRAM, as in a real forward pass whose weights exceed the
   LLC. `gbs` = weight bytes / time, `bw_ratio` = gbs / bandwidth. numpy's matvec (its BLAS
   on one thread) runs the same rotation, for comparison.
3. ggml weight types (kernels_asm/ggml_*.s), `kernel=matvec_<type>`, streamed as in 2: the
   pool refilled with valid blocks of the type (random quants, f16 scales of ordinary size),
   the vector quantized once to the type's activation format; `gbs` = weight bytes / time
   (a Q4_0 row reads 18 bytes per 32 weights), `bw_ratio` = gbs / bandwidth. Shapes
   GGML_SHAPES (d x n) and a type's own GGML_TYPE_SHAPES, every runnable type, and next to
   Q4_0 / Q4_1 their "8 rows interleaved" forms (Q4_0_R8, Q4_1_R8: the same blocks packed
   by peasm/ggml_r8.py).
4. matvec `mode=hot` (one matrix, reused: cache-resident) and the other kernels at model
   shapes, always in cache: `gbs` = bytes the kernel reads and writes / time. Their
   bw_ratio can exceed 1; they are not bandwidth-bound, they say how far from it they are.

Calls are packed once and run in one trip from Python (peasm.runners.native.Batch), so
Python's overhead stays out of the figures. One line per measurement:

    kernel=matvec path=avx2 shape=2048x768 mode=streamed bytes=6291456 us=... gbs=... bw_ratio=...
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")   # numpy's BLAS on one core, like the kernels (set
                                        # before numpy loads; `peasm bench` imports us first)

import platform  # noqa: E402
import struct  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402

MATVEC_SHAPES = [(288, 288), (768, 768), (2048, 768), (768, 2048), (5632, 768), (768, 5632),
                 (32000, 288), (32000, 768)]
TARGET_SHAPES = [(2048, 768), (768, 2048), (32000, 768)]
TARGETS = {"avx2": 0.90, "sse2": 0.60}
HOT_SHAPES = [(288, 288), (768, 768)]
QUICK_SHAPES = [(288, 288), (768, 768), (2048, 768), (768, 2048), (5632, 768)]
GGML_SHAPES = [(2048, 2048), (5632, 2048)]
# and per type, model shapes of its own: SmolLM2-135M's tied Q8_0 classifier (49152 x 576)
GGML_TYPE_SHAPES = {"Q8_0": [(49152, 576)]}
QUICK_GGML_SHAPES = [(2048, 2048)]


class BenchError(Exception):
    """The benchmark cannot run here (no native execution, no AVX2 for an avx2 request...)."""


def llc_bytes() -> int:
    """Size of the largest CPU cache (sysfs), or 32 MiB when unknown."""
    best = 0
    for idx in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            text = (idx / "size").read_text().strip()
        except OSError:
            continue
        mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        try:
            best = max(best, int(text.rstrip("KMG")) * mult)
        except ValueError:
            continue
    return best or 32 << 20


@dataclass
class Result:
    kernel: str
    path: str
    shape: str
    mode: str
    nbytes: int           # bytes counted per call
    seconds: float        # per call
    bw: float             # bytes/s the ratio is taken against

    @property
    def gbs(self) -> float:
        return self.nbytes / self.seconds / 1e9

    @property
    def bw_ratio(self) -> float:
        return self.nbytes / self.seconds / self.bw

    def line(self) -> str:
        return (f"kernel={self.kernel} path={self.path} shape={self.shape} mode={self.mode} "
                f"bytes={self.nbytes} us={self.seconds * 1e6:.2f} gbs={self.gbs:.2f} "
                f"bw_ratio={self.bw_ratio:.3f}")


# The clock of every timing: wall-clock by default; `cpu_time=True` takes this thread's CPU
# time instead (the kernels run in this thread), which a busy shared host's time-slicing
# does not inflate (memory bandwidth is still shared).
_clock: Callable[[], float] = time.perf_counter


def _best_time(run: Callable[[], object], calls: int, repeats: int) -> float:
    """Seconds per call: the best of `repeats` timed runs of `calls` calls."""
    best = float("inf")
    for _ in range(repeats):
        t0 = _clock()
        run()
        best = min(best, _clock() - t0)
    return best / calls


class KernelBench:
    def __init__(self, *, pool_mib: int | None = None, seconds: float = 0.3, repeats: int = 3,
                 out: Callable[[str], None] = print):
        from peasm.runners import native
        from peasm.runners.kernels import kernels_image

        ok, why = native.supported()
        if not ok:
            raise BenchError(why)
        self.native = native
        self.img = native.NativeImage(kernels_image())
        self.seconds = seconds
        self.repeats = repeats
        self.out = out
        self.llc = llc_bytes()
        self.pool_bytes = (pool_mib << 20) if pool_mib else max(256 << 20, 8 * self.llc)
        self.pool = np.empty(self.pool_bytes // 4 + 16, np.float32)
        rng = np.random.default_rng(0)
        step = 1 << 22
        for i in range(0, self.pool.size, step):   # random weights (no zeros, no denormals)
            chunk = self.pool[i:i + step]
            chunk[:] = rng.standard_normal(chunk.size, dtype=np.float32)
        self.base = (self.pool.ctypes.data + 63) // 64 * 64
        self.scratch = np.zeros(1 << 20, np.float32)   # vectors and outputs (in cache)
        self.bw = 0.0
        self.results: list[Result] = []

    # -- plumbing -----------------------------------------------------------------------

    def addr(self, symbol: str) -> int:
        return self.img.address(symbol)

    def timed(self, symbol: str, make_args: Callable[[int], tuple], bytes_per_call: int) -> float:
        """Seconds per call of `symbol`, with call i's args from make_args(i); the number of
        calls is picked so that one timed run lasts about `self.seconds`."""
        address = self.addr(symbol)
        probe = self.native.Batch(address, [make_args(i) for i in range(4)])
        t = _best_time(probe.run, 4, 1)
        calls = max(4, min(200_000, int(self.seconds / max(t, 1e-9))))
        batch = self.native.Batch(address, [make_args(i) for i in range(calls)])
        batch.run()   # warm-up: code, TLB, caches for the hot cases
        return _best_time(batch.run, calls, self.repeats)

    def emit(self, result: Result) -> None:
        self.results.append(result)
        self.out(result.line())

    # -- measurements -------------------------------------------------------------------

    def bandwidth(self, paths: list[str], when: str) -> float:
        """Measure stream_read on each path (a line each); the best rate found."""
        found = 0.0
        for path in paths:
            sec = self.timed(f"stream_read_{path}", lambda i: (self.base, self.pool_bytes), self.pool_bytes)
            found = max(found, self.pool_bytes / sec)
            self.emit(Result("stream_read", path, f"{self.pool_bytes}B", when, self.pool_bytes, sec,
                             self.bw or self.pool_bytes / sec))
        return found

    def bandwidth_cores(self, path: str, cores: int, *, calls: int = 4) -> float:
        """Bytes/s that `cores` host threads read together: the pool cut into `cores` equal
        parts, thread k running stream_read over part k `calls` times (ctypes lets go of the
        GIL during the calls, so the threads read at once); total bytes / the slowest
        thread's wall time, best of `repeats` runs. With cores=1 the same as bandwidth().
        This is the ceiling of a memory-bound decode on that many cores: on a host whose
        cores share one memory controller it is well under `cores` x one core's rate."""
        import threading

        if cores < 1:
            raise ValueError("cores: 1 or more")
        part = self.pool_bytes // cores // 64 * 64
        address = self.addr(f"stream_read_{path}")
        batches = [self.native.Batch(address, [(self.base + k * part, part)] * calls)
                   for k in range(cores)]
        for b in batches:
            b.run()                   # warm-up: pages and TLB
        best = float("inf")
        for _ in range(self.repeats):
            threads = [threading.Thread(target=b.run) for b in batches]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            best = min(best, time.perf_counter() - t0)
        return part * cores * calls / best

    def matvec(self, path: str, d: int, n: int, mode: str) -> Result:
        mat = 4 * d * n
        x = self.scratch[:n]
        out = self.scratch[8192:8192 + d] if d <= len(self.scratch) - 8192 else np.zeros(d, np.float32)
        if mode == "streamed":
            count = max(1, self.pool_bytes // mat)
            mats = [self.base + (i % count) * mat for i in range(count)]
        else:
            mats = [self.base]
        sec = self.timed(f"matvec_{path}",
                         lambda i: (out.ctypes.data, mats[i % len(mats)], x.ctypes.data, n, d), mat)
        return Result("matvec", path, f"{d}x{n}", mode, mat, sec, self.bw)

    def matvec_numpy(self, d: int, n: int) -> Result:
        mat = 4 * d * n
        count = max(1, self.pool_bytes // mat)
        W = [np.ndarray((d, n), np.float32, buffer=self.pool, offset=(self.base - self.pool.ctypes.data) + i * mat)
             for i in range(count)]
        x = self.scratch[:n].copy()
        out = np.zeros(d, np.float32)
        probe_t0 = _clock()
        for i in range(4):
            np.matmul(W[i % count], x, out=out)
        per = (_clock() - probe_t0) / 4
        calls = max(4, min(100_000, int(self.seconds / max(per, 1e-9))))

        def run():
            for i in range(calls):
                np.matmul(W[i % count], x, out=out)

        run()
        sec = _best_time(run, calls, self.repeats)
        return Result("matvec", "numpy", f"{d}x{n}", "streamed", mat, sec, self.bw)

    def fill_pool_ggml(self, type_name: str) -> None:
        """The pool as blocks of a ggml type: a random 1 MiB pattern of valid blocks (f16
        scales of ordinary size, so no inf/NaN/subnormal arithmetic), repeated."""
        from peasm import ggml

        if getattr(self, "_pool_type", None) == type_name:
            return
        t = ggml.BY_NAME[type_name]
        rng = np.random.default_rng(t.id)
        if t.block_size == 1:
            w = rng.standard_normal((1 << 20) // t.block_bytes).astype(np.float32)
            pattern = (w.astype(np.float16).view(np.uint8) if type_name == "F16" else
                       (w.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
                       if type_name == "BF16" else w.view(np.uint8))
        else:
            base = t.base or type_name           # an R8 type: its base type's blocks, packed
            blocks = rng.integers(0, 256, ((1 << 20) // t.block_bytes // 8 * 8, t.block_bytes),
                                  dtype=np.uint8)
            scales = (rng.uniform(0.001, 0.02, (blocks.shape[0], 2)) *
                      rng.choice([-1, 1], (blocks.shape[0], 2))).astype(np.float16)
            scales[:, 0] = np.abs(scales[:, 0])
            blocks[:, 0:4 if base in ("Q4_1", "Q5_1") else 2] = \
                scales.view(np.uint8)[:, 0:4 if base in ("Q4_1", "Q5_1") else 2]
            if base == "Q8_0":
                blocks[:, 2:] = np.clip(blocks[:, 2:].view(np.int8), -127, 127).view(np.uint8)
            pattern = blocks.reshape(-1)
            if t.base:                           # rows of one block: groups of 8 blocks,
                from peasm import ggml_r8        # valid R8 bytes for any row length

                pattern = np.frombuffer(ggml_r8.pack(pattern, base, blocks.shape[0], t.block_size),
                                        np.uint8)
        pool = self.pool.view(np.uint8)[self.base - self.pool.ctypes.data:]
        pool = pool[:self.pool_bytes]
        for i in range(0, pool.size, pattern.size):
            chunk = pool[i:i + pattern.size]
            chunk[:] = pattern[:chunk.size]
        self._pool_type = type_name

    def matvec_ggml(self, path: str, type_name: str, d: int, n: int) -> Result:
        """matvec_<type>_<path> streamed over the pool (see the module docstring, 3.)."""
        from peasm import ggml

        t = ggml.BY_NAME[type_name]
        self.fill_pool_ggml(type_name)
        mat = d * n // t.block_size * t.block_bytes
        count = max(1, self.pool_bytes // mat)
        mats = [self.base + (i % count) * mat for i in range(count)]
        x = self.scratch[:n]
        x[:] = np.random.default_rng(2).standard_normal(n, dtype=np.float32)
        xq = self.scratch[100_000:100_000 + n + 64]        # room for any activation format
        if t.vec_dot_type == "F32":
            xq[:n] = x
        else:
            quantize = self.addr(f"quantize_row_{t.vec_dot_type.lower()}_{path}")
            self.native.call(quantize, xq.ctypes.data, x.ctypes.data, n)
        out = self.scratch[200_000:200_000 + d]
        body_name = ggml.body_symbol(t, "matvec", path)
        sec = self.timed(body_name, lambda i: (out.ctypes.data, mats[i % len(mats)], xq.ctypes.data, n, d), mat)
        return Result(f"matvec_{type_name.lower()}", path, f"{d}x{n}", "streamed", mat, sec, self.bw)

    def small_kernels(self, path: str) -> None:
        s = self.scratch
        a = s.ctypes.data                      # 4 MiB of scratch, in cache at these sizes
        f = 4

        def emit(kernel, shape, nbytes, symbol, args):
            sec = self.timed(symbol, lambda i: args, nbytes)
            self.emit(Result(kernel, path, shape, "hot", nbytes, sec, self.bw))

        rng = np.random.default_rng(1)
        s[:200_000] = rng.standard_normal(200_000, dtype=np.float32)
        # in-place kernels run again and again on their own output: keep it from drifting
        # into subnormals (slow) -- swiglu's a near its fixed point 20 with b = 1, scale by 1
        swig_a, swig_b = s[300_000:306_000], s[310_000:316_000]
        swig_a[:] = 20.0
        swig_b[:] = 1.0
        for n in (288, 768, 2048):
            emit("rmsnorm", str(n), 3 * f * n, f"rmsnorm_{path}", (a + 600_000, a, a + f * n, n, 1e-5))
        for n in (256, 1024, 32000):
            emit("softmax", str(n), 2 * f * n, f"softmax_{path}", (a + 600_000, n))
        for n in (768, 2048, 5632):
            emit("swiglu", str(n), 3 * f * n, f"swiglu_{path}", (swig_a.ctypes.data, swig_b.ctypes.data, n))
        emit("expf", "32000", 2 * f * 32000, f"expf_{path}", (a + 600_000, a, 32000))
        for n in (288, 768):
            emit("add", str(n), 3 * f * n, f"add_{path}", (a + 600_000, a, n))
        emit("scale", "32000", 2 * f * 32000, f"scale_{path}", (a + 600_000, 32000, 1.0))
        for n in (48, 64, 768):
            emit("dot", str(n), 2 * f * n, f"dot_{path}", (a, a + 4 * n, n))
            emit("axpy", str(n), 3 * f * n, f"axpy_{path}", (a + 600_000, a, n, 0.5))
        emit("argmax", "32000", f * 32000, f"argmax_{path}", (a, 32000))
        table = a + 2_000_000
        self.native.call(self.addr("rope_table_x87"), table, 100, 48)
        emit("rope_apply", "288/48", 2 * f * 288 + 8 * 48, f"rope_apply_{path}", (a + 600_000, table, 288, 48))
        emit("rope_table", "48", 8 * 48, "rope_table_x87", (table, 100, 48))
        # attention, stories15M-like: 6 heads of 48, pos 255 of 256: keys and values read
        n_heads, hs, seq, pos = 6, 48, 256, 255
        kv = n_heads * hs
        kc, vc = a + 1_000_000, a + 1_000_000 + 4 * seq * kv
        params = self.scratch[3_000_000 // 4:3_000_000 // 4 + 18]      # ATT_SIZE: 72 bytes
        block = struct.pack("<5Q5I12x", a + 700_000, a, kc, vc, a + 800_000, pos, n_heads, n_heads, hs, seq)
        params.view(np.uint8)[:72] = np.frombuffer(block, np.uint8)
        emit("attention", f"{n_heads}x{hs}@{pos + 1}", 2 * f * (pos + 1) * kv, f"attention_{path}",
             (params.ctypes.data,))
        # the same and SmolLM2's shape (9 heads of 64 on 3 KV heads, pos 511) with f32 and f16
        # caches (ATT_KV_TYPE 0 / 1: GGML_TYPE_F32 / F16); bytes: the cache rows read
        cache = s.view(np.uint8)[1_000_000:1_000_000 + 2 * 4 * 512 * 192]
        values = {4: rng.standard_normal(cache.size // 4, dtype=np.float32).view(np.uint8),
                  2: rng.standard_normal(cache.size // 2).astype(np.float16).view(np.uint8)}
        for n_heads, n_kv, hs, seq in ((6, 6, 48, 256), (9, 3, 64, 512)):
            pos, kv = seq - 1, n_kv * hs
            # ATT_STYLE 0: llama2.c's arithmetic; 1 (SmolLM2's shape, f16): ggml's flash attention
            for kv_type, el, style in ((0, 4, 0), (1, 2, 0)) + (((1, 2, 1),) if n_kv == 3 else ()):
                cache[:] = values[el]
                kc, vc = a + 1_000_000, a + 1_000_000 + el * seq * kv
                block = struct.pack("<5Q7I4x", a + 700_000, a, kc, vc, a + 800_000, pos, n_heads, n_kv, hs, seq,
                                    kv_type, style)
                params.view(np.uint8)[:72] = np.frombuffer(block, np.uint8)
                emit("attention_" + ("ggml_" if style else "") + ("f32" if kv_type == 0 else "f16"),
                     f"{n_heads}/{n_kv}x{hs}@{pos + 1}", 2 * el * (pos + 1) * kv, f"attention_{path}",
                     (params.ctypes.data,))


def run_kernels_bench(paths: list[str] | None = None, *, pool_mib: int | None = None,
                      seconds: float = 0.3, repeats: int = 3, quick: bool = False,
                      cpu_time: bool = False,
                      only: list[str] | None = None, out: Callable[[str], None] = print) -> list[Result]:
    """Run the benchmark, printing one line per measurement (see the module docstring)."""
    global _clock
    from peasm.runners import native

    _clock = time.thread_time if cpu_time else time.perf_counter

    avx2_ok = native.host_has_avx2_fma()
    if paths is None:
        paths = ["avx2", "sse2"] if avx2_ok else ["sse2"]
    if "avx2" in paths and not avx2_ok:
        raise BenchError("this CPU has no AVX2+FMA: only --path sse2 can run here")
    if quick:
        pool_mib, seconds, repeats = pool_mib or 48, min(seconds, 0.02), 1
    bench = KernelBench(pool_mib=pool_mib, seconds=seconds, repeats=repeats, out=out)
    want = set(only or ["matvec", "numpy", "others", "ggml", "kquant", "matmat"])
    out(f"# host: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()}; "
        f"llc={bench.llc >> 20} MiB; pool={bench.pool_bytes >> 20} MiB; "
        f"numpy BLAS threads={os.environ.get('OPENBLAS_NUM_THREADS')}; "
        f"clock={'this thread CPU time' if cpu_time else 'wall'}")
    bench.bw = bench.bandwidth(paths, "start")
    shapes = QUICK_SHAPES if quick else MATVEC_SHAPES
    too_big = [(d, n) for d, n in shapes if 4 * d * n > bench.pool_bytes]
    if too_big:
        out(f"# skipped (larger than the pool): {', '.join(f'{d}x{n}' for d, n in too_big)}")
        shapes = [s for s in shapes if s not in too_big]
    if "matvec" in want:
        for path in paths:
            for d, n in shapes:
                bench.emit(bench.matvec(path, d, n, "streamed"))
            for d, n in HOT_SHAPES:
                bench.emit(bench.matvec(path, d, n, "hot"))
    if "numpy" in want:
        for d, n in shapes:
            bench.emit(bench.matvec_numpy(d, n))
    if "others" in want:
        for path in paths:
            bench.small_kernels(path)
    if "ggml" in want:                     # last: it refills the pool with blocks
        from peasm import ggml

        ggml_shapes = [s for s in (QUICK_GGML_SHAPES if quick else GGML_SHAPES)
                       if 4 * s[0] * s[1] <= bench.pool_bytes]
        for t in ggml.TYPES:
            if not ggml.runnable(t) or t.block_size == 256:   # K-quants: the kquant part
                continue
            own = [] if quick else [s for s in GGML_TYPE_SHAPES.get(t.name, [])
                                    if s[0] * s[1] // t.block_size * t.block_bytes <= bench.pool_bytes]
            for path in paths:
                for d, n in ggml_shapes + own:
                    bench.emit(bench.matvec_ggml(path, t.name, d, n))
            for r8 in ggml.INTERNAL_TYPES:     # its R8 form next to it (peasm/ggml_r8.py)
                for path in paths:
                    if r8.base == t.name and ggml.body_symbol(r8, "matvec", path):
                        for d, n in ggml_shapes:
                            bench.emit(bench.matvec_ggml(path, r8.name, d, n))
    if "kquant" in want:
        from peasm import bench_kquant

        bench_kquant.run(bench, paths, quick=quick, out=out)
    if "matmat" in want:                   # refills the pool with each type's blocks
        from peasm import bench_matmat

        bench_matmat.run(bench, paths, quick=quick, out=out)
    end_bw = bench.bandwidth(paths, "end")
    out(f"# bandwidth: {bench.bw / 1e9:.2f} GB/s at the start (the reference of every bw_ratio), "
        f"{end_bw / 1e9:.2f} GB/s at the end; best of {repeats} runs of stream_read over the pool")
    for path in paths:
        got = [r for r in bench.results if r.kernel == "matvec" and r.path == path and r.mode == "streamed"
               and tuple(map(int, r.shape.split("x"))) in TARGET_SHAPES]
        if got:
            worst = min(r.bw_ratio for r in got)
            verdict = "met" if worst >= TARGETS[path] else "NOT met"
            out(f"# target matvec {path} bw_ratio >= {TARGETS[path]:.2f} at "
                f"{', '.join(r.shape for r in got)}: worst {worst:.3f} ({verdict})")
    return bench.results
