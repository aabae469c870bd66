"""The llama2.c model module (app_asm/model.s + forward.s) as tests drive it: its constants,
linked images, AsmModel (load, bind, init, forward, messages) and the machines it runs on.
Used by test_app_model.py (the loader's rules), test_app_model_forward.py (the forward pass)
and test_app_gguf_model.py.

Two ways to supply the math kernels:

* the real ones (kernels_asm/*.s, SSE2 bodies: unicorn cannot run AVX; natively the host's
  path too): logits within a stated tolerance of the numpy reference, greedy tokens equal;
* stand-ins written in numpy and reached through emulator traps (the dispatch table's slots
  point at them). They do each kernel's arithmetic exactly as the reference does, so any
  difference from the reference is this module's sequencing (wrong weight, layer, cache
  row, stride or argument), with no kernel rounding to hide behind.

Struct offsets and codes are read from app_asm/model.inc and kernels_asm/kernels.inc, never
typed twice. Every buffer handed to the asm sits between guard pages (peasm.runners.emu), so
reading one byte past a header, a weight or a cache faults.
"""
from __future__ import annotations

import struct
from functools import lru_cache
from pathlib import Path

import numpy as np

from peasm.errors import PeasmError
from peasm.layouts import StateShape
from peasm.layouts import state_bytes as layout_state_bytes
from peasm.linker import link
from peasm.runners.emu import Emu
from tests.reference import llama2 as ref
from tests.support import REPO, inc_constants, require

APP = REPO / "app_asm"
KERNELS = REPO / "kernels_asm"
MODEL_SOURCES = [APP / s for s in ("model.s", "model_state.s", "model_msg.s", "model_gguf_msg.s",
                                   "forward.s")]


# ----------------------------------------------------------------------------- constants

def _constants() -> dict[str, int]:
    from peasm import generated
    into = generated.constants()
    return inc_constants(APP / "model.inc", inc_constants(KERNELS / "kernels.inc", into))


C = _constants()
CODES = {k: v for k, v in C.items() if k.startswith("MODEL_E_") or k == "MODEL_OK"}
FIELDS = ("dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len")
LIMITS = (C["MODEL_MAX_DIM"], C["MODEL_MAX_HIDDEN_DIM"], C["MODEL_MAX_LAYERS"], C["MODEL_MAX_HEADS"],
          C["MODEL_MAX_HEADS"], C["MODEL_MAX_VOCAB"], C["MODEL_MAX_SEQ_LEN"])
TENSORS = ("TOKEN_EMBEDDING", "RMS_ATT", "WQ", "WK", "WV", "WO", "RMS_FFN", "W1", "W2", "W3",
           "RMS_FINAL", "WCLS")
TABLE = ("k_matvec", "k_rmsnorm", "k_softmax", "k_expf", "k_swiglu", "k_add", "k_scale", "k_axpy",
         "k_dot", "k_argmax", "k_rope_table", "k_rope_apply", "k_attention", "k_stream_read",
         "k_rope_table_ggml", "k_rope_apply_neox", "k_swiglu_ggml", "k_rope_apply_ggml",
         "k_rmsnorm_ggml", "k_stub_to_float")
U32 = 0xFFFF_FFFF


def expected_code(ints: tuple[int, ...], size: int) -> tuple[int, int | None]:
    """model.inc's header rules restated: (code, offending field index or None)."""
    if size < ref.HEADER_SIZE:
        return CODES["MODEL_E_SHORT"], None
    for i, v in enumerate(ints):
        a = abs(v) if (i == 5 and v != -2**31) else v
        if a <= 0:
            return CODES["MODEL_E_NONPOSITIVE"], i
        if a > LIMITS[i]:
            return CODES["MODEL_E_TOO_BIG"], i
    cfg = ref.Config.from_header(ints)
    if cfg.dim % cfg.n_heads:
        return CODES["MODEL_E_HEADS"], None
    if cfg.head_size % 2:
        return CODES["MODEL_E_HEAD_SIZE"], None
    if cfg.n_heads % cfg.n_kv_heads:
        return CODES["MODEL_E_KV_HEADS"], None
    if size != cfg.file_size():
        return CODES["MODEL_E_SIZE"], None
    return CODES["MODEL_OK"], None


def state_shape(cfg: ref.Config) -> StateShape:
    return StateShape(cfg.dim, cfg.hidden_dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.vocab_size)


def state_bytes(cfg: ref.Config, ctx: int, kv_type: str = "F32") -> int:
    """model_state_bytes as peasm.layouts declares the run state (test_app_model.py holds the
    asm to its offsets)."""
    return layout_state_bytes(state_shape(cfg), ctx, kv_type)


