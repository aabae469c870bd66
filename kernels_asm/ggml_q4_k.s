# matvec_q4_k_avx2 (and matvec_q4_k_sse2 below): Q4_K weights times a Q8_K vector, AVX2 +
# FMA + F16C, the weights streamed once front to back.
#
# Q4_K (ggml-common.h block_q4_K): {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]}; the 32
# bytes qs[32j .. 32j+31] hold weights 64j + l (low nibbles) and 64j + 32 + l (high), one
# 6-bit scale and min per 32 weights (unpacked as in ggml_kunpack.s kq_scales_k4). Per
# super-block, as ggml_vec_dot_q4_K_q8_K:
#   isum = sum_j sc[j] * dot(nibbles of sub-block j, q8 of j)        (exact, 8 i32 lanes)
#   prod = m[2i] * s[2i] + m[2i+1] * s[2i+1], s[j] = bsums[2j] + bsums[2j+1]  (exact, 4 lanes)
#   acc += f32(isum lanes) * (yd * d)                                  (8 f32 lanes, FMA)
#   acc_m -= f32(prod lanes) * (yd * dmin)                             (4 f32 lanes, FMA)
# and out = hsum_float_8(acc) + (acc_m's lanes 0+2, 1+3, then added) at the end of the row:
# ggml's AVX2 build, bit for bit (the lane of each integer term as there: isum lane l holds
# bytes 4l..4l+3 of every 32-byte qs load). llama.cpp runs this for a Q4_K weight it does
# not repack (rows not a multiple of 8, or an embedding read as the classifier); the
# repacked ones are Q4_K_R8's (ggml_q4_k_r8.s). One 32-byte load of qs gives two sub-
# blocks: the low nibbles by one AND, the high by a 16-bit shift and the AND; vpmaddubsw
# multiplies them (u8) by q8 (i8) into i16 pair sums (|.| <= 2 * 15 * 128), vpmaddwd by the
# sub-block's scale in 16 words, read from a table of the 64 possible scale vectors at an
# address computed in a general-purpose register (no shuffle). The model and its error
# bound: tests/reference/quant_k.py.
#
# Measured (in cache, best of 400 short runs, ns per super-block on the development host,
# Zen 3; the machine is shared, so only same-run comparisons mean anything):
#   scales broadcast by vpshufb from a register 7.6; without those 8 shuffles 5.6; without
#   the 8 vpmaddwd 7.6 (the multiplies are not the limit: the shuffle/shift pipes are);
#   scales as dwords on the stack + vpbroadcastd 8.3; scale and min bytes expanded by one
#   vpshufb 7.7; two rows per pass sharing the q8 and mask loads: in cache the same, streamed
#   median 0.64 of bandwidth against 0.72 for one row (two DRAM streams): dropped.
#   The scale table (this code) 6.8; with the mins as m (dwords) * vpmaddwd'ed bsum pairs
#   (vpmulld) 6.7; (d, dmin) broadcast by load and split by vmovsldup/vmovshdup 6.7.
#   Scales and mins decoded with vector ops (vpshufd, vpsrlvd, masks) instead of the ~20
#   general-purpose instructions: 7.5 (the vector shuffle pipes, not the instruction count,
#   are the limit). Each of the scale decode, the min term, the (d, dmin) step, the high-
#   nibble shift costs 0.3-0.5 when removed; the loop runs near 5 instructions a cycle.
# The weights are prefetched KQ_PREFETCH bytes ahead (kquant.inc): streamed (TinyLlama
# shapes), 0 / 256 / 512 / 1024 / 2048 / 4096 / 8192 bytes gave median ratios to stream_read
# of 0.65 / 0.69 / 0.70 / 0.72 / 0.75 / 0.81 / 0.79 (+-0.15 between runs).
# The nibbles need no shuffle: an AND and a shift give two sub-blocks' quants from one load
# (the one-shuffle unpack of the issue is for signed or non-linear codes, e.g. Q4_0's q-8).
# The frame, the loops and the pieces Q5_K shares (the head, the 64-weight chunk):
# kquant.inc's K matvec macros; the scale table is ggml_consts.s's kg_k_sctab.
.include "kquant.inc"
.include "kmacros.inc"

.section .text
.global matvec_q4_k_avx2

