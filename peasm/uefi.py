"""The UEFI tables, protocols, GUIDs and constants the project uses, declared once.

From these declarations peasm generates `uefi.inc` (field offsets as `.equ`, GUIDs as
macros, constants) for the asm, and the hosted firmware model (peasm.runners.firmware) lays
out its tables in memory. Offsets are therefore never typed by hand twice. Layouts follow the
UEFI 2.10 specification (x64: natural alignment, pointers and UINTN are 8 bytes).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass

# Scalar types: name -> (size, alignment)
SCALARS = {"u8": (1, 1), "u16": (2, 2), "u32": (4, 4), "u64": (8, 8), "ptr": (8, 8), "fn": (8, 8)}


@dataclass(frozen=True)
class Field:
    name: str
    type: str          # a scalar name or another Struct's name
    count: int = 1     # arrays (e.g. CHAR16 FileName[]: count 0 = flexible tail)


@dataclass(frozen=True)
class Struct:
    name: str
    fields: tuple[Field, ...]

    def layout(self) -> tuple[dict[str, int], int, int]:
        """(offset of each field, size, alignment) with C natural alignment."""
        offsets, off, align = {}, 0, 1
        for f in self.fields:
            size, falign = self.field_size(f.type)
            off = (off + falign - 1) // falign * falign
            offsets[f.name] = off
            off += size * f.count
            align = max(align, falign)
        size = (off + align - 1) // align * align
        return offsets, size, align

    def field_size(self, t: str) -> tuple[int, int]:
        """(size, alignment) of a field's type: a scalar or a struct of this module (a subclass
        declared elsewhere names its own module's structs)."""
        return type_size(t)

    def equ_lines(self, size_name: str = "SIZE") -> list[str]:
        """The struct in an .inc: a comment, `.equ NAME_FIELD, offset` for every field,
        `.equ NAME_<size_name>, size`, a blank line."""
        offsets, size, _ = self.layout()
        return [f"# {self.name}", *(f".equ {self.name}_{n}, {off}" for n, off in offsets.items()),
                f".equ {self.name}_{size_name}, {size}", ""]

    def offset(self, field_name: str) -> int:
        return self.layout()[0][field_name]

    @property
    def size(self) -> int:
        return self.layout()[1]

    def functions(self) -> list[str]:
        return [f.name for f in self.fields if f.type == "fn"]


def declare(name: str, *fields: str | tuple, cls: type[Struct] = Struct) -> Struct:
    """Compact declaration: "Name:type" or ("Name", type, count); `cls`: Struct or a subclass."""
    out = []
    for f in fields:
        if isinstance(f, tuple):
            out.append(Field(*f))
        else:
            n, t = f.split(":")
            out.append(Field(n, t))
    return cls(name, tuple(out))


_s = declare


def _fns(*names: str) -> tuple[str, ...]:
    return tuple(f"{n}:fn" for n in names)


STRUCTS: dict[str, Struct] = {}


def _add(s: Struct) -> Struct:
    STRUCTS[s.name] = s
    return s


def type_size(t: str) -> tuple[int, int]:
    if t in SCALARS:
        return SCALARS[t]
    _, size, align = STRUCTS[t].layout()
    return size, align


EFI_GUID = _add(_s("EFI_GUID", "Data1:u32", "Data2:u16", "Data3:u16", ("Data4", "u8", 8)))
EFI_TABLE_HEADER = _add(_s("EFI_TABLE_HEADER", "Signature:u64", "Revision:u32", "HeaderSize:u32",
                           "CRC32:u32", "Reserved:u32"))
EFI_SYSTEM_TABLE = _add(_s(
    "EFI_SYSTEM_TABLE", "Hdr:EFI_TABLE_HEADER", "FirmwareVendor:ptr", "FirmwareRevision:u32",
    "ConsoleInHandle:ptr", "ConIn:ptr", "ConsoleOutHandle:ptr", "ConOut:ptr",
    "StandardErrorHandle:ptr", "StdErr:ptr", "RuntimeServices:ptr", "BootServices:ptr",
    "NumberOfTableEntries:u64", "ConfigurationTable:ptr"))
EFI_BOOT_SERVICES = _add(_s(
    "EFI_BOOT_SERVICES", "Hdr:EFI_TABLE_HEADER",
    *_fns("RaiseTPL", "RestoreTPL", "AllocatePages", "FreePages", "GetMemoryMap", "AllocatePool",
          "FreePool", "CreateEvent", "SetTimer", "WaitForEvent", "SignalEvent", "CloseEvent",
          "CheckEvent", "InstallProtocolInterface", "ReinstallProtocolInterface",
          "UninstallProtocolInterface", "HandleProtocol"),
    "Reserved:ptr",
    *_fns("RegisterProtocolNotify", "LocateHandle", "LocateDevicePath", "InstallConfigurationTable",
          "LoadImage", "StartImage", "Exit", "UnloadImage", "ExitBootServices",
          "GetNextMonotonicCount", "Stall", "SetWatchdogTimer", "ConnectController",
          "DisconnectController", "OpenProtocol", "CloseProtocol", "OpenProtocolInformation",
          "ProtocolsPerHandle", "LocateHandleBuffer", "LocateProtocol",
          "InstallMultipleProtocolInterfaces", "UninstallMultipleProtocolInterfaces",
          "CalculateCrc32", "CopyMem", "SetMem", "CreateEventEx")))
