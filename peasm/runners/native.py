"""Run peasm-built machine code on the host CPU, from Python, under the Microsoft x64 ABI.

The same bytes unicorn runs, at full speed and with the host's AVX2/FMA:

* `NativeImage(image)` places a LinkedImage in host memory: mmap read-write, copy the flat
  image relocated for where it landed, then mprotect each section (.text read+exec, .rdata
  read-only, .data read-write), as a loader would.
* `call(address, *args)` calls MS x64 code from Python through a generated SysV -> MS x64
  thunk: integer/pointer args in rcx, rdx, r8, r9, the rest on the stack above the 32-byte
  shadow space, rsp 16-byte aligned at the call, float args in the xmm register of their
  position (and as 4 bytes in their stack slot from the 5th on). Before the call every
  callee-saved register (rbx rbp rdi rsi r12-r15, xmm6-xmm15) is loaded with a random
  sentinel; after it they are compared, so a body that clobbers one fails loudly here too,
  not only under unicorn. `Batch`/`call_many` run many calls in one trip (for timing).
* `callback(fn, nargs)` is the other direction: an address MS x64 code can call that runs
  a Python function (through ctypes, SysV), with rdi/rsi and xmm6-xmm15 saved across it
  since SysV code may clobber them. For hosted runners' firmware services.
* `HostThread(address, arg)` runs MS x64 code address(arg) on a new host thread (pthreads,
  its own stack with a guard page), for code that never calls back into Python: the hosted
  model of UEFI MP services' application processors.
* Memory: `GuardedBuffer` (host memory between PROT_NONE pages, its end flush against the
  upper one: a one-element overrun is a SIGSEGV, which under pytest-xdist is reported as a
  crashed worker naming the test), `address_of(array)` for numpy arrays.

The thunks are assembled at run time by peasm's keystone backend. Linux x86-64 only.
"""
from __future__ import annotations

import ctypes
import mmap
import os
import platform
import random
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterable, Sequence

import numpy as np

from peasm.linker import LinkedImage

PAGE = mmap.PAGESIZE
PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC = 0, 1, 2, 4
MAX_ARGS = 20                 # 4 in registers + 16 on the stack

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.mprotect.restype = ctypes.c_int
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.munmap.restype = ctypes.c_int
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.madvise.restype = ctypes.c_int
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
MADV_HUGEPAGE = 14
HUGE_PAGE = 2 << 20
_MAP_FAILED = ctypes.c_void_p(-1).value


class NativeError(Exception):
    """Native execution is impossible here, or a call broke the ABI."""


def supported() -> tuple[bool, str]:
    """(can run native code here, why not)."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False, f"native runner needs Linux x86-64 (this is {platform.system()} {platform.machine()})"
    return True, ""


@lru_cache(maxsize=1)
def host_cpu_flags() -> frozenset[str]:
    """The flags line of /proc/cpuinfo (empty when unreadable)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def host_has_avx2_fma() -> bool:
    """The AVX2 path's needs (kernels_init): AVX, AVX2, FMA and F16C."""
    flags = host_cpu_flags()
    return {"avx", "avx2", "fma", "f16c"} <= flags


def host_cpu_bits() -> int:
    """This CPU's features as efi_stubs/runtime.inc's CPU_* bits (what cpu_detect reports
    under an OS that enabled AVX state: the kernel lists avx only when XCR0 allows it)."""
    flags = host_cpu_flags()
    bits = 1 if "sse2" in flags else 0
    if "avx" in flags:
        bits |= 2
        bits |= 4 if "avx2" in flags else 0
        bits |= 8 if "fma" in flags else 0
        bits |= 64 if "f16c" in flags else 0
    bits |= 16 if "avx512f" in flags else 0
    return bits


# ----------------------------------------------------------------------------------------
# raw memory


def _round_up(n: int, a: int = PAGE) -> int:
    return (n + a - 1) // a * a


