# ggml's Q8_0 (weights and activations) and Q8_1 (activations of Q4_1/Q5_1 weights): block
# layouts in ggml_qmacros.inc. Contracts (peasm/ggml.py's body kinds, kernels.inc's ABI):
#
#   dequantize_row_q8_0_<path>(rcx = out f32*, rdx = blocks, r8d = n)
#   quantize_row_q8_0_<path>(rcx = out blocks, rdx = x f32*, r8d = n)
#   quantize_row_q8_1_<path>(rcx = out blocks, rdx = x f32*, r8d = n)
#   matvec_q8_0_<path>(rcx = out f32*, rdx = W, r8 = xq (Q8_0), r9d = n, dword [rsp+40] = d)
#
# n is a multiple of 32 (the caller checks; the rest of n is ignored); matvec with d = 0
# writes nothing, with n = 0 it writes d zeros. Unaligned pointers.
#
# Quantizing a block of 32 (llama.cpp's CPU path, quantize_row_q8_0/q8_1 in ggml-cpu's
# quants): amax = max |x|, d = amax / 127 (f32), id = 127 / amax (0 when amax is 0),
# q = x * id rounded to nearest even (cvtps2dq under the default MXCSR), saturated to int8;
# d stored as f16 (round to nearest even); Q8_1 also s = f16(d * sum(q)), with the f32 d.
# The SSE2 and AVX2 bodies do the same operations in the same precision and write the same
# bytes for any finite input (and inf; with NaN inputs the block is unspecified, nothing
# faults). The quantizers and dequantizers change xmm0-xmm5 only (AVX2: ymm0-ymm5); matvec
# saves what it uses beyond that (SSE2: ggml_pairs.inc's frame; AVX2: its own, four rows at
# a time, below). matvec's integer dot is exact for activation quants in -127..127 (all
# quantize_row_q8_* writes for finite input; see GDOTS_AVX2 in ggml_qmacros.inc).
.include "kernels.inc"
.include "kmacros.inc"
.include "ggml_cvt.inc"
.include "ggml_qmacros.inc"
.include "ggml_pairs.inc"

.section .text
.global dequantize_row_q8_0_sse2, dequantize_row_q8_0_avx2
.global quantize_row_q8_0_sse2, quantize_row_q8_0_avx2
.global quantize_row_q8_1_sse2, quantize_row_q8_1_avx2
.global matvec_q8_0_sse2, matvec_q8_0_avx2

# dequantize_row_q8_0_sse2(rcx = out, rdx = blocks, r8d = n): x = q * d
dequantize_row_q8_0_sse2:
    mov r8d, r8d
    shr r8, 5
.Lblock:
    test r8, r8
    jz .Ldone
    GDSCALE0_SSE2
    movdqu xmm0, [rdx + 2]
    movdqu xmm1, [rdx + 18]
    GDEQ16_SSE2 xmm0, 0, orps
    GDEQ16_SSE2 xmm1, 64, orps
    add rdx, 34
    sub rcx, -128
    dec r8
    jmp .Lblock
.Ldone:
    ret

# dequantize_row_q8_0_avx2(rcx = out, rdx = blocks, r8d = n)
dequantize_row_q8_0_avx2:
    mov r8d, r8d
    shr r8, 5
.Lblock:
    test r8, r8
    jz .Ldone
    GDSCALE0_AVX2
    vmovdqu ymm0, [rdx + 2]
    GDEQ32_AVX2 vorps
    add rdx, 34
    sub rcx, -128
    dec r8
    jmp .Lblock
.Ldone:
    vzeroupper
    ret

quantize_row_q8_0_sse2:
    mov r9d, 34                       # block bytes
    mov r10d, 2                       # offset of qs
    jmp q8_quantize_sse2
quantize_row_q8_1_sse2:
    mov r9d, 36
    mov r10d, 4
    jmp q8_quantize_sse2

# q8_quantize_sse2(rcx = out, rdx = x, r8d = n, r9 = block bytes, r10 = offset of qs; a
# Q8_1 block (qs at 4) also gets s at 2)
q8_quantize_sse2:
    mov r8d, r8d
    shr r8, 5
