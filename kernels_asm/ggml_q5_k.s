# matvec_q5_k_avx2: Q5_K weights times a Q8_K vector, AVX2 + FMA + F16C, the weights
# streamed once front to back, prefetched KQ_PREFETCH bytes ahead.
#
# Q5_K (ggml-common.h block_q5_K): {f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}:
# as Q4_K (ggml_q4_k.s, whose loop this is) with a fifth bit per weight: weight 64j + 32h + l
# gets bit 2j+h of qh[l] as its bit 4 (u = 0..31). The 32 qh bytes are loaded once per super-
# block; for each half of each chunk one 16-bit shift brings bit 2j+h of every byte to bit 4
# and an AND with 0x10 keeps it (what a 16-bit shift carries across bytes lands elsewhere).
# Scales by table address, mins and (d, dmin) as in ggml_q4_k.s.
# Per super-block, as ggml_vec_dot_q5_K_q8_K:
#   isum = sum_j sc[j] * dot(u of sub-block j, q8 of j),  msum = sum_j m[j] * (bsums[2j] + bsums[2j+1])
#   acc += f32(isum lanes) * (yd * d)   (8 f32 lanes, FMA)
#   summs -= f32(msum) * (yd * dmin)    (one f32, FMA: the compiled build fuses ggml's
#                                        summs += dmin * msum)
# and out = hsum_float_8(acc) + summs: llama.cpp's AVX2 build bit for bit (it never
# repacks Q5_K on x86). The SSE2 body is within quant_k.matvec_bound, not those bits.
# vpmaddubsw pair sums <= 2 * 31 * 128. Model and error bound: tests/reference/quant_k.py.
# The frame, the loops and the pieces shared with Q4_K: kquant.inc's K matvec macros.
.include "kquant.inc"
.include "kmacros.inc"

.section .text
.global matvec_q5_k_avx2

# ymm12, ymm13 = the fifth bits (at bit 4) of chunk \j's low- and high-nibble weights: bits 2j
# and 2j+1 of the qh bytes in ymm10, by a 16-bit shift each (what it carries across bytes
# lands elsewhere) and AND 0x10 (ymm11).
.macro KQ5_HIBITS j
.if \j == 0
    vpsllw ymm12, ymm10, 4          # bit 0 -> 4
    vpand ymm12, ymm12, ymm11
    vpsllw ymm13, ymm10, 3          # bit 1 -> 4
.endif
.if \j == 1
    vpsllw ymm12, ymm10, 2
    vpand ymm12, ymm12, ymm11
    vpsllw ymm13, ymm10, 1
.endif
.if \j == 2
    vpand ymm12, ymm10, ymm11
    vpsrlw ymm13, ymm10, 1
.endif
.if \j == 3
    vpsrlw ymm12, ymm10, 2
    vpand ymm12, ymm12, ymm11
    vpsrlw ymm13, ymm10, 3
.endif
    vpand ymm13, ymm13, ymm11
.endm

# KQ5_BLOCK_AVX2: one super-block, for kquant.inc's KMV_LOOPS_AVX2 (isum in ymm1, yd * d
# in ymm2).
.macro KQ5_BLOCK_AVX2
    KQ_K4_HEAD_AVX2 1
    vmovdqu ymm10, [rdx + 16]       # qh
    KQ5_HIBITS 0
    KQ_K4_CHUNK_AVX2 48, 4, 1
    KQ5_HIBITS 1
    KQ_K4_CHUNK_AVX2 80, 68, 1
    KQ5_HIBITS 2
    KQ_K4_CHUNK_AVX2 112, 132, 1
    KQ5_HIBITS 3
    KQ_K4_CHUNK_AVX2 144, 196, 1
.endm

