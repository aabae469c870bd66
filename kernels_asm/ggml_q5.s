# ggml's Q5_0 and Q5_1 weights (block layouts in ggml_qmacros.inc): dequantize-row and
# matvec against the activation quantized by ggml_q8.s (Q8_0 for Q5_0, Q8_1 for Q5_1, as
# ggml's vec_dot_type). Contracts (peasm/ggml.py's body kinds, kernels.inc's ABI):
#
#   dequantize_row_q5_<k>_<path>(rcx = out f32*, rdx = blocks, r8d = n)
#       Q5_0: x = f32(d) * (q - 16); Q5_1: x = f32(d) * q + f32(m), two roundings (as
#       gguf-py's dequantize; bit for bit); q = nibble | (bit j of qh) << 4
#   matvec_q5_<k>_<path>(rcx = out f32*, rdx = W, r8 = xq, r9d = n, dword [rsp+40] = d)
#       out[i] = sum over the row's blocks of f32(d_w) * f32(d_x) * sum_j qw_j * qx_j
#       (+ f32(m_w) * f32(s_x) for Q5_1), qw = q - 16 (Q5_0) or q (Q5_1); integer dots
#       exact, the rest in f32 (ggml_qmacros.inc's skeleton). AVX2 (four rows at a
#       time, ggml_quads.inc): every row rounds as ggml's AVX2 vec_dot_q5_0_q8_0 / vec_dot_q5_1_q8_1
#       (one 8-lane FMA accumulator in block order, hsum_float_8, + the m*s sum; bit for
#       bit a numpy model of it: tests/test_kernels_q45_vecdot.py)
#
# The 5th bits: qh's 32 bits spread to one byte each (0xff where set), then Q5_0 ORs 0xf0
# into the nibbles whose bit is clear (nibble - 16 as int8), Q5_1 ORs 0x10 where it is set.
# n is a multiple of 32 (the caller checks; the rest is ignored); unaligned pointers.
# Dequantizers change xmm0-xmm5 only (AVX2: ymm0-ymm5, and r11); matvec bodies save what
# they use beyond that.
.include "kernels.inc"
.include "kmacros.inc"
.include "ggml_cvt.inc"
.include "ggml_qmacros.inc"
.include "ggml_pairs.inc"
.include "ggml_quads.inc"

.section .text
.global dequantize_row_q5_0_sse2, dequantize_row_q5_0_avx2
.global dequantize_row_q5_1_sse2, dequantize_row_q5_1_avx2
.global matvec_q5_0_sse2, matvec_q5_0_avx2, matvec_q5_1_sse2, matvec_q5_1_avx2

# The 5th bits into the quants (see the top): Q5_0 ORs 0xf0 where a bit is clear (op pandn,
# mask kg_hi_f0), Q5_1 0x10 where it is set (op pand, mask kg_b16).
# Q5W_SSE2 base, qh, qs, op, mask: xmm5, xmm6 = a row's 32 quants (elements 0..15, 16..31,
# int8) from the qh at [base + qh] and the nibbles at [base + qs] (base: rdx or rdx+rbx);
# xmm13, xmm14 clobbered.
.macro Q5W_SSE2 base, qh, qs, op, mask
    GW_BITS_SSE2 \base, \qh, xmm13, xmm14
    GW_NIB_SSE2 \base, \qs, xmm5, xmm6
    \op xmm13, [rip + \mask]
    \op xmm14, [rip + \mask]
    por xmm5, xmm13
    por xmm6, xmm14
.endm
# Q5ROW_SSE2 qh, qs, op, mask: xmm0, xmm1 = the same for the block at rdx (the dequantizers,
# the one-row loop); xmm2, xmm3 clobbered.
.macro Q5ROW_SSE2 qh, qs, op, mask
    GQ5BITS_SSE2 \qh
    GNIB_SSE2 \qs
    \op xmm2, [rip + \mask]
    \op xmm3, [rip + \mask]
    por xmm0, xmm2
    por xmm1, xmm3
.endm
# Q5ROW_AVX2 qh, qs, op, mask: ymm0 = the 32 quants of the block at rdx (op vpandn with
# kg_hi_f0: Q5_0, int8; vpand with kg_b16: Q5_1); ymm1 clobbered.
.macro Q5ROW_AVX2 qh, qs, op, mask
    GNIB_AVX2 \qs
    GQ5BITS_AVX2 \qh
    \op ymm1, ymm1, [rip + \mask]
    vpor ymm0, ymm0, ymm1
.endm

# dequantize_row_q5_0_sse2(rcx = out, rdx = blocks, r8d = n)
dequantize_row_q5_0_sse2:
    mov r8d, r8d
    shr r8, 5
.Lblock:
    test r8, r8
    jz .Ldone
    GDSCALE0_SSE2
    Q5ROW_SSE2 2, 6, pandn, kg_hi_f0
    GDEQ16_SSE2 xmm0, 0, orps
    GDEQ16_SSE2 xmm1, 64, orps
    add rdx, 22
    sub rcx, -128
    dec r8
    jmp .Lblock
.Ldone:
    ret

# dequantize_row_q5_0_avx2(rcx = out, rdx = blocks, r8d = n)
dequantize_row_q5_0_avx2:
    mov r8d, r8d
    shr r8, 5
.Lblock:
    test r8, r8
    jz .Ldone
    GDSCALE0_AVX2
    Q5ROW_AVX2 2, 6, vpandn, kg_hi_f0
    GDEQ32_AVX2 vorps
    add rdx, 22
    sub rcx, -128
    dec r8
    jmp .Lblock
