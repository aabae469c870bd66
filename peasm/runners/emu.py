"""Run linked images in unicorn: guard pages, ABI checks, faults named by symbol and line.

An `Emu` maps a LinkedImage (relocated to where it is placed), a stack, and any number of
buffers, each alone between unmapped guard pages with its end flush against the upper guard,
so an overrun by one element faults. `call()` runs one function under the Microsoft x64 ABI
and checks afterwards that the callee-saved registers (rbx rbp rdi rsi r12-r15, xmm6-xmm15)
came back unchanged; every entry to a global function is checked for a 16-byte aligned stack.
CPUID is answered by the runner (SSE2, no AVX), because unicorn cannot execute AVX: the
program's dispatch then picks its SSE2 paths.

Firmware or host services are "traps": `trap(fn)` returns an address holding `ret`; when the
program calls it, fn(emu, args) runs in Python and its return value lands in rax.

More cores: `start_core(procedure, arg)` adds a core that runs procedure(arg) on its own
guarded stack (how the hosted firmware models UEFI MP services). unicorn has one CPU, so the
cores take turns on it: a core runs until it reaches a `pause` (a spin-wait hint) or a
`lock`-prefixed instruction (where cores meet), then the next core in turn runs from where it
stopped, and so on round the ring: one valid interleaving of the cores, which runs the real
job-board code (claims, waits, the split of the rows) under guard pages. Those places are
found by their bytes (F3 90, F0): a code hook fires only where an instruction starts, so a
byte match there is exactly that instruction. Traps (firmware) are for the boot core only.
"""
from __future__ import annotations

import random
import struct
import threading
import time
from dataclasses import dataclass
from typing import Callable

from unicorn import (UC_ARCH_X86, UC_HOOK_CODE, UC_HOOK_INSN, UC_HOOK_MEM_FETCH_UNMAPPED,
                     UC_HOOK_MEM_READ_UNMAPPED, UC_HOOK_MEM_WRITE_UNMAPPED, UC_HOOK_MEM_FETCH_PROT,
                     UC_HOOK_MEM_WRITE_PROT, UC_MODE_64, UC_PROT_READ, UC_PROT_WRITE,
                     UC_PROT_EXEC, Uc, UcError)
from unicorn import unicorn_const as C
from unicorn import x86_const as X

from peasm.linker import LinkedImage

PAGE = 0x1000
IMAGE_BASE = 0x1000_0000
TRAP_BASE = 0x0F00_0000
STACK_TOP = 0x7FF0_0000
HEAP_BASE = 0x2_0000_0000

CALLEE_SAVED = {"rbx": X.UC_X86_REG_RBX, "rbp": X.UC_X86_REG_RBP, "rdi": X.UC_X86_REG_RDI,
                "rsi": X.UC_X86_REG_RSI, "r12": X.UC_X86_REG_R12, "r13": X.UC_X86_REG_R13,
                "r14": X.UC_X86_REG_R14, "r15": X.UC_X86_REG_R15}
XMM_SAVED = {f"xmm{i}": getattr(X, f"UC_X86_REG_XMM{i}") for i in range(6, 16)}
ARG_REGS = [X.UC_X86_REG_RCX, X.UC_X86_REG_RDX, X.UC_X86_REG_R8, X.UC_X86_REG_R9]
XMM_ARGS = [X.UC_X86_REG_XMM0, X.UC_X86_REG_XMM1, X.UC_X86_REG_XMM2, X.UC_X86_REG_XMM3]


class EmuFault(Exception):
    """The program did something the runner will not let pass (fault, ABI breach, timeout)."""


class Stop(Exception):
    """Raised by a trap to end the run (e.g. ResetSystem); `cause` is what ended it."""

    def __init__(self, reason: str, cause: BaseException | None = None):
        super().__init__(reason)
        self.cause = cause


def _round_up(n: int, a: int = PAGE) -> int:
    return (n + a - 1) // a * a


@dataclass
class Buffer:
    address: int
    size: int


