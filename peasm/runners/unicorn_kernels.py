"""The math kernels under unicorn: SSE2 bodies, guard pages, ABI checks, faults by name.

Built on peasm.runners.emu.Emu, which maps the linked kernels, answers CPUID (SSE2, no
AVX: unicorn cannot execute AVX), gives every buffer its own guard pages with the buffer's
end flush against the upper one, and checks callee-saved registers and rsp after a call and
stack alignment at every global function entry. On top of that, this machine

* checks rsp is 16-byte aligned at every `call` instruction the kernels make (each call
  site is found in the link's line table and hooked), whether the target is global or not;
* checks after each call that the x87 stack is as it was (empty), the direction flag clear and MXCSR
  unchanged (the rest of the MS x64 contract);
* names the buffer a faulting access hit (`4 bytes past the end of buffer 'x' (1024 bytes)`)
  next to the kernel, offset and source line;
* frees buffers (unicorn memory would otherwise grow with every test).
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from unicorn import UC_HOOK_CODE
from unicorn import x86_const as X

from peasm.linker import LinkedImage
from peasm.runners.emu import Emu, EmuFault, sse2_only_cpuid
from peasm.runners.native import CallResult, F64, arg_bits

_CALL_LINE = re.compile(r"^\s*(?:[\w.$@]+:\s*)*call\b", re.I)
_DF = 1 << 10
_MXCSR_DEFAULT = 0x1F80


class KernelFault(EmuFault):
    """A kernel faulted or broke the ABI under unicorn."""


@dataclass
class _Buf:
    address: int
    size: int
    name: str


class UnicornKernelMachine:
    """One unicorn instance holding the kernels; buffers come and go per call."""

    where_name = "unicorn"

    def __init__(self, image: LinkedImage):
        self.image = image
        self.emu = Emu(image, cpuid=sse2_only_cpuid)
        self._bufs: dict[int, _Buf] = {}
        self._call_error: str | None = None
        self.call_sites = []
        for rva, origin in image.lines:
            text = getattr(origin, "text", "") or ""
            if _CALL_LINE.match(text):
                address = self.emu.base + rva
                self.call_sites.append(address)
                self.emu.uc.hook_add(UC_HOOK_CODE, self._on_call, None, address, address)

    # -- memory -------------------------------------------------------------------------

    def alloc(self, nbytes: int, name: str = "") -> int:
        address = self.emu.alloc(nbytes, align=4)
        self._bufs[address] = _Buf(address, nbytes, name or f"buffer{len(self._bufs)}")
        return address

    def write(self, address: int, data: bytes) -> None:
        self.emu.write(address, data)

    def read(self, address: int, size: int) -> bytes:
        return self.emu.read(address, size)

    def address(self, symbol: str) -> int:
        return self.emu.address(symbol)

    def free_all(self) -> None:
        uc = self.emu.uc
        regions = list(uc.mem_regions())
        for buf in self._bufs.values():
            for begin, end, _ in regions:
                if begin <= buf.address <= end:
                    uc.mem_unmap(begin, end - begin + 1)
                    break
        self._bufs.clear()

    # -- calling ------------------------------------------------------------------------

    def _on_call(self, uc, address, size, _):
        rsp = uc.reg_read(X.UC_X86_REG_RSP)
        if rsp % 16:
            self._call_error = (f"call at {self.emu.where(address)} with rsp=0x{rsp:x} "
                                f"(not 16-byte aligned)")
            uc.emu_stop()

    def describe(self, address: int) -> str:
        """Which buffer an address belongs to, or is nearest to."""
        best = None
        for b in self._bufs.values():
            if b.address <= address < b.address + b.size:
                return f"inside buffer '{b.name}' at +{address - b.address} ({b.size} bytes)"
            if address >= b.address + b.size:
                d = address - (b.address + b.size)
                text = f"{d} bytes past the end of buffer '{b.name}' ({b.size} bytes)"
            else:
                d = b.address - address
                text = f"{d} bytes before buffer '{b.name}' ({b.size} bytes)"
            if best is None or d < best[0]:
                best = (d, text)
        return best[1] if best and best[0] < 1 << 20 else "not near any buffer"

    def call(self, function: str | int, *args, timeout_s: float = 120) -> CallResult:
        """Call a kernel; int/pointer args, float args (f32, by position, as MS x64 passes
        them: xmm0-3, or the stack slot's low 4 bytes from the 5th on)."""
        uc = self.emu.uc
        ints, floats = [], {}
        for i, a in enumerate(args):
            if isinstance(a, (float, F64)) and i < 4:
                if isinstance(a, F64):
                    raise TypeError("F64 arguments are not supported under unicorn")
                floats[i] = a
                ints.append(0)
            else:
                ints.append(arg_bits(a))
        self._call_error = None
        uc.reg_write(X.UC_X86_REG_MXCSR, _MXCSR_DEFAULT)
        top_before = (uc.reg_read(X.UC_X86_REG_FPSW) >> 11) & 7
        name = function if isinstance(function, str) else self.emu.where(function)
        try:
            rax = self.emu.call(function, *ints, floats=floats, timeout_s=timeout_s)
        except EmuFault as e:
            if self._call_error:          # our call-site hook stopped it
                raise KernelFault(f"{name}: {self._call_error}") from None
            message = str(e)
            m = re.search(r"memory 0x([0-9a-f]+)", message)
            if m:
                message += f" [{self.describe(int(m.group(1), 16))}]"
            raise KernelFault(f"{name}: {message}") from None
        if self._call_error:
            raise KernelFault(f"{name}: {self._call_error}")
        problems = []
        fpsw = uc.reg_read(X.UC_X86_REG_FPSW)
        if (fpsw >> 11) & 7 != top_before:   # (unicorn's FPTAG reads are unreliable: TOP only)
            problems.append(f"x87 stack not left empty (TOP {top_before} -> {(fpsw >> 11) & 7})")
        if uc.reg_read(X.UC_X86_REG_EFLAGS) & _DF:
            problems.append("direction flag left set")
        if uc.reg_read(X.UC_X86_REG_MXCSR) & 0xFFC0 != _MXCSR_DEFAULT & 0xFFC0:
            problems.append(f"MXCSR control bits changed (0x{uc.reg_read(X.UC_X86_REG_MXCSR):x})")
        if problems:
            raise KernelFault(f"{name}: " + "; ".join(problems))
        xmm0 = uc.reg_read(X.UC_X86_REG_XMM0)
        return CallResult(rax, xmm0)

    def start_workers(self, count: int) -> None:
        """`count` more emulated cores running k_par_worker (kernels_asm/parallel.s), numbered
        on from those already started; they take turns with the calling core (peasm.runners.emu)."""
        started = self.emu.cores - 1
        for i in range(count):
            self.emu.start_core(self.address("k_par_worker"), started + i)

    def stop_workers(self) -> None:
        """Workers stay (an emulated core costs nothing while the caller runs alone)."""
        self.call("k_par_set_workers", 0)

    def f32_bits(self, value: float) -> int:
        return struct.unpack("<I", struct.pack("<f", value))[0]