.Ldone:
    vzeroupper
    ret

# dequantize_row_q5_1_sse2(rcx = out, rdx = blocks, r8d = n)
dequantize_row_q5_1_sse2:
    mov r8d, r8d
    shr r8, 5
.Lblock:
    test r8, r8
    jz .Ldone
    GDSCALE1_SSE2
    Q5ROW_SSE2 4, 8, pand, kg_b16
    GDEQ16_SSE2 xmm0, 0, addps
    GDEQ16_SSE2 xmm1, 64, addps
    add rdx, 24
    sub rcx, -128
    dec r8
    jmp .Lblock
.Ldone:
    ret

# dequantize_row_q5_1_avx2(rcx = out, rdx = blocks, r8d = n)
dequantize_row_q5_1_avx2:
    mov r8d, r8d
    shr r8, 5
.Lblock:
    test r8, r8
    jz .Ldone
    GDSCALE1_AVX2
    Q5ROW_AVX2 4, 8, vpand, kg_b16
    GDEQ32_AVX2 vaddps
    add rdx, 24
    sub rcx, -128
    dec r8
    jmp .Lblock
.Ldone:
    vzeroupper
    ret

# Q5_0_PAIR_SSE2: a pair's block (ggml_pairs.inc's GMV_BODY_SSE2).
.macro Q5_0_PAIR_SSE2
    GPAIR_SCALE0_SSE2
    GPAIR_XQ_SSE2 2
    Q5W_SSE2 rdx, 2, 6, pandn, kg_hi_f0
    GPAIR_DOT_SSE2 xmm5, xmm6, xmm7, xmm4, xmm8
    Q5W_SSE2 rdx+rbx, 2, 6, pandn, kg_hi_f0
    GPAIR_DOT_SSE2 xmm5, xmm6, xmm7, xmm12, xmm10
.endm
# Q5_0_ROW_SSE2: a block of the one-row loop (GMV_BODY_SSE2).
.macro Q5_0_ROW_SSE2
    GSCALE0_SSE2
    Q5ROW_SSE2 2, 6, pandn, kg_hi_f0
    GDOT32_SSE2 2
.endm

# matvec_q5_0_sse2(rcx = out, rdx = W, r8 = xq (Q8_0), r9d = n, dword [rsp+40] = d)
matvec_q5_0_sse2:
    GMV_BODY_SSE2 22, 34, Q5_0_PAIR_SSE2, Q5_0_ROW_SSE2

# Q5_1_PAIR_SSE2: a pair's block (ggml_pairs.inc's GMV_BODY_SSE2).
.macro Q5_1_PAIR_SSE2
    GPAIR_SCALE1_SSE2
    GPAIR_XQ_SSE2 4
    Q5W_SSE2 rdx, 4, 8, pand, kg_b16
    GPAIR_DOT_SSE2 xmm5, xmm6, xmm7, xmm4, xmm8
    Q5W_SSE2 rdx+rbx, 4, 8, pand, kg_b16
    GPAIR_DOT_SSE2 xmm5, xmm6, xmm7, xmm12, xmm10
.endm
# Q5_1_ROW_SSE2: a block of the one-row loop (GMV_BODY_SSE2).
.macro Q5_1_ROW_SSE2
    GSCALE1_SSE2
    Q5ROW_SSE2 4, 8, pand, kg_b16
    GDOT32_SSE2 4
.endm

# matvec_q5_1_sse2(rcx = out, rdx = W, r8 = xq (Q8_1), r9d = n, dword [rsp+40] = d)
matvec_q5_1_sse2:
    GMV_BODY_SSE2 24, 36, Q5_1_PAIR_SSE2, Q5_1_ROW_SSE2

# Q5X4_W base, qh, qs: ymm0 = the 32 quants 0..31 of the block at [base + r11] (qh, qs:
# the fields' offsets) in element order (GMV4_BODY_AVX2's unpack); ymm2, ymm3 clobbered
.macro Q5X4_W base, qh, qs
    vmovdqu xmm0, [\base + r11 + \qs]
    vpsrlw xmm2, xmm0, 4
    vinserti128 ymm0, ymm0, xmm2, 1
    vpand ymm0, ymm0, [rip + kg_nib]
    vpbroadcastd ymm3, dword ptr [\base + r11 + \qh]
    vpshufb ymm3, ymm3, [rip + kg_bits_shuf]
    vpand ymm3, ymm3, [rip + kg_bits_mask]
    vpcmpeqb ymm3, ymm3, [rip + kg_bits_mask]
    vpand ymm3, ymm3, [rip + kg_b16]
    vpor ymm0, ymm0, ymm3
.endm
.macro Q5_0X4_W base
    Q5X4_W \base, 2, 6
.endm
.macro Q5_1X4_W base
    Q5X4_W \base, 4, 8
.endm

# matvec_q5_0_avx2(rcx = out, rdx = W, r8 = xq (Q8_0), r9d = n, dword [rsp+40] = d)
matvec_q5_0_avx2:
    GMV4_BODY_AVX2 22, 34, 0, Q5_0X4_W, kg_b16

# matvec_q5_1_avx2(rcx = out, rdx = W, r8 = xq (Q8_1), r9d = n, dword [rsp+40] = d)
matvec_q5_1_avx2:
    GMV4_BODY_AVX2 24, 36, 1, Q5_1X4_W
