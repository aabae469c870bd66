# matvec_q2_k_avx2: Q2_K weights times a Q8_K vector, AVX2 + FMA + F16C, the weights
# streamed once front to back, prefetched KQ_PREFETCH bytes ahead.
#
# Q2_K (ggml-common.h block_q2_K): {u8 scales[16]; u8 qs[64]; f16 d; f16 dmin}; weight
# 128n + 32j + l (l < 32) is bits 2j..2j+1 of qs[32n + l] (u = 0..3); scales[s], one per 16
# weights: low nibble the scale, high nibble the min. Per super-block, as
# ggml_vec_dot_q2_K_q8_K:
#   isum = sum_s sc[s] * dot(u of s, q8 of s),  msum = sum_s mn[s] * bsums[s]
#   acc += f32(isum lanes) * (yd * d) - f32(msum lanes) * (yd * dmin)   (8 f32 lanes, FMA)
# 32 weights a step: a 16-bit shift and AND 3 of one 32-byte qs load, vpmaddubsw with q8,
# vpmaddwd by the two sub-blocks' scales (vpshufb of the scale words, as ggml_q6_k.s).
# Model and error bound: tests/reference/quant_k.py. The frame, the loops and the shared
# pieces: kquant.inc's K matvec macros (this file is the Q2_K block math).
.include "kquant.inc"
.include "kmacros.inc"

.section .text
.global matvec_q2_k_avx2

# 32 weights: bits \sh..\sh+1 of the qs bytes in ymm8, q8 at Q8_K offset \y, scale mask \m
# on \sv. Adds 8 i32 lanes to ymm1.
.macro KQ2_DOT32 sh, y, m, sv
.if \sh
    vpsrlw ymm6, ymm8, \sh
    vpand ymm6, ymm6, ymm5
.else
    vpand ymm6, ymm8, ymm5
.endif
    KQ_DOT32_AVX2 \y, \m, \sv
.endm

# KQ2_BLOCK_AVX2: one super-block, for kquant.inc's KMV_LOOPS_AVX2 (isum in ymm1, yd * d
# in ymm2).
.macro KQ2_BLOCK_AVX2
    vmovd xmm6, dword ptr [rdx + 80]    # d, dmin
    vcvtph2ps xmm6, xmm6
    vbroadcastss xmm7, dword ptr [rbp + Q8K_D]
    vmulps xmm6, xmm6, xmm7         # yd*d, yd*dmin
    vbroadcastss ymm2, xmm6
    vmovshdup xmm7, xmm6
    vbroadcastss ymm3, xmm7
    vmovdqu xmm9, [rdx]             # scales
    vpsrlw xmm7, xmm9, 4
    vpand xmm7, xmm7, xmm4
    vpmovzxbw ymm7, xmm7            # the 16 mins
    vpmaddwd ymm7, ymm7, [rbp + Q8K_BSUMS]
    vcvtdq2ps ymm7, ymm7
    vfnmadd231ps ymm0, ymm7, ymm3
    vpand xmm9, xmm9, xmm4
    vpmovzxbw ymm9, xmm9            # the 16 scales
    vpermq ymm10, ymm9, 0x44        # scales 0..7 in both lanes
    vpermq ymm11, ymm9, 0xee        # scales 8..15
    vpxor xmm1, xmm1, xmm1
    vmovdqu ymm8, [rdx + 16]        # qs, first half
    KQ2_DOT32 0, Q8K_QS, 0, ymm10
    KQ2_DOT32 2, Q8K_QS + 32, 32, ymm10
    KQ2_DOT32 4, Q8K_QS + 64, 64, ymm10
    KQ2_DOT32 6, Q8K_QS + 96, 96, ymm10
    vmovdqu ymm8, [rdx + 48]        # qs, second half
    KQ2_DOT32 0, Q8K_QS + 128, 0, ymm11
    KQ2_DOT32 2, Q8K_QS + 160, 32, ymm11
    KQ2_DOT32 4, Q8K_QS + 192, 64, ymm11
    KQ2_DOT32 6, Q8K_QS + 224, 96, ymm11
.endm