.Lblock:
    test r8, r8
    jz .Ldone
    movaps xmm4, [rip + kg_f_abs]
    movups xmm0, [rdx]
    andps xmm0, xmm4
    movups xmm1, [rdx + 16]
    andps xmm1, xmm4
    movups xmm2, [rdx + 32]
    andps xmm2, xmm4
    maxps xmm0, xmm2
    movups xmm2, [rdx + 48]
    andps xmm2, xmm4
    maxps xmm1, xmm2
    movups xmm2, [rdx + 64]
    andps xmm2, xmm4
    maxps xmm0, xmm2
    movups xmm2, [rdx + 80]
    andps xmm2, xmm4
    maxps xmm1, xmm2
    movups xmm2, [rdx + 96]
    andps xmm2, xmm4
    maxps xmm0, xmm2
    movups xmm2, [rdx + 112]
    andps xmm2, xmm4
    maxps xmm1, xmm2
    maxps xmm0, xmm1
    movhlps xmm1, xmm0
    maxps xmm0, xmm1
    pshufd xmm1, xmm0, 0x55
    maxss xmm0, xmm1                  # amax
    movaps xmm5, xmm0
    divss xmm5, dword ptr [rip + kg_f_127]    # d
    movd r11d, xmm5
    movss xmm1, dword ptr [rip + kg_f_127]
    divss xmm1, xmm0                  # id = 127 / amax ...
    movd eax, xmm0
    test eax, eax
    jnz 1f
    xorps xmm1, xmm1                  # ... or 0
1:
    shufps xmm1, xmm1, 0
    movaps xmm0, xmm5
    GF2H_SSE2 xmm0, xmm2, xmm3, xmm4, xmm5
    movd eax, xmm0
    mov word ptr [rcx], ax            # d as f16
    pxor xmm5, xmm5                   # sum of the quants
    movups xmm0, [rdx]
    mulps xmm0, xmm1
    cvtps2dq xmm0, xmm0
    paddd xmm5, xmm0
    movups xmm2, [rdx + 16]
    mulps xmm2, xmm1
    cvtps2dq xmm2, xmm2
    paddd xmm5, xmm2
    packssdw xmm0, xmm2
    movups xmm2, [rdx + 32]
    mulps xmm2, xmm1
    cvtps2dq xmm2, xmm2
    paddd xmm5, xmm2
    movups xmm3, [rdx + 48]
    mulps xmm3, xmm1
    cvtps2dq xmm3, xmm3
    paddd xmm5, xmm3
    packssdw xmm2, xmm3
    packsswb xmm0, xmm2
    movdqu [rcx + r10], xmm0          # q 0..15
    movups xmm0, [rdx + 64]
    mulps xmm0, xmm1
    cvtps2dq xmm0, xmm0
    paddd xmm5, xmm0
    movups xmm2, [rdx + 80]
    mulps xmm2, xmm1
    cvtps2dq xmm2, xmm2
    paddd xmm5, xmm2
    packssdw xmm0, xmm2
    movups xmm2, [rdx + 96]
    mulps xmm2, xmm1
    cvtps2dq xmm2, xmm2
    paddd xmm5, xmm2
    movups xmm3, [rdx + 112]
    mulps xmm3, xmm1
    cvtps2dq xmm3, xmm3
    paddd xmm5, xmm3
    packssdw xmm2, xmm3
    packsswb xmm0, xmm2
    movdqu [rcx + r10 + 16], xmm0     # q 16..31
    cmp r10, 4
    jne .Lnext
    pshufd xmm0, xmm5, 0x4e
    paddd xmm5, xmm0
    pshufd xmm0, xmm5, 0xb1
    paddd xmm5, xmm0
    cvtdq2ps xmm0, xmm5
    movd xmm2, r11d
    mulss xmm0, xmm2                  # d * sum(q)
    GF2H_SSE2 xmm0, xmm2, xmm3, xmm4, xmm5
    movd eax, xmm0
    mov word ptr [rcx + 2], ax        # s as f16
.Lnext:
    sub rdx, -128
    add rcx, r9
    dec r8
    jmp .Lblock
.Ldone:
    ret

quantize_row_q8_0_avx2:
    mov r9d, 34
    mov r10d, 2
    jmp q8_quantize_avx2
quantize_row_q8_1_avx2:
    mov r9d, 36
    mov r10d, 4
    jmp q8_quantize_avx2

# q8_quantize_avx2: as q8_quantize_sse2 (the same operations, 8 lanes; F16C for the f16s)
q8_quantize_avx2:
    mov r8d, r8d
    shr r8, 5