# ----------------------------------------------------------------------------- images

def _stub_type_table() -> str:
    """ggml_type_table with the F32 row only, and a ggml_type_body that answers from the
    stand-in slots: F32 matvec = k_matvec, F32 to_float = k_stub_to_float."""
    from peasm import ggml
    rows = []
    for t_id in range(ggml.TABLE_ROWS):
        if t_id == 0:
            rows.append("    .byte 70, 51, 50, 0, 0, 0, 0, 0\n    .long 1, 4, 0, 1, 1, 0\n"
                        f"    .zero {ggml.ROW.size - 32}\n")
        else:
            rows.append(f"    .zero {ggml.ROW.size}\n")
    return (".section .rdata\n.balign 8\n.global ggml_type_table\nggml_type_table:\n"
            + "".join(rows)
            + ".section .text\n.global ggml_type_body\nggml_type_body:\n"
            f"    xor eax, eax\n    test ecx, ecx\n    jnz 1f\n"
            f"    cmp edx, {C['GGML_TT_MATVEC']}\n    jne 2f\n"
            "    mov rax, qword ptr [rip + k_matvec]\n    ret\n"
            f"2:\n    cmp edx, {C['GGML_TT_TO_FLOAT']}\n    jne 1f\n"
            "    mov rax, qword ptr [rip + k_stub_to_float]\n1:\n    ret\n")


STUB_TABLE = "".join(
    [".section .data\n.balign 8\n.global " + ", ".join(TABLE) + ", k_attention_heads\n"]
    + [f"{name}: .quad 0\n" for name in TABLE + ("k_attention_heads",)]) + _stub_type_table()


@lru_cache(maxsize=None)
def _stub_table_path() -> Path:
    import tempfile
    d = Path(tempfile.mkdtemp(prefix="test_app_model_"))
    p = d / "stub_table.s"
    p.write_text(STUB_TABLE, encoding="utf-8")
    return p


@lru_cache(maxsize=None)
def header_image():
    """The loader and its messages (the GGUF lines' module reads the type table: the stub's)."""
    return link([APP / "model.s", APP / "model_state.s", APP / "model_msg.s", APP / "model_gguf_msg.s",
                 _stub_table_path(), KERNELS / "parallel.s"], "model_check_header")


@lru_cache(maxsize=None)
def stub_image(backend: str = "keystone"):
    """model.s + forward.s + an empty dispatch table (the stand-in kernels fill it)."""
    return link(MODEL_SOURCES + [_stub_table_path(), KERNELS / "parallel.s", KERNELS / "parallel_queue.s"],
                "model_forward", backend=backend,
                include_dirs=[KERNELS])   # (the job board: with no workers, one call of the body)


def kernel_sources() -> list[Path]:
    manifest = KERNELS / "kernels.toml"
    if manifest.is_file():
        from peasm.linker import load_manifest
        return [Path(p) for p in load_manifest(manifest).sources]
    return sorted(KERNELS.glob("*.s"))


@lru_cache(maxsize=None)
def _kernel_image():
    try:
        return link(MODEL_SOURCES + kernel_sources(), "model_forward"), None
    except PeasmError as e:
        return None, str(e)


def kernel_image():
    image, err = _kernel_image()
    require(image is not None, f"the math kernels (kernels_asm/*.s do not link yet: {err})")
    return image


# ----------------------------------------------------------------------------- the module

