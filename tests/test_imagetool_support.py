"""Helpers shared by the imagetool tests (no tests here).

The independent judges: fsck.fat (dosfstools) on the partition, sgdisk -v on the disk, mtools
(mdir/mtype with -i IMG@@1M) reading files and long names back.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support import REPO, require_tool

MiB = 1 << 20
PART_OFFSET = MiB  # our images put the ESP at 1 MiB
MTOOLS_ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1", "MTOOLSRC": "/dev/null", "LC_ALL": "C.UTF-8"}


def fake_efi(path: Path, size: int = 4096, seed: int = 1) -> Path:
    """Bytes that start like a PE file ('MZ'); enough for imagetool's --efi check."""
    path.write_bytes(b"MZ" + pseudo_random(size - 2, seed))
    return path


def pseudo_random(n: int, seed: int = 0) -> bytes:
    """Deterministic incompressible bytes."""
    import numpy as np
    return np.random.default_rng(seed).bytes(n)


def imagetool(*args: str, input: bytes | None = None, env: dict | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess (so stderr and exit status are what a user sees)."""
    return subprocess.run([sys.executable, "-m", "imagetool", *map(str, args)], input=input,
                          capture_output=True, cwd=REPO, env=env, timeout=timeout)


def partition_range(img: Path) -> tuple[int, int]:
    """(offset, length) of partition 1 from the GPT, parsed here independently of imagetool."""
    import struct
    with open(img, "rb") as f:
        f.seek(512)
        hdr = f.read(92)
        assert hdr[:8] == b"EFI PART"
        entry_lba = struct.unpack_from("<Q", hdr, 72)[0]
        f.seek(entry_lba * 512)
        e = f.read(128)
        first, last = struct.unpack_from("<QQ", e, 32)
    return first * 512, (last - first + 1) * 512


def extract_partition(img: Path, out: Path) -> Path:
    """Copy partition 1 of `img` to its own (sparse) file, for fsck.fat, which has no offset option."""
    off, length = partition_range(img)
    src = os.open(img, os.O_RDONLY)
    dst = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(dst, length)
        pos = off
        end = off + length
        while pos < end:
            try:
                data_start = os.lseek(src, pos, os.SEEK_DATA)
            except OSError:
                break  # no more data
            if data_start >= end:
                break
            hole = min(os.lseek(src, data_start, os.SEEK_HOLE), end)
            while data_start < hole:
                n = min(hole - data_start, 8 * MiB)
                chunk = os.pread(src, n, data_start)
                os.pwrite(dst, chunk, data_start - off)
                data_start += len(chunk)
            pos = hole
    finally:
        os.close(src)
        os.close(dst)
    return out


def fsck_fat(img: Path, tmp: Path) -> str:
    """fsck.fat -n on the image's partition; asserts it is clean and returns its verbose output."""
    require_tool("fsck.fat")
    part = extract_partition(img, tmp / (img.name + ".part"))
    try:
        r = subprocess.run(["fsck.fat", "-n", "-v", str(part)], capture_output=True, text=True, timeout=120)
    finally:
        part.unlink()
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"fsck.fat rejected {img}:\n{out}"
    for bad in ("differ", "Orphan", "invalid", "Free cluster summary wrong", "lost", "Unable"):
        assert bad not in out, f"fsck.fat complains about {img}:\n{out}"
    return out


def sgdisk_verify(img: Path) -> str:
    require_tool("sgdisk")
    r = subprocess.run(["sgdisk", "-v", str(img)], capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "No problems found" in out, f"sgdisk -v rejected {img}:\n{out}"
    return out


def mtools(cmd: str, img: Path, *args: str, offset: str = "@@1M") -> subprocess.CompletedProcess:
    require_tool(cmd)
    return subprocess.run([cmd, "-i", f"{img}{offset}", *args], capture_output=True, env=MTOOLS_ENV, timeout=60)


_MDIR_LINE = re.compile(r"^(.{8}) (.{3}) +(<DIR>|\d+) +(\d{4}-\d\d-\d\d) +(\d+:\d\d)(?:  (.*?))? *$")


def mdir_entries(img: Path, path: str = "::/", offset: str = "@@1M") -> dict[str, tuple[str, str]]:
    """name -> (8.3 name, size or '<DIR>') as mdir shows them; name is the long name if any."""
    r = mtools("mdir", img, path, offset=offset)
    assert r.returncode == 0, r.stderr.decode()
    out: dict[str, tuple[str, str]] = {}
    for line in r.stdout.decode("utf-8", "replace").splitlines():
        m = _MDIR_LINE.match(line)
        if not m:
            continue
        base, ext = m.group(1).rstrip(), m.group(2).rstrip()
        short = f"{base}.{ext}" if ext else base
        if short in (".", ".."):
            continue
        out[m.group(6) or short] = (short, m.group(3))
    return out


# --------------------------------------------------------------------------------------------
# Llama-shaped GGUF files written with gguf-py (random blocks in ggml's layout, not quantized
# floats: a 1.1B model is written in seconds)
# --------------------------------------------------------------------------------------------
# name -> (dim, hidden, layers, heads, kv_heads, vocab, context)
LLAMA_SHAPES = {
    "tinyllama-1.1b": (2048, 5632, 22, 32, 4, 32000, 2048),   # TinyLlama-1.1B
    "tiny": (64, 192, 2, 8, 4, 512, 256),
}


def write_llama_gguf(path: Path, shape: tuple, qtype: str = "Q4_0", *, arch: str = "llama", seed: int = 0,
                     vocab_from: Path | None = None, extra_kv: dict | None = None) -> Path:
    """A llama-architecture GGUF of `shape` (see LLAMA_SHAPES), its 2-D weights of ggml type
    `qtype` (random blocks whose f16 scales are small and finite), norms F32 ones. The
    tokenizer fields come from `vocab_from` (a GGUF holding a vocabulary) when given."""
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFReader, GGUFWriter
    from gguf.constants import GGML_QUANT_SIZES
    dim, hidden, layers, heads, kv_heads, vocab, ctx = shape
    kv_dim = kv_heads * (dim // heads)
    qt = GGMLQuantizationType[qtype]
    block, block_bytes = GGML_QUANT_SIZES[qt]
    w = GGUFWriter(str(path), arch)
    w.add_context_length(ctx)
    w.add_embedding_length(dim)
    w.add_block_count(layers)
    w.add_feed_forward_length(hidden)
    w.add_rope_dimension_count(dim // heads)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    for k, v in (extra_kv or {}).items():
        if isinstance(v, str):
            w.add_string(k, v)
        else:
            w.add_uint32(k, v)
    if vocab_from is not None:
        r = GGUFReader(str(vocab_from))
        toks = [bytes(r.fields["tokenizer.ggml.tokens"].parts[i]) for i in r.fields["tokenizer.ggml.tokens"].data]
        assert len(toks) == vocab, (len(toks), vocab)
        w.add_tokenizer_model(r.fields["tokenizer.ggml.model"].contents())
        w.add_token_list(toks)
        w.add_token_scores([float(x) for x in r.fields["tokenizer.ggml.scores"].contents()])
        w.add_token_types([int(x) for x in r.fields["tokenizer.ggml.token_type"].contents()])
        for key, add in (("bos", w.add_bos_token_id), ("eos", w.add_eos_token_id),
                         ("unknown", w.add_unk_token_id)):
            f = r.fields.get(f"tokenizer.ggml.{key}_token_id")
            if f is not None:
                add(int(f.contents()))
    tensors: list[tuple[str, int, int]] = [("token_embd.weight", vocab, dim)]   # (name, rows, columns)
    for i in range(layers):
        b = f"blk.{i}."
        tensors += [(b + "attn_norm.weight", 0, dim), (b + "attn_q.weight", dim, dim),
                    (b + "attn_k.weight", kv_dim, dim), (b + "attn_v.weight", kv_dim, dim),
                    (b + "attn_output.weight", dim, dim), (b + "ffn_norm.weight", 0, dim),
                    (b + "ffn_gate.weight", hidden, dim), (b + "ffn_down.weight", dim, hidden),
                    (b + "ffn_up.weight", hidden, dim)]
    tensors += [("output_norm.weight", 0, dim), ("output.weight", vocab, dim)]
    for name, rows, cols in tensors:
        if rows == 0:
            w.add_tensor_info(name, (cols,), np.dtype(np.float32), cols * 4)
        else:
            nbytes = rows * cols // block * block_bytes
            w.add_tensor_info(name, (rows, cols // block * block_bytes), np.dtype(np.uint8), nbytes, raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    rng = np.random.default_rng(seed)
    for name, rows, cols in tensors:
        if rows == 0:
            w.write_tensor_data(np.ones(cols, dtype=np.float32))
            continue
        data = rng.integers(0, 256, size=(rows * cols // block, block_bytes), dtype=np.uint8)
        if block > 1:   # every block type here starts with an f16 scale d
            d = rng.uniform(1e-3, 2e-2, size=len(data)).astype("<f2")
            data[:, 0:2] = d.view(np.uint8).reshape(-1, 2)
        w.write_tensor_data(data.reshape(rows, -1))
    w.close()
    return path