def map_pages(size: int, prot: int = PROT_READ | PROT_WRITE) -> int:
    """Anonymous private pages; returns the address."""
    addr = _libc.mmap(None, size, prot, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    if addr in (None, _MAP_FAILED):
        raise NativeError(f"mmap of {size} bytes failed: {os.strerror(ctypes.get_errno())}")
    return addr


def protect(address: int, size: int, prot: int) -> None:
    if _libc.mprotect(address, size, prot) != 0:
        raise NativeError(f"mprotect(0x{address:x}, {size}) failed: {os.strerror(ctypes.get_errno())}")


def unmap(address: int, size: int) -> None:
    _libc.munmap(address, size)


def advise_huge_pages(address: int, size: int) -> None:
    """Ask Linux for 2 MiB pages over the whole 2 MiB-aligned part of [address, address+size)
    (transparent huge pages in `madvise` mode need this): as UEFI firmware maps memory with
    large pages, so that a forward pass streaming hundreds of MB of weights is not timed
    through 4 KiB TLB misses the real machine does not have. Best effort: ignored if refused."""
    start = (address + HUGE_PAGE - 1) // HUGE_PAGE * HUGE_PAGE
    end = (address + size) // HUGE_PAGE * HUGE_PAGE
    if end > start:
        _libc.madvise(start, end - start, MADV_HUGEPAGE)


def write_memory(address: int, data: bytes | bytearray | memoryview) -> None:
    data = bytes(data)
    ctypes.memmove(address, data, len(data))


def read_memory(address: int, size: int) -> bytes:
    return ctypes.string_at(address, size)


def address_of(array: np.ndarray) -> int:
    """Address of a numpy array's first element."""
    return array.ctypes.data


class GuardedBuffer:
    """`nbytes` of host memory between PROT_NONE pages, its end flush against the upper
    guard (rounded down to `align`). `array(dtype)` views it as numpy."""

    def __init__(self, nbytes: int, *, align: int = 4, name: str = ""):
        self.nbytes = nbytes
        self.name = name
        span = _round_up(max(nbytes, 1) + align)
        self._size = span + 2 * PAGE
        self._base = map_pages(self._size, PROT_NONE)
        protect(self._base + PAGE, span, PROT_READ | PROT_WRITE)
        self.address = (self._base + PAGE + span - nbytes) // align * align
        self._alive = True

    def array(self, dtype=np.float32, count: int | None = None) -> np.ndarray:
        dtype = np.dtype(dtype)
        count = self.nbytes // dtype.itemsize if count is None else count
        raw = (ctypes.c_char * (count * dtype.itemsize)).from_address(self.address)
        arr = np.frombuffer(raw, dtype=dtype, count=count)
        arr._guarded_owner = self  # type: ignore[attr-defined]  (keeps the mapping alive)
        return arr

    def free(self) -> None:
        if self._alive:
            unmap(self._base, self._size)
            self._alive = False

    def __repr__(self) -> str:
        return f"GuardedBuffer({self.name or '?'}, 0x{self.address:x}, {self.nbytes} bytes)"


class ExecutableCode:
    """Bytes placed in their own pages, then made read+exec."""

    def __init__(self, code: bytes):
        self.size = _round_up(max(len(code), 1))
        self.address = map_pages(self.size)
        write_memory(self.address, code)
        protect(self.address, self.size, PROT_READ | PROT_EXEC)


class NativeImage:
    """A LinkedImage loaded into host memory at an mmap'd base, relocated and protected."""

    def __init__(self, image: LinkedImage):
        ok, why = supported()
        if not ok:
            raise NativeError(why)
        self.image = image
        self.size = image.size_of_image
        self.base = map_pages(self.size)
        write_memory(self.base, bytes(image.flat(self.base)))
        protect(self.base, self.size, PROT_READ)
        for s in image.sections:
            prot = PROT_READ | (PROT_EXEC if s.characteristics & 0x2000_0000 else 0) \
                | (PROT_WRITE if s.characteristics & 0x8000_0000 else 0)
            protect(self.base + s.rva, _round_up(s.vsize), prot)

    def address(self, symbol: str) -> int:
        return self.base + self.image.symbol(symbol).rva

    def where(self, address: int) -> str:
        if self.base <= address < self.base + self.size:
            return self.image.locate(address - self.base)
        return f"0x{address:x}"

    def read(self, address: int, size: int) -> bytes:
        return read_memory(address, size)

    def write(self, address: int, data: bytes) -> None:
        write_memory(address, data)


# ----------------------------------------------------------------------------------------
# SysV -> MS x64 thunks

# State block shared by the checked thunk and Python: callee-saved registers before (in)
# and after (out) the call, and the results.
_GPRS = ("rbx", "rbp", "rdi", "rsi", "r12", "r13", "r14", "r15")
_STATE_XMM = 8 * len(_GPRS)                 # xmm6..xmm15, 16 bytes each
_STATE_RAX = _STATE_XMM + 16 * 10
_STATE_XMM0 = _STATE_RAX + 8
_STATE_SIZE = _STATE_XMM0 + 16

# u64 call_checked(rdi = fn, rsi = slots[nslots], rdx = nslots, rcx = state)
_CHECKED = [
    "push rbp", "push rbx", "push r12", "push r13", "push r14", "push r15",
    "mov rax, rsp",
    "sub rsp, 176",                      # 32 shadow + 16 stack slots + 2 saves, then align
    "and rsp, -16",
    "mov [rsp + 160], rax",              # our rsp after the pushes
    "mov [rsp + 168], rcx",              # the state block
    "mov r10, rdi",
    "mov r11, rsi",
    "lea r8, [rdx - 4]",                 # stack args to copy (signed: none when < 0)
    "xor r9d, r9d",
    "copy:",
    "cmp r9, r8",
    "jge copied",
    "mov rax, [r11 + r9 * 8 + 32]",
    "mov [rsp + r9 * 8 + 32], rax",
    "inc r9",
    "jmp copy",
    "copied:",
    "mov rax, rcx",
    *[f"mov {r}, [rax + {8 * i}]" for i, r in enumerate(_GPRS)],
    *[f"movdqu xmm{6 + i}, [rax + {_STATE_XMM + 16 * i}]" for i in range(10)],
    "mov rcx, [r11]", "mov rdx, [r11 + 8]", "mov r8, [r11 + 16]", "mov r9, [r11 + 24]",
    "movq xmm0, rcx", "movq xmm1, rdx", "movq xmm2, r8", "movq xmm3, r9",
    "call r10",
    "mov r10, [rsp + 168]",
    *[f"mov [r10 + {8 * i}], {r}" for i, r in enumerate(_GPRS)],
    *[f"movdqu [r10 + {_STATE_XMM + 16 * i}], xmm{6 + i}" for i in range(10)],
    f"mov [r10 + {_STATE_RAX}], rax",
    f"movdqu [r10 + {_STATE_XMM0}], xmm0",
    "mov rsp, [rsp + 160]",
    "pop r15", "pop r14", "pop r13", "pop r12", "pop rbx", "pop rbp",
    "ret",
]

# u64 call_many(rdi = fn, rsi = records[ncalls][nslots], rdx = nslots (>= 4), rcx = ncalls)
# -> rax of the last call. No sentinels: the loop state lives in callee-saved registers.
_MANY = [
    "push rbp", "push rbx", "push r12", "push r13", "push r14", "push r15",
    "mov rbp, rsp",
    "sub rsp, 168",
    "and rsp, -16",
    "mov rbx, rdi",
    "mov r12, rsi",
    "mov r13, rdx",
    "mov r14, rcx",
    "lea r15, [rdx * 8]",
    "xor eax, eax",
    "next:",
    "test r14, r14",
    "jz done",
    "lea r8, [r13 - 4]",
    "xor r9d, r9d",
    "copy:",
    "cmp r9, r8",
    "jge copied",
    "mov rax, [r12 + r9 * 8 + 32]",
    "mov [rsp + r9 * 8 + 32], rax",
    "inc r9",
    "jmp copy",
    "copied:",
    "mov rcx, [r12]", "mov rdx, [r12 + 8]", "mov r8, [r12 + 16]", "mov r9, [r12 + 24]",
    "movq xmm0, rcx", "movq xmm1, rdx", "movq xmm2, r8", "movq xmm3, r9",
    "call rbx",
    "add r12, r15",
    "dec r14",
    "jmp next",
    "done:",
    "mov rsp, rbp",
    "pop r15", "pop r14", "pop r13", "pop r12", "pop rbx", "pop rbp",
    "ret",
]

# MS x64 -> SysV: an address MS code calls; it forwards rcx, rdx, r8, r9 and up to
# `nstack` stack args to a SysV function (a ctypes callback) taking them as 64-bit ints.
# rdi, rsi and xmm6-xmm15 are callee-saved in MS x64 but not in SysV: saved here.
def _ms_to_sysv(target: int, nargs: int) -> list[str]:
    nstack = max(0, nargs - 4)
    # frame: 10 xmm saves (160) + rdi/rsi pushes; SysV stack args (nargs > 6) below them
    sysv_stack = max(0, nargs - 6)
    frame = 160 + 8 * sysv_stack
    frame += (16 - (frame + 8 + 16) % 16) % 16          # rsp 16-aligned at the SysV call
    lines = ["push rdi", "push rsi", f"sub rsp, {frame}"]
    lines += [f"movdqu [rsp + {8 * sysv_stack + 16 * i}], xmm{6 + i}" for i in range(10)]
    # incoming MS stack arg i (i >= 4) is at [rsp + frame + 16 + 8 + 8 * i]
    incoming = lambda i: f"[rsp + {frame + 16 + 8 + 8 * i}]"  # noqa: E731
    lines += ["mov rdi, rcx", "mov rsi, rdx", "mov rdx, r8", "mov rcx, r9"]
    if nargs > 4:
        lines.append(f"mov r8, {incoming(4)}")
    if nargs > 5:
        lines.append(f"mov r9, {incoming(5)}")
    for k in range(sysv_stack):
        lines += [f"mov rax, {incoming(6 + k)}", f"mov [rsp + {8 * k}], rax"]
    lines += [f"mov rax, 0x{target:x}", "call rax"]
    lines += [f"movdqu xmm{6 + i}, [rsp + {8 * sysv_stack + 16 * i}]" for i in range(10)]
    lines += [f"add rsp, {frame}", "pop rsi", "pop rdi", "ret"]
    del nstack
    return lines


def _assemble(lines: list[str], base: int = 0) -> bytes:
    from peasm.backends import get_backend

    return get_backend("keystone").assemble(lines, base)


@lru_cache(maxsize=1)
def _thunks() -> tuple[ExecutableCode, Callable, Callable]:
    ok, why = supported()
    if not ok:
        raise NativeError(why)
    checked = _assemble(_CHECKED)
    many = _assemble(_MANY)
    offset = _round_up(len(checked), 64)
    code = ExecutableCode(checked + bytes(offset - len(checked)) + many)
    proto = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p)
    return code, proto(code.address), proto(code.address + offset)