EFI_RUNTIME_SERVICES = _add(_s(
    "EFI_RUNTIME_SERVICES", "Hdr:EFI_TABLE_HEADER",
    *_fns("GetTime", "SetTime", "GetWakeupTime", "SetWakeupTime", "SetVirtualAddressMap",
          "ConvertPointer", "GetVariable", "GetNextVariableName", "SetVariable",
          "GetNextHighMonotonicCount", "ResetSystem", "UpdateCapsule",
          "QueryCapsuleCapabilities", "QueryVariableInfo")))
EFI_INPUT_KEY = _add(_s("EFI_INPUT_KEY", "ScanCode:u16", "UnicodeChar:u16"))
EFI_SIMPLE_TEXT_INPUT_PROTOCOL = _add(_s(
    "EFI_SIMPLE_TEXT_INPUT_PROTOCOL", *_fns("Reset", "ReadKeyStroke"), "WaitForKey:ptr"))
SIMPLE_TEXT_OUTPUT_MODE = _add(_s(
    "SIMPLE_TEXT_OUTPUT_MODE", "MaxMode:u32", "Mode:u32", "Attribute:u32", "CursorColumn:u32",
    "CursorRow:u32", "CursorVisible:u8"))
EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL = _add(_s(
    "EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL",
    *_fns("Reset", "OutputString", "TestString", "QueryMode", "SetMode", "SetAttribute",
          "ClearScreen", "SetCursorPosition", "EnableCursor"), "Mode:ptr"))
EFI_LOADED_IMAGE_PROTOCOL = _add(_s(
    "EFI_LOADED_IMAGE_PROTOCOL", "Revision:u32", "ParentHandle:ptr", "SystemTable:ptr",
    "DeviceHandle:ptr", "FilePath:ptr", "Reserved:ptr", "LoadOptionsSize:u32", "LoadOptions:ptr",
    "ImageBase:ptr", "ImageSize:u64", "ImageCodeType:u32", "ImageDataType:u32", "Unload:fn"))
EFI_SIMPLE_FILE_SYSTEM_PROTOCOL = _add(_s(
    "EFI_SIMPLE_FILE_SYSTEM_PROTOCOL", "Revision:u64", "OpenVolume:fn"))
EFI_FILE_PROTOCOL = _add(_s(
    "EFI_FILE_PROTOCOL", "Revision:u64",
    *_fns("Open", "Close", "Delete", "Read", "Write", "GetPosition", "SetPosition", "GetInfo",
          "SetInfo", "Flush")))
EFI_TIME = _add(_s("EFI_TIME", "Year:u16", "Month:u8", "Day:u8", "Hour:u8", "Minute:u8", "Second:u8",
                   "Pad1:u8", "Nanosecond:u32", "TimeZone:u16", "Daylight:u8", "Pad2:u8"))
EFI_FILE_INFO = _add(_s(
    "EFI_FILE_INFO", "Size:u64", "FileSize:u64", "PhysicalSize:u64", "CreateTime:EFI_TIME",
    "LastAccessTime:EFI_TIME", "ModificationTime:EFI_TIME", "Attribute:u64", ("FileName", "u16", 0)))
EFI_MEMORY_DESCRIPTOR = _add(_s(
    "EFI_MEMORY_DESCRIPTOR", "Type:u32", "PhysicalStart:u64", "VirtualStart:u64",
    "NumberOfPages:u64", "Attribute:u64"))
EFI_MP_SERVICES_PROTOCOL = _add(_s(
    "EFI_MP_SERVICES_PROTOCOL",
    *_fns("GetNumberOfProcessors", "GetProcessorInfo", "StartupAllAPs", "StartupThisAP",
          "SwitchBSP", "EnableDisableAP", "WhoAmI")))

# Protocol and info GUIDs (UEFI spec).
GUIDS: dict[str, uuid.UUID] = {
    "EFI_LOADED_IMAGE_PROTOCOL_GUID": uuid.UUID("5B1B31A1-9562-11d2-8E3F-00A0C969723B"),
    "EFI_SIMPLE_FILE_SYSTEM_PROTOCOL_GUID": uuid.UUID("964E5B22-6459-11d2-8E39-00A0C969723B"),
    "EFI_FILE_INFO_GUID": uuid.UUID("09576E92-6D3F-11d2-8E39-00A0C969723B"),
    "EFI_FILE_SYSTEM_INFO_GUID": uuid.UUID("09576E93-6D3F-11d2-8E39-00A0C969723B"),
    "EFI_MP_SERVICES_PROTOCOL_GUID": uuid.UUID("3FDDA605-A76E-4F46-AD29-12F4531B3D08"),
}

