"""`imagetool verify`: check an image's GPT and FAT file system thoroughly.

Problems are things a correct writer never produces (bad CRCs, broken or shared FAT chains,
inconsistent copies, malformed directories); warnings are legal but suspicious states (a stale
FSInfo free-cluster hint). Checking never loops: every chain walk is bounded.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from . import fat as F
from . import gpt
from . import names as N
from .errors import ImageError
from .image import Image
from .structs import FSINFO

MAX_PROBLEMS = 100


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(path: str | os.PathLike) -> Report:
    rep = Report()
    try:
        img = Image(path)
    except ImageError as e:
        # Locating failed; still report every GPT problem we can see.
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            rep.problems.append(str(e))
            return rep
        try:
            size = os.lseek(fd, 0, os.SEEK_END)
            if size >= 512 and gpt.has_protective_mbr(os.pread(fd, 512, 0)):
                rep.problems.extend(gpt.check(fd, size)[1])
        finally:
            os.close(fd)
        if not rep.problems:
            rep.problems.append(str(e))
        return rep
    with img:
        rep.info["scheme"] = img.location.scheme
        if img.location.scheme == "gpt":
            rep.problems.extend(gpt.check(img.fd, img.size, rep.warnings)[1])
            p = img.location.partition
            rep.info["partition"] = f"{p.index} ({p.first_lba}-{p.last_lba}, {p.type_guid})"
            if p.type_guid != gpt.ESP_TYPE:
                rep.warnings.append(f"partition {p.index} is not an EFI System Partition")
        try:
            vol = img.volume
        except ImageError as e:
            rep.problems.append(str(e))
            return rep
        rep.info["fat"] = f"FAT{vol.layout.fat_bits}"
        check_volume(vol, rep)
    if len(rep.problems) > MAX_PROBLEMS:
        extra = len(rep.problems) - MAX_PROBLEMS
        rep.problems = rep.problems[:MAX_PROBLEMS] + [f"... and {extra} more problems"]
    return rep


def check_volume(vol: F.FatVolume, rep: Report) -> None:
    lay = vol.layout
    kind = vol.kind
    region = vol.region
    boot = vol.boot
    problems, warnings = rep.problems, rep.warnings
    rep.info.update(clusters=lay.cluster_count, cluster_bytes=lay.cluster_bytes)

    # FAT copies and reserved entries.
    active = getattr(vol, "_active_fat", 0)
    active_raw = region.read(lay.fat_offset + active * lay.fat_bytes, lay.fat_bytes)
    used_bytes = kind.table_bytes(lay.cluster_count + 2)
    mirrored = not (lay.fat_bits == 32 and boot.get("BPB_ExtFlags", 0) & 0x80)
    if mirrored:
        for i in range(lay.num_fats):
            if i == active:
                continue
            other = region.read(lay.fat_offset + i * lay.fat_bytes, lay.fat_bytes)
            if other[:used_bytes] != active_raw[:used_bytes]:
                problems.append(f"FAT copy {i + 1} differs from FAT copy {active + 1}")
    media = boot.get("BPB_Media", 0xF8)
    if int(vol.fat[0]) & 0xFF != media:
        problems.append(f"FAT[0] is {int(vol.fat[0]):#x}; its low byte should be the media byte {media:#04x}")
    if lay.fat_bits == 32:
        bk = boot.get("BPB_BkBootSec", 0)
        if 0 < bk < lay.reserved_sectors:
            bps = lay.bytes_per_sector
            if region.read(bk * bps, 512)[:90] != region.read(0, 512)[:90]:
                problems.append(f"backup boot sector (sector {bk}) differs from the boot sector")
        fsi = boot.get("BPB_FSInfo", 0)
        if 0 < fsi < lay.reserved_sectors:
            rec = FSINFO.unpack(region.read(fsi * lay.bytes_per_sector, 512))
            if (rec["FSI_LeadSig"], rec["FSI_StrucSig"], rec["FSI_TrailSig"]) != (0x41615252, 0x61417272, 0xAA550000):
                problems.append(f"FSInfo sector {fsi} has bad signatures")
            else:
                free = vol.free_clusters()
                if rec["FSI_Free_Count"] not in (0xFFFFFFFF, free):
                    warnings.append(f"FSInfo free cluster count {rec['FSI_Free_Count']} differs from the "
                                    f"FAT ({free})")

    # Values in the FAT must be free, EOC, bad, or a cluster number in range.
    vals = vol.fat[2:]
    top = lay.cluster_count + 1
    out_of_range = np.flatnonzero(((vals == 1) | (vals > top)) & (vals < kind.bad))
    if len(out_of_range):
        c = int(out_of_range[0]) + 2
        problems.append(f"{len(out_of_range)} FAT entries point outside the volume (first: cluster {c} "
                        f"-> {int(vol.fat[c])})")

    owner = np.zeros(len(vol.fat), dtype=np.int32)
    paths: list[str] = ["", "/"]

    def claim(first: int, path: str, ident: int) -> int | None:
        """Walk and claim a chain; returns its length in clusters, None if broken."""
        c = first
        count = 0
        while True:
            if not 2 <= c <= top:
                problems.append(f"{path}: FAT chain points to cluster {c}, outside the volume")
                return None
            # Claim the contiguous run starting at c (fat[k] == k + 1), in bulk.
            n = 1
            window = 64
            while c + n <= top:
                w = min(window, top + 1 - (c + n))
                seg = vol.fat[c + n - 1:c + n - 1 + w]
                exp = np.arange(c + n, c + n + w, dtype=np.int64)
                mism = np.flatnonzero((seg != exp) | (owner[c + n:c + n + w] != 0))
                if len(mism):
                    n += int(mism[0])
                    break
                n += w
                window = min(window * 4, 1 << 20)
            run_owner = owner[c:c + n]
            taken = np.flatnonzero(run_owner)
            if len(taken):
                cc = c + int(taken[0])
                other = int(run_owner[taken[0]])
                if other == ident:
                    problems.append(f"{path}: FAT chain loops back to cluster {cc}")
                else:
                    problems.append(f"{path}: cluster {cc} is shared with {paths[other]} (cross-linked chains)")
                return None
            owner[c:c + n] = ident
            count += n
            last = c + n - 1
            nxt = int(vol.fat[last])
            if nxt >= kind.eoc_min:
                return count
            if nxt == 0:
                problems.append(f"{path}: FAT chain runs into a free cluster after cluster {last}")
                return None
            if nxt == kind.bad:
                problems.append(f"{path}: FAT chain runs into a cluster marked bad after cluster {last}")
                return None
            c = nxt

    # Walk the tree.
    if lay.fat_bits == 32:
        root_len = claim(lay.root_cluster, "/ (root directory)", 1)
        if root_len is None:
            return
        root_raw = vol._read_clusters(vol.chain(lay.root_cluster, "/"))
    else:
        root_raw = region.read(lay.root_dir_offset, lay.root_entries * 32)
    stack = [("/", root_raw, 0, None)]
    files = dirs = 0
    while stack:
        path, raw, parent_cluster, self_cluster = stack.pop()
        entries, dots, label = F.parse_directory(raw, problems, path, lay.fat_bits)
        if self_cluster is not None:
            names = {d.short: d for d in dots}
            dot, dotdot = names.get(b".          "), names.get(b"..         ")
            if dot is None or dotdot is None:
                problems.append(f"{path}: missing '.' or '..' entry")
            else:
                if dot.first_cluster != self_cluster:
                    problems.append(f"{path}: '.' points to cluster {dot.first_cluster}, not {self_cluster}")
                if dotdot.first_cluster != parent_cluster:
                    problems.append(f"{path}: '..' points to cluster {dotdot.first_cluster}, "
                                    f"not {parent_cluster}")
        elif dots:
            problems.append(f"{path}: root directory holds '.' or '..' entries")
        seen_names: dict[str, str] = {}
        seen_shorts: dict[bytes, str] = {}
        for e in entries:
            p = path.rstrip("/") + "/" + e.name
            err = _short_name_problem(e.short)
            if err:
                problems.append(f"{p}: {err}")
            if e.has_lfn:
                try:
                    N.validate_long_name(e.name)
                except ImageError as ex:
                    problems.append(f"{p}: {ex}")
            k = e.name.casefold()
            if k in seen_names:
                problems.append(f"{path}: two entries named {e.name!r}")
            seen_names[k] = p
            if e.short in seen_shorts:
                problems.append(f"{path}: two entries with short name {e.short_display!r}")
            seen_shorts[e.short] = p
            ident = len(paths)
            paths.append(p)
            if e.is_dir:
                dirs += 1
                if e.first_cluster == 0:
                    problems.append(f"{p}: directory with no cluster")
                    continue
                n = claim(e.first_cluster, p, ident)
                if n is None:
                    continue
                if n * lay.cluster_bytes > F.MAX_DIR_ENTRIES * 32:
                    problems.append(f"{p}: directory larger than {F.MAX_DIR_ENTRIES} entries")
                    continue
                sub = vol._read_clusters(vol.chain(e.first_cluster, p))
                # p's '..' must name this directory (cluster 0 when this is the root)
                stack.append((p, sub, self_cluster if self_cluster is not None else 0, e.first_cluster))
            else:
                files += 1
                cb = lay.cluster_bytes
                need = (e.size + cb - 1) // cb
                if e.first_cluster == 0:
                    if e.size:
                        problems.append(f"{p}: {e.size} bytes but no clusters")
                    continue
                n = claim(e.first_cluster, p, ident)
                if n is None:
                    continue
                if n != need:
                    problems.append(f"{p}: size {e.size} needs {need} clusters, its chain has {n}")
    rep.info.update(files=files, directories=dirs)
    allocated = (vol.fat[2:] != 0) & (vol.fat[2:] != kind.bad)
    lost = int(np.count_nonzero(allocated & (owner[2:] == 0)))
    if lost:
        problems.append(f"{lost} clusters are allocated but belong to no file (lost chains)")
    rep.info["free_bytes"] = vol.free_clusters() * lay.cluster_bytes


def _short_name_problem(short: bytes) -> str | None:
    if short[0] == 0x20:
        return "short name starts with a space"
    for b in short:
        if b < 0x20 and b != 0x05:
            return f"short name contains control byte {b:#04x}"
        if chr(b) in '"*+,./:;<=>?[\\]|' or (0x61 <= b <= 0x7A):
            return f"short name {short!r} contains a character not allowed in short names"
    return None


__all__ = ["verify", "check_volume", "Report"]
