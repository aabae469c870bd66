"""Model files in imagetool: the streamed GGUF metadata reader (judged by gguf-py's
GGUFReader), llama2.c headers, `build --model` warnings from the ggml type table, corrupt files
as one line, and images for real model sizes (FAT's 4 GiB - 1 limit, multi-GiB sparse images).
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import pytest

from imagetool import models as M
from imagetool.check import verify
from imagetool.image import Image
from peasm import ggml
from tests.support import MODELS, require
from tests.test_imagetool_support import LLAMA_SHAPES, fake_efi, imagetool, write_llama_gguf

MiB = 1 << 20


def _chunks(path: Path, n: int = 4096):
    with open(path, "rb") as f:
        while b := f.read(n):
            yield b


# gguf-py's GGUFReader, the judge, takes seconds to a minute on a big vocabulary: those are slow
SMALL_GGUF = ["stories260K.gguf", "quant/stories260K-Q4_0.gguf", "quant/stories260K-Q8_0.gguf",
              "quant/tiny256-Q4_K_M.gguf", "quant/tiny256-BF16.gguf", "quant/tiny256-Q5_1.gguf"]
BIG_GGUF = ["SmolLM2-135M-Instruct.Q4_1.gguf", "ggml-vocab-llama-spm.gguf", "vocab/ggml-vocab-gpt-2.gguf",
            "vocab/ggml-vocab-qwen2.gguf", "vocab/ggml-vocab-phi-3.gguf"]


@pytest.mark.parametrize("name", SMALL_GGUF + [pytest.param(n, marks=pytest.mark.slow) for n in BIG_GGUF])
def test_streamed_header_equals_gguf_py(name):
    from gguf import GGUFReader, GGUFValueType
    path = MODELS / name
    require(path.is_file(), str(path))
    meta, tensors = M.read_gguf(_chunks(path, 777), path.stat().st_size, str(path))   # odd chunking
    r = GGUFReader(str(path))
    keys = [k for k in r.fields if not k.startswith("GGUF.")]
    assert [k for k in meta if not k.startswith("GGUF.")] == keys
    assert meta["GGUF.tensor_count"] == len(r.tensors) == len(tensors)
    for k in keys:
        f = r.fields[k]
        if f.types[0] == GGUFValueType.ARRAY:
            assert isinstance(meta[k], M.GgufArray) and meta[k].count == len(f.data), k
            if meta[k].values is not None:
                assert meta[k].values == list(f.contents()), k
        elif f.types[0] == GGUFValueType.FLOAT32:
            assert np.float32(meta[k]) == np.float32(f.contents()), k
        else:
            assert meta[k] == f.contents(), k
    for mine, theirs in zip(tensors, r.tensors):
        assert (mine.name, mine.dims, mine.type_id) == (theirs.name, tuple(int(d) for d in theirs.shape),
                                                        int(theirs.tensor_type))
        assert mine.offset - tensors[0].offset == theirs.data_offset - r.tensors[0].data_offset


def test_shapes_of_the_real_models():
    smol = MODELS / "SmolLM2-135M-Instruct.Q4_1.gguf"
    require(smol.is_file(), str(smol))
    m = M.identify(lambda n: _chunks(smol, n), smol.stat().st_size, "smol")
    assert (m.kind, m.architecture, m.dim, m.hidden_dim, m.n_layers, m.n_heads, m.n_kv_heads, m.head_dim,
            m.vocab_size, m.context) == ("gguf", "llama", 576, 1536, 30, 9, 3, 64, 49152, 8192)
    b = MODELS / "stories260K.bin"
    m = M.identify(lambda n: _chunks(b, n), b.stat().st_size, "s")
    assert (m.kind, m.dim, m.hidden_dim, m.n_layers, m.n_heads, m.n_kv_heads, m.vocab_size, m.context) == \
        ("llama2c", 64, 172, 5, 8, 4, 512, 512)
    assert M.llama2c_expected_size(64, 172, 5, 8, 4, 512, 512) == b.stat().st_size
    # not models: a tokenizer, a vocabulary-only GGUF, a .bin one byte short, a tiny file
    for name in ("tok512.bin", "tokenizer.bin", "ggml-vocab-llama-spm.gguf"):
        p = MODELS / name
        assert M.identify(lambda n, p=p: _chunks(p, n), p.stat().st_size, name) is None, name
    head = b.read_bytes()[:28]
    assert M.llama2c_info(head, b.stat().st_size - 1) is None
    assert M.llama2c_info(head[:20], 20) is None
    # an own classifier (negative vocab_size) adds vocab * dim floats
    assert M.llama2c_expected_size(64, 172, 5, 8, 4, -512, 512) == b.stat().st_size + 512 * 64 * 4


def test_state_bytes_follows_the_program_layout():
    m = M.ModelInfo("/x", "llama2c", 0, 5, 64, 172, 8, 4, 8, 512, 512)
    # x xb xb2 (64 f32), hb hb2 (172), q (64), att (8 heads * ctx), logits (512), k and v caches
    # (5 layers * ctx * 32, f32), RoPE (2 * 8), the quantized input (max(dim, hidden) f32 at
    # most), k and v (32 f32 each): each rounded up to 64 bytes, plus 64 bytes of slack
    ctx = 100
    want = 3 * 256 + 2 * 704 + 256 + 3200 + 2048 + 2 * 64000 + 64 + 704 + 2 * 128 + 64
    # the batched prefill's 32 rows (forward_batch.s): x xb xb2 q, hb hb2, RoPE, the input,
    # and k v rows of kv_dim (32) floats
    want += 32 * (4 * 256 + 2 * 704 + 64 + 704) + 2 * 32 * 128
    assert M.state_bytes(m, ctx) == M.state_bytes(m, ctx, "f32") == want
    assert M.kv_type_of(m) == "F32"
    # kv_type f16, or a GGUF under auto (the program's kv_type_apply): caches of 2-byte elements
    g = M.ModelInfo("/x", "gguf", 0, 5, 64, 172, 8, 4, 8, 512, 512)
    f16 = want - 2 * 64000 + 2 * 32000
    assert M.state_bytes(m, ctx, "f16") == M.state_bytes(m, ctx, "F16") == M.state_bytes(g, ctx) == f16
    assert M.kv_type_of(g) == "F16" and M.kv_type_of(g, "f32") == "F32" and M.state_bytes(g, ctx, "f32") == want
    with pytest.raises(ValueError):
        M.state_bytes(g, ctx, "q8_0")
    assert M.sizing_context(m) == 512 and M.sizing_context(m, 64) == 64


def test_corrupt_gguf_headers_are_one_line_errors():
    src = (MODELS / "stories260K.gguf")
    require(src.is_file(), str(src))
    data = src.read_bytes()
    # every cut inside the metadata, and random byte and length mutations in it
    rng = np.random.default_rng(7)
    kv_end = _metadata_end(data)
    cases = [data[:n] for n in sorted(set(rng.integers(0, kv_end, 300).tolist()) | {0, 3, 4, 8, 16, 24})]
    for _ in range(400):
        b = bytearray(data[:kv_end + 4096])
        for _ in range(int(rng.integers(1, 4))):
            pos = int(rng.integers(0, kv_end))
            if rng.random() < 0.5:
                b[pos] = int(rng.integers(0, 256))
            else:   # a length-like field: huge, or off by a little
                v = [2**63, 2**32, 2**64 - 1, 1 << 40, 7][int(rng.integers(0, 5))]
                b[pos:pos + 8] = v.to_bytes(8, "little")
        cases.append(bytes(b))
    errors = 0
    for c in cases:
        try:
            M.read_gguf_metadata([c], len(c), "bad.gguf")
        except M.ModelFileError as e:
            errors += 1
            assert "\n" not in str(e) and str(e).startswith("bad.gguf: ")
    assert errors > len(cases) // 2


def _metadata_end(data: bytes) -> int:
    """Offset where the key/value section of a GGUF ends (a reader of our own for the test)."""
    st = M._Stream([data], len(data), "x")
    st.read(4 + 4 + 8)
    n = st.unpack("<Q")
    for _ in range(n):
        M._read_string(st, "key")
        M._read_value(st, st.unpack("<I"), "k")
    return st.offset


def test_build_warns_about_what_the_program_cannot_run(tmp_path):
    efi = fake_efi(tmp_path / "B.EFI")
    q4k = MODELS / "quant" / "tiny256-Q4_K_M.gguf"
    smol = MODELS / "SmolLM2-135M-Instruct.Q4_1.gguf"
    good = MODELS / "quant" / "stories260K-Q8_0.gguf"
    for p in (q4k, smol, good):
        require(p.is_file(), str(p))
    supported = " ".join(ggml.supported_names())
    assert M.check_gguf_file(good) == []
    # the K mix (Q4_K and Q6_K tensors): a warning exactly when the type table cannot run them
    k_types = {"Q4_K", "Q6_K"}
    w = M.check_gguf_file(q4k)
    if all(ggml.runnable(ggml.BY_NAME[t]) for t in k_types):
        assert w == []
    else:
        assert len(w) == 1 and f"; this program runs {supported}" in w[0]
    assert M.check_gguf_file(smol) == []          # gpt2 vocabulary, pre-tokenizer smollm: both the program's
    other = write_llama_gguf(tmp_path / "phi.gguf", LLAMA_SHAPES["tiny"], "Q8_0", arch="phi3")
    bert = write_llama_gguf(tmp_path / "bert.gguf", LLAMA_SHAPES["tiny"], "Q8_0",
                            extra_kv={"tokenizer.ggml.model": "bert"})
    deepseek = write_llama_gguf(tmp_path / "ds.gguf", LLAMA_SHAPES["tiny"], "Q8_0",
                                extra_kv={"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "deepseek-llm"})
    assert M.check_gguf_file(bert) == [f"{bert}: tokenizer model bert; this program reads llama gpt2 vocabularies"]
    from peasm.tokenizer_layouts import PRE_NAMES
    assert M.check_gguf_file(deepseek) == [f"{deepseek}: pre-tokenizer deepseek-llm; this program has "
                                           f"{' '.join(sorted(PRE_NAMES))}"]
    iq = write_llama_gguf(tmp_path / "iq.gguf", (256, 256, 1, 4, 4, 512, 64), "IQ2_XS")
    assert M.check_gguf_file(other) == [f"{other}: architecture phi3; this program runs llama qwen2"]
    w = M.check_gguf_file(iq)
    assert w == [f"{iq}: tensor token_embd.weight has type IQ2_XS; this program runs {supported} "
                 f"(and 8 more tensors of types it cannot run)"]
    # through the command: warnings on stderr, the image is still built
    r = imagetool("build", "-q", "-o", tmp_path / "x.img", "--efi", efi, "--model", iq, "--model", good,
                  "--model", MODELS / "tok512.bin")
    assert r.returncode == 0, r.stderr
    err = r.stderr.decode().splitlines()
    assert err == [f"imagetool: warning: {w[0]}",
                   f"imagetool: warning: {MODELS / 'tok512.bin'}: not a model this program loads (no GGUF "
                   f"magic, and not a llama2.c .bin: its header does not describe a 6227-byte file)"]
    assert (tmp_path / "x.img").is_file()


@pytest.mark.parametrize("cut", [2, 10, 100, 5000, -100])
def test_build_with_a_corrupt_gguf_says_one_line(tmp_path, cut):
    good = write_llama_gguf(tmp_path / "g.gguf", LLAMA_SHAPES["tiny"], "Q8_0",
                            vocab_from=MODELS / "stories260K.gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(good.read_bytes()[:cut])
    r = imagetool("build", "-q", "-o", tmp_path / "x.img", "--efi", fake_efi(tmp_path / "B.EFI"), "--model", bad)
    err = r.stderr.decode()
    assert r.returncode == 0 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"imagetool: warning: {bad}: "), err
    assert lines[0].endswith("the program cannot load it") or "not a model this program loads" in lines[0]


# --------------------------------------------------------------------------------------------
# real model sizes in images
# --------------------------------------------------------------------------------------------
def _sparse(path: Path, size: int, head: bytes = b"", tail: bytes = b"") -> Path:
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)
        if tail:
            f.seek(size - len(tail))
            f.write(tail)
    return path


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(1 << 20):
            h.update(b)
    return h.hexdigest()


def test_a_file_over_fat32s_limit_is_refused_by_build_and_add(tmp_path):
    huge = _sparse(tmp_path / "llama-8b.Q8_0.gguf", (4 << 30) + 1, b"GGUF")   # 4 GiB + 1 byte, no disk
    efi = fake_efi(tmp_path / "B.EFI")
    out = tmp_path / "x.img"
    r = imagetool("build", "-o", out, "--efi", efi, "--model", huge)
    err = r.stderr.decode().strip()
    assert r.returncode == 1 and "Traceback" not in err
    assert err == (f"imagetool: error: {huge}: 4294967297 bytes is larger than FAT's file size limit of "
                   f"4294967295 bytes (4 GiB - 1); use a smaller quantization of the model (Q4_0 or Q5_0 "
                   f"instead of Q8_0 or F16)")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["B.EFI", huge.name]
    # add: the same line, and the image is byte for byte what it was
    assert imagetool("build", "-q", "-o", out, "--efi", efi).returncode == 0
    before = _digest(out)
    for dest in ([], ["/models/"]):
        r = imagetool("add", out, huge, *dest)
        assert r.returncode == 1
        assert r.stderr.decode().strip().splitlines() == [err]
        assert _digest(out) == before
    other = _sparse(tmp_path / "disk.raw", (4 << 30) + 1)
    r = imagetool("add", out, other)
    assert r.returncode == 1 and r.stderr.decode().strip().endswith("bytes (4 GiB - 1)")
    assert _digest(out) == before and verify(out).ok


@pytest.mark.slow   # the build reads 1.2 GB (of holes) and hashes it: ~15 s here
def test_multi_gib_image_is_sparse_and_verifies_fast(tmp_path):
    """A 1.2 GB model (a 1.1B Q8_0's size): --size auto fits it; the image costs the disk only
    what was written (the file's data and the metadata), and verify reads metadata only."""
    size = 1_200_000_000
    head, tail = os.urandom(1 << 20), os.urandom(1 << 20)
    model = _sparse(tmp_path / "tinyllama-1.1b.Q8_0.bin", size, head, tail)
    img = tmp_path / "big.img"
    t0 = time.monotonic()
    r = imagetool("build", "-o", img, "--efi", fake_efi(tmp_path / "B.EFI"), "--model", model, timeout=600)
    built = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert img.stat().st_size > size and img.stat().st_size < size * 1.1
    assert img.stat().st_blocks * 512 < 32 * MiB          # 2 MiB of data + FATs + directories
    t0 = time.monotonic()
    rep = verify(img)
    checked = time.monotonic() - t0
    assert rep.ok, rep.problems
    with Image(img) as im:
        vol = im.volume
        e = vol.lookup("/tinyllama-1.1b.Q8_0.bin")
        assert e.size == size
        assert next(vol.iter_file("/tinyllama-1.1b.Q8_0.bin", len(head))) == head
        cb = vol.layout.cluster_bytes
        start, count = vol.chain_runs(e.first_cluster)[-1]     # one run: the tail is at its end
        assert vol.chain_runs(e.first_cluster) == [(e.first_cluster, -(-size // cb))]
        end = vol.layout.cluster_offset(start) + size
        assert vol.region.read(end - len(tail), len(tail)) == tail
    print(f"\n1.2 GB model: build {built:.1f} s, verify {checked:.2f} s, image uses "
          f"{img.stat().st_blocks * 512 / MiB:.1f} MiB of disk for {img.stat().st_size / MiB:.0f} MiB")
