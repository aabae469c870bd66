"""The math kernels (kernels_asm) from Python: one façade over unicorn and native machines.

    k = open_kernels("unicorn")            # SSE2 bodies, guard pages, ABI checks
    k = open_kernels("native", "avx2")     # the host CPU, AVX2/FMA bodies (or "sse2")
    out = k.matvec(W, x)                   # numpy in, numpy out
    y = k.dequantize("Q4_0", blocks, n)    # ggml types (peasm/ggml.py): bodies found through
    xq = k.quantize("Q8_0", x)             # ggml_type_body after kernels_init, as the app
    out = k.matvec_q("Q4_0", W, xq, n, d)  # finds them

Each operation copies its inputs into fresh machine buffers (each between guard pages under
unicorn, and natively too unless `guard=False`), calls the body of the chosen path by
symbol (`matvec_sse2`, ...; see kernels_asm/kernels.inc for every contract), copies the
results out and frees the buffers. Tests and `peasm bench kernels` both use it.
"""
from __future__ import annotations

import struct
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from peasm.linker import LinkedImage, link, load_manifest

PATHS = ("sse2", "avx2")
PATH_IDS = {"sse2": 1, "avx2": 2}
# the dispatch table's entries (kernels.inc), in order
TABLE = ("matvec", "rmsnorm", "softmax", "expf", "swiglu", "add", "scale", "axpy", "dot",
         "argmax", "rope_table", "rope_apply", "attention", "stream_read")
# efi_stubs/runtime.inc CPU_* bits
CPU_SSE2, CPU_AVX, CPU_AVX2, CPU_FMA, CPU_F16C = 1, 2, 4, 8, 64
ATT_SIZE = 72


def manifest_path() -> Path:
    """kernels_asm/kernels.toml, where the package's data lives."""
    try:
        path = Path(str(resources.files("kernels_asm") / "kernels.toml"))
        if path.is_file():
            return path
    except (NotADirectoryError, TypeError):
        pass  # an editable install made before kernels_asm had its __init__.py: a namespace
    import kernels_asm

    for entry in getattr(kernels_asm, "__path__", []):
        path = Path(str(entry)) / "kernels.toml"
        if path.is_file():
            return path
    raise FileNotFoundError("kernels_asm/kernels.toml not found (broken installation?)")


@lru_cache(maxsize=4)
def kernels_image(backend: str = "keystone") -> LinkedImage:
    """kernels_asm linked alone (entry kernels_init), cached per backend."""
    m = load_manifest(manifest_path())
    return link(m.sources, m.entry, backend=backend, include_dirs=m.include_dirs)


def body(name: str, path: str) -> str:
    """The symbol of a kernel's body on a path (rope_table is x87, shared by both)."""
    if path not in PATHS:
        raise ValueError(f"unknown path {path!r} (use one of {PATHS})")
    if name == "rope_table":
        return "rope_table_x87"
    if name == "rmsnorm_ggml":
        return "rmsnorm_ggml_sse2"        # one body: ggml's two builds round alike here
    if name == "rope_apply_ggml" and path == "sse2":
        return "rope_apply_sse2"          # ggml's SSE2 build rounds as llama2.c's rotation does
    return f"{name}_{path}"


def f32_bits(value: float) -> int:
    return struct.unpack("<I", struct.pack("<f", float(value)))[0]


# ----------------------------------------------------------------------------------------
# machines: alloc/write/read/free_all/address/call


