"""Disk images: find the FAT file system in an image (GPT, MBR or none), build new images."""
from __future__ import annotations

import hashlib
import os
import stat
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from . import fat as F
from . import gpt
from .errors import ImageError
from .structs import MBR, MBR_PARTITION_RECORD

MiB = 1 << 20
DEFAULT_LABEL = "LLM-UEFI"
PARTITION_NAME = "EFI System Partition"
MBR_FAT_TYPES = {0x01, 0x04, 0x06, 0x0B, 0x0C, 0x0E, 0xEF}
MIN_IMAGE_MIB = 5  # 1 MiB GPT + 3 MiB FAT16 (4085 clusters of 512 bytes) + 1 MiB backup GPT


# --------------------------------------------------------------------------------------------
# Locating the file system
# --------------------------------------------------------------------------------------------
@dataclass
class Location:
    scheme: str                       # "gpt", "mbr" or "none" (a bare FAT file system)
    offset: int
    length: int
    gpt: gpt.GptDisk | None = None
    partition: gpt.Partition | None = None


def _looks_like_boot_sector(sector: bytes) -> bool:
    if len(sector) < 512 or sector[0] not in (0xEB, 0xE9):
        return False
    try:
        F.layout_from_boot_sector(sector, 1 << 62)
        return True
    except ImageError:
        return False


def locate(fd: int, size: int, what: str) -> Location:
    if size < 512:
        raise ImageError(f"{what}: {size} bytes is too small to be a disk image")
    sector0 = os.pread(fd, 512, 0)
    if gpt.has_protective_mbr(sector0):
        disk = gpt.read(fd, size)
        if not disk.partitions:
            raise ImageError(f"{what}: the GPT has no partitions")
        esp = [p for p in disk.partitions if p.type_guid == gpt.ESP_TYPE]
        part = esp[0] if esp else (disk.partitions[0] if len(disk.partitions) == 1 else None)
        if part is None:
            raise ImageError(f"{what}: no EFI System Partition among {len(disk.partitions)} partitions")
        if (part.last_lba + 1) * gpt.SECTOR > size:
            raise ImageError(f"{what}: image truncated: partition {part.index} ends past the end of the file")
        return Location("gpt", part.offset, part.size, disk, part)
    if _looks_like_boot_sector(sector0):
        return Location("none", 0, size)
    mbr = MBR.unpack(sector0)
    if mbr["Signature"] == 0xAA55:
        recs = [MBR_PARTITION_RECORD.unpack(mbr["PartitionRecord"], i * 16) for i in range(4)]
        fats = [r for r in recs if r["OSType"] in MBR_FAT_TYPES and r["SizeInLBA"]]
        fats.sort(key=lambda r: r["OSType"] != 0xEF)
        if fats:
            r = fats[0]
            off, length = r["StartingLBA"] * 512, r["SizeInLBA"] * 512
            if off + length > size:
                raise ImageError(f"{what}: image truncated: MBR partition ends past the end of the file")
            return Location("mbr", off, length)
    raise ImageError(f"{what}: no GPT, MBR partition or FAT file system found")


class Image:
    """An image file opened for reading (or changing, with writable=True)."""

    def __init__(self, path: str | os.PathLike, writable: bool = False):
        self.path = Path(path)
        try:
            st = os.stat(self.path)
        except OSError as e:
            raise ImageError(f"{self.path}: {e.strerror}") from None
        if stat.S_ISDIR(st.st_mode):
            raise ImageError(f"{self.path}: is a directory, not an image file")
        try:
            self.fd = os.open(self.path, os.O_RDWR if writable else os.O_RDONLY)
        except OSError as e:
            raise ImageError(f"{self.path}: {e.strerror}") from None
        try:
            self.size = os.lseek(self.fd, 0, os.SEEK_END)
            self.location = locate(self.fd, self.size, str(self.path))
            self.region = F.Region(self.fd, self.location.offset, self.location.length, str(self.path))
            self._volume: F.FatVolume | None = None
        except BaseException:
            os.close(self.fd)
            raise

    @property
    def volume(self) -> F.FatVolume:
        if self._volume is None:
            self._volume = F.FatVolume.open(self.region)
        return self._volume

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "Image":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------
@dataclass
class Item:
    """One thing to put into the image: a host file (src) or a directory (src None) at dest."""
    dest: str
    src: Path | None = None
    data: bytes | None = None

    @property
    def is_dir(self) -> bool:
        return self.src is None and self.data is None


