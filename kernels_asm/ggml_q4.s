# ggml's Q4_0 and Q4_1 weights (block layouts in ggml_qmacros.inc): dequantize-row and
# matvec against the activation quantized by ggml_q8.s (Q8_0 for Q4_0, Q8_1 for Q4_1, as
# ggml's vec_dot_type). Contracts (peasm/ggml.py's body kinds, kernels.inc's ABI):
#
#   dequantize_row_q4_<k>_<path>(rcx = out f32*, rdx = blocks, r8d = n)
#       Q4_0: x = f32(d) * (q - 8); Q4_1: x = f32(d) * q + f32(m), two roundings (as
#       gguf-py's dequantize; bit for bit)
#   matvec_q4_<k>_<path>(rcx = out f32*, rdx = W, r8 = xq, r9d = n, dword [rsp+40] = d)
#       out[i] = sum over the row's blocks b of f32(d_w) * f32(d_x) * sum_j qw_j * qx_j
#       (+ f32(m_w) * f32(s_x) for Q4_1), qw = q - 8 (Q4_0) or q (Q4_1); integer dots
#       exact, the rest in f32 (ggml_qmacros.inc's skeleton). AVX2 (four rows at a
#       time, ggml_quads.inc): every row rounds as ggml's AVX2 vec_dot_q4_0_q8_0 / vec_dot_q4_1_q8_1
#       (one 8-lane FMA accumulator in block order, hsum_float_8, + the m*s sum; bit for
#       bit a numpy model of it: tests/test_kernels_q45_vecdot.py). (llama.cpp on x86
#       repacks Q4_0 and runs its q4_0_8x8 gemv instead: Q4_0_R8, ggml_r8.s.)
#
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
.global dequantize_row_q4_0_sse2, dequantize_row_q4_0_avx2
.global dequantize_row_q4_1_sse2, dequantize_row_q4_1_avx2
.global matvec_q4_0_sse2, matvec_q4_0_avx2, matvec_q4_1_sse2, matvec_q4_1_avx2

# dequantize_row_q4_0_sse2(rcx = out, rdx = blocks, r8d = n)
dequantize_row_q4_0_sse2:
    mov r8d, r8d
    shr r8, 5
.Lblock:
    test r8, r8
    jz .Ldone
    GDSCALE0_SSE2
    GNIB_SSE2 2
    psubb xmm0, [rip + kg_b8]
    psubb xmm1, [rip + kg_b8]
    GDEQ16_SSE2 xmm0, 0, orps
    GDEQ16_SSE2 xmm1, 64, orps
    add rdx, 18
    sub rcx, -128
    dec r8
    jmp .Lblock
.Ldone:
    ret

# dequantize_row_q4_0_avx2(rcx = out, rdx = blocks, r8d = n)
dequantize_row_q4_0_avx2:
    mov r8d, r8d
    shr r8, 5
.Lblock:
    test r8, r8
    jz .Ldone
    GDSCALE0_AVX2
    GNIB_AVX2 2
    vpsubb ymm0, ymm0, [rip + kg_b8]
    GDEQ32_AVX2 vorps
    add rdx, 18
    sub rcx, -128
    dec r8
    jmp .Lblock
.Ldone:
    vzeroupper
    ret

# dequantize_row_q4_1_sse2(rcx = out, rdx = blocks, r8d = n)
dequantize_row_q4_1_sse2:
    mov r8d, r8d
    shr r8, 5
.Lblock:
    test r8, r8
    jz .Ldone
    GDSCALE1_SSE2
    GNIB_SSE2 4
    GDEQ16_SSE2 xmm0, 0, addps
    GDEQ16_SSE2 xmm1, 64, addps
    add rdx, 20
    sub rcx, -128
    dec r8
    jmp .Lblock
.Ldone:
    ret

# dequantize_row_q4_1_avx2(rcx = out, rdx = blocks, r8d = n)
dequantize_row_q4_1_avx2:
    mov r8d, r8d
    shr r8, 5
