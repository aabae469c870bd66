# matvec_q3_k_avx2: Q3_K weights times a Q8_K vector, AVX2 + FMA + F16C, the weights
# streamed once front to back, prefetched KQ_PREFETCH bytes ahead.
#
# Q3_K (ggml-common.h block_q3_K): {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d}; weight
# 128n + 32j + l (l < 32) has low bits 2j..2j+1 of qs[32n + l] and third bit = bit 4n+j of
# hmask[l]; it is u - 4 with u = low + 4 * that bit (0..7). 16 scales of 6 bits, stored + 32,
# one per 16 weights: low 4 bits from byte i (i < 8) or the high nibble of byte i-8, high 2
# bits = bits 2(i/4).. of byte 8 + i%4 (decoded 8 at a time in general-purpose registers, as
# kq_unpack_q3_k does). Per super-block, as ggml_vec_dot_q3_K_q8_K:
#   isum = sum_s sc[s] * sum_{e in s} (u[e] - 4) * q8[e]              (exact, i32 lanes)
#   acc += f32(isum lanes) * (yd * d)                                  (8 f32 lanes, FMA)
# with ggml's AVX2 lanes (lane l: the weights at bytes 4l..4l+3 of each 32-byte load; the -4
# taken per word pair, u * q8 - 4 * q8 by two vpmaddubsw, not from the bsums), so out =
# hsum_float_8(acc) is llama.cpp's AVX2 build's bit for bit.
# 32 weights a step: low bits by a 16-bit shift and AND 3 of one qs load, the third bit by a
# 16-bit shift and AND 4 of one hmask load (what a shift carries across bytes is masked
# off), vpmaddubsw with q8 (pair sums <= 2 * 7 * 127) less that of 4, vpmaddwd by the two
# sub-blocks' scales (vpshufb of the scale words, as ggml_q6_k.s). Model: tests/reference/quant_k.py.
# The frame, the loops and the shared pieces: kquant.inc's K matvec macros (this file is
# the Q3_K block math).
.include "kquant.inc"
.include "kmacros.inc"

.section .text
.global matvec_q3_k_avx2

# 32 weights: ymm6 = low 2 bits (already shifted down and masked), ymm7 = hmask shifted so
# the wanted bit is at bit 2 (masked here); q8 at Q8_K offset \y; scale mask \m on \sv.
.macro KQ3_DOT32 y, m, sv
    vpand ymm7, ymm7, ymm4
    vpor ymm6, ymm6, ymm7           # u = low + 4 * bit
    vpmaddubsw ymm6, ymm6, [rbp + \y]
    vpmaddubsw ymm7, ymm4, [rbp + \y]   # 4 * q8, pair sums
    vpsubw ymm6, ymm6, ymm7         # (u - 4) * q8 pair sums, as ggml's words
    vpshufb ymm7, \sv, [r11 + \m]
    vpmaddwd ymm6, ymm6, ymm7
    vpaddd ymm1, ymm1, ymm6
.endm

# KQ3_SCALES lo, hi, t: the 16 6-bit scales (stored + 32) from the 12 bytes at [rdx + 96]
# (see kq_unpack_q3_k): \lo = scales 0..7 (+32) as bytes, \hi = 8..15; rsi = 0x0f bytes,
# rdi = 0x03 bytes. Clobbers rcx, \t.
.macro KQ3_SCALES lo, hi, t
    mov \t, qword ptr [rdx + 96]   # L = bytes 0..7
    mov ecx, dword ptr [rdx + 104]  # H = bytes 8..11
    mov \lo, rcx
    shr \lo, 2
    shl \lo, 32
    or \lo, rcx                     # H | (H >> 2) << 32
    and \lo, rdi
    shl \lo, 4
    mov \hi, \t
    and \hi, rsi
    or \lo, \hi                     # scales 0..7 (+32)
    mov \hi, rcx
    shr \hi, 6
    shl \hi, 32
    shr rcx, 4
    or \hi, rcx                     # (H >> 4) | (H >> 6) << 32
    and \hi, rdi
    shl \hi, 4
    shr \t, 4
    and \t, rsi
    or \hi, \t                      # scales 8..15 (+32)
