# matvec_q6_k_avx2: Q6_K weights times a Q8_K vector, AVX2 + FMA + F16C, the weights
# streamed once front to back.
#
# Q6_K (ggml-common.h block_q6_K): {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}; weight
# 128n + 32k + l (l < 32) has low 4 bits = nibble k/2 of ql[64n + 32(k%2) + l], high 2 bits
# = bits 2k..2k+1 of qh[32n + l], and is u - 32 (u = 0..63); one signed scale per 16
# weights. Per super-block, as ggml_vec_dot_q6_K_q8_K:
#   isum = sum_s sc[s] * (sum_{e in s} u[e] * q8[e] - 32 * bsums[s])   (exact, i32 lanes)
#   acc += f32(isum lanes) * (yd * d)                                   (8 f32 lanes, FMA)
# u is built 32 at a time from one 32-byte ql load (a nibble: AND, or shift and AND) and
# one 32-byte qh load (the 2 bits moved to bits 4-5: shift and AND 0x30; 16-bit shifts leak
# only into bits the mask drops), multiplied by q8 with vpmaddubsw (u8 x i8, pair sums <=
# 2 * 63 * 128) and by the two sub-blocks' scales with vpmaddwd. Model and error bound:
# tests/reference/quant_k.py. The weights are prefetched KQ_PREFETCH bytes ahead.
# The frame, the loops and the shared pieces: kquant.inc's K matvec macros (this file is
# the Q6_K block math).
.include "kquant.inc"
.include "kmacros.inc"

.section .text
.global matvec_q6_k_avx2

# One half (128 weights): ql at block offset \ql, qh at \qh, q8 at \y, scales in \sv.
.macro KQ6_HALF ql, qh, y, sv
    vmovdqu ymm8, [rdx + \ql]       # A: k = 0 (low nibbles), k = 2 (high)
    vmovdqu ymm9, [rdx + \qh]       # H
    vpand ymm6, ymm8, ymm5
    vpsllw ymm7, ymm9, 4
    vpand ymm7, ymm7, ymm4
    vpor ymm6, ymm6, ymm7
    KQ_DOT32_AVX2 \y, 0, \sv
    vpsrlw ymm6, ymm8, 4
    vpand ymm6, ymm6, ymm5
    vpand ymm7, ymm9, ymm4
    vpor ymm6, ymm6, ymm7
    KQ_DOT32_AVX2 \y + 64, 64, \sv
    vmovdqu ymm8, [rdx + \ql + 32]  # B: k = 1, k = 3
    vpand ymm6, ymm8, ymm5
    vpsllw ymm7, ymm9, 2
    vpand ymm7, ymm7, ymm4
    vpor ymm6, ymm6, ymm7
    KQ_DOT32_AVX2 \y + 32, 32, \sv
    vpsrlw ymm6, ymm8, 4
    vpand ymm6, ymm6, ymm5
    vpsrlw ymm7, ymm9, 2
    vpand ymm7, ymm7, ymm4
    vpor ymm6, ymm6, ymm7
    KQ_DOT32_AVX2 \y + 96, 96, \sv
.endm

# KQ6_BLOCK_AVX2: one super-block, for kquant.inc's KMV_LOOPS_AVX2 (isum in ymm1, yd * d
# in ymm2).
.macro KQ6_BLOCK_AVX2
    KQ_D_AVX2 208
    vpmovsxbw ymm3, [rdx + 192]     # the 16 scales as words
    KQ_OFFSET_AVX2 5                # isum starts at -32 * sum sc * bsums
    vpermq ymm10, ymm3, 0x44        # scales 0..7 in both lanes
    vpermq ymm11, ymm3, 0xee        # scales 8..15
    KQ6_HALF 0, 128, Q8K_QS, ymm10
    KQ6_HALF 64, 160, Q8K_QS + 128, ymm11
.endm

# matvec_q6_k_avx2(rcx = out, rdx = W, r8 = xq, r9d = n, dword [rsp+40] = d): peasm/ggml.py's
# matvec contract (n a multiple of 256, a remainder ignored; xq = n/256 Q8_K blocks).
# Changes rax, rcx, rdx, r8-r11, ymm0-ymm5 (and the upper halves of ymm6-ymm11).
matvec_q6_k_avx2:
    KMV_ENTER_AVX2
    lea r11, [rip + kg_k_bcast]
    vmovdqa ymm5, [rip + kg_nib]
    vmovdqa ymm4, [rip + kg_b30]
    KMV_LOOPS_AVX2 4, 210, KQ6_BLOCK_AVX2, KMV_NOP, KMV_END8

