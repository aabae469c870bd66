"""The app's data layouts, declared once: generated into `layouts.inc` for the asm and read
by the tests (which never re-parse .inc files).

TENSOR is the format-agnostic tensor descriptor every model file loader fills and the
forward pass reads: a weight used in place, in its file form (a ggml type, peasm/ggml.py).
A 2-D weight of GGUF dims (ne0, ne1) is ne1 rows of ne0 elements; ROW_BYTES = ne0 /
block_size * block_bytes; BYTES = ROW_BYTES * ROWS. A missing optional tensor (a bias, an
output.weight that is tied to token_embd) has DATA = 0.
"""
from __future__ import annotations

import math
from typing import NamedTuple

from .uefi import SCALARS, Struct, declare


class AppStruct(Struct):
    """A Struct whose fields may name the other structs declared here."""

    def field_size(self, t: str) -> tuple[int, int]:
        return type_size(t)


def _s(name: str, *fields: str | tuple) -> AppStruct:
    return declare(name, *fields, cls=AppStruct)


TENSOR = _s("TENSOR",
            "DATA:ptr",          # first byte of the tensor (in the loaded file image), or 0
            "BYTES:u64",         # ROW_BYTES * ROWS
            "ROW_BYTES:u64",     # bytes of one row (ne0 elements)
            "TYPE:u32",          # ggml type id (GGML_TYPE_*)
            "N:u32",             # elements per row (GGUF ne0)
            "ROWS:u32",          # rows: ne1 * ne2 * ne3
            "N_DIMS:u32",        # 1..4
            ("NE", "u64", 4))    # GGUF dims, ne[0] fastest; unused dims are 1

# A GGUF file opened by app_asm/gguf.s (the contract is atop that file). Offsets are byte
# offsets from the start of the file; ERR_* describe the last error (see GGUF_E_* below).
GGUF = _s("GGUF",
          "FILE:ptr",          # the file image given to gguf_open
          "FILE_SIZE:u64",     # its size in bytes
          "TENSOR_COUNT:u64",  # from the header
          "KV_COUNT:u64",      # from the header
          "KV_START:u64",      # offset of the first key/value pair (24)
          "INFOS_START:u64",   # offset of the first tensor info
          "DATA_START:u64",    # offset of the data section: INFOS end rounded up to ALIGNMENT
          "DATA_BYTES:u64",    # FILE_SIZE - DATA_START, or 0 when the data section is empty
          "N_ELEMENTS:u64",    # sum over tensors of ne0*ne1*ne2*ne3 (the parameter count)
          "ERR_INDEX:u64",     # the metadata key or tensor index of the error
          "ERR_VALUE:u64",     # the offending number (a length, count, dim, offset, type...)
          "ERR_AUX:u64",       # a second number (a file offset, a limit, a dim index...)
          "ERR_NAME:ptr",      # the key or tensor name of the error (not NUL-terminated), or 0
          "ERR_NAME_LEN:u64",
          "VERSION:u32",
          "ALIGNMENT:u32",     # general.alignment, default 32
          "FLAGS:u32",         # GGUF_F_OPEN once gguf_open succeeded
          "ERROR:u32",         # GGUF_E_* of the last call
          "ERR_PART:u32",      # GGUF_PART_*: what ran past the end of the file
          "ERR_TYPE:u32",      # a GGUF value type or a ggml type id
          "ERR_WANT:u32")      # the type a getter wanted (GGUF_TYPE_*)

# What a string or array getter hands back (gguf_get_str, gguf_get_array, tensor names).
GGUF_VALUE = _s("GGUF_VALUE",
                "DATA:ptr",        # the string's bytes / the first array element
                "COUNT:u64",       # the string's length / the array's element count
                "TYPE:u32")        # GGUF_TYPE_STRING / the array's element type


# GGUF value types, numbered as the GGUF format document numbers them.
GGUF_TYPES = ("UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32", "BOOL",
              "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64")