# matvec_q2_k_avx2(rcx = out, rdx = W, r8 = xq, r9d = n, dword [rsp+40] = d): peasm/ggml.py's
# matvec contract (n a multiple of 256, a remainder ignored; xq = n/256 Q8_K blocks).
# Changes rax, rcx, rdx, r8-r11, ymm0-ymm5 (and the upper halves of ymm6-ymm11).
matvec_q2_k_avx2:
    KMV_ENTER_AVX2
    lea r11, [rip + kg_k_bcast]
    vmovdqa ymm5, [rip + kg_b03]
    vmovdqa xmm4, [rip + kg_nib]
    KMV_LOOPS_AVX2 2, 84, KQ2_BLOCK_AVX2, KMV_NOP, KMV_END8

# ----------------------------------------------------------------------------------------
# matvec_q2_k_sse2: the same contract and sums with SSE2 only: 16 quants at a time from one
# qs load (16-bit shift, AND 3), widened to words, times the sub-block's scale (pmullw), q8
# widened, pmaddwd; mins dotted with bsums by pmaddwd; d and dmin by KQ_F16_BITS.

.global matvec_q2_k_sse2

# 16 weights: bits \sh.. of the qs bytes at block offset \q; then KQS_DOT16_SC \y, \sreg, \w.
.macro KQ2S_16 q, sh, y, sreg, w
    movdqu xmm5, [rdx + \q]
.if \sh
    psrlw xmm5, \sh
.endif
    pand xmm5, xmm12
    KQS_DOT16_SC \y, \sreg, \w
.endm

# KQ2_BLOCK_SSE2: one super-block, for kquant.inc's KMV_LOOPS_SSE2 (isum in xmm1, yd * d
# in xmm2).
.macro KQ2_BLOCK_SSE2
    KQ_DDMIN_SSE2 80
    movdqu xmm3, [rdx]              # scales: low nibble scale, high nibble min
    movdqa xmm5, xmm3
    psrlw xmm5, 4
    pand xmm5, xmm13
    movdqa xmm6, xmm5
    punpcklbw xmm5, xmm11           # mins 0..7 as words
    punpckhbw xmm6, xmm11           # 8..15
    movdqu xmm7, [rbp + Q8K_BSUMS]
    pmaddwd xmm5, xmm7
    movdqu xmm7, [rbp + Q8K_BSUMS + 16]
    pmaddwd xmm6, xmm7
    paddd xmm5, xmm6
    KQ_MINS_SSE2 xmm5, xmm6
    pand xmm3, xmm13
    movdqa xmm4, xmm3
    punpcklbw xmm3, xmm11           # scales 0..7 as words
    punpckhbw xmm4, xmm11           # 8..15
    shufps xmm2, xmm2, 0            # yd*d
    pxor xmm1, xmm1
    KQ2S_16 16, 0, Q8K_QS + 0, xmm3, 0
    KQ2S_16 32, 0, Q8K_QS + 16, xmm3, 1
    KQ2S_16 16, 2, Q8K_QS + 32, xmm3, 2
    KQ2S_16 32, 2, Q8K_QS + 48, xmm3, 3
    KQ2S_16 16, 4, Q8K_QS + 64, xmm3, 4
    KQ2S_16 32, 4, Q8K_QS + 80, xmm3, 5
    KQ2S_16 16, 6, Q8K_QS + 96, xmm3, 6
    KQ2S_16 32, 6, Q8K_QS + 112, xmm3, 7
    KQ2S_16 48, 0, Q8K_QS + 128, xmm4, 0
    KQ2S_16 64, 0, Q8K_QS + 144, xmm4, 1
    KQ2S_16 48, 2, Q8K_QS + 160, xmm4, 2
    KQ2S_16 64, 2, Q8K_QS + 176, xmm4, 3
    KQ2S_16 48, 4, Q8K_QS + 192, xmm4, 4
    KQ2S_16 64, 4, Q8K_QS + 208, xmm4, 5
    KQ2S_16 48, 6, Q8K_QS + 224, xmm4, 6
    KQ2S_16 64, 6, Q8K_QS + 240, xmm4, 7
.endm

# matvec_q2_k_sse2(rcx = out, rdx = W, r8 = xq, r9d = n, dword [rsp+40] = d). Changes rax,
# rcx, rdx, r8-r11, xmm0-xmm5.
matvec_q2_k_sse2:
    KMV_ENTER_SSE2
    pxor xmm11, xmm11
    movdqa xmm12, [rip + kg_b03]
    movdqa xmm13, [rip + kg_nib]
    KMV_LOOPS_SSE2 84, KQ2_BLOCK_SSE2