.Lblock:
    test r8, r8
    jz .Ldone
    vmovups ymm0, [rdx]
    vmovups ymm1, [rdx + 32]
    vmovups ymm2, [rdx + 64]
    vmovups ymm3, [rdx + 96]
    vandps ymm4, ymm0, [rip + kg_f_abs]
    vandps ymm5, ymm1, [rip + kg_f_abs]
    vmaxps ymm4, ymm4, ymm5
    vandps ymm5, ymm2, [rip + kg_f_abs]
    vmaxps ymm4, ymm4, ymm5
    vandps ymm5, ymm3, [rip + kg_f_abs]
    vmaxps ymm4, ymm4, ymm5
    vextractf128 xmm5, ymm4, 1
    vmaxps xmm4, xmm4, xmm5
    vmovhlps xmm5, xmm4, xmm4
    vmaxps xmm4, xmm4, xmm5
    vmovshdup xmm5, xmm4
    vmaxss xmm4, xmm4, xmm5           # amax
    vdivss xmm5, xmm4, dword ptr [rip + kg_f_127]     # d
    vmovd r11d, xmm5
    vcvtps2ph xmm5, xmm5, 0
    vpextrw eax, xmm5, 0
    mov word ptr [rcx], ax            # d as f16
    vmovss xmm5, dword ptr [rip + kg_f_127]
    vdivss xmm5, xmm5, xmm4           # id = 127 / amax ...
    vmovd eax, xmm4
    test eax, eax
    jnz 1f
    vxorps xmm5, xmm5, xmm5           # ... or 0
1:
    vbroadcastss ymm5, xmm5
    vmulps ymm0, ymm0, ymm5
    vmulps ymm1, ymm1, ymm5
    vmulps ymm2, ymm2, ymm5
    vmulps ymm3, ymm3, ymm5
    vcvtps2dq ymm0, ymm0
    vcvtps2dq ymm1, ymm1
    vcvtps2dq ymm2, ymm2
    vcvtps2dq ymm3, ymm3
    vpaddd ymm4, ymm0, ymm1
    vpaddd ymm5, ymm2, ymm3
    vpaddd ymm4, ymm4, ymm5           # sums of the quants
    vpackssdw ymm0, ymm0, ymm1
    vpackssdw ymm2, ymm2, ymm3
    vpacksswb ymm0, ymm0, ymm2
    vmovdqu ymm5, [rip + kg_q8_perm]
    vpermd ymm0, ymm5, ymm0           # back in element order
    vmovdqu [rcx + r10], ymm0
    cmp r10, 4
    jne .Lnext
    vextracti128 xmm5, ymm4, 1
    vpaddd xmm4, xmm4, xmm5
    vpshufd xmm5, xmm4, 0x4e
    vpaddd xmm4, xmm4, xmm5
    vpshufd xmm5, xmm4, 0xb1
    vpaddd xmm4, xmm4, xmm5
    vcvtdq2ps xmm4, xmm4
    vmovd xmm5, r11d
    vmulss xmm4, xmm4, xmm5           # d * sum(q)
    vcvtps2ph xmm4, xmm4, 0
    vpextrw eax, xmm4, 0
    mov word ptr [rcx + 2], ax        # s as f16
.Lnext:
    sub rdx, -128
    add rcx, r9
    dec r8
    jmp .Lblock
.Ldone:
    vzeroupper
    ret

# Q8_0_PAIR_SSE2: a pair's block (ggml_pairs.inc's GMV_BODY_SSE2).
.macro Q8_0_PAIR_SSE2
    GPAIR_SCALE0_SSE2
    GPAIR_XQ_SSE2 2
    movdqu xmm5, [rdx + 2]
    movdqu xmm6, [rdx + 18]
    GPAIR_DOT_SSE2 xmm5, xmm6, xmm7, xmm4, xmm8
    movdqu xmm5, [rdx + rbx + 2]
    movdqu xmm6, [rdx + rbx + 18]
    GPAIR_DOT_SSE2 xmm5, xmm6, xmm7, xmm12, xmm10
.endm
# Q8_0_ROW_SSE2: a block of the one-row loop (GMV_BODY_SSE2).
.macro Q8_0_ROW_SSE2
    GSCALE0_SSE2
    movdqu xmm0, [rdx + 2]
    movdqu xmm1, [rdx + 18]
    GDOT32_SSE2 2