# ----------------------------------------------------------------------------------------
# calling


@dataclass(frozen=True)
class F64:
    """A double argument (a plain Python float is passed as an f32)."""

    value: float


@dataclass
class CallResult:
    rax: int
    xmm0: int                      # the low 128 bits

    @property
    def eax(self) -> int:
        return self.rax & 0xFFFF_FFFF

    @property
    def f32(self) -> float:
        return struct.unpack("<f", struct.pack("<I", self.xmm0 & 0xFFFF_FFFF))[0]

    @property
    def f64(self) -> float:
        return struct.unpack("<d", struct.pack("<Q", self.xmm0 & (2**64 - 1)))[0]


def arg_bits(value) -> int:
    """One argument as its 64-bit slot: ints (and pointers), numpy arrays (their address),
    floats as f32 bits, F64 as double bits."""
    if isinstance(value, np.ndarray):
        return address_of(value)
    if isinstance(value, (bool, int, np.integer)):
        return int(value) & (2**64 - 1)
    if isinstance(value, F64):
        return struct.unpack("<Q", struct.pack("<d", value.value))[0]
    if isinstance(value, (float, np.floating)):
        return struct.unpack("<I", struct.pack("<f", float(value)))[0]
    if isinstance(value, GuardedBuffer):
        return value.address
    raise TypeError(f"cannot pass {type(value).__name__} as an argument")


