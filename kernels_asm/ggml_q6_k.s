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
.include "kquant.inc"
.include "kmacros.inc"

.section .rdata
.balign 32, 0
kq6_m0f:
    .rept 32
    .byte 0x0f
    .endr
kq6_m30:
    .rept 32
    .byte 0x30
    .endr
# vpshufb masks on [w0..w7 | w0..w7] (8 scale words in both lanes): mask i puts word 2i in
# every word of the low lane and word 2i+1 in every word of the high lane, i = 0..3
kq6_bcast:
    .rept 8
    .byte 0, 1
    .endr
    .rept 8
    .byte 2, 3
    .endr
    .rept 8
    .byte 4, 5
    .endr
    .rept 8
    .byte 6, 7
    .endr
    .rept 8
    .byte 8, 9
    .endr
    .rept 8
    .byte 10, 11
    .endr
    .rept 8
    .byte 12, 13
    .endr
    .rept 8
    .byte 14, 15
    .endr

.section .text
.global matvec_q6_k_avx2, kq6_bcast

# 32 weights: ymm6 = their u (bytes), q8 at Q8_K offset \y, scale masks kq6_bcast + \m
# applied to \sv (ymm10: scales 0..7, ymm11: scales 8..15). Adds 8 i32 lanes to ymm1.
.macro KQ6_DOT32 y, m, sv
    vpmaddubsw ymm6, ymm6, [rbp + \y]
    vpshufb ymm7, \sv, [r11 + \m]
    vpmaddwd ymm6, ymm6, ymm7
    vpaddd ymm1, ymm1, ymm6
.endm

# One half (128 weights): ql at block offset \ql, qh at \qh, q8 at \y, scales in \sv.
.macro KQ6_HALF ql, qh, y, sv
    vmovdqu ymm8, [rdx + \ql]       # A: k = 0 (low nibbles), k = 2 (high)
    vmovdqu ymm9, [rdx + \qh]       # H
    vpand ymm6, ymm8, ymm5
    vpsllw ymm7, ymm9, 4
    vpand ymm7, ymm7, ymm4
    vpor ymm6, ymm6, ymm7
    KQ6_DOT32 \y, 0, \sv
    vpsrlw ymm6, ymm8, 4
    vpand ymm6, ymm6, ymm5
    vpand ymm7, ymm9, ymm4
    vpor ymm6, ymm6, ymm7
    KQ6_DOT32 \y + 64, 64, \sv
    vmovdqu ymm8, [rdx + \ql + 32]  # B: k = 1, k = 3
    vpand ymm6, ymm8, ymm5
    vpsllw ymm7, ymm9, 2
    vpand ymm7, ymm7, ymm4
    vpor ymm6, ymm6, ymm7
    KQ6_DOT32 \y + 32, 32, \sv
    vpsrlw ymm6, ymm8, 4
    vpand ymm6, ymm6, ymm5
    vpsrlw ymm7, ymm9, 2
    vpand ymm7, ymm7, ymm4
    vpor ymm6, ymm6, ymm7
    KQ6_DOT32 \y + 96, 96, \sv
.endm

# matvec_q6_k_avx2(rcx = out, rdx = W, r8 = xq, r9d = n, dword [rsp+40] = d): peasm/ggml.py's
# matvec contract (n a multiple of 256, a remainder ignored; xq = n/256 Q8_K blocks).
# Changes rax, rcx, rdx, r8-r11, ymm0-ymm5 (and the upper halves of ymm6-ymm11).
# Frame: 3 pushes, xmm6-xmm11 at [rsp], 8 bytes of padding.
matvec_q6_k_avx2:
    push rbx
    push rbp
    push r12
    sub rsp, 104
    vmovups [rsp], xmm6
    vmovups [rsp + 16], xmm7
    vmovups [rsp + 32], xmm8
    vmovups [rsp + 48], xmm9
    vmovups [rsp + 64], xmm10
    vmovups [rsp + 80], xmm11
    mov r10, rcx                    # out
    mov ebx, dword ptr [rsp + 104 + 24 + 40]  # rows left
    shr r9d, 8                      # super-blocks per row
    lea r11, [rip + kq6_bcast]
    vmovdqa ymm5, [rip + kq6_m0f]
    vmovdqa ymm4, [rip + kq6_m30]