.endm

# KQ3_BLOCK_AVX2: one super-block, for kquant.inc's KMV_LOOPS_AVX2 (isum in ymm1, yd * d
# in ymm2).
.macro KQ3_BLOCK_AVX2
    KQ_D_AVX2 108
    KQ3_SCALES rax, r14, r13
    vmovq xmm3, rax
    vpinsrq xmm3, xmm3, r14, 1
    vpmovzxbw ymm3, xmm3
    vpsubw ymm3, ymm3, [rip + kg_w32]    # the 16 signed scales
    vpxor xmm1, xmm1, xmm1
    vpermq ymm10, ymm3, 0x44        # scales 0..7 in both lanes
    vpermq ymm11, ymm3, 0xee        # scales 8..15
    vmovdqu ymm9, [rdx]             # hmask
    vmovdqu ymm8, [rdx + 32]        # qs, first half
    vpand ymm6, ymm8, ymm5
    vpsllw ymm7, ymm9, 2            # bit 0 -> 2
    KQ3_DOT32 Q8K_QS, 0, ymm10
    vpsrlw ymm6, ymm8, 2
    vpand ymm6, ymm6, ymm5
    vpsllw ymm7, ymm9, 1            # bit 1 -> 2
    KQ3_DOT32 Q8K_QS + 32, 32, ymm10
    vpsrlw ymm6, ymm8, 4
    vpand ymm6, ymm6, ymm5
    vmovdqa ymm7, ymm9              # bit 2
    KQ3_DOT32 Q8K_QS + 64, 64, ymm10
    vpsrlw ymm6, ymm8, 6
    vpand ymm6, ymm6, ymm5
    vpsrlw ymm7, ymm9, 1            # bit 3 -> 2
    KQ3_DOT32 Q8K_QS + 96, 96, ymm10
    vmovdqu ymm8, [rdx + 64]        # qs, second half
    vpand ymm6, ymm8, ymm5
    vpsrlw ymm7, ymm9, 2            # bit 4 -> 2
    KQ3_DOT32 Q8K_QS + 128, 0, ymm11
    vpsrlw ymm6, ymm8, 2
    vpand ymm6, ymm6, ymm5
    vpsrlw ymm7, ymm9, 3
    KQ3_DOT32 Q8K_QS + 160, 32, ymm11
    vpsrlw ymm6, ymm8, 4
    vpand ymm6, ymm6, ymm5
    vpsrlw ymm7, ymm9, 4
    KQ3_DOT32 Q8K_QS + 192, 64, ymm11
    vpsrlw ymm6, ymm8, 6
    vpand ymm6, ymm6, ymm5
    vpsrlw ymm7, ymm9, 5
    KQ3_DOT32 Q8K_QS + 224, 96, ymm11
.endm

# matvec_q3_k_avx2(rcx = out, rdx = W, r8 = xq, r9d = n, dword [rsp+40] = d): peasm/ggml.py's
# matvec contract (n a multiple of 256, a remainder ignored; xq = n/256 Q8_K blocks).
# Changes rax, rcx, rdx, r8-r11, ymm0-ymm5 (and the upper halves of ymm6-ymm11).
matvec_q3_k_avx2:
    KMV_ENTER_AVX2
    lea r11, [rip + kg_k_bcast]
    vmovdqa ymm5, [rip + kg_b03]
    vmovdqa ymm4, [rip + kg_b04]
    mov rsi, qword ptr [rip + kg_nib]
    mov rdi, qword ptr [rip + kg_b03]
    KMV_LOOPS_AVX2 2, 110, KQ3_BLOCK_AVX2, KMV_NOP, KMV_END8

