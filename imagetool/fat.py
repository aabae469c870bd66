"""FAT12/16/32 file systems: layout planning, formatting, reading, changing and checking.

A `FatVolume` works on a `Region` (a byte range of an image file). Every change (format, mkdir,
add_file, remove) is planned in memory first: clusters are allocated in an in-memory copy of
the FAT, directories are edited as in-memory byte arrays, file data is remembered as a source.
Nothing touches the image until `commit()`, so a change that fails (disk full, name clash, bad
name, file too large) leaves the image byte-for-byte as it was.

The parts: fat_layout.py (where the areas lie: Layout, Region), fat_dir.py (directory entries,
long names, timestamps), fat_commit.py (writing the planned changes); their public names are
re-exported here.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np

from . import names as N
from .errors import ImageError
from .fat_commit import FatCommit, _DataWrite
from .fat_dir import (ATTR_ARCHIVE, ATTR_DIRECTORY, ATTR_HIDDEN, ATTR_LONG_NAME, ATTR_READ_ONLY,  # noqa: F401
                      ATTR_SYSTEM, ATTR_VOLUME_ID, DEFAULT_EPOCH, LAST_LFN_FLAG, MAX_DIR_ENTRIES, DirState,
                      Entry, _end_marker, _find_free_run, _key, decode_timestamp, fat_timestamp, lfn_records,
                      normalize_label, parse_directory, source_date_epoch, split_path)
from .fat_layout import (FAT16_MIN_CLUSTERS, FAT32_MAX_CLUSTERS, FAT32_MIN_CLUSTERS, Layout,  # noqa: F401
                         Region, _bpb_error, _runs, layout_from_boot_sector, plan_layout)
from .structs import DIR_ENTRY, FAT_KINDS

MAX_FILE_SIZE = 0xFFFFFFFF


def file_too_large(name, size: int) -> ImageError:
    """The one line for a file FAT cannot hold (its sizes are 32-bit); a model gets the way out."""
    hint = ("; use a smaller quantization of the model (Q4_0 or Q5_0 instead of Q8_0 or F16)"
            if str(name).lower().endswith((".gguf", ".bin")) else "")
    return ImageError(f"{name}: {size} bytes is larger than FAT's file size limit of {MAX_FILE_SIZE} bytes "
                      f"(4 GiB - 1){hint}")


class FileSource:
    """Where a new file's bytes come from: a host path or bytes in memory."""

    def __init__(self, data: bytes | None = None, path: Path | None = None):
        self.data, self.path = data, path
        if data is not None:
            self.size = len(data)
        else:
            try:
                self.size = os.stat(path).st_size
            except OSError as e:
                raise ImageError(f"cannot read {path}: {e.strerror}") from None


# --------------------------------------------------------------------------------------------
# The volume
# --------------------------------------------------------------------------------------------
def _planning(method):
    """Mark the volume unusable for commit when a planned change fails half-way."""
    import functools

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except BaseException:
            self._broken = True
            raise
    return wrapper


