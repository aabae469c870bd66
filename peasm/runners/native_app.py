"""Run a whole BOOTX64.EFI natively: the host CPU at full speed against the firmware model.

The image is loaded by peasm.runners.native (mmap, relocate, protect). The firmware's
services are MS x64 -> SysV thunks into Python. Two things need more than native.call:

* ending the run from inside a service (ResetSystem, or scripted input running dry): the
  entry thunk saves its stack pointer; a service that ends the run sets a flag, and its thunk,
  once back from Python, restores that stack pointer and returns from the entry thunk, leaving
  the program's frames behind (as a power-off would);
* faults: a wild access in native code would kill the process, so the program runs in a
  forked child; the parent streams its output and reports a crash as one clear line.

AllocatePages memory is advised to Linux as huge pages (2 MiB), as UEFI firmware maps memory
with large pages: a forward pass streaming its weights is then not slowed by 4 KiB TLB misses
the real machine does not have (and matches `peasm bench kernels`, whose numpy pool gets huge
pages too). PEASM_NO_HUGE=1 in the environment turns that off, to compare.
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
from pathlib import Path
from typing import BinaryIO

from peasm.linker import LinkedImage
from peasm.runners import native
from peasm.runners.firmware import Firmware, InputEnded, Keyboard, PowerOff

ABORTED = 0xAB0A7ED0_0000_0000


class NativeMachine:
    """The firmware's view of host memory and native thunks."""

    def __init__(self):
        self._keep: list = []
        cells = native.GuardedBuffer(16, align=8, name="escape")
        self._keep.append(cells)
        self.saved_rsp = cells.address            # the entry thunk's stack pointer
        self.abort_flag = cells.address + 8       # nonzero: leave the program now
        native.write_memory(self.abort_flag, bytes(8))
        self.ending: BaseException | None = None
        escape = native._assemble([
            f"mov r10, 0x{self.saved_rsp:x}",
            "mov rsp, [r10]",
            f"mov rax, 0x{ABORTED:x}",
            "pop r15", "pop r14", "pop r13", "pop r12", "pop rbx", "pop rbp",
            "ret",
        ])
        self._escape = native.ExecutableCode(escape)
        enter = native._assemble([
            "push rbp", "push rbx", "push r12", "push r13", "push r14", "push r15",
            "mov [rcx], rsp",                     # rcx = &saved_rsp
            "sub rsp, 40",                        # shadow space; 16-aligned at the call
            "mov rax, rdi",
            "mov rcx, rsi",                       # MS x64: ImageHandle, SystemTable
            "call rax",
            "add rsp, 40",
            "pop r15", "pop r14", "pop r13", "pop r12", "pop rbx", "pop rbp",
            "ret",
        ])
        self._enter_code = native.ExecutableCode(enter)
        proto = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64,
                                 ctypes.c_void_p)
        self.enter = proto(self._enter_code.address)

    # -- memory -------------------------------------------------------------------------

    def alloc(self, size, data=None, *, align=8):
        buf = native.GuardedBuffer(max(size, len(data or b""), 1), align=align)
        self._keep.append(buf)
        if data:
            native.write_memory(buf.address, bytes(data))
        return buf.address

    def alloc_pages(self, size):
        buf = native.GuardedBuffer(size, align=native.PAGE)
        self._keep.append(buf)
        if os.environ.get("PEASM_NO_HUGE") is None:
            native.advise_huge_pages(buf.address, size)
        return buf.address

    def read(self, address, size):
        return native.read_memory(address, size)

    def write(self, address, data):
        native.write_memory(address, bytes(data))

    # -- services -----------------------------------------------------------------------

    def start_ap(self, procedure, argument):
        """An AP: a host thread running procedure(argument). It never calls a service (the
        thunks into Python are for the program's own thread only)."""
        self._keep.append(native.HostThread(procedure, argument))

    def service(self, fn, name, nargs):
        proto = ctypes.CFUNCTYPE(ctypes.c_uint64, *([ctypes.c_uint64] * nargs))

        def py(*args):
            try:
                result = fn(list(args))
            except (PowerOff, InputEnded) as e:
                self.ending = e
                native.write_memory(self.abort_flag, (1).to_bytes(8, "little"))
                return 0
            except Exception as e:  # noqa: BLE001 - a failing service ends the run, reported
                self.ending = e
                native.write_memory(self.abort_flag, (1).to_bytes(8, "little"))
                return 0
            return 0 if result is None else int(result) & (2**64 - 1)

        c_fn = proto(py)
        target = ctypes.cast(c_fn, ctypes.c_void_p).value
        lines = native._ms_to_sysv(target, nargs)
        # before the final epilogue: leave through the escape if the service ended the run
        tail = lines[-3:]
        assert tail[-1] == "ret"
        lines = lines[:-3] + [f"mov r10, 0x{self.abort_flag:x}", "cmp qword ptr [r10], 0", "je 1f",
                              f"mov r11, 0x{self._escape.address:x}", "jmp r11", "1:"] + tail
        code = native.ExecutableCode(native._assemble(_number_labels(lines)))
        self._keep += [c_fn, code]
        return code.address