.endm

# matvec_q8_0_sse2(rcx = out, rdx = W, r8 = xq, r9d = n, dword [rsp+40] = d)
matvec_q8_0_sse2:
    GMV_BODY_SSE2 34, 34, Q8_0_PAIR_SSE2, Q8_0_ROW_SSE2

# matvec_q8_0_avx2(rcx = out, rdx = W, r8 = xq, r9d = n, dword [rsp+40] = d)
#   the contract at the top of this file; clobbers rax, rcx, rdx, r8-r11, ymm0-ymm5 and the
#   upper halves of ymm6-ymm15 (vzeroupper before returning); stack: 32 bytes of pushes
#   and 168 of frame.
#
# Rounding: ggml's AVX2 vec_dot_q8_0_q8_0 (ggml-cpu's x86 quants; the decode logits of a
# tied Q8_0 classifier are llama.cpp's bit for bit, tests/test_app_llamacpp_golden.py): per
# row one 8-lane f32 accumulator, the blocks in order, acc = fma(f32(d_w) * f32(d_x)
# (rounded once, broadcast), f32(I), acc) where lane j of I is the exact int32 sum of the
# products of bytes 4j..4j+3 (|w| times x with w's sign, vpmaddubsw then vpmaddwd by 1, as
# ggml's mul_sum_i8_pairs_float), then hsum_float_8's fold (KHSUM_AVX). Any d, odd too: every
# row is summed alike.
#
# Layout of the work: four rows at a time (Q8X4_*, below), which share the activation
# block's load and its scale's conversion; one f16 conversion gives the 4 rows' d_w. The
# 4 rows are adjacent in W, so a group reads one contiguous stretch of 4 * n / 32 * 34
# bytes in 4 interleaved places; the groups follow each other. A last group of 1..3 rows
# repeats its last row in the missing slots (the same sums, stored to the same output:
# nothing is written past out[d - 1], nothing read past W's last row). Prefetch: the next
# group's stretch, linearly (prefetcht0 3 lines a block step from the pointer moving 4 *
# 34 bytes a step: the whole next group by the end of this one). The hardware prefetchers
# alone, or one prefetch a row 2 KiB ahead (the former pair loop's GPREFETCH), see short
# interleaved streams (SmolLM2's classifier: rows of 612 bytes) that they follow late.
# Measured (development host, Zen 3 shared by 2 vCPUs, streamed from DRAM, best of 3
# alternating runs in one process, ratio to stream_read 18-22 GB/s): 49152x576 0.56-0.64
# (the former two-row loop) -> 0.81-0.98; 2048x2048 0.66 -> 0.90; 576x1536 0.64-0.69 ->
# 0.84-0.93; 5632x2048 0.68 -> 0.91. (Per row 2 KiB, 3 KiB, 4 KiB or 6 KiB ahead instead:
# 0.55-0.62; no prefetch: 0.31.)
#
# Registers: rbx = bytes per row, r10 = rows left (signed: a last partial group takes it
# below 0), rcx = the group's outputs, rdx, rsi, rdi, r12 = its 4 rows (rsi, rdi, r12 at
# row min(k, rows left - 1)), r11 = byte offset of the block in a row (and in xq), rax =
# the next group (prefetch base); ymm1 = the activation quants, ymm4 = the 4 rows' scales
# (lanes 0..3), ymm8-ymm11 the rows' accumulators, ymm14 = 1 in every word, ymm12, ymm13,
# ymm15, ymm6 = 0, 1, 2, 3 in every dword (vpermps: a row's scale in every lane).
# frame: rbx, rsi, rdi, r12 pushed, 168 bytes: xmm6-xmm15 at [rsp] .. [rsp+159].
.section .rdata
.balign 16, 0
kq8x4_lanes:    # vpermps indices: lane k broadcast
    .long 0, 1, 2, 3

.section .text
# Q8X4_DOT base, idx, acc: the row at base: acc = fma(its scale (lane idx of ymm4), f32(its
# block's 8 lane sums against ymm1), acc); ymm0, ymm2, ymm3 clobbered
.macro Q8X4_DOT base, idx, acc
    vmovdqu ymm0, [\base + r11 + 2]
    vpsignb ymm2, ymm1, ymm0          # x with w's sign
    vpabsb ymm0, ymm0                 # |w| (-128: 128 unsigned)
    vpmaddubsw ymm0, ymm0, ymm2
    vpmaddwd ymm0, ymm0, ymm14
    vcvtdq2ps ymm0, ymm0
    vpermps ymm3, \idx, ymm4
    vfmadd231ps \acc, ymm3, ymm0
