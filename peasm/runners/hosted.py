"""Run a BOOTX64.EFI on this machine against the Python firmware model (peasm run).

Two machines run the same image: unicorn (SSE2 paths, guard pages, faults reported as
symbol + offset) and native (the host CPU at full speed, AVX2 paths). Both hand the program
the same firmware (peasm.runners.firmware), so they print the same thing.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from peasm.errors import PeasmError
from peasm.linker import LinkedImage
from peasm.runners.firmware import Firmware, InputEnded, Keyboard, PowerCut, PowerOff
from peasm.runners.peimage import load_pe

EXIT_OK, EXIT_APP_ERROR, EXIT_FAULT, EXIT_TIMEOUT = 0, 1, 2, 3


@dataclass
class RunResult:
    status: int            # process exit status for `peasm run`
    output: bytes          # what the program printed (UTF-8)
    reason: str            # "powered off", "returned 0x...", "input ended", a fault...

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", "replace")


class EmuMachine:
    """The firmware's view of an Emu."""

    def __init__(self, emu):
        self.emu = emu

    def alloc(self, size, data=None, *, align=8):
        return self.emu.alloc(size, data, align=align)

    def alloc_pages(self, size):
        return self.emu.alloc_pages(size)

    def read(self, address, size):
        return self.emu.read(address, size)

    def write(self, address, data):
        self.emu.write(address, data)

    # The AP stack this firmware model gives: small on purpose (EDK2 platforms set
    # PcdCpuApStackSize as they like), so a program that needs more must bring its own.
    AP_STACK_BYTES = 2048

    def start_ap(self, procedure, argument):
        self.emu.start_core(procedure, argument, stack_size=self.AP_STACK_BYTES)

    def service(self, fn, name, nargs):
        from peasm.runners.emu import Stop

        def trap(emu, arg):
            try:
                return fn([arg(i) for i in range(nargs)])
            except (PowerOff, InputEnded) as e:
                raise Stop(type(e).__name__, e) from None
        return self.emu.trap(trap, name)


def _ending(cause: BaseException | None) -> tuple[int, str]:
    if isinstance(cause, PowerCut):
        return EXIT_OK, f"power cut before: {cause.operation}"
    if isinstance(cause, PowerOff):
        return (EXIT_OK if cause.status == 0 else EXIT_APP_ERROR), "powered off"
    if isinstance(cause, InputEnded):
        return EXIT_OK, "input ended"
    return EXIT_FAULT, str(cause)


def run(efi: Path | LinkedImage, volume: Path, *, cpu: str = "unicorn", input_bytes: bytes = b"",
        stdin: BinaryIO | None = None, out: BinaryIO | None = None, mem_mib: int = 1024,
        timeout_s: float = 0, power_cut_after: int | None = None, keyboard: str = "serial",
        cpus: int = 1) -> RunResult:
    """Run the program until it powers off, returns, faults or runs out of input.
    `power_cut_after` (tests) stops it before its Nth change to the volume. `keyboard` is the
    console the keys come through: "serial" (one key per byte, as OVMF's serial terminal) or
    "local" (a PC keyboard; see firmware.Keyboard). `cpus`: the processors MP services
    reports (APs are host threads natively, cores taking turns under unicorn)."""
    if cpus < 1:
        raise PeasmError(f"cpus must be at least 1 (got {cpus})")
    image = efi if isinstance(efi, LinkedImage) else load_pe(Path(efi))
    volume = Path(volume)
    if not volume.is_dir():
        raise PeasmError(f"volume directory not found: {volume}")
    if keyboard not in Keyboard.MODES:
        raise PeasmError(f"unknown keyboard {keyboard!r} (serial or local)")
    keys = Keyboard(input_bytes, stdin, mode=keyboard)
    if cpu == "unicorn":
        return _run_unicorn(image, volume, keys, out, mem_mib, timeout_s, power_cut_after, cpus)
    if cpu == "native":
        from peasm.runners.native_app import run_native
        return run_native(image, volume, keys, out, mem_mib, timeout_s, power_cut_after, cpus)
    raise PeasmError(f"unknown cpu {cpu!r} (native or unicorn)")


def _run_unicorn(image, volume, keyboard, out, mem_mib, timeout_s, power_cut_after, cpus=1) -> RunResult:
    from peasm.runners.emu import Emu, EmuFault

    emu = Emu(image, check_entries=False)   # stack alignment is still checked at every firmware call
    fw = Firmware(EmuMachine(emu), volume, out=out, keyboard=keyboard, memory_bytes=mem_mib << 20,
                  image_base=emu.base, image_size=image.size_of_image, power_cut_after=power_cut_after,
                  cpus=cpus)
    try:
        rax = emu.call(emu.base + image.entry_rva, fw.image_handle, fw.system_table, timeout_s=timeout_s)
    except EmuFault as e:
        return RunResult(EXIT_TIMEOUT if "did not return" in str(e) else EXIT_FAULT, bytes(fw.output), str(e))
    if emu.stopped is not None:
        status, reason = _ending(emu.stopped.cause)
        return RunResult(status, bytes(fw.output), reason if emu.stopped.cause else str(emu.stopped))
    return RunResult(EXIT_OK if rax == 0 else EXIT_APP_ERROR, bytes(fw.output), f"returned 0x{rax:x}")