class AsmModel:
    """A Model struct in an Emu (or a NativeMachine), with the loader's calls and readers."""

    def __init__(self, emu):
        self.emu = emu
        self.m = emu.alloc(C["MODEL_SIZE"], align=8)
        self.file = None

    def u32(self, name: str) -> int:
        return struct.unpack("<I", self.emu.read(self.m + C[name], 4))[0]

    def i32(self, name: str) -> int:
        return struct.unpack("<i", self.emu.read(self.m + C[name], 4))[0]

    def u64(self, name: str) -> int:
        return self.emu.read_u64(self.m + C[name])

    def check(self, data: bytes, size: int | None = None, address: int | None = None) -> int:
        """model_check_header on `data` (copied into a guard-paged buffer of exactly its size)."""
        if address is None:
            address = self.emu.alloc(len(data), data, align=1) if data else self.emu.alloc(1, align=1) + 1
        self.file = address
        return self.emu.call("model_check_header", self.m, address, len(data) if size is None else size)

    def load(self, data: bytes, ctx: int | None = None) -> int:
        assert self.check(data) == 0, self.message(self.u32("MODEL_ERROR"))
        assert self.bind() == 0
        return self.init_state(ctx or self.u32("MODEL_SEQ_LEN"))

    def bind(self) -> int:
        """model_bind_weights with a guard-paged layer table of model_layers_bytes."""
        need = self.emu.call("model_layers_bytes", self.m)
        assert need == C["LAYER_SIZE"] * self.u32("MODEL_N_LAYERS")
        return self.emu.call("model_bind_weights", self.m, self.file, self.emu.alloc(need, align=8))

    def tensor(self, field: str, layer: int | None = None) -> dict[str, int]:
        """A TENSOR descriptor of the struct (layer None) or of the layer table."""
        if layer is None:
            base = self.m + C[f"MODEL_{field}"]
        else:
            base = self.u64("MODEL_LAYERS") + layer * C["LAYER_SIZE"] + C[f"LAYER_{field}"]
        raw = self.emu.read(base, C["TENSOR_SIZE"])
        out = {}
        for name in ("DATA", "BYTES", "ROW_BYTES"):
            out[name] = struct.unpack_from("<Q", raw, C[f"TENSOR_{name}"])[0]
        for name in ("TYPE", "N", "ROWS", "N_DIMS"):
            out[name] = struct.unpack_from("<I", raw, C[f"TENSOR_{name}"])[0]
        return out

    def init_state(self, ctx: int, spare: int = 0) -> int:
        need = self.emu.call("model_state_bytes", self.m, ctx)
        assert need, self.message(self.u32("MODEL_ERROR"))
        mem = self.emu.alloc(need + spare, align=1)
        assert self.emu.call("model_init_state", self.m, mem, ctx, need + spare) == 0
        return need

    def forward(self, token: int, pos: int) -> int:
        return self.emu.call("model_forward", self.m, token & U32, pos & U32)

    def logits(self, token: int, pos: int) -> np.ndarray:
        p = self.forward(token, pos)
        assert p, self.message(self.u32("MODEL_ERROR"))
        return np.frombuffer(self.emu.read(p, 4 * self.u32("MODEL_VOCAB_SIZE")), dtype="<f4").copy()

    def message(self, code: int, capacity: int = 256) -> str:
        buf = self.emu.alloc(capacity, align=1)
        n = self.emu.call("model_format_error", self.m, code, buf, capacity)
        raw = self.emu.read(buf, capacity)
        assert raw[n] == 0 and b"\0" not in raw[:n]
        return raw[:n].decode("utf-8")


# ----------------------------------------------------------------------------- stand-in kernels

def _f32(emu: Emu, address: int, n: int) -> np.ndarray:
    return np.frombuffer(emu.read(address, 4 * n), dtype="<f4").copy()


def _put(emu: Emu, address: int, arr: np.ndarray) -> None:
    emu.write(address, np.ascontiguousarray(arr, dtype="<f4").tobytes())


def _as_f32(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits & U32))[0]


