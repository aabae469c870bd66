# ggml's float types F32 and F16 (block size 1): dequantize-row (to f32), quantize-row
# (f32 -> F16, the activation format F16 weights pair with) and matvec (F16 weights times
# an F16 vector, as ggml_vec_dot_f16: each product and sum in f32). F32's matvec is
# matvec.s's. Contracts: peasm/ggml.py (the type table's body kinds) and kernels.inc (ABI):
#
#   dequantize_row_<t>_<path>(rcx = out f32*, rdx = row, r8d = n)
#   quantize_row_f16_<path>(rcx = out f16*, rdx = x f32*, r8d = n)
#   matvec_f16_<path>(rcx = out f32*, rdx = W f16*, r8 = x f16*, r9d = n, dword [rsp+40] = d)
#       out[i] = sum_j f32(W[i*n + j]) * f32(x[j]) for i < d, in f32 (several partial sums)
#
# Any n (0 does nothing), unaligned pointers, nothing read or written past the ends. The
# SSE2 bodies convert f16 in integer SSE2 (ggml_cvt.inc), the AVX2 bodies with F16C, and
# both give the same bits for every f16 and every f32 (NaN payloads included). The SSE2
# matvec uses 4 KiB of stack (a tile of x as f32).
.include "kernels.inc"
.include "kmacros.inc"
.include "ggml_cvt.inc"

.section .text
.global dequantize_row_f32_sse2, dequantize_row_f32_avx2
.global dequantize_row_f16_sse2, dequantize_row_f16_avx2
.global quantize_row_f16_sse2, quantize_row_f16_avx2
.global matvec_f16_sse2, matvec_f16_avx2

# dequantize_row_f32_sse2(rcx = out, rdx = row f32*, r8d = n): a copy
dequantize_row_f32_sse2:
    mov r8d, r8d
    lea r9, [r8 * 4]
    mov r10, r9
    and r10, -32
    xor eax, eax
.Lvec:
    cmp rax, r10
    jae .Lone
    movups xmm0, [rdx + rax]
    movups xmm1, [rdx + rax + 16]
    movups [rcx + rax], xmm0
    movups [rcx + rax + 16], xmm1
    add rax, 32
    jmp .Lvec
.Lone:
    cmp rax, r9
    jae .Ldone
    mov r11d, dword ptr [rdx + rax]
    mov dword ptr [rcx + rax], r11d
    add rax, 4
    jmp .Lone
.Ldone:
    ret

# dequantize_row_f32_avx2(rcx = out, rdx = row f32*, r8d = n): a copy
dequantize_row_f32_avx2:
    mov r8d, r8d
    lea r9, [r8 * 4]
    mov r10, r9
    and r10, -64
    xor eax, eax
.Lvec:
    cmp rax, r10
    jae .Lone
    vmovups ymm0, [rdx + rax]
    vmovups ymm1, [rdx + rax + 32]
    vmovups [rcx + rax], ymm0
    vmovups [rcx + rax + 32], ymm1
    add rax, 64
    jmp .Lvec
.Lone:
    cmp rax, r9
    jae .Ldone
    mov r11d, dword ptr [rdx + rax]
    mov dword ptr [rcx + rax], r11d
    add rax, 4
    jmp .Lone
.Ldone:
    vzeroupper
    ret

# dequantize_row_f16_sse2(rcx = out, rdx = row f16*, r8d = n): 8 at a time, then 1
dequantize_row_f16_sse2:
    mov r8d, r8d
    lea r9, [r8 * 2]                  # input bytes
    mov r10, r9
    and r10, -16
    pxor xmm5, xmm5
    xor eax, eax                      # input offset (the output's is twice it)
.Lvec:
    cmp rax, r10
    jae .Lone
    movdqu xmm0, [rdx + rax]
    movdqa xmm1, xmm0
    punpcklwd xmm0, xmm5
    punpckhwd xmm1, xmm5
    GH2F_SSE2 xmm0, xmm2, xmm3, xmm4
    GH2F_SSE2 xmm1, xmm2, xmm3, xmm4
    movups [rcx + rax * 2], xmm0
    movups [rcx + rax * 2 + 16], xmm1
    add rax, 16
    jmp .Lvec
.Lone:
    cmp rax, r9
    jae .Ldone
    movzx r11d, word ptr [rdx + rax]
    movd xmm0, r11d
    GH2F_SSE2 xmm0, xmm2, xmm3, xmm4
    movss dword ptr [rcx + rax * 2], xmm0
    add rax, 2
    jmp .Lone
.Ldone:
    ret

# dequantize_row_f16_avx2(rcx = out, rdx = row f16*, r8d = n): 16 at a time, then 1 (F16C)
dequantize_row_f16_avx2:
    mov r8d, r8d
    lea r9, [r8 * 2]
    mov r10, r9
    and r10, -32
    xor eax, eax
.Lvec:
    cmp rax, r10
    jae .Lone
    vcvtph2ps ymm0, xmmword ptr [rdx + rax]
    vcvtph2ps ymm1, xmmword ptr [rdx + rax + 16]
    vmovups [rcx + rax * 2], ymm0
    vmovups [rcx + rax * 2 + 32], ymm1
    add rax, 32
    jmp .Lvec