.Lblock:
    test r8, r8
    jz .Ldone
    GDSCALE1_AVX2
    GNIB_AVX2 4
    GDEQ32_AVX2 vaddps
    add rdx, 20
    sub rcx, -128
    dec r8
    jmp .Lblock
.Ldone:
    vzeroupper
    ret

# Q4_0_PAIR_SSE2: a pair's block (ggml_pairs.inc's GMV_BODY_SSE2).
.macro Q4_0_PAIR_SSE2
    GPAIR_SCALE0_SSE2
    GPAIR_XQ_SSE2 2
    GW_NIB_SSE2 rdx, 2, xmm5, xmm6
    psubb xmm5, [rip + kg_b8]
    psubb xmm6, [rip + kg_b8]
    GPAIR_DOT_SSE2 xmm5, xmm6, xmm7, xmm4, xmm8
    GW_NIB_SSE2 rdx+rbx, 2, xmm5, xmm6
    psubb xmm5, [rip + kg_b8]
    psubb xmm6, [rip + kg_b8]
    GPAIR_DOT_SSE2 xmm5, xmm6, xmm7, xmm12, xmm10
.endm
# Q4_0_ROW_SSE2: a block of the one-row loop (GMV_BODY_SSE2).
.macro Q4_0_ROW_SSE2
    GSCALE0_SSE2
    GNIB_SSE2 2
    psubb xmm0, [rip + kg_b8]
    psubb xmm1, [rip + kg_b8]
    GDOT32_SSE2 2
.endm

# matvec_q4_0_sse2(rcx = out, rdx = W, r8 = xq (Q8_0), r9d = n, dword [rsp+40] = d)
matvec_q4_0_sse2:
    GMV_BODY_SSE2 18, 34, Q4_0_PAIR_SSE2, Q4_0_ROW_SSE2

# Q4_1_PAIR_SSE2: a pair's block (ggml_pairs.inc's GMV_BODY_SSE2).
.macro Q4_1_PAIR_SSE2
    GPAIR_SCALE1_SSE2
    GPAIR_XQ_SSE2 4
    GW_NIB_SSE2 rdx, 4, xmm5, xmm6
    GPAIR_DOT_SSE2 xmm5, xmm6, xmm7, xmm4, xmm8
    GW_NIB_SSE2 rdx+rbx, 4, xmm5, xmm6
    GPAIR_DOT_SSE2 xmm5, xmm6, xmm7, xmm12, xmm10
.endm
# Q4_1_ROW_SSE2: a block of the one-row loop (GMV_BODY_SSE2).
.macro Q4_1_ROW_SSE2
    GSCALE1_SSE2
    GNIB_SSE2 4
    GDOT32_SSE2 4
.endm

# matvec_q4_1_sse2(rcx = out, rdx = W, r8 = xq (Q8_1), r9d = n, dword [rsp+40] = d)
matvec_q4_1_sse2:
    GMV_BODY_SSE2 20, 36, Q4_1_PAIR_SSE2, Q4_1_ROW_SSE2

# Q4X4_W base, off: ymm0 = the 32 nibbles of the block at [base + r11 + off] in element
# order (GMV4_BODY_AVX2's unpack); xmm2 clobbered
.macro Q4X4_W base, off
    vmovdqu xmm0, [\base + r11 + \off]
    vpsrlw xmm2, xmm0, 4
    vinserti128 ymm0, ymm0, xmm2, 1
    vpand ymm0, ymm0, [rip + kg_nib]
.endm
.macro Q4_0X4_W base
    Q4X4_W \base, 2
.endm
.macro Q4_1X4_W base
    Q4X4_W \base, 4
.endm

# matvec_q4_0_avx2(rcx = out, rdx = W, r8 = xq (Q8_0), r9d = n, dword [rsp+40] = d)
matvec_q4_0_avx2:
    GMV4_BODY_AVX2 18, 34, 0, Q4_0X4_W, kg_b8

# matvec_q4_1_avx2(rcx = out, rdx = W, r8 = xq (Q8_1), r9d = n, dword [rsp+40] = d)
matvec_q4_1_avx2:
    GMV4_BODY_AVX2 20, 36, 1, Q4_1X4_W
