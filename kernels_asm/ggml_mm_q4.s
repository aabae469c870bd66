# ggml's Q4_0 and Q4_1 weights times a batch of inputs (Q8_0 / Q8_1, ggml's vec_dot_type):
# the matmat body kind, rows interleaved (skeleton, contract and rounding in ggml_mm8.inc;
# block layouts in ggml_qmacros.inc). The math per block is ggml's vec_dot_q4_0_q8_0 /
# vec_dot_q4_1_q8_1 (format docs: ggml-common.h):
#   Q4_0: f32(d_w) * f32(d_x) * sum_j (q_j - 8) * x_j
#   Q4_1: f32(d_w) * f32(d_x) * sum_j q_j * x_j + f32(m_w) * f32(s_x)
# Q4_1: the weights' nibbles q (0..15) are vpmaddubsw's unsigned operand, the activation
# quants x (-128..127, signed) broadcast from the input; 16 products a word lane: |sum| <=
# 16 * 15 * 128 = 30720 < 2^15 (and 2 * 15 * 128 per vpmaddubsw: no saturation).
# Q4_0: q - 8 (-8..7) is the signed operand and x + 128 (x xor 0x80: 0..255) the unsigned
# one, from a copy of the group's chunk (M8_XS); |sum| <= 16 * 8 * 255 = 32640 < 2^15 (2 *
# 8 * 255 per vpmaddubsw). sum (q - 8)(x + 128) = sum (q - 8) x + 128 sum (q - 8): the
# second term is the row block's correction, computed once at the unpack (int32, exact).
.include "kernels.inc"
.include "kmacros.inc"
.include "ggml_qmacros.inc"
.include "ggml_mm8.inc"

.section .text
.global matmat_q4_0_avx2, matmat_q4_1_avx2

.global kmm_nib_shift               # (ggml_mm.inc's MM_NIB, for ggml_mm_q5.s)
.section .rdata
.balign 32, 0
kmm_nib_shift:  # vpsrlvd counts: the low 128 bits keep the low nibbles, the high get the high
    .long 0, 0, 0, 0, 4, 4, 4, 4
kmm8_mask:      # 8 x -1 then 8 x 0: a sub-tile of v rows loads its mask at +4 * (8 - v)
    .long -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0
kmm8_b1:        # 1 in every byte
    .long 0x01010101, 0x01010101, 0x01010101, 0x01010101, 0x01010101, 0x01010101, 0x01010101, 0x01010101
kmm8_b80:       # 0x80 in every byte: x xor 0x80 = x + 128 as an unsigned byte
    .long 0x80808080, 0x80808080, 0x80808080, 0x80808080, 0x80808080, 0x80808080, 0x80808080, 0x80808080
kmm8_d32768:    # 32768 = 128 * 8 * 32 (int32)
    .long 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768

.section .text
# --- the unpack: one block of a sub-tile's 8 rows into its weight scratch at rax ----------
# M8_PF: the 8 rows' bytes r9 ahead (ggml_mm8.inc's M8_CHUNK_BEGIN)
.macro M8_PF
    lea rax, [rdx + r9]
    prefetcht0 [rax]
    prefetcht0 [rax + rcx]
    prefetcht0 [rax + r8]
    prefetcht0 [rax + r10]
    prefetcht0 [rax + r11]
    prefetcht0 [rax + rsi]
    prefetcht0 [rax + rdi]
    prefetcht0 [rax + rbp]