.Lone:
    cmp rax, r9
    jae .Ldone
    movzx r11d, word ptr [rdx + rax]
    vmovd xmm0, r11d
    vcvtph2ps xmm0, xmm0
    vmovss dword ptr [rcx + rax * 2], xmm0
    add rax, 2
    jmp .Lone
.Ldone:
    vzeroupper
    ret

# quantize_row_f16_sse2(rcx = out f16*, rdx = x f32*, r8d = n): round to nearest even
# (ggml_cvt.inc GF2H_SSE2), 8 at a time, then 1. Changes xmm0-xmm5 only.
quantize_row_f16_sse2:
    mov r8d, r8d
    mov r9, r8
    and r9, -8
    xor eax, eax                      # element index
.Lvec:
    cmp rax, r9
    jae .Lone
    movups xmm0, [rdx + rax * 4]
    GF2H_SSE2 xmm0, xmm2, xmm3, xmm4, xmm5
    movups xmm1, [rdx + rax * 4 + 16]
    GF2H_SSE2 xmm1, xmm2, xmm3, xmm4, xmm5
    GPACK16_SSE2 xmm0, xmm1
    movdqu [rcx + rax * 2], xmm0
    add rax, 8
    jmp .Lvec
.Lone:
    cmp rax, r8
    jae .Ldone
    movd xmm0, dword ptr [rdx + rax * 4]
    GF2H_SSE2 xmm0, xmm2, xmm3, xmm4, xmm5
    movd r11d, xmm0
    mov word ptr [rcx + rax * 2], r11w
    inc rax
    jmp .Lone
.Ldone:
    ret

# quantize_row_f16_avx2(rcx = out f16*, rdx = x f32*, r8d = n): F16C, rounding 0 (nearest
# even, whatever MXCSR says), 8 at a time, then 1
quantize_row_f16_avx2:
    mov r8d, r8d
    mov r9, r8
    and r9, -8
    xor eax, eax
.Lvec:
    cmp rax, r9
    jae .Lone
    vmovups ymm0, [rdx + rax * 4]
    vcvtps2ph xmmword ptr [rcx + rax * 2], ymm0, 0
    add rax, 8
    jmp .Lvec
.Lone:
    cmp rax, r8
    jae .Ldone
    vmovss xmm0, dword ptr [rdx + rax * 4]
    vcvtps2ph xmm0, xmm0, 0
    vpextrw r11d, xmm0, 0
    mov word ptr [rcx + rax * 2], r11w
    inc rax
    jmp .Lone
.Ldone:
    vzeroupper
    ret

# matvec_f16_sse2(rcx = out, rdx = W f16*, r8 = x f16*, r9d = n, dword [rsp+40] = d)
# SSE2 has no f16 conversion, and converting x again for every row cost half the time: the
# columns go in tiles of 1024; each tile of x is converted once into a stack buffer (f32),
# then every row's segment of the tile (2 KiB, contiguous; rows in order) is converted 8
# at a time (GH2F_MV_SSE2), multiplied and added in two partial sums, then 1 at a time;
# a row's sum over a tile goes to out[i] (the first tile) or is added to it; the next
# row's segment is prefetched meanwhile (rows of a tile are 2n bytes apart). n = 0 writes
# nothing. Measured (2048 x 2048, CPU time): 20 -> 12 ns per 32 weights in cache, 3.4 ->
# 6.0 GB/s streamed.
# frame: rbx, rsi, rdi, r12-r14 pushed; 4128 bytes: the tile buffer at [rsp] ..
# [rsp+4095], xmm6 and xmm7 saved at [rsp+4096] .. [rsp+4127].
matvec_f16_sse2:
    push rbx
    push rsi
    push rdi
    push r12
    push r13
    push r14
    sub rsp, 4136
    movups [rsp + 4096], xmm6
    movups [rsp + 4112], xmm7
    mov r10d, dword ptr [rsp + 4136 + 48 + 40]    # d: rows
    mov r9d, r9d
    lea r12, [r9 + r9]                # bytes per row
    pxor xmm5, xmm5                   # zeros (punpck with it zero-extends)
    xor r11d, r11d                    # the tile's first column
.Ltile:
    cmp r11, r9
    jae .Ldone
    mov rbx, r9
    sub rbx, r11
    mov eax, 1024
    cmp rbx, rax
    cmova rbx, rax                    # the tile's width
    lea r14, [r8 + r11 * 2]
    xor eax, eax
.Lcvt:                                # x's tile -> f32, one at a time (once per tile)
    cmp rax, rbx
    jae .Lrows
    movzx r13d, word ptr [r14 + rax * 2]
    movd xmm0, r13d
    GH2F_MV_SSE2 xmm0, xmm2, xmm3
    movss dword ptr [rsp + rax * 4], xmm0
    inc rax
    jmp .Lcvt
.Lrows:
    mov r13, rbx
    and r13, -8                       # 8 at a time up to here, then 1 at a time
    lea rsi, [rdx + r11 * 2]          # row 0's segment
    xor edi, edi
