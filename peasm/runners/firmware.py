"""A small UEFI firmware in Python, for running BOOTX64.EFI on the host.

The tables (system table, boot and runtime services, console in/out, loaded image, simple
file system, file protocol) are laid out in the guest's memory from the declarations in
peasm.uefi, so their offsets are the ones the asm uses. Each function pointer is a service
of the machine (a unicorn trap or a native callback thunk) that lands in a method here.

What it models: a console on a byte stream (UCS-2 in, UTF-8 out), a keyboard from a script or
a terminal, a host directory as the boot volume (case-insensitive names, as FAT), pages and
pool from a memory budget with a memory map that tells the truth about what is left, a Stall
that really waits, ResetSystem ending the run, and MP services for `cpus` processors: each
AP a core of the machine (a host thread natively, a core taking turns under unicorn).

The parts: firmware_files.py (the boot volume's file protocol), keyboard.py (keys from a
script or a terminal), firmware_common.py (status values, the exceptions that end a run);
their public names are re-exported here.
"""
from __future__ import annotations

import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Protocol

from peasm import uefi

from .firmware_common import EFI_SUCCESS, ERR, PAGE, S, InputEnded, PowerCut, PowerOff  # noqa: F401
from .firmware_files import FileServices, OpenFile
from .keyboard import Keyboard


class Machine(Protocol):
    """What the firmware needs from whatever runs the code."""

    def alloc(self, size: int, data: bytes | None = None, *, align: int = 8) -> int: ...
    def alloc_pages(self, size: int) -> int: ...
    def read(self, address: int, size: int) -> bytes: ...
    def write(self, address: int, data: bytes) -> None: ...
    def service(self, fn: Callable[[list[int]], int | None], name: str, nargs: int) -> int: ...
    def start_ap(self, procedure: int, argument: int) -> None: ...