.endm
# Q4_1 ({d, m, qs[16]}): vectors g = 0..7 the nibbles q (0..15); +256 f32(d), +288 f32(m)
.macro M8_UNPACK_Q4_1
    M8_ROWS4 4
    M8_TRANSPOSE
    M8_SPLIT ymm1, ymm2, ymm3
    vmovdqu [rax], ymm2
    vmovdqu [rax + 128], ymm3
    M8_SPLIT ymm4, ymm2, ymm3
    vmovdqu [rax + 32], ymm2
    vmovdqu [rax + 160], ymm3
    M8_SPLIT ymm5, ymm2, ymm3
    vmovdqu [rax + 64], ymm2
    vmovdqu [rax + 192], ymm3
    M8_SPLIT ymm0, ymm2, ymm3
    vmovdqu [rax + 96], ymm2
    vmovdqu [rax + 224], ymm3
    vmovd xmm0, dword ptr [rdx]
    vpinsrd xmm0, xmm0, dword ptr [rdx + rcx], 1
    vpinsrd xmm0, xmm0, dword ptr [rdx + r8], 2
    vpinsrd xmm0, xmm0, dword ptr [rdx + r10], 3
    vmovd xmm1, dword ptr [rdx + r11]
    vpinsrd xmm1, xmm1, dword ptr [rdx + rsi], 1
    vpinsrd xmm1, xmm1, dword ptr [rdx + rdi], 2
    vpinsrd xmm1, xmm1, dword ptr [rdx + rbp], 3
    vcvtph2ps ymm0, xmm0              # d0 m0 d1 m1 | d2 m2 d3 m3
    vcvtph2ps ymm1, xmm1              # rows 4..7
    vshufps ymm2, ymm0, ymm1, 0x88    # d0 d1 d4 d5 | d2 d3 d6 d7
    vshufps ymm3, ymm0, ymm1, 0xdd    # the m
    vpermpd ymm2, ymm2, 0xd8          # d0 .. d7
    vpermpd ymm3, ymm3, 0xd8
    vmovups [rax + 256], ymm2
    vmovups [rax + 288], ymm3
.endm
# Q4_0 ({d, qs[16]}): vectors g the signed q - 8; +256 f32(d); +288 the correction
# 128 * sum (q - 8) = 128 * sum q - 32768 per row (int32): sum q from the 8 vectors' bytes
# added first (at most 8 * 15 = 120 a byte), then vpmaddubsw by 1 and vpmaddwd by 1
.macro M8_Q4_0_STORE lo, hi, j
    vpaddb ymm8, ymm8, \lo
    vpaddb ymm8, ymm8, \hi
    vpsubb \lo, \lo, [rip + kg_b8]
    vpsubb \hi, \hi, [rip + kg_b8]
    vmovdqu [rax + 32 * \j], \lo
    vmovdqu [rax + 128 + 32 * \j], \hi
.endm
# M8_Q4_0_CORR: the correction from the raw nibbles' byte sums in ymm8 (M8_Q4_0_STORE) to
# [rax + 288]; ymm0 clobbered (also ggml_mm_r8.s's)
.macro M8_Q4_0_CORR
    vmovdqu ymm0, [rip + kmm8_b1]
    vpmaddubsw ymm8, ymm8, ymm0
    vpmaddwd ymm8, ymm8, [rip + kg_one_i16]
    vpslld ymm8, ymm8, 7
    vpsubd ymm8, ymm8, [rip + kmm8_d32768]
    vmovdqu [rax + 288], ymm8
.endm
.macro M8_UNPACK_Q4_0
    M8_ROWS4 2
    M8_TRANSPOSE
    vpxor xmm8, xmm8, xmm8
    M8_SPLIT ymm1, ymm2, ymm3
    M8_Q4_0_STORE ymm2, ymm3, 0
    M8_SPLIT ymm4, ymm2, ymm3
    M8_Q4_0_STORE ymm2, ymm3, 1
    M8_SPLIT ymm5, ymm2, ymm3
    M8_Q4_0_STORE ymm2, ymm3, 2
    M8_SPLIT ymm0, ymm2, ymm3
    M8_Q4_0_STORE ymm2, ymm3, 3
    M8_Q4_0_CORR
    vmovd xmm0, dword ptr [rdx]
    vpinsrw xmm0, xmm0, word ptr [rdx + rcx], 1
    vpinsrw xmm0, xmm0, word ptr [rdx + r8], 2
    vpinsrw xmm0, xmm0, word ptr [rdx + r10], 3
    vpinsrw xmm0, xmm0, word ptr [rdx + r11], 4
    vpinsrw xmm0, xmm0, word ptr [rdx + rsi], 5
    vpinsrw xmm0, xmm0, word ptr [rdx + rdi], 6
    vpinsrw xmm0, xmm0, word ptr [rdx + rbp], 7
    vcvtph2ps ymm0, xmm0
    vmovups [rax + 256], ymm0