def _slots(args: Sequence, floats: dict[int, float] | None) -> list[int]:
    slots = [arg_bits(a) for a in args]
    for pos, f in (floats or {}).items():
        while len(slots) <= pos:
            slots.append(0)
        slots[pos] = arg_bits(f if isinstance(f, F64) else float(f))
    if len(slots) > MAX_ARGS:
        raise NativeError(f"at most {MAX_ARGS} arguments")
    return slots + [0] * (4 - len(slots)) if len(slots) < 4 else slots


def call(address: int, *args, floats: dict[int, float] | None = None, check_abi: bool = True,
         where: Callable[[int], str] | None = None) -> CallResult:
    """Call MS x64 code at `address`. Args are ints/pointers, numpy arrays (by address),
    floats (f32) or F64; `floats` may instead give float args by position. Raises
    NativeError when the callee did not preserve a callee-saved register."""
    _, checked, _ = _thunks()
    slots = _slots(args, floats)
    slot_arr = (ctypes.c_uint64 * len(slots))(*slots)
    state = (ctypes.c_uint8 * _STATE_SIZE)()
    sentinels = [random.getrandbits(64) for _ in _GPRS] + [random.getrandbits(64) for _ in range(20)]
    struct.pack_into(f"<{len(sentinels)}Q", state, 0, *sentinels)
    checked(address, ctypes.addressof(slot_arr), len(slots), ctypes.addressof(state))
    after = struct.unpack_from(f"<{len(sentinels)}Q", state, 0)
    rax, x_lo, x_hi = struct.unpack_from("<QQQ", state, _STATE_RAX)
    if check_abi and tuple(after) != tuple(sentinels):
        bad = []
        for i, r in enumerate(_GPRS):
            if after[i] != sentinels[i]:
                bad.append(r)
        for i in range(10):
            k = len(_GPRS) + 2 * i
            if after[k:k + 2] != tuple(sentinels[k:k + 2]):
                bad.append(f"xmm{6 + i}")
        name = where(address) if where else f"0x{address:x}"
        raise NativeError(f"{name} did not preserve {', '.join(bad)} (callee-saved)")
    return CallResult(rax, x_lo | (x_hi << 64))