# gguf.s's status codes, in this order from 0 (GGUF_OK); app_asm/gguf.s says when each is given.
GGUF_ERRORS = ("OK", "MAGIC", "VERSION", "TRUNCATED", "COUNT", "VALUE_TYPE", "NESTING",
               "ALIGNMENT", "ALIGNMENT_TYPE", "NAME_LEN", "N_DIMS", "DIM", "ROWS",
               "TENSOR_TYPE", "BLOCK", "OFFSET_ALIGN", "DATA_RANGE", "OVERLAP", "NO_KEY",
               "DUP_KEY", "KEY_TYPE", "NEGATIVE", "NO_TENSOR", "DUP_TENSOR", "UNSUPPORTED",
               "INDEX", "NOT_OPEN")
# GGUF_ERR_PART of a TRUNCATED error (and of COUNT: KEY or TENSOR_NAME_LEN): what ran past.
GGUF_PARTS = ("HEADER", "KEY_LEN", "KEY", "TYPE", "VALUE", "STRING_LEN", "STRING",
              "ARRAY_HEAD", "ARRAY", "TENSOR_NAME_LEN", "TENSOR_NAME", "N_DIMS", "DIMS",
              "TYPE_OFFSET")
CONSTANTS: dict[str, int] = {
    **{f"GGUF_TYPE_{n}": i for i, n in enumerate(GGUF_TYPES)},
    "GGUF_TYPE_COUNT": len(GGUF_TYPES),
    "GGUF_TYPE_ANY": 0xFFFF_FFFF,        # gguf_get_array: any element type
    **{("GGUF_OK" if n == "OK" else f"GGUF_E_{n}"): i for i, n in enumerate(GGUF_ERRORS)},
    "GGUF_N_CODES": len(GGUF_ERRORS),
    **{f"GGUF_PART_{n}": i for i, n in enumerate(GGUF_PARTS)},
    "GGUF_MAGIC": 0x46554747,            # "GGUF" as a little-endian u32
    "GGUF_HEADER_BYTES": 24,             # magic, version, tensor_count, kv_count
    "GGUF_MIN_KV_BYTES": 13,             # key length 8 + type 4 + a 1-byte value
    "GGUF_MIN_INFO_BYTES": 32,           # name length 8 + n_dims 4 + one dim 8 + type 4 + offset 8
    "GGUF_DEFAULT_ALIGNMENT": 32,
    "GGUF_MAX_DEPTH": 4,                 # arrays nest at most this deep (an array of arrays is 2)
    "GGUF_MAX_NAME": 63,                 # ggml's GGML_MAX_NAME (64) minus its NUL
    "GGUF_MAX_DIMS": 4,                  # ggml's GGML_MAX_DIMS
    "GGUF_MAX_DIM": 0xFFFF_FFFF,         # every ne and ne1*ne2*ne3 fit TENSOR's u32 N and ROWS
    "GGUF_F_OPEN": 1,
}
# One transformer layer's weights (llama / qwen2 names as GGUF's blk.N.*). The llama2.c
# loader fills the same table from its flat arrays (all F32). Biases are qwen2's (1-D F32).
LAYER = _s("LAYER", *(f"{name}:TENSOR" for name in (
    "ATTN_NORM", "ATTN_Q", "ATTN_K", "ATTN_V", "ATTN_OUTPUT",
    "FFN_NORM", "FFN_GATE", "FFN_UP", "FFN_DOWN",
    "ATTN_Q_BIAS", "ATTN_K_BIAS", "ATTN_V_BIAS")))

