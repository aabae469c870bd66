# The K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K): dequantize-row for every type and path, and
# the SSE2 matvec bodies of Q2_K and Q3_K, all through the common unpacked form
# (kquant.inc). Q4_K, Q5_K and Q6_K have their own SSE2 bodies, and every type its own AVX2
# matvec, in ggml_q2_k.s .. ggml_q6_k.s. Entry contracts: peasm/ggml.py (to_float, matvec).
#
# Dot products as ggml's ggml_vec_dot_q*_K_q8_K: the input vector is quantized once to
# Q8_K (ggml_q8_k.s); per super-block, in exact integers,
#   isum = sum_s sc[s] * (sum_{e in s} u[e] * q8[e] - OFF * bsums[s])
#   msum = sum_s mn[s] * bsums[s]
# then out += (yd * d) * f32(isum) - (yd * dmin) * f32(msum) in f32 (tests/reference/
# quant_k.py models it and bounds the rounding). No i16 step can overflow: |u * sc| <= 63 *
# 128 (Q6_K) and u*q8 pair sums <= 2 * 63 * 128; an i32 holds 256 * 8064 * 128.
.include "kquant.inc"
.include "kmacros.inc"

.section .text
.global dequantize_row_q2_k_sse2, dequantize_row_q2_k_avx2
.global dequantize_row_q3_k_sse2, dequantize_row_q3_k_avx2
.global dequantize_row_q4_k_sse2, dequantize_row_q4_k_avx2
.global dequantize_row_q5_k_sse2, dequantize_row_q5_k_avx2
.global dequantize_row_q6_k_sse2, dequantize_row_q6_k_avx2
.global matvec_q2_k_sse2, matvec_q3_k_sse2
.extern kq_unpack_q2_k, kq_unpack_q3_k, kq_unpack_q4_k, kq_unpack_q5_k, kq_unpack_q6_k

# ----------------------------------------------------------------------------------------
# dequantize_row_<type>_{sse2,avx2}(rcx = out f32*, rdx = blocks, r8d = n): n/256 super-
# blocks (n a multiple of 256; a remainder is ignored) to n floats, each weight
# (d * sc) * (u - OFF) - (dmin * mn), every operation rounded to f32 in that order, which
# is gguf-py's dequantize bit for bit (inf/NaN scales give inf/NaN weights, never a fault).
# One body serves both paths: it runs once per token on one row (an embedding), and the
# AVX2 path calls it with the upper ymm state clean (every AVX2 body ends in vzeroupper).
# Changes rax, rcx, rdx, r8-r11, xmm0-xmm5.

dequantize_row_q2_k_sse2:
dequantize_row_q2_k_avx2:
    lea rax, [rip + kq_unpack_q2_k]
    mov r9d, 84
    xor r10d, r10d
    jmp kq_dequantize
dequantize_row_q3_k_sse2:
dequantize_row_q3_k_avx2:
    lea rax, [rip + kq_unpack_q3_k]
    mov r9d, 110
    mov r10d, 4
    jmp kq_dequantize
dequantize_row_q4_k_sse2:
dequantize_row_q4_k_avx2:
    lea rax, [rip + kq_unpack_q4_k]
    mov r9d, 144
    xor r10d, r10d
    jmp kq_dequantize
dequantize_row_q5_k_sse2:
dequantize_row_q5_k_avx2:
    lea rax, [rip + kq_unpack_q5_k]
    mov r9d, 176
    xor r10d, r10d
    jmp kq_dequantize
dequantize_row_q6_k_sse2:
dequantize_row_q6_k_avx2:
    lea rax, [rip + kq_unpack_q6_k]
    mov r9d, 210
    mov r10d, 32
    jmp kq_dequantize

# 4 weights: xmm6 = 4 u as dwords -> out [rbx + off] = (dl * (u - OFF)) - ml. For the types
# without mins ml is +0.0 (0.0 * 0), and x - (+0.0) is x for every x, NaN and -0 included.
.macro KQ_DEQ4 off
    psubd xmm6, xmm5
    cvtdq2ps xmm6, xmm6
    mulps xmm6, xmm0
    subps xmm6, xmm1
    movups [rbx + \off], xmm6
.endm