.endm

# --- the input's scratch for a chunk, per block: Q4_0: its quants + 128 (x xor 0x80: the
# unsigned operand), then f32(d_x); Q4_1: f32(d_x), f32(s_x). rsi = the input's block, rax =
# the scratch's block; ymm0, ymm10 (Q4_0: = kmm8_b80) used
.macro M8_XFILL_Q4_0
    vpxor ymm0, ymm10, [rsi + 2]
    vmovdqu [rax], ymm0
    vpbroadcastw xmm0, word ptr [rsi]
    vcvtph2ps xmm0, xmm0
    vmovss dword ptr [rax + 32], xmm0
.endm
.macro M8_XFILL_Q4_1
    vmovd xmm0, dword ptr [rsi]
    vcvtph2ps xmm0, xmm0
    vmovq qword ptr [rax], xmm0
.endm

# --- one block for one input and the tile's 4 sub-tiles (rax = the block's weight scratch,
# rcx = the input's scratch for the block; Q4_1: rsi = the input's block): M8_G_* g, first:
# the input's bytes 4g..4g+3 broadcast (ymm9) times vector g of each sub-tile, added into
# ymm0-ymm3 (first: set); ymm8-ymm10 clobbered. Then M8_FIN_*: the sums scaled into the
# accumulators ymm4-ymm7. One broadcast serves 32 rows: the broadcasts are shuffle-pipe
# operations on Zen 3, and with 8 rows a broadcast they were a quarter of the loop's.
.macro M8_G_Q4_0 g, first
    vpbroadcastd ymm9, dword ptr [rcx + 4 * \g]
.if \first
    vpmaddubsw ymm0, ymm9, [rax + 32 * \g]
    vpmaddubsw ymm1, ymm9, [rax + M8_WSS + 32 * \g]
    vpmaddubsw ymm2, ymm9, [rax + 2 * M8_WSS + 32 * \g]
    vpmaddubsw ymm3, ymm9, [rax + 3 * M8_WSS + 32 * \g]
.else
    vpmaddubsw ymm10, ymm9, [rax + 32 * \g]
    vpaddw ymm0, ymm0, ymm10
    vpmaddubsw ymm10, ymm9, [rax + M8_WSS + 32 * \g]
    vpaddw ymm1, ymm1, ymm10
    vpmaddubsw ymm10, ymm9, [rax + 2 * M8_WSS + 32 * \g]
    vpaddw ymm2, ymm2, ymm10
    vpmaddubsw ymm10, ymm9, [rax + 3 * M8_WSS + 32 * \g]
    vpaddw ymm3, ymm3, ymm10
.endif
.endm
.macro M8_FIN_Q4_0 s, acc, j
    vpmaddwd \s, \s, ymm11
    vpsubd \s, \s, [rax + M8_WSS * \j + 288]
    M8_SCALE_FMA \s, \acc, \j
.endm
.macro M8_BLOCK_Q4_0
    M8_G_Q4_0 0, 1
    M8_G_Q4_0 1, 0
    M8_G_Q4_0 2, 0
    M8_G_Q4_0 3, 0
    M8_G_Q4_0 4, 0
    M8_G_Q4_0 5, 0
    M8_G_Q4_0 6, 0
    M8_G_Q4_0 7, 0
    vbroadcastss ymm9, dword ptr [rcx + 32]
    M8_FIN_Q4_0 ymm0, ymm4, 0
    M8_FIN_Q4_0 ymm1, ymm5, 1
    M8_FIN_Q4_0 ymm2, ymm6, 2
    M8_FIN_Q4_0 ymm3, ymm7, 3
