"""`imagetool write`: put an image on a USB stick, safely.

All knowledge about the machine comes through `System`, a small interface over the few things
we read (is a path a block device, a sysfs/procfs file, a directory listing), so tests can
present fake devices. `LinuxSystem` reads the real /sys and /proc.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Callable

from .errors import ImageError


class System:
    """The interface the safety checks use to look at the machine."""

    def device_number(self, path: str) -> tuple[int, int] | None:
        """(major, minor) if `path` is a block device, else None. Raises ImageError if absent."""
        raise NotImplementedError

    def read(self, path: str) -> str | None:
        """Contents of a text file such as /sys/... or /proc/self/mounts; None if it does not exist."""
        raise NotImplementedError

    def listdir(self, path: str) -> list[str]:
        """Names in a directory (empty when it does not exist)."""
        raise NotImplementedError

    def realpath(self, path: str) -> str:
        raise NotImplementedError


class LinuxSystem(System):
    def device_number(self, path: str) -> tuple[int, int] | None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise ImageError(f"{path}: no such device") from None
        except OSError as e:
            raise ImageError(f"{path}: {e.strerror}") from None
        if not stat.S_ISBLK(st.st_mode):
            return None
        return os.major(st.st_rdev), os.minor(st.st_rdev)

    def read(self, path: str) -> str | None:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return None

    def listdir(self, path: str) -> list[str]:
        try:
            return sorted(os.listdir(path))
        except OSError:
            return []

    def realpath(self, path: str) -> str:
        return os.path.realpath(path)


@dataclass
class Target:
    path: str
    name: str                     # kernel name, e.g. "sdb"
    size: int
    removable: bool
    model: str = ""
    partitions: list[str] = field(default_factory=list)

    def describe(self) -> str:
        gib = self.size / (1 << 30)
        what = f"{self.model}, " if self.model else ""
        kind = "removable" if self.removable else "FIXED (non-removable)"
        return f"{self.path} ({what}{gib:.1f} GiB, {kind})"


def _unescape_mount(field_: str) -> str:
    # /proc/mounts escapes space, tab, newline and backslash as \ooo
    out, i = [], 0
    while i < len(field_):
        if field_[i] == "\\" and i + 3 < len(field_) + 0 and field_[i + 1:i + 4].isdigit():
            out.append(chr(int(field_[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field_[i])
            i += 1
    return "".join(out)


def check_target(device: str, image_size: int, system: System, *, force_fixed: bool = False) -> Target:
    """Refuse anything but a whole, removable, unmounted block device at least as big as the image."""
    devnum = system.device_number(device)
    if devnum is None:
        raise ImageError(f"{device}: not a block device (give a whole disk such as /dev/sdb)")
    sysdir = system.realpath(f"/sys/dev/block/{devnum[0]}:{devnum[1]}")
    name = os.path.basename(sysdir)
    if system.read(f"{sysdir}/partition") is not None:
        parent = os.path.basename(os.path.dirname(sysdir))
        raise ImageError(f"{device}: is a partition ({name}); give the whole disk /dev/{parent}")
    size_text = system.read(f"{sysdir}/size")
    if size_text is None:
        raise ImageError(f"{device}: cannot read its size from {sysdir}/size")
    size = int(size_text.strip() or 0) * 512
    removable = (system.read(f"{sysdir}/removable") or "0").strip() == "1"
    model = " ".join(x.strip() for x in (system.read(f"{sysdir}/device/vendor") or "",
                                         system.read(f"{sysdir}/device/model") or "") if x.strip())
    parts = [p for p in system.listdir(sysdir) if system.read(f"{sysdir}/{p}/partition") is not None]
    target = Target(device, name, size, removable, model, parts)
    if not removable and not force_fixed:
        raise ImageError(f"{device}: is not a removable disk (removable=0); if you are sure it is "
                         f"the USB stick, pass --force-fixed")
    # Mounted, swapped-on, or held by another device (LVM, dm-crypt, RAID)?
    ours = {f"{devnum[0]}:{devnum[1]}": name}
    for p in parts:
        dev = (system.read(f"{sysdir}/{p}/dev") or "").strip()
        if dev:
            ours[dev] = p
    for table, what in (("/proc/self/mounts", "mounted at"), ("/proc/swaps", "used as swap")):
        text = system.read(table) or ""
        for line in text.splitlines():
            fields = line.split()
            if not fields or not fields[0].startswith("/"):
                continue
            src = _unescape_mount(fields[0])
            try:
                num = system.device_number(src)
            except ImageError:
                continue
            if num is None:
                continue
            hit = ours.get(f"{num[0]}:{num[1]}")
            if hit:
                where = f" {_unescape_mount(fields[1])}" if what == "mounted at" and len(fields) > 1 else ""
                raise ImageError(f"{device}: /dev/{hit} is {what}{where}; unmount it first")
    for n in [name] + parts:
        base = sysdir if n == name else f"{sysdir}/{n}"
        holders = system.listdir(f"{base}/holders")
        if holders:
            raise ImageError(f"{device}: /dev/{n} is in use by {', '.join(holders)}")
    if size < image_size:
        raise ImageError(f"{device}: the device ({size} bytes) is smaller than the image ({image_size} bytes)")
    return target


Progress = Callable[[str, int, int], None]


def copy_and_verify(image: str, target: str, *, progress: Progress | None = None, chunk: int = 4 << 20,
                    exclusive: bool = False) -> int:
    """Copy `image` to the start of `target`, flush it to the device, read it back and compare.
    Returns the number of bytes written. `exclusive` opens a block device with O_EXCL, which the
    kernel refuses while anything has it mounted."""
    try:
        src = os.open(image, os.O_RDONLY)
    except OSError as e:
        raise ImageError(f"{image}: {e.strerror}") from None
    try:
        total = os.fstat(src).st_size
        flags = os.O_WRONLY | (os.O_EXCL if exclusive else 0)
        try:
            dst = os.open(target, flags)
        except OSError as e:
            raise ImageError(f"{target}: cannot open for writing: {e.strerror}") from None
        buf = bytearray(chunk)
        view = memoryview(buf)
        try:
            done = 0
            while done < total:
                n = os.preadv(src, [view[:min(chunk, total - done)]], done)
                if n <= 0:
                    raise ImageError(f"{image}: changed size while being written")
                off = 0
                while off < n:
                    off += os.pwrite(dst, view[off:n], done + off)
                done += n
                if progress:
                    progress("writing", done, total)
            os.fsync(dst)
            if hasattr(os, "posix_fadvise"):
                try:
                    os.posix_fadvise(dst, 0, 0, os.POSIX_FADV_DONTNEED)  # read back from the device
                except OSError:
                    pass
        except OSError as e:
            raise ImageError(f"{target}: write failed: {e.strerror}") from None
        finally:
            os.close(dst)
        # Read back and compare.
        try:
            chk = os.open(target, os.O_RDONLY)
        except OSError as e:
            raise ImageError(f"{target}: cannot reopen to verify: {e.strerror}") from None
        other = bytearray(chunk)
        oview = memoryview(other)
        try:
            if hasattr(os, "posix_fadvise"):
                try:
                    os.posix_fadvise(chk, 0, 0, os.POSIX_FADV_DONTNEED)
                except OSError:
                    pass
            done = 0
            while done < total:
                want = min(chunk, total - done)
                a = os.preadv(src, [view[:want]], done)
                b = os.preadv(chk, [oview[:want]], done)
                if b < a:
                    raise ImageError(f"{target}: verification failed: the device ended at byte {done + b}")
                if view[:a] != oview[:a]:
                    first = next(i for i in range(a) if buf[i] != other[i])
                    raise ImageError(f"{target}: verification failed: byte {done + first} differs "
                                     f"from the image")
                done += a
                if progress:
                    progress("verifying", done, total)
        finally:
            os.close(chk)
        return total
    finally:
        os.close(src)