# The format-agnostic model: config, weights (descriptors), run state pointers. dwords
# unless noted. The first seven fields are llama2.c's header in its order (the .bin
# loader's error field index is the field's index here).
MODEL = _s("MODEL",
           "DIM:u32", "HIDDEN_DIM:u32", "N_LAYERS:u32", "N_HEADS:u32", "N_KV_HEADS:u32",
           "VOCAB_SIZE:u32",       # positive once checked
           "SEQ_LEN:u32",          # the model's trained context
           "SHARED_CLASSIFIER:u32",  # 1: OUTPUT is TOK_EMBD
           "HEAD_SIZE:u32",        # dim / n_heads
           "KV_DIM:u32",           # n_kv_heads * head_size
           "KV_MUL:u32",           # n_heads / n_kv_heads
           "FLAGS:u32",            # MODEL_F_* done so far
           "FILE_SIZE:u64",        # the size given to the loader
           "EXPECTED_SIZE:u64",    # .bin: 28 + 4 * floats the header implies
           "N_PARAMS:u64",         # parameters used by inference (shared classifier once)
           "ERROR:u32",            # MODEL_E_* of the last call
           "ERR_FIELD:u32",        # header field index of a NONPOSITIVE/TOO_BIG error
           "ERR_VALUE:u32",        # its int32 value
           "CTX_LEN:u32",          # context length of the run state (0 before init)
           # .bin tensor byte offsets in the file, in file order (wcls = token_embedding if shared)
           *(f"OFF_{t}:u64" for t in ("TOKEN_EMBEDDING", "RMS_ATT", "WQ", "WK", "WV", "WO",
                                      "RMS_FFN", "W1", "W2", "W3", "RMS_FINAL", "WCLS")),
           "FORMAT:u32",           # MODEL_FORMAT_LLAMA2C or MODEL_FORMAT_GGUF
           "ARCH:u32",             # MODEL_ARCH_LLAMA or MODEL_ARCH_QWEN2
           "ROPE_DIMS:u32",        # elements of each head that RoPE rotates (even, <= head_size)
           "ROPE_STYLE:u32",       # MODEL_ROPE_PAIRS (llama: (2i, 2i+1)) or MODEL_ROPE_NEOX (i, i+d/2)
           "ROPE_FORMULA:u32",     # MODEL_ROPE_LLAMA2C (pow per pair) or MODEL_ROPE_GGML (iterated scale)
           "ROPE_THETA:u32",       # f32 bits: the base (10000 for llama2.c)
           "ROPE_SCALE:u32",       # f32 bits: theta^(-2/rope_dims), ggml's theta_scale
           "RMS_EPS:u32",          # f32 bits
           "BOS_ID:u32", "EOS_ID:u32",   # 0xFFFFFFFF: none
           "XQ_FMT:u32",           # ggml type of what S_XQ holds now (GGML_TYPE_COUNT: nothing)
           "ERR_GOT:u64",          # GGUF errors: the value found (a key's value, a type id, ne0)
           "ERR_WANT:u64",         #   what was wanted (a limit, ne0), and
           "ERR_GOT2:u64", "ERR_WANT2:u64",   # ne1 found / wanted (shape errors)
           ("ERR_NAME", "u8", 64),  # the key or tensor named by the error (NUL-terminated)
           "TOK_EMBD:TENSOR", "OUTPUT_NORM:TENSOR", "OUTPUT:TENSOR",
           "ROPE_FREQS:TENSOR",    # llama 3.x frequency factors (F32, rope_dims/2), or DATA 0
           "LAYERS:ptr",           # N_LAYERS LAYER rows (caller memory, model_layers_bytes)
           # run state (each buffer 64-byte aligned), set by model_init_state
           "S_X:ptr",              # f32[dim]   residual stream
           "S_XB:ptr",             # f32[dim]   normed input / attention output
           "S_XB2:ptr",            # f32[dim]   wo output
           "S_HB:ptr",             # f32[hidden] gate, then silu(gate) * up
           "S_HB2:ptr",            # f32[hidden] up
           "S_Q:ptr",              # f32[dim]   query
           "S_ATT:ptr",            # f32[n_heads * ctx_len] attention scores
           "S_LOGITS:ptr",         # f32[vocab]
           "S_KEY_CACHE:ptr",      # KV_TYPE[layers * ctx_len * kv_dim]
           "S_VALUE_CACHE:ptr",    # KV_TYPE[layers * ctx_len * kv_dim]
           "S_ROPE:ptr",           # f32[2 * head_size] RoPE table of the current position
           "S_XQ:ptr",             # bytes[4 * max(dim, hidden)]: the input in a vec_dot_type
           # the batched prefill's rows (app_asm/forward_batch.s), MODEL_BATCH rows each; a
           # row of n floats takes round64(4n) bytes, except BK/BV rows: exactly 4 * kv_dim
           "S_BX:ptr",             # f32[B][dim]    residual streams
           "S_BXB:ptr",            # f32[B][dim]    normed inputs / attention outputs
           "S_BXB2:ptr",           # f32[B][dim]    wo outputs
           "S_BQ:ptr",             # f32[B][dim]    queries
           "S_BK:ptr",             # f32[B][kv_dim] keys before the cache (contiguous rows)
           "S_BV:ptr",             # f32[B][kv_dim] values before the cache (contiguous rows)
           "S_BHB:ptr",            # f32[B][hidden] gates, then silu(gate) * up
           "S_BHB2:ptr",           # f32[B][hidden] ups
           "S_BROPE:ptr",          # f32[B][2 * head_size] RoPE tables, one per row's position
           "S_BXQ:ptr",            # bytes[B][round64(4 * max(dim, hidden))] converted inputs
           "S_K:ptr",              # f32[kv_dim] this token's key (bias, RoPE) before the cache
           "S_V:ptr",              # f32[kv_dim] this token's value before the cache
           "KV_TYPE:u32",          # the caches' element type: GGML_TYPE_F32 (0, what a cleared
                                   # struct holds) or GGML_TYPE_F16; the loader's caller sets it
                                   # before model_state_bytes / model_init_state
           "XQ_SRC:ptr",           # the f32 vector S_XQ was made from (with XQ_FMT)
           "KV_LAYER_BYTES:u64",   # ctx_len * kv_dim * (4 or 2), one layer of one cache
           "STATE_TOTAL:u64",      # model_state_bytes of the current run state
           "SWIGLU:ptr",           # the FFN gate's kernel (k_swiglu's contract): k_swiglu_ggml
                                   # for GGUF models (llama.cpp's arithmetic), k_swiglu for .bin
           ("ATT_BLOCK", "u8", 72))  # k_attention's parameter block (ATT_SIZE bytes)