.Lrow:
    test ebx, ebx
    jz .Ldone
    vxorps xmm0, xmm0, xmm0         # the row's 8 f32 lanes
    mov rbp, r8
    mov r12d, r9d
    test r12d, r12d
    jz .Lrow_done
.Lblock:
    prefetcht0 byte ptr [rdx + KQ_PREFETCH]
    prefetcht0 byte ptr [rdx + KQ_PREFETCH + 64]
    prefetcht0 byte ptr [rdx + KQ_PREFETCH + 128]
    prefetcht0 byte ptr [rdx + KQ_PREFETCH + 192]
    movzx eax, word ptr [rdx + 208]
    vmovd xmm2, eax
    vcvtph2ps xmm2, xmm2
    vmulss xmm2, xmm2, dword ptr [rbp + Q8K_D]
    vbroadcastss ymm2, xmm2         # yd * d
    vpmovsxbw ymm3, [rdx + 192]     # the 16 scales as words
    vpmaddwd ymm1, ymm3, [rbp + Q8K_BSUMS]
    vpslld ymm1, ymm1, 5
    vpxor xmm6, xmm6, xmm6
    vpsubd ymm1, ymm6, ymm1         # isum starts at -32 * sum sc * bsums
    vpermq ymm10, ymm3, 0x44        # scales 0..7 in both lanes
    vpermq ymm11, ymm3, 0xee        # scales 8..15
    KQ6_HALF 0, 128, Q8K_QS, ymm10
    KQ6_HALF 64, 160, Q8K_QS + 128, ymm11
    vcvtdq2ps ymm1, ymm1
    vfmadd231ps ymm0, ymm1, ymm2
    add rdx, 210
    add rbp, Q8K_BYTES
    dec r12d
    jnz .Lblock
.Lrow_done:
    vextractf128 xmm1, ymm0, 1
    vaddps xmm0, xmm0, xmm1
    vmovhlps xmm1, xmm1, xmm0
    vaddps xmm0, xmm0, xmm1
    vmovshdup xmm1, xmm0
    vaddss xmm0, xmm0, xmm1
    vmovss dword ptr [r10], xmm0
    add r10, 4
    dec ebx
    jmp .Lrow
.Ldone:
    vmovups xmm6, [rsp]
    vmovups xmm7, [rsp + 16]
    vmovups xmm8, [rsp + 32]
    vmovups xmm9, [rsp + 48]
    vmovups xmm10, [rsp + 64]
    vmovups xmm11, [rsp + 80]
    add rsp, 104
    pop r12
    pop rbp
    pop rbx
    vzeroupper
    ret

# ----------------------------------------------------------------------------------------
# matvec_q6_k_sse2: the same contract and sums with SSE2 only: u built 16 at a time (nibble
# AND/shift, the 2 high bits by a 16-bit shift and AND 0x30, OR), widened to words and
# multiplied by the sub-block's scale (pmullw, |u * sc| <= 63 * 128), q8 widened to words,
# pmaddwd into i32 lanes; d converted in general-purpose registers (KQ_F16_BITS).

.section .rdata
.balign 16, 0
kq6s_m0f:
    .rept 16
    .byte 0x0f
    .endr
kq6s_m30:
    .rept 16
    .byte 0x30
    .endr

.section .text
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
    movdqa xmm6, xmm5
    punpcklbw xmm5, xmm11
    punpckhbw xmm6, xmm11
.if \w < 4
    pshuflw xmm7, \sreg, \w * 0x55
    pshufd xmm7, xmm7, 0