def _number_labels(lines: list[str]) -> list[str]:
    """The thunk text goes straight to keystone (no peasm preprocessing): name the label."""
    return [ln.replace("je 1f", "je resume").replace("1:", "resume:") for ln in lines]


def _run_here(image: LinkedImage, volume: Path, keyboard: Keyboard, out: BinaryIO | None,
              mem_mib: int, power_cut_after: int | None, cpus: int = 1) -> tuple[int, str, bytes]:
    from peasm.runners.hosted import EXIT_FAULT, _ending

    loaded = native.NativeImage(image)
    machine = NativeMachine()
    fw = Firmware(machine, volume, out=out, keyboard=keyboard, memory_bytes=mem_mib << 20,
                  image_base=loaded.base, image_size=image.size_of_image, power_cut_after=power_cut_after,
                  cpus=cpus)
    rax = machine.enter(loaded.base + image.entry_rva, fw.image_handle, fw.system_table,
                        machine.saved_rsp)
    if rax == ABORTED:
        e = machine.ending
        if isinstance(e, (PowerOff, InputEnded)):
            status, reason = _ending(e)
            return status, reason, bytes(fw.output)
        return EXIT_FAULT, f"{type(e).__name__}: {e}", bytes(fw.output)
    return (0 if rax == 0 else 1), f"returned 0x{rax:x}", bytes(fw.output)


def run_native(image: LinkedImage, volume: Path, keyboard: Keyboard, out: BinaryIO | None,
               mem_mib: int, timeout_s: float, power_cut_after: int | None = None, cpus: int = 1):
    """Run in a forked child; output streams through a pipe so it survives a crash."""
    from peasm.runners.hosted import EXIT_FAULT, EXIT_TIMEOUT, RunResult

    ok, why = native.supported()
    if not ok:
        from peasm.errors import PeasmError
        raise PeasmError(f"native runner unavailable: {why}")
    out_r, out_w = os.pipe()
    res_r, res_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = EXIT_FAULT
        try:
            os.close(out_r)
            os.close(res_r)
            stream = os.fdopen(out_w, "wb", buffering=0)
            status, reason, _ = _run_here(image, volume, keyboard, stream, mem_mib, power_cut_after, cpus)
            os.write(res_w, json.dumps({"status": status, "reason": reason}).encode())
            code = 0
        except BaseException as e:  # noqa: BLE001
            try:
                os.write(res_w, json.dumps({"status": EXIT_FAULT, "reason": f"{type(e).__name__}: {e}"}).encode())
            except OSError:
                pass
        finally:
            os._exit(code)
    os.close(out_w)
    os.close(res_w)
    output = bytearray()
    if timeout_s:
        signal.signal(signal.SIGALRM, lambda *_: os.kill(pid, signal.SIGKILL))
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        while True:
            chunk = os.read(out_r, 65536)
            if not chunk:
                break
            output += chunk
            if out is not None:
                out.write(chunk)
                out.flush()
    finally:
        if timeout_s:
            signal.setitimer(signal.ITIMER_REAL, 0)
        os.close(out_r)
    _, wait_status = os.waitpid(pid, 0)
    with os.fdopen(res_r, "rb") as f:
        result = f.read()
    if result:
        r = json.loads(result)
        return RunResult(r["status"], bytes(output), r["reason"])
    if os.WIFSIGNALED(wait_status):
        sig = signal.Signals(os.WTERMSIG(wait_status)).name
        if sig == "SIGKILL" and timeout_s:
            return RunResult(EXIT_TIMEOUT, bytes(output), f"timed out after {timeout_s:g} s")
        return RunResult(EXIT_FAULT, bytes(output),
                         f"the program crashed ({sig}); run it with --cpu unicorn to locate the fault")
    return RunResult(EXIT_FAULT, bytes(output), "the runner's child ended without a result")
