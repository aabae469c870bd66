# The K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K): dequantize-row for every type and path,
# through the common unpacked form (kquant.inc, ggml_kunpack.s). The matvecs, SSE2 and AVX2,
# are in ggml_q2_k.s .. ggml_q6_k.s, one file per type; their dot products are ggml's
# ggml_vec_dot_q*_K_q8_K against the input quantized once to Q8_K (ggml_q8_k.s):
#   isum = sum_s sc[s] * (sum_{e in s} u[e] * q8[e] - OFF * bsums[s])
#   msum = sum_s mn[s] * bsums[s]
#   out += (yd * d) * f32(isum) - (yd * dmin) * f32(msum)
# (tests/reference/quant_k.py models it and bounds the rounding).
.include "kquant.inc"

.section .text
.global dequantize_row_q2_k_sse2, dequantize_row_q2_k_avx2
.global dequantize_row_q3_k_sse2, dequantize_row_q3_k_avx2
.global dequantize_row_q4_k_sse2, dequantize_row_q4_k_avx2
.global dequantize_row_q5_k_sse2, dequantize_row_q5_k_avx2
.global dequantize_row_q6_k_sse2, dequantize_row_q6_k_avx2
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
