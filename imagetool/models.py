"""Model files as imagetool sees them: recognise them, read their shapes, size their memory.

Two formats, the ones the chat program loads:

* llama2.c `.bin` (Karpathy's run.c): a 28-byte header of seven int32 (dim, hidden_dim,
  n_layers, n_heads, n_kv_heads, vocab_size (negative: an own classifier follows), seq_len),
  then float32 tensors. A file is taken as a model only when its size is exactly what the
  header implies, as the program's own check does.
* GGUF v2/v3 (ggml's docs/gguf.md): magic "GGUF", u32 version, u64 tensor count, u64
  metadata count, the key/value pairs, the tensor infos. `read_gguf` streams them from any
  chunk iterator (a file inside an image has no host path), skipping arrays, and checks every
  tensor lies inside the file. It is imagetool's own reader because gguf-py's GGUFReader takes
  seconds (SmolLM2) to a minute (Llama 3's vocabulary) on a header; the tests hold it to
  GGUFReader's answers. `check_gguf_file` (for `imagetool build`) says what the program
  cannot run, from the type table in peasm/ggml.py.

`state_bytes` sizes the run state from its declared layout (peasm.layouts, the one
app_asm/model_state.s follows), with the KV cache type the program will choose (repl.cfg's
`kv_type`; auto is f16 for GGUF, f32 for llama2.c: peasm.layouts.kv_cache_type).
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from peasm.layouts import StateShape, kv_cache_type
from peasm.layouts import state_bytes as layout_state_bytes
from peasm.tokenizer_layouts import PRE_NAMES

from .errors import ImageError

__all__ = ["ModelInfo", "ModelFileError", "GgufArray", "GgufTensor", "llama2c_info", "llama2c_expected_size",
           "read_gguf", "read_gguf_metadata", "gguf_info", "identify", "state_bytes", "kv_type_of",
           "sizing_context", "tokenizer_bytes", "scan_volume", "check_gguf_file", "model_warnings", "ARCHITECTURES",
           "TOKENIZER_MODELS", "MAX_SIZING_CTX"]

MiB = 1 << 20
LLAMA2C_HEADER = struct.Struct("<7i")
GGUF_MAGIC = b"GGUF"

# What the program's GGUF loader runs: the architectures of app_asm/model_gguf.s, the
# tokenizer.ggml.model values of app_asm/vocab.s (model_kind: SentencePiece `llama`, byte-level
# BPE `gpt2`); a `gpt2` vocabulary's tokenizer.ggml.pre must be one of peasm.tokenizer_layouts'
# PRE_NAMES (absent means "default").
ARCHITECTURES = ("llama", "qwen2")
TOKENIZER_MODELS = ("llama", "gpt2")

# `imagetool boot --mem auto` sizes the KV cache for the model's own context, but at most this
# many tokens: a 128K-context model would otherwise ask for gigabytes it rarely uses; the
# program fits a longer context to the memory it finds and says so.
MAX_SIZING_CTX = 8192


class ModelFileError(ImageError):
    """A file that claims to be a model (GGUF magic) but cannot be read as one: one line."""


@dataclass
class ModelInfo:
    path: str
    kind: str                 # "gguf" or "llama2c"
    file_size: int
    n_layers: int
    dim: int
    hidden_dim: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    vocab_size: int
    context: int              # the model's own context length (seq_len / {arch}.context_length)
    architecture: str = "llama"
    merges: int = 0           # BPE merges of an embedded gpt2 vocabulary

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_dim


# --------------------------------------------------------------------------------------------
# llama2.c
# --------------------------------------------------------------------------------------------
def llama2c_expected_size(dim: int, hidden: int, layers: int, heads: int, kv_heads: int, vocab: int,
                          seq_len: int) -> int:
    """Bytes of a llama2.c file with this header (run.c's memory_map_weights order)."""
    shared = vocab > 0
    vocab = abs(vocab)
    head = dim // heads
    kv_dim = kv_heads * head
    floats = (vocab * dim                                   # token embedding
              + layers * dim * 2                            # rms_att, rms_ffn
              + layers * dim * dim * 2                      # wq, wo
              + layers * dim * kv_dim * 2                   # wk, wv
              + layers * dim * hidden * 3                   # w1, w2, w3
              + dim                                         # rms_final
              + seq_len * head                              # the legacy RoPE tables (skipped)
              + (0 if shared else vocab * dim))             # own classifier
    return LLAMA2C_HEADER.size + 4 * floats


def llama2c_info(header: bytes, file_size: int, path: str = "") -> ModelInfo | None:
    """The shapes of a llama2.c model, or None when the bytes are not one."""
    if len(header) < LLAMA2C_HEADER.size:
        return None
    dim, hidden, layers, heads, kv_heads, vocab, seq_len = LLAMA2C_HEADER.unpack_from(header)
    if min(dim, hidden, layers, heads, kv_heads, abs(vocab), seq_len) <= 0:
        return None
    if dim % heads or heads % kv_heads or (dim // heads) % 2:
        return None
    if llama2c_expected_size(dim, hidden, layers, heads, kv_heads, vocab, seq_len) != file_size:
        return None
    return ModelInfo(path, "llama2c", file_size, layers, dim, hidden, heads, kv_heads, dim // heads,
                     abs(vocab), seq_len)


# --------------------------------------------------------------------------------------------
# GGUF metadata, streamed
# --------------------------------------------------------------------------------------------
# value type -> struct format of a scalar (docs/gguf.md `gguf_metadata_value_type`)
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q",
            12: "<d"}
_STRING, _ARRAY = 8, 9
MAX_KEY_BYTES = 65535          # ggml refuses longer keys; a corrupt length stops here


class _Stream:
    """Sequential reads over chunks, counting the offset; a short read is a truncated file."""

    def __init__(self, chunks: Iterable[bytes], size: int, what: str):
        self._it: Iterator[bytes] = iter(chunks)
        self._buf = b""
        self._pos = 0
        self.offset = 0
        self.size = size
        self.what = what

    def read(self, n: int) -> bytes:
        if n > self.size - self.offset:
            raise ModelFileError(f"{self.what}: GGUF file truncated: needs {n} bytes at offset "
                                 f"{self.offset}, the file has {self.size}")
        out = []
        want = n
        while want:
            if self._pos >= len(self._buf):
                try:
                    self._buf, self._pos = next(self._it), 0
                except StopIteration:
                    raise ModelFileError(f"{self.what}: GGUF file truncated at offset "
                                         f"{self.offset + n - want}") from None
                continue
            piece = self._buf[self._pos:self._pos + want]
            self._pos += len(piece)
            want -= len(piece)
            out.append(piece)
        self.offset += n
        return b"".join(out) if len(out) != 1 else out[0]

    def skip(self, n: int) -> None:
        while n:
            k = min(n, 1 << 20)
            self.read(k)
            n -= k

    def skip_strings(self, count: int, key: str) -> None:
        """Skip `count` GGUF strings (u64 length + bytes), in place in the buffer when possible."""
        u64 = struct.Struct("<Q").unpack_from
        while count:
            buf, pos = self._buf, self._pos
            start = pos
            while count and pos + 8 <= len(buf):
                n = u64(buf, pos)[0]
                if pos + 8 + n > len(buf):
                    break
                pos += 8 + n
                count -= 1
            self._pos = pos
            self.offset += pos - start
            if count:                      # a string across chunks (or a bad length): the slow way
                n = self.unpack("<Q")
                if n > self.size - self.offset:
                    raise ModelFileError(f"{self.what}: a string in GGUF array {key} runs past the end of the file")
                self.skip(n)
                count -= 1

    def unpack(self, fmt: str):
        s = struct.calcsize(fmt)
        return struct.unpack(fmt, self.read(s))[0]


def _read_string(st: _Stream, what: str, limit: int | None = None) -> str:
    n = st.unpack("<Q")
    if limit is not None and n > limit:
        raise ModelFileError(f"{st.what}: GGUF {what} at offset {st.offset - 8} is {n} bytes long")
    return st.read(n).decode("utf-8", "replace")


def _read_value(st: _Stream, vtype: int, key: str):
    if vtype in _SCALARS:
        return st.unpack(_SCALARS[vtype])
    if vtype == _STRING:
        n = st.unpack("<Q")
        if n > st.size - st.offset:
            raise ModelFileError(f"{st.what}: GGUF value of {key} is {n} bytes long, past the end of the file")
        if n > 1 << 20:          # a long string (a chat template is a few KiB): keep its length only
            st.skip(n)
            return ""
        return st.read(n).decode("utf-8", "replace")
    if vtype == _ARRAY:
        etype = st.unpack("<I")
        count = st.unpack("<Q")
        if etype in _SCALARS:
            size = struct.calcsize(_SCALARS[etype])
            if count * size > st.size - st.offset:
                raise ModelFileError(f"{st.what}: GGUF array {key} ({count} values) runs past the end of the file")
            if count <= 64:
                raw = st.read(count * size)
                return GgufArray(count, [v[0] for v in struct.iter_unpack(_SCALARS[etype], raw)])
            st.skip(count * size)
            return GgufArray(count)
        if etype == _STRING:
            if count * 8 > st.size - st.offset:
                raise ModelFileError(f"{st.what}: GGUF array {key} ({count} strings) runs past the end of the file")
            st.skip_strings(count, key)
            return GgufArray(count)
        raise ModelFileError(f"{st.what}: GGUF array {key} has element type {etype}, not a GGUF value type")
    raise ModelFileError(f"{st.what}: GGUF key {key} has value type {vtype}, not a GGUF value type")


@dataclass
class GgufArray:
    count: int
    values: list | None = None     # kept for short arrays of numbers only


@dataclass
class GgufTensor:
    name: str
    dims: tuple[int, ...]      # ggml order: dims[0] is the row length
    type_id: int
    offset: int                # from the start of the data section


def read_gguf_metadata(chunks: Iterable[bytes], size: int, what: str) -> dict:
    """The key/value metadata of a GGUF file read from `chunks` (the file's bytes in order).

    Arrays come back as GgufArray (their length; short numeric arrays also their values).
    Raises ModelFileError (one line) for anything that is not a well-formed v2/v3 header."""
    return read_gguf(chunks, size, what, tensors=False)[0]


def read_gguf(chunks: Iterable[bytes], size: int, what: str, *, tensors: bool = True
              ) -> tuple[dict, list[GgufTensor]]:
    """(metadata, tensor infos) of a GGUF file; with tensors=True every tensor's data is also
    checked to lie inside the file (for the types whose block size peasm.ggml knows)."""
    st = _Stream(chunks, size, what)
    if st.read(4) != GGUF_MAGIC:
        raise ModelFileError(f"{what}: not a GGUF file (no 'GGUF' magic)")
    version = st.unpack("<I")
    if version not in (2, 3):
        raise ModelFileError(f"{what}: GGUF version {version}; versions 2 and 3 are supported")
    n_tensors = st.unpack("<Q")
    kv_count = st.unpack("<Q")
    if kv_count > (size - st.offset) // 12 or n_tensors > size // 24:
        raise ModelFileError(f"{what}: GGUF header counts ({n_tensors} tensors, {kv_count} keys) do not fit "
                             f"in a {size}-byte file")
    meta: dict = {"GGUF.version": version, "GGUF.tensor_count": n_tensors}
    for _ in range(kv_count):
        key = _read_string(st, "key", MAX_KEY_BYTES)
        vtype = st.unpack("<I")
        meta[key] = _read_value(st, vtype, key)
    infos: list[GgufTensor] = []
    if not tensors:
        return meta, infos
    from peasm import ggml
    for _ in range(n_tensors):
        name = _read_string(st, "tensor name", MAX_KEY_BYTES)
        n_dims = st.unpack("<I")
        if not 1 <= n_dims <= 4:
            raise ModelFileError(f"{what}: tensor {name} has {n_dims} dimensions (GGUF allows 1 to 4)")
        dims = struct.unpack(f"<{n_dims}Q", st.read(8 * n_dims))
        infos.append(GgufTensor(name, dims, st.unpack("<I"), st.unpack("<Q")))
    align = meta.get("general.alignment", 32)
    if not isinstance(align, int) or align <= 0 or align & (align - 1):
        raise ModelFileError(f"{what}: general.alignment is {align!r}, not a power of two")
    data_start = -(-st.offset // align) * align
    for t in infos:
        gt = ggml.FILE_BY_ID.get(t.type_id)
        if gt is None:
            continue
        n = 1
        for d in t.dims:
            n *= d
        nbytes = n // gt.block_size * gt.block_bytes
        if data_start + t.offset + nbytes > size:
            raise ModelFileError(f"{what}: tensor {t.name} ({nbytes} bytes at offset {data_start + t.offset}) "
                                 f"runs past the end of the {size}-byte file")
    return meta, infos


def _int(meta: dict, key: str, what: str, default: int | None = None) -> int:
    v = meta.get(key, default)
    if isinstance(v, GgufArray):          # per-layer values (some models): the largest counts
        v = max(v.values) if v.values else None
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        if key not in meta and default is None:
            raise ModelFileError(f"{what}: GGUF metadata has no {key}")
        raise ModelFileError(f"{what}: GGUF metadata {key} is {v!r}, expected a positive integer")
    return v


def gguf_info(meta: dict, file_size: int, path: str) -> ModelInfo:
    """Shapes from GGUF metadata ({arch}.* keys, as llama.cpp names them)."""
    arch = meta.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise ModelFileError(f"{path}: GGUF metadata has no general.architecture")
    layers = _int(meta, f"{arch}.block_count", path)
    dim = _int(meta, f"{arch}.embedding_length", path)
    heads = _int(meta, f"{arch}.attention.head_count", path)
    kv_heads = _int(meta, f"{arch}.attention.head_count_kv", path, heads)
    head_dim = _int(meta, f"{arch}.attention.key_length", path, max(1, dim // heads))
    hidden = _int(meta, f"{arch}.feed_forward_length", path, 4 * dim)
    ctx = _int(meta, f"{arch}.context_length", path, 2048)
    tokens = meta.get("tokenizer.ggml.tokens")
    vocab = meta.get(f"{arch}.vocab_size") or (tokens.count if isinstance(tokens, GgufArray) else 0) or 32000
    merges = meta.get("tokenizer.ggml.merges")
    return ModelInfo(path, "gguf", file_size, layers, dim, hidden, heads, kv_heads, head_dim, int(vocab), ctx,
                     arch, merges.count if isinstance(merges, GgufArray) else 0)


def identify(chunks: Callable[[int], Iterable[bytes]], file_size: int, path: str) -> ModelInfo | None:
    """A model's shapes from its bytes (`chunks(n)` iterates over the file in n-byte chunks), or
    None when the file is no model. A file with the GGUF magic that does not parse raises."""
    if file_size < LLAMA2C_HEADER.size:
        return None
    head = b""
    for c in chunks(1 << 16):
        head = c
        break
    if head[:4] == GGUF_MAGIC:
        meta = read_gguf_metadata(chunks(1 << 16), file_size, path)
        if not meta["GGUF.tensor_count"]:
            return None                   # a vocabulary-only file: no weights to load
        return gguf_info(meta, file_size, path)
    return llama2c_info(head, file_size, path)


def _shape(m: ModelInfo) -> StateShape:
    """The shapes the program's loaders derive from the header (head_size = dim / n_heads)."""
    return StateShape(m.dim, m.hidden_dim, m.n_layers, m.n_heads, m.n_kv_heads, m.vocab_size)


def kv_type_of(m: ModelInfo, kv_type: str = "auto") -> str:
    """The KV cache's ggml type ("F16" or "F32") the program gives `m` under repl.cfg's
    kv_type (session_mem.s's kv_type_apply)."""
    return kv_cache_type(kv_type, m.kind)


def state_bytes(m: ModelInfo, ctx: int, kv_type: str = "auto") -> int:
    """Run-state bytes for `ctx` tokens (model_state_bytes), the KV cache as kv_type makes it."""
    return layout_state_bytes(_shape(m), ctx, kv_type_of(m, kv_type))


def tokenizer_bytes(m: ModelInfo) -> int:
    """An upper estimate of the tokenizer's workspace (app_asm/vocab.s carves it): fixed
    scratch of 65552 slots (~9 MiB), per token its text, offsets, types and two hash slots
    (80 bytes, texts included, for the vocabularies seen), per merge a hash of 16-byte entries
    at a load below 2/3 (48 bytes)."""
    return 10 * MiB + 80 * m.vocab_size + 48 * m.merges


def sizing_context(m: ModelInfo, cfg_ctx: int | None = None) -> int:
    ctx = m.context
    if cfg_ctx:
        ctx = min(ctx, cfg_ctx)
    return max(1, min(ctx, MAX_SIZING_CTX))


# --------------------------------------------------------------------------------------------
# Models inside an image
# --------------------------------------------------------------------------------------------
def scan_volume(vol) -> tuple[list[ModelInfo], list[str]]:
    """(models, problems) for every file on a FAT volume that is a model; a file with the GGUF
    magic that cannot be read is a problem line, not a model."""
    models: list[ModelInfo] = []
    problems: list[str] = []
    for path, e in vol.walk("/"):
        if e.is_dir or e.size < LLAMA2C_HEADER.size:
            continue
        try:
            m = identify(lambda n, p=path: vol.iter_file(p, n), e.size, path)
        except ModelFileError as ex:
            problems.append(str(ex))
            continue
        if m is not None:
            models.append(m)
    return models, problems


# --------------------------------------------------------------------------------------------
# `imagetool build --model X.gguf`: can the program run it?
# --------------------------------------------------------------------------------------------
def check_gguf_file(path: str | os.PathLike) -> list[str]:
    """Warnings (one line each) for what the program cannot run in a GGUF file on the host.

    Raises ModelFileError when the file cannot be read as GGUF at all. (The header is read
    here, not by gguf-py's GGUFReader: that takes 9 s on SmolLM2's vocabulary and a minute on
    Llama 3's; the tests hold this reader to GGUFReader's answers.)"""
    from peasm import ggml
    name = os.fspath(path)
    size = os.path.getsize(name)

    def chunks():
        with open(name, "rb") as f:
            while b := f.read(1 << 16):
                yield b
    meta, tensors = read_gguf(chunks(), size, name)
    warnings = []
    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        warnings.append(f"{name}: no general.architecture; this program runs {' '.join(ARCHITECTURES)}")
    elif arch not in ARCHITECTURES:
        warnings.append(f"{name}: architecture {arch}; this program runs {' '.join(ARCHITECTURES)}")
    tok = meta.get("tokenizer.ggml.model")
    if isinstance(tok, str) and tok not in TOKENIZER_MODELS:
        warnings.append(f"{name}: tokenizer model {tok}; this program reads {' '.join(TOKENIZER_MODELS)} "
                        f"vocabularies")
    pre = meta.get("tokenizer.ggml.pre", "default")
    if tok == "gpt2" and isinstance(pre, str) and pre not in PRE_NAMES:
        warnings.append(f"{name}: pre-tokenizer {pre}; this program has {' '.join(sorted(PRE_NAMES))}")
    bad = []
    for t in tensors:
        gt = ggml.FILE_BY_ID.get(t.type_id)
        if gt is None or not ggml.runnable(gt):
            bad.append((t.name, gt.name if gt else f"type {t.type_id}"))
    if bad:
        more = f" (and {len(bad) - 1} more tensors of types it cannot run)" if len(bad) > 1 else ""
        warnings.append(f"{name}: tensor {bad[0][0]} has type {bad[0][1]}; this program runs "
                        f"{' '.join(ggml.supported_names())}{more}")
    return warnings


def model_warnings(path: str | os.PathLike) -> list[str]:
    """What `imagetool build --model FILE` says about a model file the program may not load."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            head = f.read(LLAMA2C_HEADER.size)
        size = os.path.getsize(name)
    except OSError as e:
        return [f"{name}: {e.strerror}"]
    if head[:4] == GGUF_MAGIC:
        try:
            return check_gguf_file(name)
        except ModelFileError as e:
            return [f"{e}; the program cannot load it"]
    if llama2c_info(head, size, name) is None:
        return [f"{name}: not a model this program loads (no GGUF magic, and not a llama2.c .bin: "
                f"its header does not describe a {size}-byte file)"]
    return []
