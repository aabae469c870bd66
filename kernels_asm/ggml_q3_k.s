# matvec_q3_k_avx2: Q3_K weights times a Q8_K vector, AVX2 + FMA + F16C, the weights
# streamed once front to back, prefetched KQ_PREFETCH bytes ahead.
#
# Q3_K (ggml-common.h block_q3_K): {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d}; weight
# 128n + 32j + l (l < 32) has low bits 2j..2j+1 of qs[32n + l] and third bit = bit 4n+j of
# hmask[l]; it is u - 4 with u = low + 4 * that bit (0..7). 16 scales of 6 bits, stored + 32,
# one per 16 weights: low 4 bits from byte i (i < 8) or the high nibble of byte i-8, high 2
# bits = bits 2(i/4).. of byte 8 + i%4 (decoded 8 at a time in general-purpose registers, as
# kq_unpack_q3_k does). Per super-block, as ggml_vec_dot_q3_K_q8_K:
#   isum = sum_s sc[s] * (sum_{e in s} u[e] * q8[e] - 4 * bsums[s])    (exact, i32 lanes)
#   acc += f32(isum lanes) * (yd * d)                                  (8 f32 lanes, FMA)
# 32 weights a step: low bits by a 16-bit shift and AND 3 of one qs load, the third bit by a
# 16-bit shift and AND 4 of one hmask load (what a shift carries across bytes is masked
# off), vpmaddubsw with q8 (pair sums <= 2 * 7 * 128), vpmaddwd by the two sub-blocks'
# scales (vpshufb of the scale words, as ggml_q6_k.s). Model: tests/reference/quant_k.py.
.include "kquant.inc"
.include "kmacros.inc"

.section .rdata
.balign 32, 0
kq3_m03:
    .rept 32
    .byte 0x03
    .endr
kq3_m04:
    .rept 32
    .byte 0x04
    .endr
kq3_w32:
    .rept 16
    .word 32
    .endr
# vpshufb masks on 8 scale words in both lanes: mask i = word 2i (low lane), 2i+1 (high)
kq3_bcast:
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
.balign 8, 0
kq3_q0f: .quad 0x0f0f0f0f0f0f0f0f
kq3_q03: .quad 0x0303030303030303

.section .text
.global matvec_q3_k_avx2

# 32 weights: ymm6 = low 2 bits (already shifted down and masked), ymm7 = hmask shifted so
# the wanted bit is at bit 2 (masked here); q8 at Q8_K offset \y; scale mask \m on \sv.
.macro KQ3_DOT32 y, m, sv
    vpand ymm7, ymm7, ymm4
    vpor ymm6, ymm6, ymm7
    vpmaddubsw ymm6, ymm6, [rbp + \y]
    vpshufb ymm7, \sv, [r11 + \m]
    vpmaddwd ymm6, ymm6, ymm7
    vpaddd ymm1, ymm1, ymm6
.endm

# matvec_q3_k_avx2(rcx = out, rdx = W, r8 = xq, r9d = n, dword [rsp+40] = d): peasm/ggml.py's
# matvec contract (n a multiple of 256, a remainder ignored; xq = n/256 Q8_K blocks).
# Changes rax, rcx, rdx, r8-r11, ymm0-ymm5 (and the upper halves of ymm6-ymm11).
# Frame: 7 pushes, xmm6-xmm11 at [rsp], 16 bytes of padding.
matvec_q3_k_avx2:
    push rbx
    push rsi
    push rdi
    push rbp
    push r12
    push r13
    push r14
    sub rsp, 112
    vmovups [rsp], xmm6
    vmovups [rsp + 16], xmm7
    vmovups [rsp + 32], xmm8
    vmovups [rsp + 48], xmm9
    vmovups [rsp + 64], xmm10
    vmovups [rsp + 80], xmm11
    mov r10, rcx                    # out
    mov ebx, dword ptr [rsp + 112 + 56 + 40]  # rows left
    shr r9d, 8                      # super-blocks per row
    lea r11, [rip + kq3_bcast]
    vmovdqa ymm5, [rip + kq3_m03]
    vmovdqa ymm4, [rip + kq3_m04]
    mov rsi, qword ptr [rip + kq3_q0f]
    mov rdi, qword ptr [rip + kq3_q03]
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
    movzx eax, word ptr [rdx + 108]
    vmovd xmm2, eax
    vcvtph2ps xmm2, xmm2
    vmulss xmm2, xmm2, dword ptr [rbp + Q8K_D]
    vbroadcastss ymm2, xmm2         # yd * d
    # scales: L = bytes 0..7, H = bytes 8..11 (see kq_unpack_q3_k)
    mov r13, qword ptr [rdx + 96]   # L
    mov ecx, dword ptr [rdx + 104]  # H
    mov rax, rcx
    shr rax, 2
    shl rax, 32
    or rax, rcx                     # H | (H >> 2) << 32
    and rax, rdi
    shl rax, 4
    mov r14, r13
    and r14, rsi
    or rax, r14                     # scales 0..7 (+32)
    vmovq xmm3, rax
    mov rax, rcx
    shr rax, 6
    shl rax, 32
    shr rcx, 4
    or rax, rcx                     # (H >> 4) | (H >> 6) << 32
    and rax, rdi
    shl rax, 4
    shr r13, 4
    and r13, rsi
    or rax, r13                     # scales 8..15 (+32)
    vpinsrq xmm3, xmm3, rax, 1
    vpmovzxbw ymm3, xmm3
    vpsubw ymm3, ymm3, [rip + kq3_w32]   # the 16 signed scales
    vpmaddwd ymm1, ymm3, [rbp + Q8K_BSUMS]
    vpslld ymm1, ymm1, 2
    vpxor xmm6, xmm6, xmm6
    vpsubd ymm1, ymm6, ymm1         # isum starts at -4 * sum sc * bsums
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
    vcvtdq2ps ymm1, ymm1
    vfmadd231ps ymm0, ymm1, ymm2
    add rdx, 110
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
    add rsp, 112
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rdi
    pop rsi
    pop rbx
    vzeroupper
    ret