def install_numpy_kernels(emu: Emu) -> dict[str, int]:
    """Point the dispatch table at traps that do the reference's arithmetic; count calls."""
    calls: dict[str, int] = {}

    def matvec(e, a):
        n, d = a(3) & U32, a(4) & U32
        w = _f32(e, a(1), n * d).reshape(d, n)
        _put(e, a(0), ref.matmul(w, _f32(e, a(2), n)))

    def rmsnorm(e, a):
        n = a(3) & U32
        assert _as_f32(a(4)) == np.float32(1e-5)
        _put(e, a(0), ref.rmsnorm(_f32(e, a(1), n), _f32(e, a(2), n)))

    def rope_table(e, a):
        hs = a(2) & U32
        c, s = ref.rope_cos_sin(a(1) & U32, hs, hs)
        sign = np.tile(np.array([-1, 1], dtype=np.float32), hs // 2)
        _put(e, a(0), np.concatenate([np.repeat(c, 2), np.repeat(s, 2) * sign]))

    def rope_apply(e, a):
        n, hs = a(2) & U32, a(3) & U32
        assert n % hs == 0
        t = _f32(e, a(1), 2 * hs)
        v = _f32(e, a(0), n).reshape(-1, hs)
        swapped = v.reshape(-1, hs // 2, 2)[:, :, ::-1].reshape(-1, hs)
        _put(e, a(0), v * t[:hs] + swapped * t[hs:])

    def attention(e, a):
        blk = e.read(a(0), C["ATT_SIZE"])
        q8 = lambda off: struct.unpack_from("<Q", blk, off)[0]
        d4 = lambda off: struct.unpack_from("<I", blk, off)[0]
        pos, nh, nkv, hs, seq = (d4(C[k]) for k in ("ATT_POS", "ATT_N_HEADS", "ATT_N_KV_HEADS",
                                                     "ATT_HEAD_SIZE", "ATT_SEQ_LEN"))
        assert pos < seq
        kvd = nkv * hs
        q = _f32(e, q8(C["ATT_Q"]), nh * hs)
        keys = _f32(e, q8(C["ATT_KCACHE"]), (pos + 1) * kvd).reshape(pos + 1, kvd)
        vals = _f32(e, q8(C["ATT_VCACHE"]), (pos + 1) * kvd).reshape(pos + 1, kvd)
        out = np.empty(nh * hs, dtype=np.float32)
        for h in range(nh):
            kvh = h // (nh // nkv)
            sl = slice(kvh * hs, (kvh + 1) * hs)
            o, att = ref.attention_head(q[h * hs:(h + 1) * hs], keys[:, sl], vals[:, sl])
            out[h * hs:(h + 1) * hs] = o
            _put(e, q8(C["ATT_SCRATCH"]) + 4 * h * seq, att)
        _put(e, q8(C["ATT_OUT"]), out)

    def add(e, a):
        n = a(2) & U32
        _put(e, a(0), _f32(e, a(0), n) + _f32(e, a(1), n))

    def swiglu(e, a):
        n = a(2) & U32
        _put(e, a(0), (ref.silu(_f32(e, a(0), n)) * _f32(e, a(1), n)).astype(np.float32))

    def unexpected(e, a):
        raise AssertionError("the forward pass called a kernel it does not need")

    def to_float(e, a):          # F32 rows: a copy
        n = a(2) & U32
        _put(e, a(0), _f32(e, a(1), n))

    impl = {"k_matvec": matvec, "k_stub_to_float": to_float, "k_rmsnorm": rmsnorm,
            "k_rope_table": rope_table,
            "k_rope_apply": rope_apply, "k_attention": attention, "k_add": add, "k_swiglu": swiglu}
    for slot in TABLE:
        fn = impl.get(slot, unexpected)

        def counted(e, a, fn=fn, slot=slot):
            calls[slot] = calls.get(slot, 0) + 1
            fn(e, a)
        emu.write_u64(emu.address(slot), emu.trap(counted, slot))
    return calls


def numpy_kernel_model() -> tuple[AsmModel, dict[str, int]]:
    emu = Emu(stub_image())
    return AsmModel(emu), install_numpy_kernels(emu)


def sse2_model() -> AsmModel:
    emu = Emu(kernel_image())
    assert emu.call("kernels_init", 1, 0) == C["K_PATH_SSE2"]
    return AsmModel(emu)


class NativeMachine:
    """The subset of Emu's interface AsmModel uses, on the host CPU (peasm.runners.native):
    guard-paged buffers, callee-saved registers checked after every call."""

    def __init__(self, image):
        from peasm.runners import native
        self.native = native
        self.loaded = native.NativeImage(image)
        self.buffers: list = []

    def alloc(self, size: int, data: bytes | None = None, *, align: int = 4) -> int:
        buf = self.native.GuardedBuffer(max(size, len(data or b"")), align=align)
        self.buffers.append(buf)
        if data:
            self.native.write_memory(buf.address, data)
        return buf.address

    def read(self, address: int, size: int) -> bytes:
        return self.native.read_memory(address, size)

    def write(self, address: int, data: bytes) -> None:
        self.native.write_memory(address, data)

    def read_u64(self, address: int) -> int:
        return struct.unpack("<Q", self.read(address, 8))[0]

    def read_cstr(self, address: int) -> bytes:
        import ctypes
        return ctypes.string_at(address)

    def call(self, function: str, *args: int) -> int:
        return self.native.call(self.loaded.address(function), *args, where=self.loaded.where).rax

    def free(self) -> None:
        for b in self.buffers:
            b.free()
        self.buffers.clear()


def native_model(choice: str) -> AsmModel:
    """The real kernels on the host: choice "auto" (AVX2/FMA when the host has them) or "sse2"."""
    from peasm.runners import native
    ok, why = native.supported()
    require(ok, why)
    machine = NativeMachine(kernel_image())
    want = C["K_CHOICE_SSE2"] if choice == "sse2" else C["K_CHOICE_AUTO"]
    path = machine.call("kernels_init", native.host_cpu_bits(), want)
    if choice == "sse2":
        assert path == C["K_PATH_SSE2"]
    else:
        assert path == (C["K_PATH_AVX2"] if native.host_has_avx2_fma() else C["K_PATH_SSE2"])
    return AsmModel(machine)
