"""The app's data layouts, declared once: generated into `layouts.inc` for the asm and read
by the tests (which never re-parse .inc files).

TENSOR is the format-agnostic tensor descriptor every model file loader fills and the
forward pass reads: a weight used in place, in its file form (a ggml type, peasm/ggml.py).
A 2-D weight of GGUF dims (ne0, ne1) is ne1 rows of ne0 elements; ROW_BYTES = ne0 /
block_size * block_bytes; BYTES = ROW_BYTES * ROWS. A missing optional tensor (a bias, an
output.weight that is tied to token_embd) has DATA = 0.
"""
from __future__ import annotations

from .uefi import Field, Struct


def _s(name: str, *fields: str | tuple) -> Struct:
    out = []
    for f in fields:
        if isinstance(f, tuple):
            out.append(Field(*f))
        else:
            n, t = f.split(":")
            out.append(Field(n, t))
    return Struct(name, tuple(out))


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

STRUCTS: dict[str, Struct] = {s.name: s for s in (TENSOR, GGUF, GGUF_VALUE)}

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


def render_include() -> str:
    lines = ["# Generated by peasm.layouts from its declarations; do not edit.", ""]
    for s in STRUCTS.values():
        offsets, size, _ = s.layout()
        lines.append(f"# {s.name}")
        for name, off in offsets.items():
            lines.append(f".equ {s.name}_{name}, {off}")
        lines.append(f".equ {s.name}_SIZE, {size}")
        lines.append("")
    for name, value in CONSTANTS.items():
        lines.append(f".equ {name}, {value}")
    return "\n".join(lines) + "\n"