class FatVolume(FatCommit):
    def __init__(self, region: Region, layout: Layout, boot: dict, fat: np.ndarray, fat_raw: bytes,
                 *, fresh: bool = False, label: str | None = None):
        self.region = region
        self.layout = layout
        self.kind = FAT_KINDS[layout.fat_bits]
        self.boot = boot
        self.fat = fat
        self._fat_raw = fat_raw
        self._fat_orig = fat.copy()
        self._fresh = fresh
        self._dirs: dict[int, DirState] = {}
        self._writes: list[_DataWrite] = []
        self._low_free = 2
        self._broken = False
        self.label = label
        self.epoch = source_date_epoch()
        self._stamp = fat_timestamp(self.epoch)
        self.volume_id: int | None = boot.get("BS_VolID")

    # ---- opening / formatting ------------------------------------------------------------
    @classmethod
    def open(cls, region: Region) -> "FatVolume":
        bs = region.read(0, 512) if region.length >= 512 else b""
        lay, boot = layout_from_boot_sector(bs, region.length)
        if lay.bytes_per_sector > 512:
            bs = region.read(0, lay.bytes_per_sector)
        active = 0
        if lay.fat_bits == 32 and boot["BPB_ExtFlags"] & 0x80:
            active = boot["BPB_ExtFlags"] & 0x0F
            if active >= lay.num_fats:
                raise _bpb_error(f"BPB_ExtFlags names FAT {active} of {lay.num_fats}")
        raw = region.read(lay.fat_offset + active * lay.fat_bytes, lay.fat_bytes)
        kind = FAT_KINDS[lay.fat_bits]
        fat = kind.decode(raw, lay.cluster_count + 2).copy()
        vol = cls(region, lay, boot, fat, raw)
        vol._active_fat = active
        root = vol._root()
        vol.label = vol._label_from(root)
        return vol

    @classmethod
    def format(cls, region: Region, *, label: str | None = None, volume_id: int | None = None,
               hidden_sectors: int = 0, fat_bits: int | None = None, root_entries: int = 512,
               layout: Layout | None = None) -> "FatVolume":
        """A new, empty file system on `region` (written on commit; the region must read as zeros
        or be overwritten completely by the caller: only metadata areas are written)."""
        lay = layout or plan_layout(region.length // 512, fat_bits=fat_bits, root_entries=root_entries)
        lab = normalize_label(label)
        boot = {"BS_VolID": volume_id, "_hidden": hidden_sectors}
        fat = np.zeros(lay.cluster_count + 2, dtype=np.uint32)
        kind = FAT_KINDS[lay.fat_bits]
        fat[0] = kind.mask & (0xFFFFFF00 | 0xF8)
        fat[1] = kind.eoc
        vol = cls(region, lay, boot, fat, bytes(lay.fat_bytes), fresh=True, label=lab)
        vol._active_fat = 0
        vol.volume_id = volume_id
        if lay.fat_bits == 32:
            root_cluster = lay.root_cluster
            vol.fat[root_cluster] = kind.eoc
            vol._low_free = root_cluster + 1
            raw = bytearray(lay.cluster_bytes)
            root = DirState(root_cluster, [root_cluster], raw, "/", dirty=True)
        else:
            root = DirState(0, None, bytearray(lay.root_entries * 32), "/", dirty=True)
        if lab is not None:
            d, t, tenth = vol._stamp
            root.reserved_shorts.add(lab.encode("ascii").ljust(11))
            root.raw[0:32] = DIR_ENTRY.pack(DIR_Name=lab.encode("ascii").ljust(11), DIR_Attr=ATTR_VOLUME_ID,
                                            DIR_WrtDate=d, DIR_WrtTime=t)
        vol._dirs[root.first_cluster] = root
        return vol

    # ---- FAT chains ----------------------------------------------------------------------
    @property
    def max_cluster(self) -> int:
        return self.layout.cluster_count + 1

    def chain_runs(self, first: int, what: str = "file") -> list[tuple[int, int]]:
        """The clusters of a chain as contiguous runs [(start, count)], checked: every cluster
        in range, no free or bad cluster inside, no loop (a jump back to a cluster already
        seen, or more clusters than the volume has)."""
        if first == 0:
            return []
        runs: list[tuple[int, int]] = []
        jumps: set[int] = set()
        fat, kind, top = self.fat, self.kind, self.max_cluster
        total = 0
        c = first
        while True:
            if not 2 <= c <= top:
                raise ImageError(f"{what}: FAT chain points to cluster {c}, outside the volume "
                                 f"(2..{top})")
            if c in jumps:
                raise ImageError(f"{what}: FAT chain loops back to cluster {c}")
            jumps.add(c)
            # Follow the contiguous run starting at c (fat[c+i] == c+i+1) in bulk.
            n = 1
            window = 64
            while c + n <= top:
                w = min(window, top + 1 - (c + n))
                seg = fat[c + n - 1:c + n - 1 + w]
                expect = np.arange(c + n, c + n + w, dtype=np.int64)
                bad = np.flatnonzero(seg != expect)
                if len(bad):
                    n += int(bad[0])
                    break
                n += w
                window = min(window * 4, 1 << 20)
            n = min(n, top + 1 - c)
            runs.append((c, n))
            total += n
            if total > self.layout.cluster_count:
                raise ImageError(f"{what}: FAT chain is longer than the volume (it loops)")
            last = c + n - 1
            nxt = int(fat[last])
            if nxt >= kind.eoc_min:
                return runs
            if nxt == kind.bad:
                raise ImageError(f"{what}: FAT chain runs into a cluster marked bad (after {last})")
            if nxt == 0:
                raise ImageError(f"{what}: FAT chain runs into a free cluster (after {last})")
            if any(s <= nxt < s + k for s, k in runs[-8:]):
                raise ImageError(f"{what}: FAT chain loops back to cluster {nxt}")
            c = nxt

    def chain(self, first: int, what: str = "file") -> list[int]:
        out: list[int] = []
        for start, count in self.chain_runs(first, what):
            out.extend(range(start, start + count))
        return out

    def free_clusters(self) -> int:
        return int(np.count_nonzero(self.fat[2:] == 0))

    def _alloc(self, n: int, what: str) -> np.ndarray:
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        found: list[np.ndarray] = []
        have = 0
        pos = self._low_free
        end = len(self.fat)
        while have < n and pos < end:
            window = max(65536, 2 * (n - have))
            chunk = self.fat[pos:pos + window]
            idx = np.flatnonzero(chunk == 0)[: n - have] + pos
            found.append(idx)
            have += len(idx)
            pos += window
        if have < n:
            free = self.free_clusters()
            cb = self.layout.cluster_bytes
            raise ImageError(f"{what}: not enough space: need {n * cb} bytes ({n} clusters), "
                             f"{free * cb} bytes free")
        clusters = np.concatenate(found).astype(np.int64)
        self.fat[clusters[:-1]] = clusters[1:]
        self.fat[clusters[-1]] = self.kind.eoc
        self._low_free = int(clusters[-1]) + 1
        return clusters

    def _free_chain(self, clusters) -> None:
        if len(clusters):
            arr = np.asarray(clusters, dtype=np.int64)
            self.fat[arr] = 0
            self._low_free = min(self._low_free, int(arr.min()))

    # ---- directories ---------------------------------------------------------------------
    def _root(self) -> DirState:
        key = self.layout.root_cluster if self.layout.fat_bits == 32 else 0
        if key not in self._dirs:
            if self.layout.fat_bits == 32:
                self._dirs[key] = self._load_dir(key, "/")
            else:
                raw = bytearray(self.region.read(self.layout.root_dir_offset, self.layout.root_entries * 32))
                st = DirState(0, None, raw, "/")
                st.entries, _, label = parse_directory(raw, None, "/", self.layout.fat_bits)
                if label:
                    st.reserved_shorts.add(label.encode("cp437", "replace").ljust(11)[:11])
                self._dirs[0] = st
        return self._dirs[key]

    def _label_from(self, root: DirState) -> str | None:
        lab = parse_directory(root.raw, None, "/", self.layout.fat_bits)[2]
        if lab:
            return lab
        raw = self.boot.get("BS_VolLab", b"")
        text = raw.decode("cp437", "replace").rstrip() if raw else ""
        return text if text and text != "NO NAME" else None

    def _load_dir(self, first: int, path: str) -> DirState:
        clusters = self.chain(first, f"directory {path}")
        if len(clusters) * self.layout.cluster_bytes > MAX_DIR_ENTRIES * 32:
            raise ImageError(f"directory {path}: larger than FAT's limit of {MAX_DIR_ENTRIES} entries")
        raw = bytearray(self._read_clusters(clusters))
        st = DirState(first, clusters, raw, path)
        st.entries, _, label = parse_directory(raw, None, path, self.layout.fat_bits)
        if label:
            st.reserved_shorts.add(label.encode("cp437", "replace").ljust(11)[:11])
        return st

    def _read_clusters(self, clusters: list[int]) -> bytes:
        cb = self.layout.cluster_bytes
        parts = []
        for start, count in _runs(clusters):
            parts.append(self.region.read(self.layout.cluster_offset(start), count * cb))
        return b"".join(parts)

    def _dir_state(self, entry: Entry | None, path: str) -> DirState:
        if entry is None:
            return self._root()
        if not entry.is_dir:
            raise ImageError(f"{path} is not a directory")
        if entry.first_cluster == 0:
            # ".." style reference to root, or a broken directory entry
            if path in ("", "/"):
                return self._root()
            raise ImageError(f"directory {path} has no clusters")
        if entry.first_cluster not in self._dirs:
            self._dirs[entry.first_cluster] = self._load_dir(entry.first_cluster, path)
        return self._dirs[entry.first_cluster]

    def lookup(self, path: str) -> Entry | None:
        """The entry at `path` (None for the root). Raises ImageError if it does not exist."""
        parts = split_path(path)
        entry = None
        walked = ""
        for part in parts:
            st = self._dir_state(entry, walked or "/")
            walked += "/" + part
            found = st.names().get(_key(part))
            if found is None:
                raise ImageError(f"{walked}: no such file or directory in the image")
            entry = found
        return entry

    def exists(self, path: str) -> bool:
        try:
            self.lookup(path)
            return True
        except ImageError:
            return False

    def listdir(self, path: str = "/") -> list[Entry]:
        entry = self.lookup(path)
        if entry is not None and not entry.is_dir:
            return [entry]
        return list(self._dir_state(entry, "/" + "/".join(split_path(path))).entries)

    def walk(self, path: str = "/", _seen: set[int] | None = None) -> Iterator[tuple[str, Entry]]:
        """(path, entry) for everything below `path`, depth first, directory order."""
        base = "/" + "/".join(split_path(path))
        if _seen is None:
            start = self.lookup(path)
            _seen = {start.first_cluster if start is not None else self._root().first_cluster}
        for e in self.listdir(path):
            p = base.rstrip("/") + "/" + e.name
            yield p, e
            if e.is_dir:
                if e.first_cluster in _seen or e.first_cluster == self._root().first_cluster:
                    raise ImageError(f"{p}: directory loop (cluster {e.first_cluster} is already in the tree)")
                _seen.add(e.first_cluster)
                yield from self.walk(p, _seen)

    # ---- reading files -------------------------------------------------------------------
    def iter_file(self, path: str, chunk: int = 1 << 22) -> Iterator[bytes]:
        entry = self.lookup(path)
        if entry is None or entry.is_dir:
            raise ImageError(f"{path}: is a directory")
        runs = self.chain_runs(entry.first_cluster, path)
        cb = self.layout.cluster_bytes
        need = (entry.size + cb - 1) // cb
        have = sum(k for _, k in runs)
        if have < need:
            raise ImageError(f"{path}: FAT chain has {have} clusters, the size {entry.size} needs {need}")
        left = entry.size
        for start, count in runs:
            if left <= 0:
                break
            off = self.layout.cluster_offset(start)
            total = min(count * cb, left)
            done = 0
            while done < total:
                n = min(chunk, total - done)
                yield self.region.read(off + done, n)
                done += n
            left -= total

    def read_file(self, path: str) -> bytes:
        return b"".join(self.iter_file(path))

    # ---- changing ------------------------------------------------------------------------
    def _dir_entry_bytes(self, short: bytes, attr: int, cluster: int, size: int, ntres: int) -> bytes:
        d, t, tenth = self._stamp
        hi = (cluster >> 16) if self.layout.fat_bits == 32 else 0
        return DIR_ENTRY.pack(DIR_Name=short, DIR_Attr=attr, DIR_NTRes=ntres, DIR_CrtTimeTenth=tenth,
                              DIR_CrtTime=t, DIR_CrtDate=d, DIR_LstAccDate=d, DIR_FstClusHI=hi,
                              DIR_WrtTime=t, DIR_WrtDate=d, DIR_FstClusLO=cluster & 0xFFFF,
                              DIR_FileSize=size)

    def _insert(self, st: DirState, name: str, attr: int, cluster: int, size: int) -> Entry:
        N.validate_long_name(name)
        where = st.path.rstrip("/") + "/" + name
        if st.names().get(_key(name)) is not None:
            raise ImageError(f"{where}: already exists in the image (use --force to replace a file)")
        plan = N.plan_short_name(name, st.shorts(), st.tails)
        slots = (lfn_records(name, plan.short) if plan.needs_lfn else [])
        slots.append(self._dir_entry_bytes(plan.short, attr, cluster, size, plan.ntres))
        n = len(slots)
        total_slots = len(st.raw) // 32
        while st.free_hint < total_slots and st.raw[st.free_hint * 32] not in (0, 0xE5):
            st.free_hint += 1
        end = _end_marker(st.raw, st.free_hint)
        start = _find_free_run(st.raw, n, st.free_hint)
        while start is None:
            if st.clusters is None:
                raise ImageError(f"{where}: the root directory is full ({self.layout.root_entries} entries)")
            cb = self.layout.cluster_bytes
            if len(st.raw) + cb > MAX_DIR_ENTRIES * 32:
                raise ImageError(f"{where}: directory {st.path} is full (FAT allows {MAX_DIR_ENTRIES} "
                                 f"entries per directory)")
            new = int(self._alloc(1, where)[0])
            self.fat[st.clusters[-1]] = new
            st.clusters.append(new)
            st.raw.extend(bytes(cb))
            start = _find_free_run(st.raw, n, st.free_hint)
        if start == st.free_hint:
            st.free_hint = start + n
        for i, s in enumerate(slots):
            st.raw[(start + i) * 32:(start + i + 1) * 32] = s
        if start + n > end:
            # We used slots past the end-of-directory marker: everything after is free, make it 0.
            st.raw[(start + n) * 32:] = bytes(len(st.raw) - (start + n) * 32)
        st.dirty = True
        e = Entry(name if plan.needs_lfn else N.short_to_display(plan.short, plan.ntres), plan.short, attr,
                  cluster, size, plan.ntres, self._stamp[0], self._stamp[1], start + n - 1, n, plan.needs_lfn)
        st.add(e)
        return e

    @_planning
    def mkdir(self, path: str) -> Entry | None:
        """Create `path` and any missing parents; returns the directory's entry."""
        parts = split_path(path)
        entry = None
        walked = ""
        for part in parts:
            st = self._dir_state(entry, walked or "/")
            walked += "/" + part
            found = st.names().get(_key(part))
            if found is not None:
                if not found.is_dir:
                    raise ImageError(f"{walked}: exists and is not a directory")
                entry = found
                continue
            N.validate_long_name(part)
            cl = self._alloc(1, walked)
            c = int(cl[0])
            raw = bytearray(self.layout.cluster_bytes)
            parent_cluster = 0 if st.clusters is None or st is self._root() else st.first_cluster
            raw[0:32] = self._dir_entry_bytes(b".          ", ATTR_DIRECTORY, c, 0, 0)
            raw[32:64] = self._dir_entry_bytes(b"..         ", ATTR_DIRECTORY, parent_cluster, 0, 0)
            entry = self._insert(st, part, ATTR_DIRECTORY, c, 0)
            self._dirs[c] = DirState(c, [c], raw, walked, dirty=True)
        return entry

    @_planning
    def add_file(self, path: str, source: FileSource, *, replace: bool = False) -> Entry:
        parts = split_path(path)
        if not parts:
            raise ImageError("a file needs a name (destination is the root directory)")
        dest = "/" + "/".join(parts)
        if source.size > MAX_FILE_SIZE:
            raise file_too_large(source.path or dest, source.size)
        parent = self.mkdir("/".join(parts[:-1])) if len(parts) > 1 else None
        st = self._dir_state(parent, "/" + "/".join(parts[:-1]))
        existing = st.names().get(_key(parts[-1]))
        if existing is not None:
            if existing.is_dir:
                raise ImageError(f"{dest}: is a directory in the image")
            if not replace:
                raise ImageError(f"{dest}: already exists in the image (use --force to replace it)")
            self._remove_entry(st, existing, dest)
        N.validate_long_name(parts[-1])
        cb = self.layout.cluster_bytes
        clusters = self._alloc((source.size + cb - 1) // cb, dest)
        first = int(clusters[0]) if len(clusters) else 0
        entry = self._insert(st, parts[-1], ATTR_ARCHIVE, first, source.size)
        if len(clusters):
            self._writes.append(_DataWrite(clusters, source.data if source.data is not None else source.path,
                                           source.size, dest))
        return entry

    def _remove_entry(self, st: DirState, e: Entry, where: str) -> None:
        if e.first_cluster:
            self._free_chain(self.chain(e.first_cluster, where))
            self._dirs.pop(e.first_cluster, None)
            self._writes = [w for w in self._writes if int(w.clusters[0]) != e.first_cluster]
        for s in range(e.slot - e.n_slots + 1, e.slot + 1):
            st.raw[s * 32] = 0xE5
        st.drop(e)
        st.dirty = True

    @_planning
    def remove(self, path: str, *, recursive: bool = False) -> None:
        parts = split_path(path)
        if not parts:
            raise ImageError("refusing to remove the root directory")
        dest = "/" + "/".join(parts)
        parent = self.lookup("/".join(parts[:-1])) if len(parts) > 1 else None
        st = self._dir_state(parent, "/" + "/".join(parts[:-1]))
        e = st.names().get(_key(parts[-1]))
        if e is None:
            raise ImageError(f"{dest}: no such file or directory in the image")
        if e.is_dir:
            sub = self._dir_state(e, dest)
            if sub.entries and not recursive:
                raise ImageError(f"{dest}: directory not empty (use -r to remove it with its contents)")
            for child in list(sub.entries):
                self.remove(dest + "/" + child.name, recursive=True)
        self._remove_entry(st, e, dest)

    # ---- planning helpers ----------------------------------------------------------------
    def clusters_for(self, size: int) -> int:
        cb = self.layout.cluster_bytes
        return (size + cb - 1) // cb