STRUCTS: dict[str, AppStruct] = {s.name: s for s in (TENSOR, LAYER, MODEL, GGUF, GGUF_VALUE)}
MODEL_N_STATE = 24          # S_X .. S_V, in that order
MODEL_BATCH = 32            # rows (prompt tokens) model_forward_batch runs through a layer together


# --------------------------------------------------------------------------------------------
# The run state's size: app_asm/model_state.s's state_layout, buffer by buffer in the MODEL_S_*
# order. Each buffer starts on 64 bytes; model_state_bytes adds 64 bytes of slack to align the
# base. A buffer holds `count` elements: f32 (4 bytes), or the KV cache's type (KV_TYPE). ROWS:
# MODEL_BATCH rows of round64(4 * count) bytes; PACKED: MODEL_BATCH rows of 4 * count bytes,
# back to back. (tests/test_app_model.py holds the asm to these offsets.)
# --------------------------------------------------------------------------------------------
class StateShape(NamedTuple):
    """The MODEL fields the run state's size depends on, as the loaders derive them."""
    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int

    @property
    def head_size(self) -> int:          # MODEL_HEAD_SIZE: dim / n_heads (both loaders)
        return self.dim // self.n_heads

    @property
    def kv_dim(self) -> int:             # MODEL_KV_DIM: n_kv_heads * head_size
        return self.n_kv_heads * self.head_size


    @property
    def dim_or_hidden(self) -> int:      # the larger input a matrix-vector product takes
        return max(self.dim, self.hidden_dim)