.endm
# Q4_1: the weights are the unsigned operand (a register: vector g of each sub-tile loaded)
.macro M8_MADDU first, s, j, g
    vmovdqu ymm8, [rax + M8_WSS * \j + 32 * \g]
.if \first
    vpmaddubsw \s, ymm8, ymm9
.else
    vpmaddubsw ymm10, ymm8, ymm9
    vpaddw \s, \s, ymm10
.endif
.endm
.macro M8_G_Q4_1 g, first
    vpbroadcastd ymm9, dword ptr [rsi + 4 + 4 * \g]
    M8_MADDU \first, ymm0, 0, \g
    M8_MADDU \first, ymm1, 1, \g
    M8_MADDU \first, ymm2, 2, \g
    M8_MADDU \first, ymm3, 3, \g
.endm
.macro M8_FIN_Q4_1 s, acc, j
    vpmaddwd \s, \s, ymm11
    M8_SCALE_FMA \s, \acc, \j
    vfmadd231ps \acc, ymm12, [rax + M8_WSS * \j + 288]
.endm
.macro M8_BLOCK_Q4_1
    M8_G_Q4_1 0, 1
    M8_G_Q4_1 1, 0
    M8_G_Q4_1 2, 0
    M8_G_Q4_1 3, 0
    M8_G_Q4_1 4, 0
    M8_G_Q4_1 5, 0
    M8_G_Q4_1 6, 0
    M8_G_Q4_1 7, 0
    vbroadcastss ymm9, dword ptr [rcx]
    vbroadcastss ymm12, dword ptr [rcx + 4]
    M8_FIN_Q4_1 ymm0, ymm4, 0
    M8_FIN_Q4_1 ymm1, ymm5, 1
    M8_FIN_Q4_1 ymm2, ymm6, 2
    M8_FIN_Q4_1 ymm3, ymm7, 3
.endm

# M8_CHUNK_Q4_0 / M8_CHUNK_Q4_1: the unpack of a tile's chunk (M8_BODY's `chunk`): each
# sub-tile's 8 rows gathered, transposed and split, block by block, prefetching r9 ahead
.macro M8_CHUNK_ROWS bb, unpack
m8_sub\@:
    M8_SUB_BEGIN \bb
    cmp qword ptr [rsp + M8_CNT], 0
    je m8_unpacked\@
m8_unpack\@:
    push rax
    M8_PF
    pop rax
    \unpack
    add rdx, \bb
    add rax, M8_WSB
    dec qword ptr [rsp + M8_CNT]
    jnz m8_unpack\@
m8_unpacked\@:
    inc qword ptr [rsp + M8_SUB]
    cmp qword ptr [rsp + M8_SUB], 4
    jb m8_sub\@
.endm
.macro M8_CHUNK_Q4_0
    M8_CHUNK_ROWS 18, M8_UNPACK_Q4_0
.endm
.macro M8_CHUNK_Q4_1
    M8_CHUNK_ROWS 20, M8_UNPACK_Q4_1
.endm

# matmat_q4_0_avx2(rcx = out, rdx = W, r8 = xq (Q8_0 inputs), r9d = n, [rsp+40] d, [rsp+48] B,
#                  [rsp+56] out_stride, [rsp+64] xq_stride)
matmat_q4_0_avx2:
    M8_BODY 18, 34, 18, 0, M8_FRAME_Q4_0, M8_XSB_Q4_0, M8_CHUNK_Q4_0, M8_XFILL_Q4_0, M8_BLOCK_Q4_0

# matmat_q4_1_avx2(rcx = out, rdx = W, r8 = xq (Q8_1 inputs), r9d = n, [rsp+40] d, [rsp+48] B,
#                  [rsp+56] out_stride, [rsp+64] xq_stride)
matmat_q4_1_avx2:
    M8_BODY 20, 36, 20, 0, M8_FRAME_Q4_1, M8_XSB_Q4_1, M8_CHUNK_Q4_1, M8_XFILL_Q4_1, M8_BLOCK_Q4_1