def expand(src: Path, dest: str) -> list[Item]:
    """A host file or directory tree -> items (directories recursively, in sorted order)."""
    try:
        st = os.stat(src)
    except OSError as e:
        raise ImageError(f"{src}: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        out = [Item(dest)]
        try:
            names = sorted(os.listdir(src))
        except OSError as e:
            raise ImageError(f"{src}: {e.strerror}") from None
        for name in names:
            out.extend(expand(src / name, dest.rstrip("/") + "/" + name))
        return out
    if not stat.S_ISREG(st.st_mode):
        raise ImageError(f"{src}: not a regular file or directory")
    return [Item(dest, src=src)]


@dataclass
class BuildResult:
    path: Path
    size: int
    fat_bits: int
    cluster_bytes: int
    partition_size: int
    free_bytes: int
    disk_guid: uuid.UUID
    partition_guid: uuid.UUID
    files: int = 0
    layout: F.Layout | None = field(default=None, repr=False)


def _item_size(item: Item) -> int:
    if item.data is not None:
        return len(item.data)
    if item.src is not None:
        try:
            return os.stat(item.src).st_size
        except OSError as e:
            raise ImageError(f"{item.src}: {e.strerror}") from None
    return 0


def _tree_slots(items: list[Item]) -> dict[str, int]:
    """Directory path -> upper bound of 32-byte slots it needs (long name + short entry each)."""
    from .names import lfn_slots
    slots: dict[str, int] = {"": 1}  # root: the volume label
    seen: set[str] = set()
    for it in items:
        parts = F.split_path(it.dest)
        for i in range(len(parts)):
            path = "/".join(parts[: i + 1]).casefold()
            if path in seen:
                continue
            seen.add(path)
            parent = "/".join(parts[:i]).casefold()
            slots[parent] = slots.get(parent, 0) + 1 + lfn_slots(parts[i])
            if i < len(parts) - 1 or it.is_dir:
                slots.setdefault(path, 2)  # "." and ".."
    return slots


def _clusters_needed(lay: F.Layout, sizes: list[int], slots: dict[str, int]) -> int:
    cb = lay.cluster_bytes
    n = sum((s + cb - 1) // cb for s in sizes)
    for path, count in slots.items():
        if path == "" and lay.fat_bits != 32:
            continue  # fixed root directory
        n += max(1, (count * 32 + cb - 1) // cb)
    return n


def plan_size(items: list[Item], size_mib: int | None) -> tuple[int, F.Layout]:
    """(image size in bytes, FAT layout of the partition) for the items and the requested size."""
    sizes = [_item_size(it) for it in items if not it.is_dir]
    for it, s in zip([i for i in items if not i.is_dir], sizes):
        if s > F.MAX_FILE_SIZE:
            raise F.file_too_large(it.src or it.dest, s)
    slots = _tree_slots(items)
    root_entries = max(512, (slots[""] + 15) // 16 * 16)

    def layout_for(part_mib: int) -> F.Layout | None:
        try:
            return F.plan_layout(part_mib * 2048, root_entries=root_entries)
        except ImageError:
            return None

    if size_mib is not None:
        if size_mib < MIN_IMAGE_MIB:
            raise ImageError(f"--size {size_mib} MiB is too small: the smallest image is {MIN_IMAGE_MIB} MiB")
        lay = layout_for(size_mib - 2)
        if lay is None:
            raise ImageError(f"--size {size_mib} MiB cannot hold a FAT file system")
        need = _clusters_needed(lay, sizes, slots)
        if need > lay.cluster_count:
            auto, _ = plan_size(items, None)
            raise ImageError(f"the files need more room than --size {size_mib} MiB gives "
                             f"(need {need * lay.cluster_bytes} bytes, {lay.capacity_bytes} available); "
                             f"use --size {auto // MiB} or more, or --size auto")
        return size_mib * MiB, lay
    content = sum(sizes)
    headroom = max(MiB, content // 20)
    part = max(MIN_IMAGE_MIB - 2, (content + headroom + MiB - 1) // MiB)
    for _ in range(100000):
        lay = layout_for(part)
        if lay is not None:
            need = _clusters_needed(lay, sizes, slots) * lay.cluster_bytes + headroom
            if need <= lay.capacity_bytes:
                return (part + 2) * MiB, lay
            part += max(1, (need - lay.capacity_bytes) // MiB)
        else:
            part += 1
    raise ImageError("could not find an image size for these files")  # pragma: no cover


def build_image(out: str | os.PathLike, items: list[Item], *, size_mib: int | None = None,
                label: str | None = DEFAULT_LABEL, disk_guid: uuid.UUID | None = None,
                partition_guid: uuid.UUID | None = None) -> BuildResult:
    """Write a new GPT + FAT image at `out` holding `items`. The image appears only when complete."""
    out = Path(out)
    if not items:
        raise ImageError("nothing to put into the image")
    seen: dict[str, Item] = {}
    for it in items:
        key = "/".join(F.split_path(it.dest)).casefold()
        if not key:
            raise ImageError(f"{it.src}: destination is the root directory; give a file name")
        prev = seen.get(key)
        if prev is not None and not (prev.is_dir and it.is_dir):
            raise ImageError(f"two inputs go to the same place in the image: {it.dest}")
        seen[key] = it
    lab = F.normalize_label(label)
    size, lay = plan_size(items, size_mib)
    if out.is_dir():
        raise ImageError(f"{out}: is a directory")
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as e:
        raise ImageError(f"cannot create {out}: {e.strerror}") from None
    ok = False
    try:
        os.ftruncate(fd, size)
        disk_sectors = size // gpt.SECTOR
        first_lba = gpt.ALIGN_SECTORS
        part_sectors = lay.total_sectors
        region = F.Region(fd, first_lba * gpt.SECTOR, part_sectors * gpt.SECTOR, str(out))
        vol = F.FatVolume.format(region, label=lab, hidden_sectors=first_lba, layout=lay)
        for it in items:
            if it.is_dir:
                vol.mkdir(it.dest)
            else:
                vol.add_file(it.dest, F.FileSource(data=it.data, path=it.src))
        hasher = hashlib.sha256()
        hasher.update(b"imagetool image v1\0" + str(size).encode() + b"\0" + (lab or "").encode() + b"\0")
        for it in items:
            if it.is_dir:
                hasher.update(b"dir\0" + it.dest.encode("utf-8") + b"\0")
        vol.commit(hasher)
        digest = hasher.digest()
        dguid = disk_guid or gpt.guid_from_hash(hashlib.sha256(digest + b"disk").digest())
        pguid = partition_guid or gpt.guid_from_hash(hashlib.sha256(digest + b"partition").digest())
        part = gpt.Partition(1, gpt.ESP_TYPE, pguid, first_lba, first_lba + part_sectors - 1, 0, PARTITION_NAME)
        for off, data in gpt.layout(disk_sectors, dguid, [part]):
            os.pwrite(fd, data, off)
        os.close(fd)
        fd = -1
        os.replace(tmp, out)
        ok = True
    except OSError as e:
        raise ImageError(f"writing {out}: {e.strerror or e}") from None
    finally:
        if fd >= 0:
            os.close(fd)
        if not ok:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return BuildResult(out, size, lay.fat_bits, lay.cluster_bytes, part_sectors * gpt.SECTOR,
                       vol.free_clusters() * lay.cluster_bytes, dguid, pguid,
                       sum(1 for it in items if not it.is_dir), lay)