_ERR = 1 << 63
CONSTANTS: dict[str, int] = {
    # EFI_STATUS
    "EFI_SUCCESS": 0, "EFI_LOAD_ERROR": _ERR | 1, "EFI_INVALID_PARAMETER": _ERR | 2,
    "EFI_UNSUPPORTED": _ERR | 3, "EFI_BAD_BUFFER_SIZE": _ERR | 4, "EFI_BUFFER_TOO_SMALL": _ERR | 5,
    "EFI_NOT_READY": _ERR | 6, "EFI_DEVICE_ERROR": _ERR | 7, "EFI_WRITE_PROTECTED": _ERR | 8,
    "EFI_OUT_OF_RESOURCES": _ERR | 9, "EFI_VOLUME_CORRUPTED": _ERR | 10, "EFI_VOLUME_FULL": _ERR | 11,
    "EFI_NO_MEDIA": _ERR | 12, "EFI_MEDIA_CHANGED": _ERR | 13, "EFI_NOT_FOUND": _ERR | 14,
    "EFI_ACCESS_DENIED": _ERR | 15, "EFI_END_OF_FILE": _ERR | 31,
    "EFI_WARN_DELETE_FAILURE": 2,
    # EFI_ALLOCATE_TYPE and EFI_MEMORY_TYPE
    "AllocateAnyPages": 0, "AllocateMaxAddress": 1, "AllocateAddress": 2,
    "EfiReservedMemoryType": 0, "EfiLoaderCode": 1, "EfiLoaderData": 2, "EfiBootServicesCode": 3,
    "EfiBootServicesData": 4, "EfiRuntimeServicesCode": 5, "EfiRuntimeServicesData": 6,
    "EfiConventionalMemory": 7,
    # EFI_RESET_TYPE
    "EfiResetCold": 0, "EfiResetWarm": 1, "EfiResetShutdown": 2,
    # EFI_FILE_PROTOCOL open modes and attributes
    "EFI_FILE_MODE_READ": 1, "EFI_FILE_MODE_WRITE": 2, "EFI_FILE_MODE_CREATE": 1 << 63,
    "EFI_FILE_READ_ONLY": 1, "EFI_FILE_DIRECTORY": 0x10, "EFI_FILE_ARCHIVE": 0x20,
    # EFI_INPUT_KEY scan codes
    "SCAN_NULL": 0, "SCAN_UP": 1, "SCAN_DOWN": 2, "SCAN_RIGHT": 3, "SCAN_LEFT": 4,
    "SCAN_HOME": 5, "SCAN_END": 6, "SCAN_INSERT": 7, "SCAN_DELETE": 8, "SCAN_PAGE_UP": 9,
    "SCAN_PAGE_DOWN": 0x0A, "SCAN_F1": 0x0B, "SCAN_F12": 0x16, "SCAN_ESC": 0x17,
    # EFI_INPUT_KEY UnicodeChar control characters
    "CHAR_NULL": 0, "CHAR_BACKSPACE": 8, "CHAR_TAB": 9, "CHAR_LINEFEED": 0x0A,
    "CHAR_CARRIAGE_RETURN": 0x0D,
    "EFI_PAGE_SIZE": 4096,
    # EFI_TPL (CreateEvent's NotifyTpl); an event Type of 0 has no notification (UEFI 2.10, 7.1)
    "TPL_APPLICATION": 4, "TPL_CALLBACK": 8, "TPL_NOTIFY": 16,
    "EVT_TIMER": 0x80000000, "EVT_NOTIFY_WAIT": 0x100, "EVT_NOTIFY_SIGNAL": 0x200,
    "EFI_NOT_STARTED": _ERR | 19, "EFI_TIMEOUT": _ERR | 18,
}


def guid_bytes(g: uuid.UUID) -> bytes:
    """EFI_GUID in memory: Data1..Data3 little-endian, Data4 as bytes."""
    return g.bytes_le


def render_include() -> str:
    """The text of `uefi.inc`: offsets, sizes, GUID macros and constants."""
    lines = ["# Generated by peasm.uefi from its declarations; do not edit.", ""]
    for s in STRUCTS.values():
        lines += s.equ_lines("size")
    for name, value in CONSTANTS.items():
        lines.append(f".equ {name}, 0x{value:x}")
    lines.append("")
    for name, g in GUIDS.items():
        lines.append(f"# {g}")
        lines.append(f".macro {name}")
        lines.append("    .byte " + ", ".join(f"0x{b:02x}" for b in guid_bytes(g)))
        lines.append(".endm")
    return "\n".join(lines) + "\n"