# kq_dequantize: the above with rax = unpacker, r9d = block bytes, r10d = OFF.
# Frame: 6 pushes, the workspace at [rsp], xmm6 at [rsp + KQ_WS_SIZE], 8 bytes of padding.
kq_dequantize:
    push rbx
    push rsi
    push rdi
    push r12
    push r13
    push r14
    sub rsp, KQ_WS_SIZE + 24
    movups [rsp + KQ_WS_SIZE], xmm6
    mov rbx, rcx                    # out
    mov rsi, rdx                    # block
    mov r12d, r8d
    shr r12d, 8                     # blocks left
    mov r13, rax
    mov r14d, r9d
    movd xmm5, r10d
    pshufd xmm5, xmm5, 0            # OFF in 4 dwords
    pxor xmm4, xmm4
.Lblock:
    test r12d, r12d
    jz .Ldone
    mov rcx, rsi
    mov rdx, rsp
    call r13
    xor edi, edi                    # 16 weights a step
.Lsub:
    mov eax, edi
    shr eax, 3                      # 2 * (sub-block)
    movsx ecx, word ptr [rsp + rax + KQ_SC]
    cvtsi2ss xmm0, ecx
    mulss xmm0, dword ptr [rsp + KQ_D]
    shufps xmm0, xmm0, 0            # dl = d * sc
    movsx ecx, word ptr [rsp + rax + KQ_MN]
    cvtsi2ss xmm1, ecx
    mulss xmm1, dword ptr [rsp + KQ_DMIN]
    shufps xmm1, xmm1, 0            # ml = dmin * mn
    movdqu xmm2, [rsp + rdi]
    movdqa xmm3, xmm2
    punpcklbw xmm2, xmm4            # u 0..7 as words
    punpckhbw xmm3, xmm4            # u 8..15
    movdqa xmm6, xmm2
    punpcklwd xmm6, xmm4
    KQ_DEQ4 0
    movdqa xmm6, xmm2
    punpckhwd xmm6, xmm4
    KQ_DEQ4 16
    movdqa xmm6, xmm3
    punpcklwd xmm6, xmm4
    KQ_DEQ4 32
    movdqa xmm6, xmm3
    punpckhwd xmm6, xmm4
    KQ_DEQ4 48
    add rbx, 64
    add edi, 16
    cmp edi, 256
    jb .Lsub
    add rsi, r14
    dec r12d
    jmp .Lblock
.Ldone:
    movups xmm6, [rsp + KQ_WS_SIZE]
    add rsp, KQ_WS_SIZE + 24
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret

# ----------------------------------------------------------------------------------------
# matvec_<type>_sse2(rcx = out, rdx = W, r8 = xq, r9d = n, dword [rsp+40] = d): out[i] =
# dot(row i of W, xq), i < d; a row is n/256 super-blocks (n a multiple of 256; a remainder
# is ignored), xq holds n/256 Q8_K blocks. Changes rax, rcx, rdx, r8-r11, xmm0-xmm5.
# (SSE2 has no byte multiply: quants and q8 are widened to i16, u*sc by pmullw, then
# pmaddwd with q8.)

matvec_q2_k_sse2:
    lea rax, [rip + kq_unpack_q2_k]
    mov r10d, 84
    xor r11d, r11d
    jmp kq_matvec_sse2
matvec_q3_k_sse2:
    lea rax, [rip + kq_unpack_q3_k]
    mov r10d, 110
    mov r11d, 2                     # OFF = 4 = 1 << 2
    jmp kq_matvec_sse2

# The frame of kq_matvec_sse2: 8 pushes, then the workspace at [rsp], xmm6..xmm8 at
# [rsp + KQ_WS_SIZE], 8 bytes of padding; d (the 5th argument) above it all.
.equ KQM_XMM, KQ_WS_SIZE
.equ KQM_FRAME, KQ_WS_SIZE + 56
.equ KQM_ARG_D, KQM_FRAME + 64 + 40

# After the workspace is filled: the super-block's value into xmm7 (the row's sum), for the
# Q8_K block at rbp. xmm0 = isum lanes, xmm1 = msum lanes (i32) on entry. Changes xmm0-xmm2.
.macro KQ_BLOCK_TAIL_SSE2
    movdqa xmm2, xmm0
    punpckldq xmm0, xmm1            # i0 m0 i1 m1
    punpckhdq xmm2, xmm1            # i2 m2 i3 m3
    paddd xmm0, xmm2
    movhlps xmm2, xmm0
    paddd xmm0, xmm2                # isum msum . .
    cvtdq2ps xmm0, xmm0
    movss xmm1, dword ptr [rsp + KQ_D]
    movss xmm2, dword ptr [rsp + KQ_DMIN]
    unpcklps xmm1, xmm2             # d dmin
    movss xmm2, dword ptr [rbp + Q8K_D]
    shufps xmm2, xmm2, 0
    mulps xmm1, xmm2                # yd*d  yd*dmin
    mulps xmm0, xmm1
    movaps xmm1, xmm0
    shufps xmm1, xmm1, 0x55
    subss xmm0, xmm1
    addss xmm7, xmm0