.endm
# Q8X4_ROW k: rax = min(k, r9) (r9 = rows left - 1: the group's slot k's row)
.macro Q8X4_ROW k
    mov eax, \k
    cmp r9, rax
    cmovb rax, r9
.endm

matvec_q8_0_avx2:
    push rbx
    push rsi
    push rdi
    push r12
    sub rsp, 168
    KSAVE_XMM6_15_VEX 0
    mov r10d, dword ptr [rsp + 168 + 32 + 40]     # d
    mov r9d, r9d
    shr r9, 5
    imul rbx, r9, 34                  # bytes per row
    vmovdqu ymm14, [rip + kg_one_i16]
    vpbroadcastd ymm12, dword ptr [rip + kq8x4_lanes]
    vpbroadcastd ymm13, dword ptr [rip + kq8x4_lanes + 4]
    vpbroadcastd ymm15, dword ptr [rip + kq8x4_lanes + 8]
    vpbroadcastd ymm6, dword ptr [rip + kq8x4_lanes + 12]
.Lgroup:
    test r10, r10
    jle .Ldone
    lea r9, [r10 - 1]
    Q8X4_ROW 1
    imul rax, rbx
    lea rsi, [rdx + rax]
    Q8X4_ROW 2
    imul rax, rbx
    lea rdi, [rdx + rax]
    Q8X4_ROW 3
    imul rax, rbx
    lea r12, [rdx + rax]
    lea rax, [rdx + 4*rbx]            # the next group
    vxorps xmm8, xmm8, xmm8
    vxorps xmm9, xmm9, xmm9
    vxorps xmm10, xmm10, xmm10
    vxorps xmm11, xmm11, xmm11
    xor r11d, r11d
    cmp r11, rbx
    jae .Lsums
.Lblock:
    prefetcht0 [rax + 4*r11]
    prefetcht0 [rax + 4*r11 + 64]
    prefetcht0 [rax + 4*r11 + 128]
    vmovd xmm4, dword ptr [rdx + r11]             # d_w of the 4 rows (and 2 bytes of qs,
    vpinsrw xmm4, xmm4, word ptr [rsi + r11], 1   #  replaced)
    vpinsrw xmm4, xmm4, word ptr [rdi + r11], 2
    vpinsrw xmm4, xmm4, word ptr [r12 + r11], 3
    vpbroadcastw xmm5, word ptr [r8 + r11]        # d_x
    vcvtph2ps xmm4, xmm4
    vcvtph2ps xmm5, xmm5
    vmulps xmm4, xmm4, xmm5           # f32(d_w) * f32(d_x), rows 0..3 (upper lanes 0)
    vmovdqu ymm1, [r8 + r11 + 2]
    Q8X4_DOT rdx, ymm12, ymm8
    Q8X4_DOT rsi, ymm13, ymm9
    Q8X4_DOT rdi, ymm15, ymm10
    Q8X4_DOT r12, ymm6, ymm11
    add r11, 34
    cmp r11, rbx
    jb .Lblock
.Lsums:
    KHSUM_AVX ymm8, xmm8, xmm0
    KHSUM_AVX ymm9, xmm9, xmm0
    KHSUM_AVX ymm10, xmm10, xmm0
    KHSUM_AVX ymm11, xmm11, xmm0
    Q8X4_ROW 3                        # a repeated row's slot: its row's output
    vmovss dword ptr [rcx + 4*rax], xmm11
    Q8X4_ROW 2
    vmovss dword ptr [rcx + 4*rax], xmm10
    Q8X4_ROW 1
    vmovss dword ptr [rcx + 4*rax], xmm9
    vmovss dword ptr [rcx], xmm8
    lea rdx, [rdx + 4*rbx]
    add rcx, 16
    sub r10, 4
    jmp .Lgroup
.Ldone:
    KLOAD_XMM6_15_VEX 0
    add rsp, 168
    pop r12
    pop rdi
    pop rsi
    pop rbx
    vzeroupper
    ret
