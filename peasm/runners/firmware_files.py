"""The hosted firmware's boot volume: EFI_SIMPLE_FILE_SYSTEM_PROTOCOL and EFI_FILE_PROTOCOL
on a host directory (`FileServices`, a part of Firmware): names matched case-insensitively and
directories listed in creation order, as FAT does; every change counted, so a test can cut the
power before any one of them. Part of peasm.runners.firmware.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from peasm import uefi

from .firmware_common import ERR, S, PowerCut


@dataclass
class OpenFile:
    path: Path
    is_dir: bool
    writable: bool
    position: int = 0
    entries: list[Path] | None = None   # directory listing, read one by one


class FileServices:
    """Firmware's file-system services (the methods named sfs_* and file_*)."""

    def sfs_OpenVolume(self, this, root, *_):
        self._put_u64(root, self._new_file(OpenFile(self.volume, True, False)))

    def _changing(self, operation: str) -> None:
        """Every change to the volume goes through here, so a test can cut the power before
        any one of them (the change is then not made, as with a real cut)."""
        self.volume_changes += 1
        if self.power_cut_after is not None and self.volume_changes >= self.power_cut_after:
            raise PowerCut(operation)

    def _new_file(self, f: OpenFile) -> int:
        address = self._write_struct("EFI_FILE_PROTOCOL", self._file_protocol_template)
        self.files[address] = f
        return address

    def _resolve(self, base: Path, name: str, create: bool) -> Path | None:
        """A path inside the volume, matching names case-insensitively as FAT does."""
        parts = [p for p in name.replace("/", "\\").split("\\") if p not in ("", ".")]
        current = self.volume if name.startswith("\\") else base
        for i, part in enumerate(parts):
            if part == "..":
                if current == self.volume:
                    return None
                current = current.parent
                continue
            match = None
            if current.is_dir():
                match = next((c for c in current.iterdir() if c.name.lower() == part.lower()), None)
            if match is None:
                if create and i == len(parts) - 1 and current.is_dir():
                    match = current / part
                else:
                    return None
            current = match
        return current

    def file_Open(self, this, new_handle, name_ptr, mode, attributes, *_):
        parent = self.files.get(this)
        if parent is None or not parent.is_dir:
            return ERR["EFI_INVALID_PARAMETER"]
        name = self._ucs2(name_ptr)
        create = bool(mode & S["EFI_FILE_MODE_CREATE"])
        path = self._resolve(parent.path, name, create)
        if path is None:
            return ERR["EFI_NOT_FOUND"]
        if not path.exists():
            self._changing(f"create {name}")
            if attributes & S["EFI_FILE_DIRECTORY"]:
                path.mkdir()
            else:
                path.touch()
        writable = bool(mode & S["EFI_FILE_MODE_WRITE"])
        self._put_u64(new_handle, self._new_file(OpenFile(path, path.is_dir(), writable)))

    def file_Close(self, this, *_):
        self.files.pop(this, None)

    def file_Delete(self, this, *_):
        f = self.files.pop(this, None)
        if f is None or not f.writable or f.path == self.volume:
            return S["EFI_WARN_DELETE_FAILURE"]
        self._changing(f"delete {f.path.name}")
        if f.is_dir:
            f.path.rmdir()
        else:
            f.path.unlink()

    def file_Read(self, this, size_ptr, buffer, *_):
        f = self.files.get(this)
        if f is None:
            return ERR["EFI_INVALID_PARAMETER"]
        want = self._u64(size_ptr)
        if f.is_dir:
            if f.entries is None:   # creation order, as a FAT directory lists its entries
                f.entries = sorted(f.path.iterdir(), key=lambda p: (p.stat().st_ctime_ns, p.name.lower()))
            if f.position >= len(f.entries):
                self._put_u64(size_ptr, 0)
                return None
            info = self._file_info(f.entries[f.position])
            if want < len(info):
                self._put_u64(size_ptr, len(info))
                return ERR["EFI_BUFFER_TOO_SMALL"]
            self.machine.write(buffer, info)
            self._put_u64(size_ptr, len(info))
            f.position += 1
            return None
        with open(f.path, "rb") as fh:
            fh.seek(f.position)
            data = fh.read(want)
        self.machine.write(buffer, data)
        f.position += len(data)
        self._put_u64(size_ptr, len(data))

    def file_Write(self, this, size_ptr, buffer, *_):
        f = self.files.get(this)
        if f is None or f.is_dir:
            return ERR["EFI_UNSUPPORTED"]
        if not f.writable:
            return ERR["EFI_ACCESS_DENIED"]
        n = self._u64(size_ptr)
        data = self.machine.read(buffer, n)
        self._changing(f"write {f.path.name}")
        with open(f.path, "r+b") as fh:
            fh.seek(f.position)
            fh.write(data)
        f.position += n

    def file_GetPosition(self, this, position, *_):
        f = self.files.get(this)
        if f is None or f.is_dir:
            return ERR["EFI_UNSUPPORTED"]
        self._put_u64(position, f.position)

    def file_SetPosition(self, this, position, *_):
        f = self.files.get(this)
        if f is None:
            return ERR["EFI_INVALID_PARAMETER"]
        if f.is_dir:
            if position != 0:
                return ERR["EFI_UNSUPPORTED"]
            f.entries = None
        f.position = f.path.stat().st_size if position == 2**64 - 1 and not f.is_dir else position

    def file_Flush(self, *_): pass

    def _file_info(self, path: Path) -> bytes:
        st = path.stat()
        name = (path.name if path != self.volume else "").encode("utf-16-le") + b"\0\0"
        offsets, size, _ = uefi.STRUCTS["EFI_FILE_INFO"].layout()
        total = offsets["FileName"] + len(name)
        stamp = self._efi_time(time.gmtime(st.st_mtime))
        attr = S["EFI_FILE_DIRECTORY"] if path.is_dir() else S["EFI_FILE_ARCHIVE"]
        fsize = 0 if path.is_dir() else st.st_size
        head = self._values_bytes("EFI_FILE_INFO", {"Size": total, "FileSize": fsize,
                                                    "PhysicalSize": (fsize + 511) // 512 * 512,
                                                    "Attribute": attr})
        head = bytearray(head[:offsets["FileName"]])
        for field_name in ("CreateTime", "LastAccessTime", "ModificationTime"):
            head[offsets[field_name]:offsets[field_name] + 16] = stamp
        return bytes(head) + name

    def file_GetInfo(self, this, guid, size_ptr, buffer, *_):
        f = self.files.get(this)
        if f is None:
            return ERR["EFI_INVALID_PARAMETER"]
        if self.machine.read(guid, 16) != uefi.GUIDS["EFI_FILE_INFO_GUID"].bytes_le:
            return ERR["EFI_UNSUPPORTED"]
        info = self._file_info(f.path)
        have = self._u64(size_ptr)
        self._put_u64(size_ptr, len(info))
        if have < len(info):
            return ERR["EFI_BUFFER_TOO_SMALL"]
        self.machine.write(buffer, info)

    def file_SetInfo(self, this, guid, size, buffer, *_):
        """Renames (a new FileName in the same directory) and truncation (a new FileSize)."""
        f = self.files.get(this)
        if f is None or not f.writable:
            return ERR["EFI_ACCESS_DENIED"]
        if self.machine.read(guid, 16) != uefi.GUIDS["EFI_FILE_INFO_GUID"].bytes_le:
            return ERR["EFI_UNSUPPORTED"]
        offsets = uefi.STRUCTS["EFI_FILE_INFO"].layout()[0]
        new_size = self._u64(buffer + offsets["FileSize"])
        new_name = self._ucs2(buffer + offsets["FileName"], 512)
        self._changing(f"set info {f.path.name}")
        if not f.is_dir and new_size != f.path.stat().st_size:
            os.truncate(f.path, new_size)
        if new_name and new_name != f.path.name:
            if "\\" in new_name or "/" in new_name or new_name in ("..", "."):
                return ERR["EFI_UNSUPPORTED"]
            target = f.path.parent / new_name
            if target.exists() and target.name.lower() != f.path.name.lower():
                return ERR["EFI_ACCESS_DENIED"]
            f.path.rename(target)
            f.path = target