class Emu:
    def __init__(self, image: LinkedImage, *, base: int = IMAGE_BASE, stack_size: int = 1 << 20,
                 cpuid: Callable[[int, int], tuple[int, int, int, int]] | None = None,
                 check_entries: bool = True):
        self.image = image
        self.base = base
        self.uc = Uc(UC_ARCH_X86, UC_MODE_64)
        self._traps: dict[int, Callable] = {}
        self._trap_names: dict[int, str] = {}
        self._next_trap = TRAP_BASE
        self._heap = HEAP_BASE
        self._bad_access: tuple[str, int] | None = None
        self._abi_error: str | None = None
        self.stopped: Stop | None = None
        self.cpuid = cpuid or sse2_only_cpuid
        self._cores: list = []            # saved contexts: [0] the boot core, then started cores
        self._core = 0                    # the core on the CPU now
        self._switch = False              # a core reached a yield point: next core's turn
        self._resume_at: int | None = None
        self._core_fault: str | None = None

        mem = image.flat(base)
        self.uc.mem_map(base, len(mem), UC_PROT_READ)
        self.uc.mem_write(base, bytes(mem))
        for s in image.sections:  # text read+exec, data read+write: a write to code faults
            prot = UC_PROT_READ | (UC_PROT_EXEC if s.characteristics & 0x2000_0000 else 0) \
                | (UC_PROT_WRITE if s.characteristics & 0x8000_0000 else 0)
            self.uc.mem_protect(base + s.rva, _round_up(s.vsize), prot)
        self.stack_top = STACK_TOP
        self.uc.mem_map(STACK_TOP - stack_size, stack_size, UC_PROT_READ | UC_PROT_WRITE)
        self.uc.mem_map(TRAP_BASE, 16 * PAGE, UC_PROT_READ | UC_PROT_EXEC)
        self.uc.mem_write(TRAP_BASE, b"\xC3" * 16 * PAGE)
        self._halt = self.trap(self._halt_trap, "<return>")
        self._core_exit = self.trap(self._core_exit_trap, "<core returned>")

        self.uc.hook_add(UC_HOOK_CODE, self._on_trap, None, TRAP_BASE, TRAP_BASE + 16 * PAGE - 1)
        self.uc.hook_add(UC_HOOK_INSN, self._on_cpuid, None, 1, 0, X.UC_X86_INS_CPUID)
        self.uc.hook_add(UC_HOOK_MEM_READ_UNMAPPED | UC_HOOK_MEM_WRITE_UNMAPPED
                         | UC_HOOK_MEM_FETCH_UNMAPPED | UC_HOOK_MEM_WRITE_PROT | UC_HOOK_MEM_FETCH_PROT,
                         self._on_bad_access)
        self._functions = {base + s.rva: s.name for s in image.symbols
                           if s.section == ".text" and s.is_global}
        if check_entries:  # costs time per hook: whole-program runs may skip it
            for addr in self._functions:
                self.uc.hook_add(UC_HOOK_CODE, self._on_function_entry, None, addr, addr)

    # -- memory -------------------------------------------------------------------------

    def address(self, symbol: str) -> int:
        return self.base + self.image.symbol(symbol).rva

    def alloc(self, size: int, data: bytes | None = None, *, align: int = 4) -> int:
        """A buffer alone between guard pages, its end flush against the upper guard (up to
        `align`). Returns its address."""
        size = max(size, len(data or b""))
        span = _round_up(max(size, 1) + align)
        start = self._heap + PAGE                      # lower guard page stays unmapped
        self.uc.mem_map(start, span, UC_PROT_READ | UC_PROT_WRITE)
        self._heap = start + span + PAGE               # upper guard page
        address = (start + span - size) // align * align
        if data:
            self.uc.mem_write(address, bytes(data))
        return address

    def alloc_pages(self, size: int) -> int:
        """Page-aligned memory (as AllocatePages gives), with guard pages around it."""
        return self.alloc(_round_up(max(size, 1)), align=PAGE)

    def read(self, address: int, size: int) -> bytes:
        return bytes(self.uc.mem_read(address, size))

    def write(self, address: int, data: bytes) -> None:
        self.uc.mem_write(address, bytes(data))

    def read_u64(self, address: int) -> int:
        return struct.unpack("<Q", self.read(address, 8))[0]

    def write_u64(self, address: int, value: int) -> None:
        self.write(address, struct.pack("<Q", value & (2**64 - 1)))

    def read_cstr(self, address: int, limit: int = 1 << 16) -> bytes:
        out = bytearray()
        while len(out) < limit:
            chunk = self.read(address + len(out), 1)
            if chunk == b"\0":
                break
            out += chunk
        return bytes(out)

    def read_ucs2(self, address: int, limit: int = 1 << 16) -> str:
        units = []
        while len(units) < limit:
            u = struct.unpack("<H", self.read(address + 2 * len(units), 2))[0]
            if u == 0:
                break
            units.append(u)
        return struct.pack(f"<{len(units)}H", *units).decode("utf-16-le", "replace")

    # -- traps --------------------------------------------------------------------------

    def trap(self, fn: Callable, name: str = "") -> int:
        """An address that, when called, runs fn(emu, args) and returns its value in rax.
        args(i) gives the i-th integer argument (0-based, stack arguments included)."""
        address = self._next_trap
        self._next_trap += 16
        self._traps[address] = fn
        self._trap_names[address] = name or getattr(fn, "__name__", "trap")
        return address

    def arg(self, i: int) -> int:
        """The i-th integer argument of the call being serviced (at a trap's `ret`)."""
        if i < 4:
            return self.uc.reg_read(ARG_REGS[i])
        rsp = self.uc.reg_read(X.UC_X86_REG_RSP)
        try:
            return self.read_u64(rsp + 8 * (i + 1))
        except UcError:
            return 0  # past the top of the stack: not an argument this call passed

    def _on_trap(self, uc, address, size, _):
        fn = self._traps.get(address)
        if fn is None:
            return
        if self._core and address != self._core_exit:
            self._core_fault = f"core {self._core} called {self._trap_names[address]} (only the boot core may)"
            uc.emu_stop()
            return
        rsp = uc.reg_read(X.UC_X86_REG_RSP)
        if (rsp + 8) % 16 and address != self._halt:
            self._abi_error = (f"call to {self._trap_names[address]} with a misaligned stack "
                               f"(rsp=0x{rsp:x}) from {self._caller(rsp)}")
            uc.emu_stop()
            return
        try:
            result = fn(self, self.arg)
        except Stop as stop:
            self.stopped = stop
            uc.emu_stop()
            return
        except Exception as e:  # noqa: BLE001 - a failing service ends the run with its cause
            self.stopped = Stop(f"{type(e).__name__} in {self._trap_names[address]}: {e}", e)
            uc.emu_stop()
            return
        if result is not None:
            uc.reg_write(X.UC_X86_REG_RAX, result & (2**64 - 1))

    def _halt_trap(self, emu, arg):
        raise Stop("return")

    # -- cores --------------------------------------------------------------------------

    def start_core(self, procedure: int, arg: int, *, stack_size: int = 1 << 16) -> int:
        """Another core: it runs procedure(arg) (MS x64) on its own stack between guard pages,
        taking turns with the others (see the module's docstring). Returns its number (1..)."""
        if not self._cores:
            self._cores = [None]
            self._add_yield_hooks()
        stack = self.alloc(stack_size, align=16)
        rsp = ((stack + stack_size) & ~0xF) - 40   # as after a call: return address, shadow space
        self.write_u64(rsp, self._core_exit)
        ctx = self.uc.context_save()
        for reg, value in ((X.UC_X86_REG_RIP, procedure), (X.UC_X86_REG_RSP, rsp), (X.UC_X86_REG_RCX, arg)):
            ctx.reg_write(reg, value)
        self._cores.append(ctx)
        return len(self._cores) - 1

    @property
    def cores(self) -> int:
        """Cores that may still run (the boot core included)."""
        return 1 + sum(c is not None for c in self._cores[1:])

    def _add_yield_hooks(self) -> None:
        for s in self.image.sections:
            if not s.characteristics & 0x2000_0000:
                continue
            data = bytes(s.data)
            points = [i for i in range(len(data) - 1) if data[i:i + 2] == b"\xF3\x90"]
            points += [i for i in range(len(data)) if data[i] == 0xF0]
            for off in points:
                a = self.base + s.rva + off
                self.uc.hook_add(UC_HOOK_CODE, self._on_yield_point, None, a, a)

    def _on_yield_point(self, uc, address, size, _):
        if self._resume_at == address:      # the instruction a core stopped at: run it now
            self._resume_at = None
            return
        self._resume_at = None
        if self.cores > 1:
            self._switch = True
            uc.emu_stop()

    def _core_exit_trap(self, emu, arg):
        if self._core == 0:
            self._core_fault = "the boot core returned to a started core's exit"
        else:
            self._cores[self._core] = None
            self._switch = True
        self.uc.emu_stop()

    def _next_core(self) -> int:
        """Save the running core, restore the next one in turn; returns where it resumes."""
        uc = self.uc
        if self._cores[self._core] is not None or self._core == 0:
            self._cores[self._core] = uc.context_save()
        n = len(self._cores)
        nxt = (self._core + 1) % n
        while nxt != 0 and self._cores[nxt] is None:
            nxt = (nxt + 1) % n
        uc.context_restore(self._cores[nxt])
        self._core = nxt
        rip = uc.reg_read(X.UC_X86_REG_RIP)
        self._resume_at = rip
        return rip

    def _caller(self, rsp: int) -> str:
        try:
            return self.where(self.read_u64(rsp))
        except UcError:
            return "?"

    # -- hooks --------------------------------------------------------------------------

    def _on_cpuid(self, uc, _):
        leaf = uc.reg_read(X.UC_X86_REG_EAX) & 0xFFFFFFFF
        sub = uc.reg_read(X.UC_X86_REG_ECX) & 0xFFFFFFFF
        a, b, c, d = self.cpuid(leaf, sub)
        for reg, v in zip((X.UC_X86_REG_RAX, X.UC_X86_REG_RBX, X.UC_X86_REG_RCX, X.UC_X86_REG_RDX), (a, b, c, d)):
            uc.reg_write(reg, v)
        return 1

    def _on_bad_access(self, uc, access, address, size, value, _):
        kinds = {C.UC_MEM_READ_UNMAPPED: "read of unmapped", C.UC_MEM_WRITE_UNMAPPED: "write to unmapped",
                 C.UC_MEM_FETCH_UNMAPPED: "jump to unmapped", C.UC_MEM_WRITE_PROT: "write to read-only",
                 C.UC_MEM_FETCH_PROT: "execution of non-code"}
        self._bad_access = (kinds.get(access, f"bad access {access}"), address)
        return False

    def _on_function_entry(self, uc, address, size, _):
        rsp = uc.reg_read(X.UC_X86_REG_RSP)
        if (rsp + 8) % 16:
            self._abi_error = (f"{self._functions.get(address, hex(address))} entered with a "
                               f"misaligned stack (rsp=0x{rsp:x}), called from {self._caller(rsp)}")
            uc.emu_stop()

    # -- running ------------------------------------------------------------------------

    def where(self, address: int) -> str:
        if self.base <= address < self.base + self.image.size_of_image:
            return self.image.locate(address - self.base)
        if address in self._trap_names:
            return f"<{self._trap_names[address]}>"
        return f"0x{address:x}"

    def call(self, function: str | int, *args: int, floats: dict[int, float] | None = None,
             max_instructions: int = 0, timeout_s: float = 0) -> int:
        """Call a function (symbol name or address) with integer args (and float args by
        position in `floats`, as MS x64 passes them in xmm0-3). Returns rax; xmm0 is in
        `self.xmm0_float()` afterwards. Raises EmuFault on a fault, an ABI breach or a
        timeout; a trap's Stop (e.g. power-off) ends the call quietly (see `self.stopped`)."""
        target = self.address(function) if isinstance(function, str) else function
        uc = self.uc
        n_stack = max(0, len(args) - 4)
        rsp = (self.stack_top - 64 - 8 * n_stack) & ~0xF
        rsp -= 8                                            # as if `call` pushed a return address
        self.write_u64(rsp, self._halt)
        for i, v in enumerate(args[4:]):
            self.write_u64(rsp + 40 + 8 * i, v)
        for reg, v in zip(ARG_REGS, args[:4]):
            uc.reg_write(reg, v & (2**64 - 1))
        for i, f in (floats or {}).items():
            uc.reg_write(XMM_ARGS[i], struct.unpack("<I", struct.pack("<f", f))[0])
        uc.reg_write(X.UC_X86_REG_RSP, rsp)
        sentinels = {name: random.getrandbits(64) for name in CALLEE_SAVED}
        xsentinels = {name: random.getrandbits(128) for name in XMM_SAVED}
        for name, v in sentinels.items():
            uc.reg_write(CALLEE_SAVED[name], v)
        for name, v in xsentinels.items():
            uc.reg_write(XMM_SAVED[name], v)
        self._bad_access = self._abi_error = self._core_fault = None
        self.stopped = None
        self._resume_at = None
        deadline = time.monotonic() + timeout_s if timeout_s else None
        watchdog = None
        if deadline is not None:
            # one timer for the whole call: unicorn's own timeout would start a thread for
            # each slice, and with several cores there are many
            watchdog = threading.Timer(timeout_s, uc.emu_stop)
            watchdog.daemon = True
            watchdog.start()
        begin = target
        while True:      # one slice per turn of a core (one slice when there is one core)
            remaining = 0
            if deadline is not None and watchdog is None:
                remaining = max(1, int((deadline - time.monotonic()) * 1e6))
            try:
                uc.emu_start(begin, 0, timeout=remaining, count=max_instructions)
            except UcError as e:
                if watchdog:
                    watchdog.cancel()
                rip = uc.reg_read(X.UC_X86_REG_RIP)
                on = f" on core {self._core}" if self._core else ""
                if self._bad_access:
                    kind, addr = self._bad_access
                    raise EmuFault(f"{kind} memory 0x{addr:x} at {self.where(rip)}{on}") from None
                raise EmuFault(f"{e} at {self.where(rip)}{on}") from None
            if not self._switch or self._abi_error or self._core_fault or self.stopped is not None:
                break
            self._switch = False
            if deadline is not None and time.monotonic() > deadline:
                break
            begin = self._next_core()
        if watchdog:
            watchdog.cancel()
        self._switch = False
        if self._core_fault:
            raise EmuFault(self._core_fault)
        if self._abi_error:
            raise EmuFault(self._abi_error)
        rip = uc.reg_read(X.UC_X86_REG_RIP)
        if self.stopped is None:
            raise EmuFault(f"did not return (instruction limit or timeout) at {self.where(rip)}")
        if str(self.stopped) == "return":
            self.stopped = None
            if uc.reg_read(X.UC_X86_REG_RSP) != rsp + 8:
                raise EmuFault(f"{self.where(target)} returned with rsp off by "
                               f"{uc.reg_read(X.UC_X86_REG_RSP) - rsp - 8}")
            for name, v in sentinels.items():
                if uc.reg_read(CALLEE_SAVED[name]) != v:
                    raise EmuFault(f"{self.where(target)} did not preserve {name} (callee-saved)")
            for name, v in xsentinels.items():
                if uc.reg_read(XMM_SAVED[name]) != v:
                    raise EmuFault(f"{self.where(target)} did not preserve {name} (callee-saved)")
        return uc.reg_read(X.UC_X86_REG_RAX)

    def xmm0_float(self) -> float:
        return struct.unpack("<f", struct.pack("<I", self.uc.reg_read(X.UC_X86_REG_XMM0) & 0xFFFFFFFF))[0]


def sse2_only_cpuid(leaf: int, subleaf: int) -> tuple[int, int, int, int]:
    """A CPU with SSE..SSE4.2 and no AVX (what unicorn can execute)."""
    if leaf == 0:
        return 7, 0x756E6547, 0x6C65746E, 0x49656E69          # "GenuineIntel"
    if leaf == 1:
        ecx = (1 << 0) | (1 << 9) | (1 << 19) | (1 << 20)       # sse3 ssse3 sse4.1 sse4.2
        edx = (1 << 0) | (1 << 4) | (1 << 15) | (1 << 23) | (1 << 24) | (1 << 25) | (1 << 26)
        return 0x000306A9, 0, ecx, edx
    return 0, 0, 0, 0
