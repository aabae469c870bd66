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
# Model and error bound: tests/reference/quant_k.py.
.include "kquant.inc"
.include "kmacros.inc"

.section .rdata
.balign 32, 0
kq2_m03:
    .rept 32
    .byte 0x03
    .endr
kq2_m0f:
    .rept 16
    .byte 0x0f
    .endr
# vpshufb masks on 8 scale words in both lanes: mask i = word 2i (low lane), 2i+1 (high)
kq2_bcast:
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
    vpmaddubsw ymm6, ymm6, [rbp + \y]
    vpshufb ymm7, \sv, [r11 + \m]
    vpmaddwd ymm6, ymm6, ymm7
    vpaddd ymm1, ymm1, ymm6
.endm

# matvec_q2_k_avx2(rcx = out, rdx = W, r8 = xq, r9d = n, dword [rsp+40] = d): peasm/ggml.py's
# matvec contract (n a multiple of 256, a remainder ignored; xq = n/256 Q8_K blocks).
# Changes rax, rcx, rdx, r8-r11, ymm0-ymm5 (and the upper halves of ymm6-ymm11).
# Frame: 3 pushes, xmm6-xmm11 at [rsp], 8 bytes of padding.
matvec_q2_k_avx2:
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
    lea r11, [rip + kq2_bcast]
    vmovdqa ymm5, [rip + kq2_m03]
    vmovdqa xmm4, [rip + kq2_m0f]
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
    vcvtdq2ps ymm1, ymm1
    vfmadd231ps ymm0, ymm1, ymm2
    add rdx, 84
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
# matvec_q2_k_sse2: the same contract and sums with SSE2 only: 16 quants at a time from one
# qs load (16-bit shift, AND 3), widened to words, times the sub-block's scale (pmullw), q8
# widened, pmaddwd; mins dotted with bsums by pmaddwd; d and dmin by KQ_F16_BITS.

.section .rdata
.balign 16, 0
kq2s_m03:
    .rept 16
    .byte 0x03
    .endr
kq2s_m0f:
    .rept 16
    .byte 0x0f
    .endr

.section .text
.global matvec_q2_k_sse2

# xmm5 = 16 quants u (bytes) of one 16-weight sub-block: widened to words, times the scale =
# word \w of \sreg (pmullw), dotted with the q8 at \y (widened, pmaddwd). Adds to xmm1.
.macro KQ2S_DOT16 y, sreg, w
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

# 16 weights: bits \sh.. of the qs bytes at block offset \q; then KQ2S_DOT16 \y, \sreg, \w.
.macro KQ2S_16 q, sh, y, sreg, w
    movdqu xmm5, [rdx + \q]
.if \sh
    psrlw xmm5, \sh
.endif
    pand xmm5, xmm12
    KQ2S_DOT16 \y, \sreg, \w
.endm

# matvec_q2_k_sse2(rcx = out, rdx = W, r8 = xq, r9d = n, dword [rsp+40] = d). Changes rax,
# rcx, rdx, r8-r11, xmm0-xmm5. Frame: 7 pushes, xmm6-xmm13 at [rsp].
matvec_q2_k_sse2:
    push rbx
    push rsi
    push rdi
    push rbp
    push r12
    push r13
    push r14
    sub rsp, 128
    movups [rsp], xmm6
    movups [rsp + 16], xmm7
    movups [rsp + 32], xmm8
    movups [rsp + 48], xmm9
    movups [rsp + 64], xmm10
    movups [rsp + 80], xmm11
    movups [rsp + 96], xmm12
    movups [rsp + 112], xmm13
    mov r10, rcx                    # out
    mov ebx, dword ptr [rsp + 128 + 56 + 40]  # rows left
    shr r9d, 8                      # super-blocks per row
    mov r13, r8                     # xq (KQ_F16_BITS changes r8)
    pxor xmm11, xmm11
    movdqa xmm12, [rip + kq2s_m03]
    movdqa xmm13, [rip + kq2s_m0f]
.Lrow:
    test ebx, ebx
    jz .Ldone
    xorps xmm0, xmm0                # the row's 4 f32 lanes
    mov rbp, r13
    mov r12d, r9d
    test r12d, r12d
    jz .Lrow_done
.Lblock:
    movzx eax, word ptr [rdx + 80]
    KQ_F16_BITS eax, ecx
    movd xmm2, ecx
    movzx eax, word ptr [rdx + 82]
    KQ_F16_BITS eax, ecx
    movd xmm4, ecx
    unpcklps xmm2, xmm4             # d dmin
    movss xmm4, dword ptr [rbp + Q8K_D]
    shufps xmm4, xmm4, 0
    mulps xmm2, xmm4                # yd*d  yd*dmin
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
    cvtdq2ps xmm5, xmm5
    movaps xmm6, xmm2
    shufps xmm6, xmm6, 0x55         # yd*dmin
    mulps xmm5, xmm6
    subps xmm0, xmm5
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
    cvtdq2ps xmm1, xmm1
    mulps xmm1, xmm2
    addps xmm0, xmm1
    add rdx, 84
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
    add rsp, 128
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rdi
    pop rsi
    pop rbx
    ret