# KQ4_BLOCK_AVX2: one super-block, for kquant.inc's KMV_LOOPS_AVX2 (isum in ymm1, yd * d
# in ymm2).
.macro KQ4_BLOCK_AVX2
    KQ_K4_HEAD_AVX2 0
    KQ_K4_CHUNK_AVX2 16, 4, 0
    KQ_K4_CHUNK_AVX2 48, 68, 0
    KQ_K4_CHUNK_AVX2 80, 132, 0
    KQ_K4_CHUNK_AVX2 112, 196, 0
.endm

# matvec_q4_k_avx2(rcx = out, rdx = W, r8 = xq, r9d = n, dword [rsp+40] = d): peasm/ggml.py's
# matvec contract (n a multiple of 256, a remainder ignored; xq = n/256 Q8_K blocks).
# Changes rax, rcx, rdx, r8-r11, ymm0-ymm5 (and the upper halves of ymm6-ymm9).
# (The SSE2 body below keeps its own order, 4 lanes and no FMA: its bits are not llama.cpp's
# AVX2 build's, only within quant_k.matvec_bound of the exact sums.)
matvec_q4_k_avx2:
    KMV_ENTER_AVX2
    lea r11, [rip + kg_k_sctab]
    vmovdqa ymm5, [rip + kg_nib]
    vmovdqa xmm4, [r11 + 32]        # words of 1 (scale table entry 1)
    KMV_LOOPS_AVX2 3, 144, KQ4_BLOCK_AVX2, KQ_K4_ROW_START, KQ4_ROW_END

# ----------------------------------------------------------------------------------------
# matvec_q4_k_sse2: the same contract and sums with SSE2 only (no byte multiply, no byte
# shuffle, no F16C): nibbles widened to words and multiplied by their sub-block's scale
# (pmullw, |u * sc| <= 15 * 63), q8 widened to words (unpack, arithmetic shift), pmaddwd,
# i32 lanes per super-block; d and dmin converted in general-purpose registers
# (KQ_F16_BITS). Measured in cache: 26 ns per super-block, against 42 for a generic SSE2
# body that went through the unpacked form of ggml_kunpack.s (since replaced).

.global matvec_q4_k_sse2

# 16 bytes of qs at block offset \q: their low nibbles (sub-block scale words in xmm9) meet
# q8 at \ylo, their high nibbles (xmm10) q8 at \ylo + 32. Adds to the i32 lanes of xmm1.
.macro KQ4S_16 q, ylo
    movdqu xmm4, [rdx + \q]
    movdqa xmm5, xmm4
    pand xmm5, xmm12
    KQS_DOT16 \ylo, xmm9
    movdqa xmm5, xmm4
    psrlw xmm5, 4
    pand xmm5, xmm12
    KQS_DOT16 \ylo + 32, xmm10
.endm

# KQ4_BLOCK_SSE2: one super-block, for kquant.inc's KMV_LOOPS_SSE2 (isum in xmm1, yd * d
# in xmm2).
.macro KQ4_BLOCK_SSE2
    KQ_K4_HEAD_SSE2
    KQS_BCAST xmm9, xmm3, 0
    KQS_BCAST xmm10, xmm3, 1
    KQ4S_16 16, Q8K_QS
    KQ4S_16 32, Q8K_QS + 16
    KQS_BCAST xmm9, xmm3, 2
    KQS_BCAST xmm10, xmm3, 3
    KQ4S_16 48, Q8K_QS + 64
    KQ4S_16 64, Q8K_QS + 80
    KQS_BCAST xmm9, xmm3, 4
    KQS_BCAST xmm10, xmm3, 5
    KQ4S_16 80, Q8K_QS + 128
    KQ4S_16 96, Q8K_QS + 144
    KQS_BCAST xmm9, xmm3, 6
    KQS_BCAST xmm10, xmm3, 7
    KQ4S_16 112, Q8K_QS + 192
    KQ4S_16 128, Q8K_QS + 208
.endm

# matvec_q4_k_sse2(rcx = out, rdx = W, r8 = xq, r9d = n, dword [rsp+40] = d). Changes rax,
# rcx, rdx, r8-r11, xmm0-xmm5.
matvec_q4_k_sse2:
    KMV_ENTER_SSE2
    pxor xmm11, xmm11
    movdqa xmm12, [rip + kg_nib]
    KMV_LOOPS_SSE2 144, KQ4_BLOCK_SSE2