class Batch:
    """Calls of one function prepared once (arguments already packed), run in one trip
    from Python each time `run()` is called: for timing, where per-call Python work would
    swamp a microsecond kernel. No ABI sentinels (the loop lives in callee-saved registers)."""

    def __init__(self, address: int, calls: Iterable[Sequence]):
        _, _, self._many = _thunks()
        rows = [_slots(list(c), None) for c in calls]
        self.address = address
        self.count = len(rows)
        self.width = max((len(r) for r in rows), default=4)
        flat = [v for r in rows for v in r + [0] * (self.width - len(r))]
        self._records = (ctypes.c_uint64 * max(1, len(flat)))(*flat)

    def run(self) -> int:
        """Make the calls; rax of the last one."""
        if not self.count:
            return 0
        return self._many(self.address, ctypes.addressof(self._records), self.width, self.count)


def call_many(address: int, calls: Iterable[Sequence]) -> int:
    """Run several calls of the same function in one trip from Python (no ABI checks);
    each item is that call's argument list. Returns rax of the last call."""
    return Batch(address, calls).run()


class Callbacks:
    """MS x64-callable addresses that run Python functions (for firmware services)."""

    def __init__(self):
        self._keep: list = []

    def callback(self, fn: Callable[..., int | None], nargs: int) -> int:
        """An address MS x64 code can call with `nargs` integer args; fn(*args) runs and
        its return value (None -> 0) lands in rax."""
        proto = ctypes.CFUNCTYPE(ctypes.c_uint64, *([ctypes.c_uint64] * nargs))

        def py(*a):
            result = fn(*a)
            return 0 if result is None else int(result) & (2**64 - 1)

        c_fn = proto(py)
        target = ctypes.cast(c_fn, ctypes.c_void_p).value
        code = ExecutableCode(_assemble(_ms_to_sysv(target, nargs)))
        self._keep += [c_fn, code]
        return code.address


# ----------------------------------------------------------------------------------------
# host threads running MS x64 code

_libc.pthread_create.restype = ctypes.c_int
_libc.pthread_create.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
_libc.pthread_join.restype = ctypes.c_int
_libc.pthread_join.argtypes = [ctypes.c_ulong, ctypes.c_void_p]
_libc.pthread_attr_init.argtypes = [ctypes.c_void_p]
_libc.pthread_attr_setstacksize.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.pthread_attr_destroy.argtypes = [ctypes.c_void_p]

# void *start(void *block): block = {MS x64 function, its argument}; calls function(argument)
# with rsp 16-byte aligned and shadow space. rbx, rbp, r12-r15 are callee-saved in both ABIs.
_THREAD_START = ["push rbx", "mov rbx, rdi", "sub rsp, 32", "mov rcx, [rbx + 8]", "call qword ptr [rbx]",
                 "add rsp, 32", "pop rbx", "xor eax, eax", "ret"]


@lru_cache(maxsize=1)
def _thread_start() -> ExecutableCode:
    return ExecutableCode(_assemble(_THREAD_START))


class HostThread:
    """A host thread (pthread, `stack_size` bytes of its own stack) running the MS x64 code at
    `address` with rcx = arg. The code must never call into Python (no GIL is taken): ctypes
    callbacks may only be entered from the thread that runs the program."""

    def __init__(self, address: int, arg: int, *, stack_size: int = 1 << 20):
        self._block = (ctypes.c_uint64 * 2)(address, arg & (2**64 - 1))
        self._tid = ctypes.c_ulong(0)
        attr = ctypes.create_string_buffer(128)     # pthread_attr_t (56 bytes on x86-64 glibc)
        _libc.pthread_attr_init(attr)
        _libc.pthread_attr_setstacksize(attr, stack_size)
        err = _libc.pthread_create(ctypes.byref(self._tid), attr, _thread_start().address,
                                   ctypes.addressof(self._block))
        _libc.pthread_attr_destroy(attr)
        if err:
            raise NativeError(f"pthread_create failed: {os.strerror(err)}")

    def join(self) -> None:
        """Wait until the code returns."""
        _libc.pthread_join(self._tid.value, None)