@dataclass
class Firmware(FileServices):
    machine: Machine
    volume: Path
    out: BinaryIO = field(default_factory=lambda: sys.stdout.buffer)
    keyboard: Keyboard = field(default_factory=Keyboard)
    memory_bytes: int = 1 << 30
    image_base: int = 0
    image_size: int = 0
    trace: Callable[[str], None] | None = None
    power_cut_after: int | None = None   # tests: cut the power at the Nth change to the volume
    cpus: int = 1                        # processors MP services reports (the boot one included)
    mp_services: bool = True             # False: no EFI_MP_SERVICES_PROTOCOL at all

    def __post_init__(self):
        self.volume = Path(self.volume).resolve()
        self.output = bytearray()          # everything printed, for tests
        self.allocated = 0
        self.pools: dict[int, int] = {}
        self.pages: dict[int, int] = {}
        self.files: dict[int, OpenFile] = {}
        self.volume_changes = 0
        self._file_protocol_template = self._table("EFI_FILE_PROTOCOL", "file", {"Revision": 0x00010000})
        self.image_handle = self.machine.alloc(8, align=8)
        self.device_handle = self.machine.alloc(8, align=8)
        self.wait_for_key_event = self.machine.alloc(8, align=8)
        mode = self._write_struct("SIMPLE_TEXT_OUTPUT_MODE", {"MaxMode": 1, "CursorVisible": 1})
        self.con_out = self._alloc_table("EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL", "conout", {"Mode": mode})
        self.con_in = self._alloc_table("EFI_SIMPLE_TEXT_INPUT_PROTOCOL", "conin",
                                        {"WaitForKey": self.wait_for_key_event})
        self.boot_services = self._alloc_table("EFI_BOOT_SERVICES", "bs", {})
        self.runtime_services = self._alloc_table("EFI_RUNTIME_SERVICES", "rt", {})
        self.simple_fs = self._alloc_table("EFI_SIMPLE_FILE_SYSTEM_PROTOCOL", "sfs", {"Revision": 0x00010000})
        vendor = self.machine.alloc(64, "peasm hosted firmware\0".encode("utf-16-le"), align=8)
        self.system_table = self._write_struct("EFI_SYSTEM_TABLE", {
            "FirmwareVendor": vendor, "FirmwareRevision": 0x00010000,
            "ConsoleInHandle": self.image_handle, "ConIn": self.con_in,
            "ConsoleOutHandle": self.image_handle, "ConOut": self.con_out,
            "StandardErrorHandle": self.image_handle, "StdErr": self.con_out,
            "RuntimeServices": self.runtime_services, "BootServices": self.boot_services})
        self.loaded_image = self._write_struct("EFI_LOADED_IMAGE_PROTOCOL", {
            "Revision": 0x1000, "SystemTable": self.system_table, "DeviceHandle": self.device_handle,
            "ImageBase": self.image_base, "ImageSize": self.image_size,
            "ImageCodeType": S["EfiLoaderCode"], "ImageDataType": S["EfiLoaderData"]})
        self.events: set[int] = set()
        self.aps_started = False
        self.mp = self._alloc_table("EFI_MP_SERVICES_PROTOCOL", "mp", {})
        self.protocols = {
            (self.image_handle, uefi.GUIDS["EFI_LOADED_IMAGE_PROTOCOL_GUID"].bytes_le): self.loaded_image,
            (self.device_handle, uefi.GUIDS["EFI_SIMPLE_FILE_SYSTEM_PROTOCOL_GUID"].bytes_le): self.simple_fs,
        }

    # -- table construction ------------------------------------------------------------

    def _values_bytes(self, struct_name: str, values: dict) -> bytes:
        s = uefi.STRUCTS[struct_name]
        offsets, size, _ = s.layout()
        buf = bytearray(size)
        for f in s.fields:
            if f.name in values:
                width = uefi.type_size(f.type)[0] if f.type in uefi.SCALARS else 8
                buf[offsets[f.name]:offsets[f.name] + width] = values[f.name].to_bytes(width, "little")
        return bytes(buf)

    def _efi_time(self, t: time.struct_time) -> bytes:
        """An EFI_TIME (UTC, no time zone or daylight information) for a time.gmtime() value."""
        return self._values_bytes("EFI_TIME", {"Year": t.tm_year, "Month": t.tm_mon, "Day": t.tm_mday,
                                               "Hour": t.tm_hour, "Minute": t.tm_min, "Second": t.tm_sec})

    def _write_struct(self, struct_name: str, values: dict) -> int:
        data = self._values_bytes(struct_name, values)
        return self.machine.alloc(len(data), data, align=8)

    def _table(self, struct_name: str, prefix: str, values: dict) -> dict:
        """Values for a table: every fn field is a service (unsupported ones say so)."""
        values = dict(values)
        for name in uefi.STRUCTS[struct_name].functions():
            method = getattr(self, f"{prefix}_{name}", None)
            values[name] = self.machine.service(self._wrap(method, f"{prefix}.{name}"),
                                                f"{struct_name}.{name}", 10)
        return values

    def _alloc_table(self, struct_name: str, prefix: str, values: dict) -> int:
        return self._write_struct(struct_name, self._table(struct_name, prefix, values))

    def _wrap(self, method, name):
        def service(args):
            if self.trace:
                self.trace(f"{name}({', '.join(hex(a) for a in args[:4])})")
            if method is None:
                return ERR["EFI_UNSUPPORTED"]
            result = method(*args)
            return EFI_SUCCESS if result is None else result
        return service

    # -- memory helpers -----------------------------------------------------------------

    def _u64(self, address: int) -> int:
        return struct.unpack("<Q", self.machine.read(address, 8))[0]

    def _put_u64(self, address: int, value: int) -> None:
        self.machine.write(address, struct.pack("<Q", value & (2**64 - 1)))

    def _ucs2(self, address: int, limit: int = 4096) -> str:
        units = []
        while len(units) < limit:
            u = struct.unpack("<H", self.machine.read(address + 2 * len(units), 2))[0]
            if u == 0:
                break
            units.append(u)
        return struct.pack(f"<{len(units)}H", *units).decode("utf-16-le", "replace")

    def free_bytes(self) -> int:
        return max(0, self.memory_bytes - self.allocated)

    # -- console ------------------------------------------------------------------------

    def conout_OutputString(self, this, string, *_):
        text = self._ucs2(string, 1 << 20).replace("\r\n", "\n").replace("\r", "")
        data = text.encode("utf-8")
        self.output += data
        if self.out is not None:
            self.out.write(data)
            self.out.flush()

    def conout_Reset(self, *_): pass
    def conout_TestString(self, *_): pass
    def conout_SetAttribute(self, *_): pass
    def conout_ClearScreen(self, *_): pass
    def conout_EnableCursor(self, *_): pass
    def conout_SetCursorPosition(self, *_): pass
    def conout_SetMode(self, this, mode, *_):
        return None if mode == 0 else ERR["EFI_UNSUPPORTED"]

    def conout_QueryMode(self, this, mode, columns, rows, *_):
        if mode != 0:
            return ERR["EFI_UNSUPPORTED"]
        self._put_u64(columns, 80)
        self._put_u64(rows, 25)

    def conin_Reset(self, *_): pass

    def conin_ReadKeyStroke(self, this, key, *_):
        got = self.keyboard.poll()
        if got is None:
            return ERR["EFI_NOT_READY"]
        self.machine.write(key, struct.pack("<HH", *got))

    # -- boot services ------------------------------------------------------------------

    def bs_SetWatchdogTimer(self, *_): pass

    def bs_Stall(self, microseconds, *_):
        time.sleep(min(microseconds, 10_000_000) / 1e6)

    def bs_WaitForEvent(self, count, events, index, *_):
        if count != 1 or self._u64(events) != self.wait_for_key_event:
            return ERR["EFI_UNSUPPORTED"]
        self.keyboard.wait()     # raises InputEnded when a script runs dry
        self._put_u64(index, 0)

    def bs_AllocatePages(self, kind, memory_type, pages, memory, *_):
        if kind != S["AllocateAnyPages"]:
            return ERR["EFI_UNSUPPORTED"]
        size = pages * PAGE
        if pages == 0 or size > self.free_bytes():
            return ERR["EFI_OUT_OF_RESOURCES"]
        address = self.machine.alloc_pages(size)
        self.pages[address] = size
        self.allocated += size
        self._put_u64(memory, address)

    def bs_FreePages(self, address, pages, *_):
        size = self.pages.pop(address, None)
        if size is None:
            return ERR["EFI_NOT_FOUND"]
        self.allocated -= size

    def bs_AllocatePool(self, memory_type, size, buffer, *_):
        if size > self.free_bytes():
            return ERR["EFI_OUT_OF_RESOURCES"]
        address = self.machine.alloc(max(size, 1), align=8)
        self.pools[address] = size
        self.allocated += size
        self._put_u64(buffer, address)

    def bs_FreePool(self, address, *_):
        size = self.pools.pop(address, None)
        if size is None:
            return ERR["EFI_INVALID_PARAMETER"]
        self.allocated -= size

    def bs_GetMemoryMap(self, size_ptr, buffer, key_ptr, desc_size_ptr, desc_version_ptr, *_):
        desc = uefi.STRUCTS["EFI_MEMORY_DESCRIPTOR"]
        dsize = desc.size
        regions = [(S["EfiLoaderCode"], 0x100000, max(1, self.image_size // PAGE)),
                   (S["EfiLoaderData"], 0x200000, max(1, self.allocated // PAGE)),
                   (S["EfiConventionalMemory"], 0x1_0000_0000, self.free_bytes() // PAGE)]
        needed = dsize * len(regions)
        self._put_u64(desc_size_ptr, dsize)
        self.machine.write(desc_version_ptr, struct.pack("<I", 1))
        have = self._u64(size_ptr)
        self._put_u64(size_ptr, needed)
        if have < needed or buffer == 0:
            return ERR["EFI_BUFFER_TOO_SMALL"]
        data = b"".join(self._values_bytes("EFI_MEMORY_DESCRIPTOR", {
            "Type": t, "PhysicalStart": start, "NumberOfPages": pages}) for t, start, pages in regions)
        self.machine.write(buffer, data)
        self._put_u64(key_ptr, 1)

    def bs_HandleProtocol(self, handle, guid, interface, *_):
        found = self.protocols.get((handle, self.machine.read(guid, 16)))
        if found is None:
            return ERR["EFI_UNSUPPORTED"]
        self._put_u64(interface, found)

    def bs_OpenProtocol(self, handle, guid, interface, *_):
        return self.bs_HandleProtocol(handle, guid, interface)

    def bs_LocateProtocol(self, guid, registration, interface, *_):
        if self.mp_services and self.machine.read(guid, 16) == \
                uefi.GUIDS["EFI_MP_SERVICES_PROTOCOL_GUID"].bytes_le:
            self._put_u64(interface, self.mp)
            return None
        return ERR["EFI_NOT_FOUND"]

    def bs_CreateEvent(self, event_type, notify_tpl, notify_function, notify_context, event, *_):
        """Events without notification (Type 0: only to be signalled, e.g. StartupAllAPs'
        WaitEvent); a notification function would never be called here: refused."""
        if event == 0:
            return ERR["EFI_INVALID_PARAMETER"]
        if event_type & (S["EVT_NOTIFY_WAIT"] | S["EVT_NOTIFY_SIGNAL"] | S["EVT_TIMER"]):
            return ERR["EFI_UNSUPPORTED"]
        handle = self.machine.alloc(8, align=8)
        self.events.add(handle)
        self._put_u64(event, handle)

    def bs_CloseEvent(self, event, *_):
        if event not in self.events:
            return ERR["EFI_INVALID_PARAMETER"]
        self.events.discard(event)

    # -- MP services (PI spec vol. 2): processor 0 is the one running the program ---------

    def mp_GetNumberOfProcessors(self, this, count, enabled, *_):
        if count == 0 or enabled == 0:
            return ERR["EFI_INVALID_PARAMETER"]
        self._put_u64(count, self.cpus)
        self._put_u64(enabled, self.cpus)

    def mp_WhoAmI(self, this, number, *_):
        if number == 0:
            return ERR["EFI_INVALID_PARAMETER"]
        self._put_u64(number, 0)

    def mp_StartupAllAPs(self, this, procedure, single_thread, wait_event, timeout_us, argument,
                         failed_cpu_list, *_):
        """Non-blocking (WaitEvent given), simultaneous: every AP starts procedure(argument) and
        the call returns at once. The procedures here never end (the program's workers), so
        the event is never signalled; blocking and single-thread modes, which would wait for
        them, are refused as unsupported by this model."""
        if procedure == 0:
            return ERR["EFI_INVALID_PARAMETER"]
        if self.cpus <= 1:
            return ERR["EFI_NOT_STARTED"]
        if self.aps_started:
            return ERR["EFI_NOT_READY"]
        if wait_event == 0 or single_thread & 0xFF:
            return ERR["EFI_UNSUPPORTED"]
        if wait_event not in self.events:
            return ERR["EFI_INVALID_PARAMETER"]
        self.aps_started = True
        for _ in range(self.cpus - 1):
            self.machine.start_ap(procedure, argument)

    def bs_CloseProtocol(self, *_): pass

    # -- runtime services ---------------------------------------------------------------

    def rt_ResetSystem(self, reset_type, status, *_):
        raise PowerOff(reset_type, status)

    def rt_GetTime(self, time_ptr, caps, *_):
        self.machine.write(time_ptr, self._efi_time(time.gmtime()))