class NativeKernelMachine:
    """The kernels in host memory, called through native.call (ABI sentinels checked)."""

    where_name = "native"

    def __init__(self, image: LinkedImage, *, guard: bool = True):
        from peasm.runners import native

        self._native = native
        self.loaded = native.NativeImage(image)
        self.guard = guard
        self._bufs: list = []

    def alloc(self, nbytes: int, name: str = "") -> int:
        if self.guard:
            buf = self._native.GuardedBuffer(nbytes, name=name)
        else:
            buf = np.empty(max(nbytes, 4) // 4 + 1, np.float32)
        self._bufs.append(buf)
        return buf.address if self.guard else buf.ctypes.data

    def write(self, address: int, data: bytes) -> None:
        self._native.write_memory(address, data)

    def read(self, address: int, size: int) -> bytes:
        return self._native.read_memory(address, size)

    def address(self, symbol: str) -> int:
        return self.loaded.address(symbol)

    def free_all(self) -> None:
        for b in self._bufs:
            if self.guard:
                b.free()
        self._bufs.clear()

    def call(self, function: str | int, *args):
        address = self.address(function) if isinstance(function, str) else function
        return self._native.call(address, *args, where=self.loaded.where)

    def start_workers(self, count: int) -> None:
        """`count` more host threads running k_par_worker (kernels_asm/parallel.s), numbered
        on from those already started."""
        threads = self.__dict__.setdefault("_threads", [])
        for _ in range(count):
            threads.append(self._native.HostThread(self.address("k_par_worker"), len(threads)))

    def stop_workers(self) -> None:
        """Every worker thread leaves its loop (k_par_quit) and is joined; the board is ready
        for new workers."""
        threads = self.__dict__.get("_threads", [])
        if not threads:
            return
        self.call("k_par_quit", 1)
        for t in threads:
            t.join()
        threads.clear()
        self.call("k_par_quit", 0)
        self.call("k_par_set_workers", 0)


def open_machine(where: str = "unicorn", *, guard: bool = True, backend: str = "keystone"):
    image = kernels_image(backend)
    if where == "unicorn":
        from peasm.runners.unicorn_kernels import UnicornKernelMachine

        return UnicornKernelMachine(image)
    if where == "native":
        return NativeKernelMachine(image, guard=guard)
    raise ValueError(f"unknown machine {where!r} (unicorn or native)")


def open_kernels(where: str = "unicorn", path: str | None = None, **kw) -> "Kernels":
    """Kernels on a machine: unicorn runs the SSE2 bodies only; native runs either."""
    path = path or ("sse2" if where == "unicorn" else "avx2")
    if where == "unicorn" and path != "sse2":
        raise ValueError("unicorn cannot execute AVX: only the sse2 path runs there")
    return Kernels(open_machine(where, **kw), path)


# ----------------------------------------------------------------------------------------


def _f32(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


class Kernels:
    """numpy-level operations on one machine and path."""

    def __init__(self, machine, path: str, *, misalign: int = 0):
        if path not in PATHS:
            raise ValueError(f"unknown path {path!r}")
        self.m = machine
        self.path = path
        # 0: every input's end is flush against a guard page (a 1-element overrun faults).
        # k > 0: k bytes of slack after each input, so that inputs whose size is a multiple
        # of 16 start k bytes off alignment (to try unaligned pointers on any length).
        self.misalign = misalign

    def __repr__(self) -> str:
        return f"Kernels({self.m.where_name}, {self.path})"

    # -- plumbing -----------------------------------------------------------------------

    def put(self, array, name: str) -> int:
        a = np.ascontiguousarray(array)
        address = self.m.alloc(a.nbytes + self.misalign, name)
        if a.nbytes:
            self.m.write(address, a.tobytes())
        return address

    def get(self, address: int, count: int, dtype=np.float32) -> np.ndarray:
        dtype = np.dtype(dtype)
        if count == 0:
            return np.zeros(0, dtype)
        return np.frombuffer(self.m.read(address, count * dtype.itemsize), dtype=dtype).copy()

    def run(self, name: str, *args):
        """Call the body of kernel `name` on this path (args: ints, addresses, floats)."""
        return self.m.call(body(name, self.path), *args)

    def _done(self):
        self.m.free_all()

    # -- the kernels --------------------------------------------------------------------

    def matvec(self, W, x) -> np.ndarray:
        W, x = _f32(W), _f32(x)
        d, n = W.shape
        try:
            pw, px, po = self.put(W, "W"), self.put(x, "x"), self.m.alloc(4 * d, "out")
            self.run("matvec", po, pw, px, n, d)
            return self.get(po, d)
        finally:
            self._done()

    def rmsnorm(self, x, weight, eps: float = 1e-5, *, inplace: bool = False) -> np.ndarray:
        x, weight = _f32(x), _f32(weight)
        n = x.size
        try:
            px, pw = self.put(x, "x"), self.put(weight, "weight")
            po = px if inplace else self.m.alloc(4 * n, "out")
            self.run("rmsnorm", po, px, pw, n, f32_bits(eps))
            return self.get(po, n)
        finally:
            self._done()

    def rmsnorm_ggml(self, x, weight, eps: float = 1e-5) -> np.ndarray:
        """k_rmsnorm_ggml: llama.cpp's RMSNorm (rmsnorm_ggml.s)."""
        x, weight = _f32(x), _f32(weight)
        try:
            px, pw = self.put(x, "x"), self.put(weight, "weight")
            po = self.m.alloc(4 * x.size, "out")
            self.run("rmsnorm_ggml", po, px, pw, x.size, f32_bits(eps))
            return self.get(po, x.size)
        finally:
            self._done()

    def softmax(self, x) -> np.ndarray:
        x = _f32(x)
        try:
            px = self.put(x, "x")
            self.run("softmax", px, x.size)
            return self.get(px, x.size)
        finally:
            self._done()

    def expf(self, x, *, inplace: bool = False) -> np.ndarray:
        x = _f32(x)
        try:
            px = self.put(x, "x")
            po = px if inplace else self.m.alloc(4 * x.size, "out")
            self.run("expf", po, px, x.size)
            return self.get(po, x.size)
        finally:
            self._done()

    def swiglu(self, a, b) -> np.ndarray:
        a, b = _f32(a), _f32(b)
        try:
            pa, pb = self.put(a, "a"), self.put(b, "b")
            self.run("swiglu", pa, pb, a.size)
            return self.get(pa, a.size)
        finally:
            self._done()

    def swiglu_ggml(self, a, b) -> np.ndarray:
        a, b = _f32(a), _f32(b)
        try:
            pa, pb = self.put(a, "a"), self.put(b, "b")
            self.run("swiglu_ggml", pa, pb, a.size)
            return self.get(pa, a.size)
        finally:
            self._done()

    def add(self, dst, src) -> np.ndarray:
        dst, src = _f32(dst), _f32(src)
        try:
            pd, ps = self.put(dst, "dst"), self.put(src, "src")
            self.run("add", pd, ps, dst.size)
            return self.get(pd, dst.size)
        finally:
            self._done()

    def scale(self, x, s: float) -> np.ndarray:
        x = _f32(x)
        try:
            px = self.put(x, "x")
            self.run("scale", px, x.size, float(s))
            return self.get(px, x.size)
        finally:
            self._done()

    def axpy(self, y, x, a: float) -> np.ndarray:
        y, x = _f32(y), _f32(x)
        try:
            py, px = self.put(y, "y"), self.put(x, "x")
            self.run("axpy", py, px, y.size, float(a))
            return self.get(py, y.size)
        finally:
            self._done()

    def dot(self, a, b) -> float:
        a, b = _f32(a), _f32(b)
        try:
            pa, pb = self.put(a, "a"), self.put(b, "b")
            return self.run("dot", pa, pb, a.size).f32
        finally:
            self._done()

    def argmax(self, x) -> int:
        x = _f32(x)
        try:
            px = self.put(x, "x")
            return self.run("argmax", px, x.size).eax
        finally:
            self._done()

    def rope_table(self, pos: int, head_size: int) -> np.ndarray:
        try:
            pt = self.m.alloc(8 * head_size, "table")
            self.run("rope_table", pt, pos, head_size)
            return self.get(pt, 2 * head_size)
        finally:
            self._done()

    def rope_table_ggml(self, pos: int, head_size: int, n_rot: int, theta_scale: float,
                        freq_factors=None, style: int = 0) -> np.ndarray:
        """ggml's RoPE table for one position (rope_ggml.s): 2*head_size floats, C then S."""
        try:
            pt = self.m.alloc(8 * head_size, "table")
            pf = 0 if freq_factors is None else self.put(_f32(freq_factors), "factors")
            self.run("rope_table_ggml", pt, pos, head_size, n_rot,
                     f32_bits(np.float32(theta_scale)), pf, style)
            return self.get(pt, 2 * head_size)
        finally:
            self._done()

    def rope_apply_ggml(self, v, table, head_size: int) -> np.ndarray:
        """k_rope_apply_ggml: GGUF "norm" pairs rotated with ggml's arithmetic."""
        v, table = _f32(v), _f32(table)
        try:
            pv, pt = self.put(v, "v"), self.put(table, "table")
            self.run("rope_apply_ggml", pv, pt, v.size, head_size)
            return self.get(pv, v.size)
        finally:
            self._done()

    def rope_apply_neox(self, v, table, head_size: int, n_rot: int) -> np.ndarray:
        """k_rope_apply_neox: (i, i + n_rot/2) rotated per head with ggml's arithmetic."""
        v, table = _f32(v), _f32(table)
        try:
            pv, pt = self.put(v, "v"), self.put(table, "table")
            self.run("rope_apply_neox", pv, pt, v.size, head_size, n_rot)
            return self.get(pv, v.size)
        finally:
            self._done()

    def rope_apply(self, v, table, head_size: int) -> np.ndarray:
        v, table = _f32(v), _f32(table)
        try:
            pv, pt = self.put(v, "v"), self.put(table, "table")
            self.run("rope_apply", pv, pt, v.size, head_size)
            return self.get(pv, v.size)
        finally:
            self._done()

    def rope(self, q, k, pos: int, head_size: int) -> tuple[np.ndarray, np.ndarray]:
        """llama2.c's RoPE for one position: the table, then q and k rotated with it."""
        q, k = _f32(q), _f32(k)
        try:
            pt = self.m.alloc(8 * head_size, "table")
            pq, pk = self.put(q, "q"), self.put(k, "k")
            self.m.call("rope_table_x87", pt, pos, head_size)
            self.run("rope_apply", pq, pt, q.size, head_size)
            self.run("rope_apply", pk, pt, k.size, head_size)
            return self.get(pq, q.size), self.get(pk, k.size)
        finally:
            self._done()

    def attention(self, q, key_cache, value_cache, pos: int, n_heads: int, n_kv_heads: int,
                  head_size: int, seq_len: int, style: int = 0,
                  entry: str | None = None,
                  ranges: list[tuple[int, int]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(out, att): out (n_heads*head_size), att (n_heads, seq_len) with rows' first
        pos+1 entries the softmaxed scores. Caches are (seq_len, kv_dim), both float16 (an f16
        cache: ATT_KV_TYPE = GGML_TYPE_F16) or else taken as f32. style: ATT_STYLE (0: llama2.c's
        arithmetic; 1: ggml's flash attention, which leaves att alone and rounds q to f16 in
        its copy here when the cache is f16). entry: a heads entry's symbol to call instead of
        the path's body, as (params, first head, heads) for each (first, heads) of `ranges`
        (default: all heads at once), e.g. attention_ggml_heads_avx2_keywise (the reference
        the tests compare with), or attention_heads_avx2 as parallel.s shares heads out."""
        f16 = np.asarray(key_cache).dtype == np.float16 and np.asarray(value_cache).dtype == np.float16
        q = _f32(q)
        if f16:
            kc, vc, kv_type = np.ascontiguousarray(key_cache), np.ascontiguousarray(value_cache), 1
        else:
            kc, vc, kv_type = _f32(key_cache), _f32(value_cache), 0
        dim = n_heads * head_size
        try:
            po = self.m.alloc(4 * dim, "out")
            pq, pk, pv = self.put(q, "q"), self.put(kc, "key_cache"), self.put(vc, "value_cache")
            pa = self.m.alloc(4 * n_heads * seq_len, "att")
            self.m.write(pa, bytes(4 * n_heads * seq_len))
            block = struct.pack("<5Q7I4x", po, pq, pk, pv, pa, pos, n_heads, n_kv_heads, head_size, seq_len,
                                kv_type, style)
            pp = self.put(np.frombuffer(block, np.uint8), "params")
            if entry is None:
                self.run("attention", pp)
            else:
                for first, count in ranges or [(0, n_heads)]:
                    self.m.call(entry, pp, first, count)
            return self.get(po, dim), self.get(pa, n_heads * seq_len).reshape(n_heads, seq_len)
        finally:
            self._done()

    def par_matvec(self, W, x, workers: int) -> np.ndarray:
        """out = W @ x through k_par_rows (kernels_asm/parallel.s) with this path's matvec body,
        `workers` of the machine's started workers taking chunks (0: the calling core alone)."""
        W, x = _f32(W), _f32(x)
        d, n = W.shape
        try:
            pw, px, po = self.put(W, "W"), self.put(x, "x"), self.m.alloc(4 * d, "out")
            self.m.call("k_par_set_workers", workers)
            self.m.call("k_par_rows", self.m.address(body("matvec", self.path)), po, pw, px, n, d, 4 * n, 1)
            return self.get(po, d)
        finally:
            self.m.call("k_par_set_workers", 0)
            self._done()

    # -- ggml types (kernels_asm/ggml_*.s; peasm/ggml.py declares the table) ------------

    def ggml_body(self, type_name: str | int, kind: str) -> int:
        """The body of a ggml type for `kind` (to_float, from_float, matvec) on this path, as
        the program finds it: kernels_init for the path, then ggml_type_body(id, kind)."""
        from peasm import ggml

        t = ggml.BY_NAME[type_name] if isinstance(type_name, str) else ggml.BY_ID[type_name]
        key = (t.id, kind)
        cache = self.__dict__.setdefault("_ggml_bodies", {})
        if key not in cache:
            bits = CPU_SSE2 if self.path == "sse2" else CPU_SSE2 | CPU_AVX | CPU_AVX2 | CPU_FMA | CPU_F16C
            got = self.m.call("kernels_init", bits, PATH_IDS[self.path]).eax
            if got != PATH_IDS[self.path]:
                raise RuntimeError(f"kernels_init chose path {got}, not {self.path}")
            offset = ggml.BODY_KINDS.index(kind) * 8
            cache[key] = self.m.call("ggml_type_body", t.id, offset).rax
        if not cache[key]:
            raise ValueError(f"ggml type {t.name} has no {kind} body")
        return cache[key]

    def dequantize(self, type_name: str | int, blocks: bytes, n: int) -> np.ndarray:
        """to_float: n f32 from the type's blocks (n a multiple of its block size)."""
        body_address = self.ggml_body(type_name, "to_float")
        try:
            pb = self.put(np.frombuffer(bytes(blocks), np.uint8), "blocks")
            po = self.m.alloc(4 * n, "out")
            self.m.call(body_address, po, pb, n)
            return self.get(po, n)
        finally:
            self._done()

    def quantize(self, type_name: str | int, x) -> bytes:
        """from_float: x (f32, length a multiple of the block size) as the type's blocks."""
        from peasm import ggml

        t = ggml.BY_NAME[type_name] if isinstance(type_name, str) else ggml.BY_ID[type_name]
        body_address = self.ggml_body(t.id, "from_float")
        x = _f32(x)
        size = x.size // t.block_size * t.block_bytes
        try:
            px = self.put(x, "x")
            po = self.m.alloc(size, "out")
            self.m.call(body_address, po, px, x.size)
            return self.m.read(po, size) if size else b""
        finally:
            self._done()

    def matvec_q(self, type_name: str | int, W: bytes, xq: bytes, n: int, d: int) -> np.ndarray:
        """matvec: d rows of W (the type's blocks, n elements a row) times xq (n elements in
        the type's vec_dot_type): d f32."""
        body_address = self.ggml_body(type_name, "matvec")
        try:
            pw = self.put(np.frombuffer(bytes(W), np.uint8), "W")
            px = self.put(np.frombuffer(bytes(xq), np.uint8), "xq")
            po = self.m.alloc(4 * d, "out")
            self.m.call(body_address, po, pw, px, n, d)
            return self.get(po, d)
        finally:
            self._done()

    def matmat_q(self, type_name: str | int, W: bytes, xq: bytes, n: int, d: int, B: int,
                 xq_stride: int, out_stride: int) -> np.ndarray:
        """matmat: d rows of W times B inputs, input b at xq[b * xq_stride:] (each n elements
        in the type's vec_dot_type); returns the whole out buffer, (B - 1) * out_stride + 4 * d
        bytes as f32 (row i of input b at [b * out_stride // 4 + i]; the gaps hold NaN
        unless the body wrote there). The buffers end at guard pages."""
        body_address = self.ggml_body(type_name, "matmat")
        out_bytes = (B - 1) * out_stride + 4 * d if B and d else 0
        try:
            pw = self.put(np.frombuffer(bytes(W), np.uint8), "W")
            px = self.put(np.frombuffer(bytes(xq), np.uint8), "xq")
            po = self.put(np.full(out_bytes // 4, np.nan, np.float32), "out")
            self.m.call(body_address, po, pw, px, n, d, B, out_stride, xq_stride)
            return self.get(po, out_bytes // 4)
        finally:
            self._done()

    def init(self, cpu_bits: int, choice: int) -> tuple[int, dict[str, int]]:
        """kernels_init(bits, choice): (path chosen, table entry -> the address it holds)."""
        path = self.m.call("kernels_init", cpu_bits, choice).eax
        table = {name: struct.unpack("<Q", self.m.read(self.m.address(f"k_{name}"), 8))[0]
                 for name in TABLE}
        return path, table
