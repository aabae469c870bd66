"""ggml's tensor types, declared once: the type table the asm dispatches on.

Facts from ggml's format documentation (ggml.h `enum ggml_type`, ggml-common.h block
structs): each type's number, name, block size (elements per block) and block bytes. The
tests check these against gguf-py's `GGML_QUANT_SIZES`, an independent statement of them.

For each type this program can run, the declaration adds what ggml calls its traits:
`vec_dot_type` (the format the input vector is quantized to before the dot products: Q8_0
for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for the K-quants, F16 for F16, BF16 for BF16,
F32 for F32) and the names of its kernel bodies per CPU path:

    to_float   (rcx = out f32*, rdx = blocks, r8d = n)          dequantize n elements (a
               multiple of the block size) of one row
    from_float (rcx = out blocks, rdx = x f32*, r8d = n)        quantize n floats into this
               type's blocks (only for the activation formats: the vec_dot_types)
    matvec     (rcx = out f32*, rdx = W, r8 = xq, r9d = n, [rsp+40] dword d)
               out[i] = dot(row i of W, xq) for i < d; W holds d rows of
               n / block_size blocks each; xq is n elements in this type's vec_dot_type
    matmat     (rcx = out f32*, rdx = W, r8 = xq, r9d = n, [rsp+40] dword d,
               [rsp+48] dword B, [rsp+56] qword out_stride, [rsp+64] qword xq_stride)
               the batched product (prefill): out[b * out_stride/4 + i] = dot(row i of W,
               xq_b) for i < d, b < B, where xq_b = xq + b * xq_stride bytes is one input in
               the vec_dot_type; each weight block is read once for all B inputs; the
               outputs of different inputs must not overlap. Each output equals the
               type's matvec body's bit for bit, except Q4_0/Q4_1 (another f32 rounding
               of the same exact block sums: kernels_asm/ggml_mm8.inc). Optional:
               a type (or a path) without one runs its matvec once per input over tiles of
               rows that stay in cache (app_asm's batched forward pass does that).

A body declared as "name@avx2" exists on that path only (the other path's slot is 0).

Besides ggml's own types, the table has this program's INTERNAL types (ids from
INTERNAL_BASE up, never accepted from a file): the "8 rows interleaved" (R8) forms of Q4_0,
Q4_1, Q4_K and F32, into which the loader repacks a weight in place when the running path has their
matvec body (so far AVX2 only). Layout (peasm/ggml_r8.py packs it in numpy for the
tests): rows in groups of 8 (the weight's rows a multiple of 8); a group takes exactly the
bytes of its 8 rows, group g at W + g * 8 * row_bytes. Within a group, for each block
column b = 0 .. n/32-1 in order, one "group block" of 8 * block_bytes bytes:
  - 8 f16 d, row r's at byte 2r (16 bytes);
  - Q4_1 only: 8 f16 m, row r's at 16 + 2r (16 bytes);
  - 4 vectors of 32 bytes: vector v's dword lane r (bytes 4r..4r+3) holds row r's block
    bytes qs[4v .. 4v+3]; so a byte's low nibble is weight 4v+j of the block, its high
    nibble weight 16+4v+j (ggml's block layout: qs[i] = w[i] | w[i+16] << 4).
The R8 type has its base type's block size, block bytes and vec_dot_type (so row_bytes,
sizes and the input's format are unchanged) and `group_rows` 8: a split of its rows between
cores, or tiles of rows, must start at a multiple of 8. Rounding (kernels_asm/ggml_r8.s):
Q4_0_R8 as llama.cpp's repacked Q4_0 gemv (per row one f32 accumulator, one FMA a block:
ggml_mm8.inc's, the plain Q4_0 matmat's bits), its matmat the same; Q4_1_R8 as ggml's
vec_dot_q4_1_q8_1, which llama.cpp runs for Q4_1 on x86 (per row 8 lane accumulators folded
in hsum_float_8's order, then + the m*s sum: the plain Q4_1 matvec body's bits), its matmat
the same (kernels_asm/ggml_mm_r8.s): the prefill is bit for bit the decode.
Q4_K_R8 (llama.cpp repacks Q4_K at load on AVX2 hosts, rows a multiple of 8) takes the same
layout with Q4_K's block (256 weights, 144 bytes: its 16 bytes of d, dmin and the 12 scale
bytes are the "scale fields", 8 words a row, then 32 vectors of nibbles) and rounds as
llama.cpp's q4_K_8x8 gemv (per row two f32 accumulators, one FMA each a super-block: the
scales' and the mins' exact integer sums, then their difference: kernels_asm/ggml_q4_k_r8.s);
its matmat (ggml_mm_q4_k_r8.s) gives the matvec's bits.

F32_R8 (base F32, block size 1, 4 bytes) groups columns by 8 instead of blocks: within a
group, for each chunk c = 0 .. n/8-1 in order, 256 bytes: row r's columns 8c .. 8c+7 at
byte 32r (n a multiple of 8: the repack refuses other rows). Its matvec
(kernels_asm/matvec.s) shares each 32-byte load of x between the 8 rows' FMAs, where the
row-major body loads as many bytes of x as it reads of W (measured: 0.97-0.98 of
stream_read against 0.87-0.90 at stories110M's shapes on an AMD Zen 3); it rounds
otherwise than the row-major body (per row one accumulator of 8 lanes, lane j = columns
8c + j, folded ((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7))). Its matmat (matmat_f32_r8_avx2,
kernels_asm/ggml_mm_f32.s: 4 rows x 3 inputs a step) keeps that rounding: the prefill is
bit for bit the decode. The only R8 form a classifier tied to the
token embedding takes (llama2.c files): the embedding's rows are gathered from it
(app_asm/forward.s, model_embed_row).

From this module peasm generates two includes:

* `ggml.inc`: `.equ GGML_TYPE_<NAME>, id`, `GGML_TYPE_COUNT`, and the row layout of the
  table (`GGML_TT_*`);
* `ggml_table.inc`: the table itself (.rdata), one row of `GGML_TT_SIZE` bytes per type id
  0 .. GGML_TABLE_ROWS-1 (the internal types included), for `kernels_asm/ggml_types.s` to include. A row of a type the
  program cannot run has zero body pointers and flags 0, but still its name and sizes, so
  an error can name it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .uefi import Field, Struct


@dataclass(frozen=True)
class GgmlType:
    id: int
    name: str
    block_size: int          # elements per block
    block_bytes: int         # bytes per block
    vec_dot_type: str | None = None      # the activation format, when this program runs it
    bodies: dict[str, str] = field(default_factory=dict)   # "to_float" etc -> base name
    group_rows: int = 1      # rows stored interleaved together (R8 types: 8)
    base: str | None = None  # an internal type: the file type it is repacked from


def _bodies(stem: str, *, from_float: bool = False, to_float: bool = True,
            matvec: bool = True, matmat: bool = False) -> dict[str, str]:
    out = {}
    if to_float:
        out["to_float"] = f"dequantize_row_{stem}"
    if from_float:
        out["from_float"] = f"quantize_row_{stem}"
    if matvec:
        out["matvec"] = f"matvec_{stem}"
    if matmat:
        out["matmat"] = f"matmat_{stem}@avx2"
    return out


# Every type id of ggml's enum that a GGUF file may carry (ids 4, 5 and 31-33, 36-38 are
# retired in ggml and never appear). Sizes from ggml-common.h. Q8_1 is only ever an
# activation format in memory: ggml's block_q8_1 is {f16 d, f16 s = d * sum(qs), i8 qs[32]},
# 36 bytes (gguf-py still lists the retired f32 layout, 40).
TYPES: tuple[GgmlType, ...] = (
    GgmlType(0, "F32", 1, 4, "F32", {"to_float": "dequantize_row_f32", "matvec": "matvec",
                                 "matmat": "matmat_f32@avx2"}),
    GgmlType(1, "F16", 1, 2, "F16", _bodies("f16", from_float=True)),
    GgmlType(2, "Q4_0", 32, 18, "Q8_0", _bodies("q4_0", matmat=True)),
    GgmlType(3, "Q4_1", 32, 20, "Q8_1", _bodies("q4_1", matmat=True)),
    GgmlType(6, "Q5_0", 32, 22, "Q8_0", _bodies("q5_0", matmat=True)),
    GgmlType(7, "Q5_1", 32, 24, "Q8_1", _bodies("q5_1", matmat=True)),
    GgmlType(8, "Q8_0", 32, 34, "Q8_0", _bodies("q8_0", from_float=True, matmat=True)),
    GgmlType(9, "Q8_1", 32, 36, None, _bodies("q8_1", from_float=True, to_float=False,
                                              matvec=False)),
    GgmlType(10, "Q2_K", 256, 84, "Q8_K", _bodies("q2_k")),
    GgmlType(11, "Q3_K", 256, 110, "Q8_K", _bodies("q3_k")),
    GgmlType(12, "Q4_K", 256, 144, "Q8_K", _bodies("q4_k", matmat=True)),
    GgmlType(13, "Q5_K", 256, 176, "Q8_K", _bodies("q5_k")),
    GgmlType(14, "Q6_K", 256, 210, "Q8_K", _bodies("q6_k", matmat=True)),
    GgmlType(15, "Q8_K", 256, 292, None, _bodies("q8_k", from_float=True, to_float=False,
                                                matvec=False)),
    GgmlType(16, "IQ2_XXS", 256, 66),
    GgmlType(17, "IQ2_XS", 256, 74),
    GgmlType(18, "IQ3_XXS", 256, 98),
    GgmlType(19, "IQ1_S", 256, 50),
    GgmlType(20, "IQ4_NL", 32, 18),
    GgmlType(21, "IQ3_S", 256, 110),
    GgmlType(22, "IQ2_S", 256, 82),
    GgmlType(23, "IQ4_XS", 256, 136),
    GgmlType(24, "I8", 1, 1),
    GgmlType(25, "I16", 1, 2),
    GgmlType(26, "I32", 1, 4),
    GgmlType(27, "I64", 1, 8),
    GgmlType(28, "F64", 1, 8),
    GgmlType(29, "IQ1_M", 256, 56),
    GgmlType(30, "BF16", 1, 2, "BF16", _bodies("bf16", from_float=True)),
    GgmlType(34, "TQ1_0", 256, 54),
    GgmlType(35, "TQ2_0", 256, 66),
    GgmlType(39, "MXFP4", 32, 17),
    GgmlType(40, "NVFP4", 64, 36),
    GgmlType(41, "Q1_0", 128, 18),
)
FILE_TYPES = TYPES
# This program's internal types (ids INTERNAL_BASE + k; GGML_TYPE_COUNT, the bound of a
# file's type ids and the "no type" value, stays below them).
INTERNAL_BASE = 64
R8_GROUP = 8
INTERNAL_TYPES: tuple[GgmlType, ...] = (
    # a type without a matvec body on the running path is never repacked into
    GgmlType(INTERNAL_BASE + 0, "Q4_0_R8", 32, 18, "Q8_0", {"matvec": "matvec_q4_0_r8@avx2",
                                                  "matmat": "matmat_q4_0_r8@avx2"},
             group_rows=R8_GROUP, base="Q4_0"),
    GgmlType(INTERNAL_BASE + 1, "Q4_1_R8", 32, 20, "Q8_1", {"matvec": "matvec_q4_1_r8@avx2",
                                                  "matmat": "matmat_q4_1_r8@avx2"},
             group_rows=R8_GROUP, base="Q4_1"),
    # llama.cpp's repacked Q4_K (q4_K_8x8 gemv); its matmat the same roundings
    GgmlType(INTERNAL_BASE + 2, "Q4_K_R8", 256, 144, "Q8_K", {"matvec": "matvec_q4_k_r8@avx2",
                                                    "matmat": "matmat_q4_k_r8@avx2"},
             group_rows=R8_GROUP, base="Q4_K"),
    GgmlType(INTERNAL_BASE + 3, "F32_R8", 1, 4, "F32", {"matvec": "matvec_f32_r8@avx2",
                                                 "matmat": "matmat_f32_r8@avx2"},
             group_rows=R8_GROUP, base="F32"),
)
TYPES = FILE_TYPES + INTERNAL_TYPES
BY_ID = {t.id: t for t in TYPES}
FILE_BY_ID = {t.id: t for t in FILE_TYPES}           # the ids a file may carry
BY_NAME = {t.name: t for t in TYPES}
TYPE_COUNT = max(t.id for t in FILE_TYPES) + 1     # GGML_TYPE_COUNT: file ids are below it
TABLE_ROWS = max(BY_ID) + 1                        # GGML_TABLE_ROWS: rows of the table
R8_OF = {t.base: t.name for t in INTERNAL_TYPES}   # file type -> its R8 form
PATHS = ("sse2", "avx2")          # K_PATH_SSE2 = 1 -> index 0, K_PATH_AVX2 = 2 -> index 1
BODY_KINDS = ("to_float", "from_float", "matvec", "matmat")
NAME_BYTES = 8                    # NUL-padded; the longest name (IQ2_XXS) is 7


def runnable(t: GgmlType) -> bool:
    """A weight of this type, read from a file, can be used by the program (it has a
    matvec and a to_float). Internal types are never runnable from a file."""
    return t.base is None and "matvec" in t.bodies and "to_float" in t.bodies


def supported_names() -> list[str]:
    return [t.name for t in TYPES if runnable(t)]


# One row of the table. flags: bit 0 = the program can run weights of this type.
ROW = Struct("GGML_TT", (
    Field("NAME", "u8", NAME_BYTES),
    Field("BLOCK_SIZE", "u32"),
    Field("BLOCK_BYTES", "u32"),
    Field("VEC_DOT_TYPE", "u32"),      # a type id (GGML_TYPE_COUNT when none)
    Field("FLAGS", "u32"),
    Field("GROUP_ROWS", "u32"),        # rows stored interleaved (1; R8 types 8)
    Field("BASE_TYPE", "u32"),         # an internal type's file type, else its own id
    Field("BODIES", "ptr", len(PATHS) * len(BODY_KINDS)),   # [path][kind]
))
GGML_TT_F_RUNNABLE = 1


def body_symbol(t: GgmlType, kind: str, path: str) -> str | None:
    base, _, only = (t.bodies.get(kind) or "").partition("@")
    if not base or (only and only != path):
        return None
    return f"{base}_{path}"


def render_include() -> str:
    """`ggml.inc`: type ids, the row layout, body slot offsets."""
    lines = ["# Generated by peasm.ggml from its declarations; do not edit.", ""]
    for t in TYPES:
        lines.append(f".equ GGML_TYPE_{t.name}, {t.id}")
    lines.append(f".equ GGML_TYPE_COUNT, {TYPE_COUNT}")
    lines.append(f".equ GGML_TABLE_ROWS, {TABLE_ROWS}")
    lines.append(f".equ GGML_R8_GROUP, {R8_GROUP}")
    lines.append("")
    offsets, size, _ = ROW.layout()
    for name, off in offsets.items():
        lines.append(f".equ GGML_TT_{name}, {off}")
    lines.append(f".equ GGML_TT_SIZE, {size}")
    lines.append(f".equ GGML_TT_F_RUNNABLE, {GGML_TT_F_RUNNABLE}")
    lines.append(f".equ GGML_TT_NAME_BYTES, {NAME_BYTES}")
    # body slot = GGML_TT_BODIES + (path_index * len(BODY_KINDS) + kind) * 8
    for k, kind in enumerate(BODY_KINDS):
        lines.append(f".equ GGML_TT_{kind.upper()}, {k * 8}      # + GGML_TT_BODIES + path * GGML_TT_PATH_BYTES")
    lines.append(f".equ GGML_TT_PATH_BYTES, {len(BODY_KINDS) * 8}")
    return "\n".join(lines) + "\n"


def render_table() -> str:
    """`ggml_table.inc`: the .rdata table, GGML_TYPE_COUNT rows."""
    lines = ["# Generated by peasm.ggml from its declarations; do not edit.",
             '.include "ggml.inc"', ".section .rdata", ".balign 8, 0", ".global ggml_type_table",
             "ggml_type_table:"]
    externs = sorted({s for t in TYPES for kind in BODY_KINDS for p in PATHS
                      if (s := body_symbol(t, kind, p))})
    for t_id in range(TABLE_ROWS):
        t = BY_ID.get(t_id)
        if t is None:
            lines.append(f"    .zero {ROW.size}                 # {t_id}: retired id")
            continue
        name = t.name.encode() + bytes(NAME_BYTES - len(t.name))
        vdt = BY_NAME[t.vec_dot_type].id if t.vec_dot_type else TYPE_COUNT
        flags = GGML_TT_F_RUNNABLE if runnable(t) else 0
        lines.append(f"    .byte {', '.join(str(b) for b in name)}    # {t_id}: {t.name}")
        base = BY_NAME[t.base].id if t.base else t.id
        lines.append(f"    .long {t.block_size}, {t.block_bytes}, {vdt}, {flags}, {t.group_rows}, {base}")
        for p in PATHS:
            for kind in BODY_KINDS:
                sym = body_symbol(t, kind, p)
                lines.append(f"    .quad {sym if sym else 0}")
    body = "\n".join(lines) + "\n"
    return (f".extern {', '.join(externs)}\n" if externs else "") + body