.else
    pshufhw xmm7, \sreg, (\w - 4) * 0x55
    pshufd xmm7, xmm7, 0xaa
.endif
    pmullw xmm5, xmm7
    pmullw xmm6, xmm7
    movdqu xmm7, [rbp + \y]
    movdqa xmm8, xmm7
    punpcklbw xmm7, xmm7
    psraw xmm7, 8
    punpckhbw xmm8, xmm8
    psraw xmm8, 8
    pmaddwd xmm5, xmm7
    pmaddwd xmm6, xmm8
    paddd xmm1, xmm5
    paddd xmm1, xmm6
.endm

# matvec_q6_k_sse2(rcx = out, rdx = W, r8 = xq, r9d = n, dword [rsp+40] = d). Changes rax,
# rcx, rdx, r8-r11, xmm0-xmm5. Frame: 4 pushes, xmm6-xmm13 at [rsp], 8 bytes of padding.
matvec_q6_k_sse2:
    push rbx
    push rbp
    push r12
    push r13
    sub rsp, 136
    movups [rsp], xmm6
    movups [rsp + 16], xmm7
    movups [rsp + 32], xmm8
    movups [rsp + 48], xmm9
    movups [rsp + 64], xmm10
    movups [rsp + 80], xmm11
    movups [rsp + 96], xmm12
    movups [rsp + 112], xmm13
    mov r10, rcx                    # out
    mov ebx, dword ptr [rsp + 136 + 32 + 40]  # rows left
    shr r9d, 8                      # super-blocks per row
    mov r13, r8                     # xq (KQ_F16_BITS changes r8)
    pxor xmm11, xmm11
    movdqa xmm12, [rip + kq6s_m0f]
    movdqa xmm13, [rip + kq6s_m30]
.Lrow:
    test ebx, ebx
    jz .Ldone
    xorps xmm0, xmm0                # the row's 4 f32 lanes
    mov rbp, r13
    mov r12d, r9d
    test r12d, r12d
    jz .Lrow_done
.Lblock:
    movzx eax, word ptr [rdx + 208]
    KQ_F16_BITS eax, ecx
    movd xmm2, ecx
    mulss xmm2, dword ptr [rbp + Q8K_D]
    shufps xmm2, xmm2, 0            # yd * d
    movdqu xmm3, [rdx + 192]        # the 16 scales, as words
    movdqa xmm4, xmm3
    punpcklbw xmm3, xmm3
    psraw xmm3, 8                   # 0..7
    punpckhbw xmm4, xmm4
    psraw xmm4, 8                   # 8..15
    movdqu xmm5, [rbp + Q8K_BSUMS]
    pmaddwd xmm5, xmm3
    movdqu xmm6, [rbp + Q8K_BSUMS + 16]
    pmaddwd xmm6, xmm4
    paddd xmm5, xmm6
    pslld xmm5, 5
    pxor xmm1, xmm1
    psubd xmm1, xmm5                # isum starts at -32 * sum sc * bsums
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
    cvtdq2ps xmm1, xmm1
    mulps xmm1, xmm2
    addps xmm0, xmm1
    add rdx, 210
    add rbp, Q8K_BYTES
    dec r12d
    jnz .Lblock
.Lrow_done:
    KHSUM_SSE2 xmm0, xmm1
    movss dword ptr [r10], xmm0
    add r10, 4
    dec ebx
    jmp .Lrow
.Ldone:
    movups xmm6, [rsp]
    movups xmm7, [rsp + 16]
    movups xmm8, [rsp + 32]
    movups xmm9, [rsp + 48]
    movups xmm10, [rsp + 64]
    movups xmm11, [rsp + 80]
    movups xmm12, [rsp + 96]
    movups xmm13, [rsp + 112]
    add rsp, 136
    pop r13
    pop r12
    pop rbp
    pop rbx
    ret