# ----------------------------------------------------------------------------------------
# matvec_q3_k_sse2: the same contract and sums with SSE2 only: 16 quants at a time from one
# qs load (16-bit shift, AND 3) and one hmask load (the bit to bit 2 by a 16-bit shift, AND
# 4, OR), widened to words, times the sub-block's scale (pmullw, |u * sc| <= 7 * 32), q8
# widened, pmaddwd; the scales decoded in general-purpose registers (as the AVX2 body), d by
# KQ_F16_BITS.

.global matvec_q3_k_sse2

# 16 weights: low bits \sh.. of the qs bytes at block offset \q, bit \b of the hmask bytes at
# \hm; then KQS_DOT16_SC \y, \sreg, \w.
.macro KQ3S_16 q, sh, hm, b, y, sreg, w
    movdqu xmm5, [rdx + \q]
.if \sh
    psrlw xmm5, \sh
.endif
    pand xmm5, xmm12
    movdqu xmm6, [rdx + \hm]
.if \b == 0
    psllw xmm6, 2
.endif
.if \b == 1
    psllw xmm6, 1
.endif
.if \b > 2
    psrlw xmm6, \b - 2
.endif
    pand xmm6, xmm13
    por xmm5, xmm6
    KQS_DOT16_SC \y, \sreg, \w
.endm

# KQ3_BLOCK_SSE2: one super-block, for kquant.inc's KMV_LOOPS_SSE2 (isum in xmm1, yd * d
# in xmm2).
.macro KQ3_BLOCK_SSE2
    KQ_D_SSE2 108
    KQ3_SCALES rax, r11, r14
    movq xmm3, rax
    movq xmm4, r11
    movdqa xmm5, [rip + kg_w32]
    punpcklbw xmm3, xmm11
    psubw xmm3, xmm5                # scales 0..7 as words
    punpcklbw xmm4, xmm11
    psubw xmm4, xmm5                # 8..15
    KQ_OFFSET_SSE2 2                # isum starts at -4 * sum sc * bsums
    KQ3S_16 32, 0, 0, 0, Q8K_QS + 0, xmm3, 0
    KQ3S_16 48, 0, 16, 0, Q8K_QS + 16, xmm3, 1
    KQ3S_16 32, 2, 0, 1, Q8K_QS + 32, xmm3, 2
    KQ3S_16 48, 2, 16, 1, Q8K_QS + 48, xmm3, 3
    KQ3S_16 32, 4, 0, 2, Q8K_QS + 64, xmm3, 4
    KQ3S_16 48, 4, 16, 2, Q8K_QS + 80, xmm3, 5
    KQ3S_16 32, 6, 0, 3, Q8K_QS + 96, xmm3, 6
    KQ3S_16 48, 6, 16, 3, Q8K_QS + 112, xmm3, 7
    KQ3S_16 64, 0, 0, 4, Q8K_QS + 128, xmm4, 0
    KQ3S_16 80, 0, 16, 4, Q8K_QS + 144, xmm4, 1
    KQ3S_16 64, 2, 0, 5, Q8K_QS + 160, xmm4, 2
    KQ3S_16 80, 2, 16, 5, Q8K_QS + 176, xmm4, 3
    KQ3S_16 64, 4, 0, 6, Q8K_QS + 192, xmm4, 4
    KQ3S_16 80, 4, 16, 6, Q8K_QS + 208, xmm4, 5
    KQ3S_16 64, 6, 0, 7, Q8K_QS + 224, xmm4, 6
    KQ3S_16 80, 6, 16, 7, Q8K_QS + 240, xmm4, 7
.endm

# matvec_q3_k_sse2(rcx = out, rdx = W, r8 = xq, r9d = n, dword [rsp+40] = d). Changes rax,
# rcx, rdx, r8-r11, xmm0-xmm5.
matvec_q3_k_sse2:
    KMV_ENTER_SSE2
    pxor xmm11, xmm11
    movdqa xmm12, [rip + kg_b03]
    movdqa xmm13, [rip + kg_b04]
    mov rsi, qword ptr [rip + kg_nib]
    mov rdi, qword ptr [rip + kg_b03]
    KMV_LOOPS_SSE2 110, KQ3_BLOCK_SSE2