# ----------------------------------------------------------------------------------------
# matvec_q3_k_sse2: the same contract and sums with SSE2 only: 16 quants at a time from one
# qs load (16-bit shift, AND 3) and one hmask load (the bit to bit 2 by a 16-bit shift, AND
# 4, OR), widened to words, times the sub-block's scale (pmullw, |u * sc| <= 7 * 32), q8
# widened, pmaddwd; the scales decoded in general-purpose registers (as the AVX2 body), d by
# KQ_F16_BITS.

.section .rdata
.balign 16, 0
kq3s_m03:
    .rept 16
    .byte 0x03
    .endr
kq3s_m04:
    .rept 16
    .byte 0x04
    .endr
kq3s_w32:
    .rept 8
    .word 32
    .endr

.section .text
.global matvec_q3_k_sse2

# xmm5 = 16 quants u (bytes) of one 16-weight sub-block: widened to words, times the scale =
# word \w of \sreg (pmullw), dotted with the q8 at \y (widened, pmaddwd). Adds to xmm1.
.macro KQ3S_DOT16 y, sreg, w
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

# 16 weights: low bits \sh.. of the qs bytes at block offset \q, bit \b of the hmask bytes at
# \hm; then KQ3S_DOT16 \y, \sreg, \w.
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
    KQ3S_DOT16 \y, \sreg, \w
.endm

# matvec_q3_k_sse2(rcx = out, rdx = W, r8 = xq, r9d = n, dword [rsp+40] = d). Changes rax,
# rcx, rdx, r8-r11, xmm0-xmm5. Frame: 7 pushes, xmm6-xmm13 at [rsp].
matvec_q3_k_sse2:
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
    movdqa xmm12, [rip + kq3s_m03]
    movdqa xmm13, [rip + kq3s_m04]
    mov rsi, qword ptr [rip + kq3_q0f]
    mov rdi, qword ptr [rip + kq3_q03]
.Lrow:
    test ebx, ebx
    jz .Ldone
    xorps xmm0, xmm0                # the row's 4 f32 lanes
    mov rbp, r13
    mov r12d, r9d
    test r12d, r12d
    jz .Lrow_done
.Lblock:
    movzx eax, word ptr [rdx + 108]
    KQ_F16_BITS eax, ecx
    movd xmm2, ecx
    mulss xmm2, dword ptr [rbp + Q8K_D]
    shufps xmm2, xmm2, 0            # yd * d
    mov r14, qword ptr [rdx + 96]   # scales: L = bytes 0..7, H = bytes 8..11
    mov ecx, dword ptr [rdx + 104]
    mov rax, rcx
    shr rax, 2
    shl rax, 32
    or rax, rcx
    and rax, rdi
    shl rax, 4
    mov r11, r14
    and r11, rsi
    or rax, r11                     # scales 0..7 (+32)
    movq xmm3, rax
    mov rax, rcx
    shr rax, 6
    shl rax, 32
    shr rcx, 4
    or rax, rcx
    and rax, rdi
    shl rax, 4
    shr r14, 4
    and r14, rsi
    or rax, r14                     # scales 8..15 (+32)
    movq xmm4, rax
    movdqa xmm5, [rip + kq3s_w32]
    punpcklbw xmm3, xmm11
    psubw xmm3, xmm5                # scales 0..7 as words
    punpcklbw xmm4, xmm11
    psubw xmm4, xmm5                # 8..15
    movdqu xmm5, [rbp + Q8K_BSUMS]
    pmaddwd xmm5, xmm3
    movdqu xmm6, [rbp + Q8K_BSUMS + 16]
    pmaddwd xmm6, xmm4
    paddd xmm5, xmm6
    pslld xmm5, 2
    pxor xmm1, xmm1
    psubd xmm1, xmm5                # isum starts at -4 * sum sc * bsums
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
    cvtdq2ps xmm1, xmm1
    mulps xmm1, xmm2
    addps xmm0, xmm1
    add rdx, 110
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