.endm

# kq_matvec_sse2: the matvec arguments, plus rax = unpacker, r10d = block
# bytes, r11d = log2(OFF), or 0 for the types whose OFF is 0 (no OFF term then).
kq_matvec_sse2:
    push rbx
    push rsi
    push rdi
    push rbp
    push r12
    push r13
    push r14
    push r15
    sub rsp, KQM_FRAME
    movups [rsp + KQM_XMM], xmm6
    movups [rsp + KQM_XMM + 16], xmm7
    movups [rsp + KQM_XMM + 32], xmm8
    mov rbx, rcx                    # out
    mov rcx, rdx                    # W cursor (the unpackers keep rcx, rdx)
    mov rdi, r8                     # xq
    mov r12d, r9d
    shr r12d, 8                     # super-blocks per row
    mov r13d, dword ptr [rsp + KQM_ARG_D]   # rows left
    mov r14, rax
    mov r15d, r10d
    movd xmm8, r11d                 # shift count: OFF = 1 << r11d
    mov rdx, rsp
    pxor xmm6, xmm6
.Lrow:
    test r13d, r13d
    jz .Ldone
    xorps xmm7, xmm7
    mov rbp, rdi
    mov esi, r12d
.Lblock:
    test esi, esi
    jz .Lrow_done
    call r14
    pxor xmm0, xmm0
    xor eax, eax                    # 16 u bytes (and q8) a step
    xor r8d, r8d                    # 2 * sub-block
.Lsub:
    movd xmm1, dword ptr [rsp + r8 + KQ_SC]
    pshuflw xmm1, xmm1, 0
    punpcklqdq xmm1, xmm1           # sc in 8 words
    movdqu xmm2, [rsp + rax]
    movdqa xmm3, xmm2
    punpcklbw xmm2, xmm6
    punpckhbw xmm3, xmm6
    pmullw xmm2, xmm1
    pmullw xmm3, xmm1
    movdqu xmm4, [rbp + rax + Q8K_QS]
    movdqa xmm5, xmm4
    punpcklbw xmm4, xmm4
    psraw xmm4, 8
    punpckhbw xmm5, xmm5
    psraw xmm5, 8
    pmaddwd xmm2, xmm4
    pmaddwd xmm3, xmm5
    paddd xmm0, xmm2
    paddd xmm0, xmm3
    add r8d, 2
    add eax, 16
    cmp eax, 256
    jb .Lsub
    movdqu xmm1, [rsp + KQ_SC]      # OFF * sum sc * bsums
    movdqu xmm2, [rbp + Q8K_BSUMS]
    pmaddwd xmm1, xmm2
    movdqu xmm3, [rsp + KQ_SC + 16]
    movdqu xmm4, [rbp + Q8K_BSUMS + 16]
    pmaddwd xmm3, xmm4
    paddd xmm1, xmm3
    pslld xmm1, xmm8
    movd r9d, xmm8
    test r9d, r9d
    jz .Lno_off
    psubd xmm0, xmm1
.Lno_off:
    movdqu xmm1, [rsp + KQ_MN]      # sum mn * bsums
    pmaddwd xmm1, xmm2
    movdqu xmm3, [rsp + KQ_MN + 16]
    pmaddwd xmm3, xmm4
    paddd xmm1, xmm3
    KQ_BLOCK_TAIL_SSE2
    add rbp, Q8K_BYTES
    add rcx, r15
    dec esi
    jmp .Lblock
.Lrow_done:
    movss dword ptr [rbx], xmm7
    add rbx, 4
    dec r13d
    jmp .Lrow
.Ldone:
    movups xmm6, [rsp + KQM_XMM]
    movups xmm7, [rsp + KQM_XMM + 16]
    movups xmm8, [rsp + KQM_XMM + 32]
    add rsp, KQM_FRAME
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rdi
    pop rsi
    pop rbx
    ret