# ----------------------------------------------------------------------------------------
# matvec_q6_k_sse2: the same contract and sums with SSE2 only: u built 16 at a time (nibble
# AND/shift, the 2 high bits by a 16-bit shift and AND 0x30, OR), widened to words and
# multiplied by the sub-block's scale (pmullw, |u * sc| <= 63 * 128), q8 widened to words,
# pmaddwd into i32 lanes; d converted in general-purpose registers (KQ_F16_BITS).

.global matvec_q6_k_sse2

# 16 weights 128n + 32k + 16h ..: ql bytes at block offset \ql (their high nibbles when \nib),
# qh bytes at \qh (bits 2k, 2k+1), q8 at \y, the scale = word \w of \sreg. Adds to xmm1.
.macro KQ6S_16 ql, nib, qh, k, y, sreg, w
    movdqu xmm5, [rdx + \ql]
.if \nib
    psrlw xmm5, 4
.endif
    pand xmm5, xmm12
    movdqu xmm6, [rdx + \qh]
.if \k == 0
    psllw xmm6, 4
.endif
.if \k == 1
    psllw xmm6, 2
.endif
.if \k == 3
    psrlw xmm6, 2
.endif
    pand xmm6, xmm13
    por xmm5, xmm6
    KQS_DOT16_SC \y, \sreg, \w
.endm

# KQ6_BLOCK_SSE2: one super-block, for kquant.inc's KMV_LOOPS_SSE2 (isum in xmm1, yd * d
# in xmm2).
.macro KQ6_BLOCK_SSE2
    KQ_D_SSE2 208
    movdqu xmm3, [rdx + 192]        # the 16 scales, as words
    movdqa xmm4, xmm3
    punpcklbw xmm3, xmm3
    psraw xmm3, 8                   # 0..7
    punpckhbw xmm4, xmm4
    psraw xmm4, 8                   # 8..15
    KQ_OFFSET_SSE2 5                # isum starts at -32 * sum sc * bsums
    KQ6S_16 0, 0, 128, 0, Q8K_QS + 0, xmm3, 0
    KQ6S_16 32, 0, 128, 1, Q8K_QS + 32, xmm3, 2
    KQ6S_16 0, 1, 128, 2, Q8K_QS + 64, xmm3, 4
    KQ6S_16 32, 1, 128, 3, Q8K_QS + 96, xmm3, 6
    KQ6S_16 16, 0, 144, 0, Q8K_QS + 16, xmm3, 1
    KQ6S_16 48, 0, 144, 1, Q8K_QS + 48, xmm3, 3
    KQ6S_16 16, 1, 144, 2, Q8K_QS + 80, xmm3, 5
    KQ6S_16 48, 1, 144, 3, Q8K_QS + 112, xmm3, 7
    KQ6S_16 64, 0, 160, 0, Q8K_QS + 128, xmm4, 0
    KQ6S_16 96, 0, 160, 1, Q8K_QS + 160, xmm4, 2
    KQ6S_16 64, 1, 160, 2, Q8K_QS + 192, xmm4, 4
    KQ6S_16 96, 1, 160, 3, Q8K_QS + 224, xmm4, 6
    KQ6S_16 80, 0, 176, 0, Q8K_QS + 144, xmm4, 1
    KQ6S_16 112, 0, 176, 1, Q8K_QS + 176, xmm4, 3
    KQ6S_16 80, 1, 176, 2, Q8K_QS + 208, xmm4, 5
    KQ6S_16 112, 1, 176, 3, Q8K_QS + 240, xmm4, 7
.endm

# matvec_q6_k_sse2(rcx = out, rdx = W, r8 = xq, r9d = n, dword [rsp+40] = d). Changes rax,
# rcx, rdx, r8-r11, xmm0-xmm5.
matvec_q6_k_sse2:
    KMV_ENTER_SSE2
    pxor xmm11, xmm11
    movdqa xmm12, [rip + kg_nib]
    movdqa xmm13, [rip + kg_b30]
    KMV_LOOPS_SSE2 210, KQ6_BLOCK_SSE2
