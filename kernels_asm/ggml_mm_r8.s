# The matmat bodies of the "8 rows interleaved" weight types Q4_0_R8 and Q4_1_R8 (AVX2;
# layout in peasm/ggml.py's module text): ggml_mm8.inc's skeleton (M8_BODY: tiles of 32
# rows = 4 groups, chunks of 8 blocks unpacked once into a stack scratch, then every input
# over the chunk) with ggml_mm_q4.s's block math (M8_XFILL_*, M8_BLOCK_*; peasm's macros
# are program-wide) and an unpack of its own: the R8 storage already holds, per group and
# block, the dword lanes the skeleton's scratch wants (vector v, lane r = row r's qs[4v..
# 4v+3]), so the unpack only splits the nibbles (low: scratch vector v, high: 4 + v) and
# converts the 8 d (and m) at once: no gather, no transpose.
#
#   matmat_q4_<k>_r8_avx2(rcx = out, rdx = W, r8 = xq, r9d = n, [rsp+40] d, [rsp+48] B,
#                         [rsp+56] out_stride, [rsp+64] xq_stride)
#       peasm/ggml.py's matmat contract (ggml_mm.inc), with d rounded down to a multiple of
#       8 (the last d mod 8 outputs are neither computed nor written; the caller's rows come
#       in whole groups) and W at a group's start; outputs of different inputs must not
#       overlap. Each output is bit for bit matvec_q4_<k>_r8_avx2's (ggml_r8.s) for the same
#       row and input, and so the plain-layout matmat_q4_<k>_avx2's: the same exact integer
#       block sums, the same rounding (ggml_mm8.inc's "Rounding"). Registers and stack as
#       ggml_mm8.inc says.
#
# A tile of fewer than 4 groups (d mod 32 = 8, 16, 24) unpacks its missing sub-tiles from
# its last group again and masks their outputs (ggml_mm8.inc's masks): nothing read past
# W's d rows, nothing written but the outputs.
.include "kernels.inc"
.include "kmacros.inc"
.include "ggml_mm8.inc"

.section .text
.global matmat_q4_0_r8_avx2, matmat_q4_1_r8_avx2

# R8M_UNPACK_Q4_0: one group block (rdx: 8 f16 d, 4 quant vectors) into the sub-tile's
# scratch at rax as M8_UNPACK_Q4_0 leaves it: vectors g the signed q - 8, +256 f32(d), +288
# the correction 128 * sum (q - 8) (int32); ymm0-ymm3, ymm8 clobbered
.macro R8M_UNPACK_Q4_0
    vpxor xmm8, xmm8, xmm8
    vmovdqu ymm0, [rdx + 16]
    M8_SPLIT ymm0, ymm2, ymm3
    M8_Q4_0_STORE ymm2, ymm3, 0
    vmovdqu ymm0, [rdx + 48]
    M8_SPLIT ymm0, ymm2, ymm3
    M8_Q4_0_STORE ymm2, ymm3, 1
    vmovdqu ymm0, [rdx + 80]
    M8_SPLIT ymm0, ymm2, ymm3
    M8_Q4_0_STORE ymm2, ymm3, 2
    vmovdqu ymm0, [rdx + 112]
    M8_SPLIT ymm0, ymm2, ymm3
    M8_Q4_0_STORE ymm2, ymm3, 3
    M8_Q4_0_CORR
    vcvtph2ps ymm0, xmmword ptr [rdx]
    vmovups [rax + 256], ymm0
.endm
# R8M_UNPACK_Q4_1: one group block (rdx: 8 f16 d, 8 f16 m, 4 quant vectors) as
# M8_UNPACK_Q4_1 leaves it: vectors g the nibbles q, +256 f32(d), +288 f32(m); ymm0, ymm2,
# ymm3 clobbered
.macro R8M_SPLIT1 off, v
    vmovdqu ymm0, [rdx + \off]
    M8_SPLIT ymm0, ymm2, ymm3
    vmovdqu [rax + 32 * \v], ymm2
    vmovdqu [rax + 128 + 32 * \v], ymm3