# matvec_q5_k_avx2(rcx = out, rdx = W, r8 = xq, r9d = n, dword [rsp+40] = d): peasm/ggml.py's
# matvec contract (n a multiple of 256, a remainder ignored; xq = n/256 Q8_K blocks).
# Changes rax, rcx, rdx, r8-r11, ymm0-ymm5 (and the upper halves of ymm6-ymm13).
matvec_q5_k_avx2:
    KMV_ENTER_AVX2
    lea r11, [rip + kg_k_sctab]
    vmovdqa ymm5, [rip + kg_nib]
    vmovdqa xmm4, [r11 + 32]        # words of 1 (scale table entry 1)
    vmovdqa ymm11, [rip + kg_b16]
    KMV_LOOPS_AVX2 4, 176, KQ5_BLOCK_AVX2, KQ_K4_ROW_START, KQ5_ROW_END

# ----------------------------------------------------------------------------------------
# matvec_q5_k_sse2: the same contract and sums with SSE2 only, as matvec_q4_k_sse2
# (ggml_q4_k.s) plus the fifth bit: a 16-bit shift of the qh bytes brings bit 2j (low
# nibbles) or 2j+1 (high) to bit 4, AND 0x10, OR (|u * sc| <= 31 * 63).

.global matvec_q5_k_sse2

# 16 bytes of qs at block offset \q with their qh bytes at \qh, chunk \j: the low nibbles
# and bit 2j (scale words in xmm9) meet q8 at \ylo, the high nibbles and bit 2j+1 (xmm10) q8
# at \ylo + 32. Adds to the i32 lanes of xmm1.
.macro KQ5S_16 q, ylo, qh, j
    movdqu xmm4, [rdx + \q]
    movdqu xmm13, [rdx + \qh]
    movdqa xmm14, xmm13
.if \j == 0
    psllw xmm14, 4
    psllw xmm13, 3
.endif
.if \j == 1
    psllw xmm14, 2
    psllw xmm13, 1
.endif
.if \j == 2
    psrlw xmm13, 1
.endif
.if \j == 3
    psrlw xmm14, 2
    psrlw xmm13, 3
.endif
    pand xmm14, xmm15
    pand xmm13, xmm15
    movdqa xmm5, xmm4
    pand xmm5, xmm12
    por xmm5, xmm14
    KQS_DOT16 \ylo, xmm9
    movdqa xmm5, xmm4
    psrlw xmm5, 4
    pand xmm5, xmm12
    por xmm5, xmm13
    KQS_DOT16 \ylo + 32, xmm10
.endm

# KQ5_BLOCK_SSE2: one super-block, for kquant.inc's KMV_LOOPS_SSE2 (isum in xmm1, yd * d
# in xmm2).
.macro KQ5_BLOCK_SSE2
    KQ_K4_HEAD_SSE2
    KQS_BCAST xmm9, xmm3, 0
    KQS_BCAST xmm10, xmm3, 1
    KQ5S_16 48, Q8K_QS, 16, 0
    KQ5S_16 64, Q8K_QS + 16, 32, 0
    KQS_BCAST xmm9, xmm3, 2
    KQS_BCAST xmm10, xmm3, 3
    KQ5S_16 80, Q8K_QS + 64, 16, 1
    KQ5S_16 96, Q8K_QS + 80, 32, 1
    KQS_BCAST xmm9, xmm3, 4
    KQS_BCAST xmm10, xmm3, 5
    KQ5S_16 112, Q8K_QS + 128, 16, 2
    KQ5S_16 128, Q8K_QS + 144, 32, 2
    KQS_BCAST xmm9, xmm3, 6
    KQS_BCAST xmm10, xmm3, 7
    KQ5S_16 144, Q8K_QS + 192, 16, 3
    KQ5S_16 160, Q8K_QS + 208, 32, 3
.endm

# matvec_q5_k_sse2(rcx = out, rdx = W, r8 = xq, r9d = n, dword [rsp+40] = d). Changes rax,
# rcx, rdx, r8-r11, xmm0-xmm5.
matvec_q5_k_sse2:
    KMV_ENTER_SSE2
    pxor xmm11, xmm11
    movdqa xmm12, [rip + kg_nib]
    movdqa xmm15, [rip + kg_b16]
    KMV_LOOPS_SSE2 176, KQ5_BLOCK_SSE2