.Lrow:
    cmp rdi, r10
    jae .Ltile_done
    xorps xmm6, xmm6
    xorps xmm7, xmm7
    lea r14, [rsi + r12]              # the next row's segment, prefetched meanwhile
    xor eax, eax
.Lvec:
    cmp rax, r13
    jae .Lone
    prefetcht0 [r14 + rax * 2]
    movdqu xmm0, [rsi + rax * 2]
    movdqa xmm1, xmm0
    punpcklwd xmm0, xmm5
    punpckhwd xmm1, xmm5
    GH2F_MV_SSE2 xmm0, xmm2, xmm3
    GH2F_MV_SSE2 xmm1, xmm2, xmm3
    mulps xmm0, [rsp + rax * 4]
    mulps xmm1, [rsp + rax * 4 + 16]
    addps xmm6, xmm0
    addps xmm7, xmm1
    add rax, 8
    jmp .Lvec
.Lone:
    cmp rax, rbx
    jae .Lrow_sum
    pxor xmm0, xmm0
    pinsrw xmm0, word ptr [rsi + rax * 2], 0
    GH2F_MV_SSE2 xmm0, xmm2, xmm3
    mulss xmm0, dword ptr [rsp + rax * 4]
    addss xmm7, xmm0
    inc rax
    jmp .Lone
.Lrow_sum:
    addps xmm6, xmm7
    KHSUM_SSE2 xmm6, xmm0
    test r11, r11
    jz 1f
    addss xmm6, dword ptr [rcx + rdi * 4]     # the earlier tiles' sum
1:
    movss dword ptr [rcx + rdi * 4], xmm6
    add rsi, r12
    inc rdi
    jmp .Lrow
.Ltile_done:
    add r11, rbx
    jmp .Ltile
.Ldone:
    movups xmm6, [rsp + 4096]
    movups xmm7, [rsp + 4112]
    add rsp, 4136
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret

# matvec_f16_avx2(rcx = out, rdx = W f16*, r8 = x f16*, r9d = n, dword [rsp+40] = d)
# Rows one after the other; 32 columns per step in 4 partial sums (F16C conversions, FMA),
# then 8, then 1.
matvec_f16_avx2:
    mov r10d, dword ptr [rsp + 40]    # rows left
    mov r9d, r9d
    lea r9, [r9 * 2]                  # row bytes
    push rbx
    mov r11, r9
    and r11, -64
    mov rbx, r9
    and rbx, -16
.Lrow:
    test r10, r10
    jz .Ldone
    vxorps xmm0, xmm0, xmm0
    vxorps xmm1, xmm1, xmm1
    vxorps xmm2, xmm2, xmm2
    vxorps xmm3, xmm3, xmm3
    xor eax, eax
.Lvec32:
    cmp rax, r11
    jae .Lvec8
    vcvtph2ps ymm4, xmmword ptr [rdx + rax]
    vcvtph2ps ymm5, xmmword ptr [r8 + rax]
    vfmadd231ps ymm0, ymm4, ymm5
    vcvtph2ps ymm4, xmmword ptr [rdx + rax + 16]
    vcvtph2ps ymm5, xmmword ptr [r8 + rax + 16]
    vfmadd231ps ymm1, ymm4, ymm5
    vcvtph2ps ymm4, xmmword ptr [rdx + rax + 32]
    vcvtph2ps ymm5, xmmword ptr [r8 + rax + 32]
    vfmadd231ps ymm2, ymm4, ymm5
    vcvtph2ps ymm4, xmmword ptr [rdx + rax + 48]
    vcvtph2ps ymm5, xmmword ptr [r8 + rax + 48]
    vfmadd231ps ymm3, ymm4, ymm5
    add rax, 64
    jmp .Lvec32
.Lvec8:
    cmp rax, rbx
    jae .Lone
    vcvtph2ps ymm4, xmmword ptr [rdx + rax]
    vcvtph2ps ymm5, xmmword ptr [r8 + rax]
    vfmadd231ps ymm0, ymm4, ymm5
    add rax, 16
    jmp .Lvec8
.Lone:                                # VEX.128 writes zero lanes 1..7: they add 0
    cmp rax, r9
    jae .Lrow_done
    vpxor xmm4, xmm4, xmm4
    vpinsrw xmm4, xmm4, word ptr [rdx + rax], 0
    vpxor xmm5, xmm5, xmm5
    vpinsrw xmm5, xmm5, word ptr [r8 + rax], 0
    vcvtph2ps xmm4, xmm4
    vcvtph2ps xmm5, xmm5
    vfmadd231ps ymm1, ymm4, ymm5
    add rax, 2
    jmp .Lone
.Lrow_done:
    vaddps ymm0, ymm0, ymm1
    vaddps ymm2, ymm2, ymm3
    vaddps ymm0, ymm0, ymm2
    KHSUM_AVX ymm0, xmm0, xmm4
    vmovss dword ptr [rcx], xmm0
    add rcx, 4
    add rdx, r9
    dec r10
    jmp .Lrow
.Ldone:
    pop rbx
    vzeroupper
    ret