.endm
.macro R8M_UNPACK_Q4_1
    R8M_SPLIT1 32, 0
    R8M_SPLIT1 64, 1
    R8M_SPLIT1 96, 2
    R8M_SPLIT1 128, 3
    vcvtph2ps ymm0, xmmword ptr [rdx]
    vmovups [rax + 256], ymm0
    vcvtph2ps ymm0, xmmword ptr [rdx + 16]
    vmovups [rax + 288], ymm0
.endm

# R8M_CHUNK gbb, unpack: the tile's chunk (M8_BODY's `chunk`, after M8_CHUNK_BEGIN gbb: r9
# = how far ahead to prefetch), sub-tile by sub-tile: sub-tile j is the tile's group
# min(j, v/8 - 1), its blocks c0 .. c0 + kc - 1 at W_tile + 8 rbx g + gbb c0 (gbb = 8 x
# block bytes: a group block); each unpacked by `unpack` (rdx -> rax) after a prefetch of
# the same group block r9 ahead (4 lines: it spans 3 or 4); rax, rcx, rdx, r10 clobbered
.macro R8M_CHUNK gbb, unpack
r8m_sub\@:
    mov rax, qword ptr [rsp + M8_V]
    shr rax, 3
    dec rax                           # the tile's last group
    mov rdx, qword ptr [rsp + M8_SUB]
    cmp rdx, rax
    cmova rdx, rax
    imul rdx, rbx
    shl rdx, 3                        # its first row's offset
    mov rcx, qword ptr [rsp + M8_C0]
    imul rcx, rcx, \gbb
    add rdx, rcx
    add rdx, qword ptr [rsp + M8_WT]
    mov rax, qword ptr [rsp + M8_SUB]
    imul rax, rax, M8_WSS
    add rax, qword ptr [rsp + M8_WS]
    mov r10, qword ptr [rsp + M8_KC]
    test r10, r10
    jz r8m_unpacked\@
r8m_unpack\@:
    prefetcht0 [rdx + r9]
    prefetcht0 [rdx + r9 + 64]
    prefetcht0 [rdx + r9 + 128]
    prefetcht0 [rdx + r9 + \gbb - 1]
    \unpack
    add rdx, \gbb
    add rax, M8_WSB
    dec r10
    jnz r8m_unpack\@
r8m_unpacked\@:
    inc qword ptr [rsp + M8_SUB]
    cmp qword ptr [rsp + M8_SUB], 4
    jb r8m_sub\@
.endm
.macro R8M_CHUNK_Q4_0
    R8M_CHUNK 144, R8M_UNPACK_Q4_0
.endm
.macro R8M_CHUNK_Q4_1
    R8M_CHUNK 160, R8M_UNPACK_Q4_1
.endm

# matmat_q4_0_r8_avx2(rcx = out, rdx = W (Q4_0_R8), r8 = xq (Q8_0 inputs), r9d = n,
#                     [rsp+40] d, [rsp+48] B, [rsp+56] out_stride, [rsp+64] xq_stride)
matmat_q4_0_r8_avx2:
    M8_BODY 18, 34, 144, 1, M8_FRAME_Q4_0, M8_XSB_Q4_0, R8M_CHUNK_Q4_0, M8_XFILL_Q4_0, M8_BLOCK_Q4_0

# matmat_q4_1_r8_avx2(rcx = out, rdx = W (Q4_1_R8), r8 = xq (Q8_1 inputs), r9d = n,
#                     [rsp+40] d, [rsp+48] B, [rsp+56] out_stride, [rsp+64] xq_stride)
matmat_q4_1_r8_avx2:
    M8_BODY 20, 36, 160, 1, M8_FRAME_Q4_1, M8_XSB_Q4_1, R8M_CHUNK_Q4_1, M8_XFILL_Q4_1, M8_BLOCK_Q4_1