ONE, ROWS, PACKED, KV = "one", "rows", "packed", "kv"
# (MODEL field, kind, count: the product of its factors, StateShape field names, "ctx" or numbers)
STATE_BUFFERS: tuple[tuple[str, str, tuple[str | int, ...]], ...] = (
    ("S_X", ONE, ("dim",)), ("S_XB", ONE, ("dim",)), ("S_XB2", ONE, ("dim",)),
    ("S_HB", ONE, ("hidden_dim",)), ("S_HB2", ONE, ("hidden_dim",)), ("S_Q", ONE, ("dim",)),
    ("S_ATT", ONE, ("n_heads", "ctx")), ("S_LOGITS", ONE, ("vocab_size",)),
    ("S_KEY_CACHE", KV, ("n_layers", "ctx", "kv_dim")), ("S_VALUE_CACHE", KV, ("n_layers", "ctx", "kv_dim")),
    ("S_ROPE", ONE, (2, "head_size")),
    ("S_XQ", ONE, ("dim_or_hidden",)),         # any vec_dot_type takes at most 4 bytes an element
    ("S_BX", ROWS, ("dim",)), ("S_BXB", ROWS, ("dim",)), ("S_BXB2", ROWS, ("dim",)), ("S_BQ", ROWS, ("dim",)),
    ("S_BK", PACKED, ("kv_dim",)), ("S_BV", PACKED, ("kv_dim",)),
    ("S_BHB", ROWS, ("hidden_dim",)), ("S_BHB2", ROWS, ("hidden_dim",)), ("S_BROPE", ROWS, (2, "head_size")),
    ("S_BXQ", ROWS, ("dim_or_hidden",)),
    ("S_K", ONE, ("kv_dim",)), ("S_V", ONE, ("kv_dim",)))
STATE_SLACK = 64

# The KV cache's element type. repl.cfg's kv_type takes these values (settings.s's
# kv_type_names, KV_AUTO KV_F16 KV_F32 in settings.inc); auto is the model format's own
# (session_mem.s's kv_type_apply): f16 for GGUF, as llama.cpp's default cache type, f32 for
# llama2.c, as run.c. Format names are MODEL_FORMAT_*'s, lower case.
KV_TYPE_SETTINGS = ("auto", "f16", "f32")
KV_TYPE_AUTO = {"gguf": "F16", "llama2c": "F32"}


def kv_cache_type(setting: str, model_format: str) -> str:
    """The ggml type name ("F16" or "F32") the program gives a model's KV cache."""
    setting = setting.lower()
    if setting == "auto":
        return KV_TYPE_AUTO[model_format]
    if setting not in KV_TYPE_SETTINGS:
        raise ValueError(f"kv_type must be one of {', '.join(KV_TYPE_SETTINGS)} (got {setting!r})")
    return setting.upper()


def _round64(n: int) -> int:
    return (n + 63) & ~63


def kv_element_bytes(kv_type: str) -> int:
    """Bytes of one cache element of ggml type `kv_type` ("F16": 2, "F32": 4)."""
    from .ggml import BY_NAME
    t = BY_NAME[kv_type]
    return t.block_bytes // t.block_size


def state_offsets(shape: StateShape, ctx: int, kv_type: str = "F32") -> tuple[dict[str, int], int]:
    """({MODEL field: byte offset from the aligned base}, laid-out bytes) of the run state for
    `ctx` tokens with caches of ggml type `kv_type` ("F16" or "F32")."""
    kv_bytes = kv_element_bytes(kv_type)
    offsets, off = {}, 0
    for name, kind, count in STATE_BUFFERS:
        n = math.prod(ctx if f == "ctx" else f if isinstance(f, int) else getattr(shape, f) for f in count)
        size = {ONE: 4 * n, KV: kv_bytes * n, ROWS: _round64(4 * n) * MODEL_BATCH,
                PACKED: 4 * n * MODEL_BATCH}[kind]
        offsets[name] = off
        off += _round64(size)
    return offsets, off


def state_bytes(shape: StateShape, ctx: int, kv_type: str = "F32") -> int:
    """model_state_bytes: the run state's bytes for `ctx` tokens (the layout and the slack)."""
    return state_offsets(shape, ctx, kv_type)[1] + STATE_SLACK


def type_size(t: str) -> tuple[int, int]:
    if t in SCALARS:
        return SCALARS[t]
    _, size, align = STRUCTS[t].layout()
    return size, align


def render_include() -> str:
    lines = ["# Generated by peasm.layouts from its declarations; do not edit.", ""]
    for s in STRUCTS.values():
        lines += s.equ_lines()
    lines.append(f".equ MODEL_N_STATE, {MODEL_N_STATE}")
    lines.append(f".equ MODEL_BATCH, {MODEL_BATCH}")
    for name, value in CONSTANTS.items():
        lines.append(f".equ {name}, {value}")
    return "\n".join(lines) + "\n"
