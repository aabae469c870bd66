# ggml's BF16 (bfloat16, block size 1: the top 16 bits of an f32): dequantize-row (a
# shift), quantize-row (f32 -> BF16 as ggml_compute_fp32_to_bf16: round to nearest even,
# NaN kept and made quiet; ggml_cvt.inc) and matvec (BF16 weights times a BF16 vector, as
# ggml_vec_dot_bf16: products and sums in f32). Contracts as ggml_f16.s's:
#
#   dequantize_row_bf16_<path>(rcx = out f32*, rdx = row bf16*, r8d = n)
#   quantize_row_bf16_<path>(rcx = out bf16*, rdx = x f32*, r8d = n)
#   matvec_bf16_<path>(rcx = out f32*, rdx = W bf16*, r8 = x bf16*, r9d = n, dword [rsp+40] = d)
#
# Any n, unaligned pointers, nothing read or written past the ends; only xmm0-xmm5 change.
.include "kernels.inc"
.include "kmacros.inc"
.include "ggml_cvt.inc"

.section .text
.global dequantize_row_bf16_sse2, dequantize_row_bf16_avx2
.global quantize_row_bf16_sse2, quantize_row_bf16_avx2
.global matvec_bf16_sse2, matvec_bf16_avx2

# dequantize_row_bf16_sse2(rcx = out, rdx = row, r8d = n): each word into the top half of
# a zero dword (punpck with zeros below), 8 at a time, then 1
dequantize_row_bf16_sse2:
    mov r8d, r8d
    lea r9, [r8 * 2]
    mov r10, r9
    and r10, -16
    xor eax, eax
.Lvec:
    cmp rax, r10
    jae .Lone
    movdqu xmm2, [rdx + rax]
    pxor xmm0, xmm0
    pxor xmm1, xmm1
    punpcklwd xmm0, xmm2
    punpckhwd xmm1, xmm2
    movups [rcx + rax * 2], xmm0
    movups [rcx + rax * 2 + 16], xmm1
    add rax, 16
    jmp .Lvec
.Lone:
    cmp rax, r9
    jae .Ldone
    movzx r11d, word ptr [rdx + rax]
    shl r11d, 16
    mov dword ptr [rcx + rax * 2], r11d
    add rax, 2
    jmp .Lone
.Ldone:
    ret

# dequantize_row_bf16_avx2(rcx = out, rdx = row, r8d = n): zero-extend, shift; 8, then 1
dequantize_row_bf16_avx2:
    mov r8d, r8d
    lea r9, [r8 * 2]
    mov r10, r9
    and r10, -16
    xor eax, eax
.Lvec:
    cmp rax, r10
    jae .Lone
    vpmovzxwd ymm0, xmmword ptr [rdx + rax]
    vpslld ymm0, ymm0, 16
    vmovups [rcx + rax * 2], ymm0
    add rax, 16
    jmp .Lvec
.Lone:
    cmp rax, r9
    jae .Ldone
    movzx r11d, word ptr [rdx + rax]
    shl r11d, 16
    mov dword ptr [rcx + rax * 2], r11d
    add rax, 2
    jmp .Lone
.Ldone:
    vzeroupper
    ret

# quantize_row_bf16_sse2(rcx = out bf16*, rdx = x f32*, r8d = n): 8 at a time, then 1
quantize_row_bf16_sse2:
    mov r8d, r8d
    mov r9, r8
    and r9, -8
    xor eax, eax
.Lvec:
    cmp rax, r9
    jae .Lone
    movups xmm0, [rdx + rax * 4]
    GF2BF_SSE2 xmm0, xmm2, xmm3
    movups xmm1, [rdx + rax * 4 + 16]
    GF2BF_SSE2 xmm1, xmm2, xmm3
    GPACK16_SSE2 xmm0, xmm1
    movdqu [rcx + rax * 2], xmm0
    add rax, 8
    jmp .Lvec
.Lone:
    cmp rax, r8
    jae .Ldone
    movd xmm0, dword ptr [rdx + rax * 4]
    GF2BF_SSE2 xmm0, xmm2, xmm3
    movd r11d, xmm0
    mov word ptr [rcx + rax * 2], r11w
    inc rax
    jmp .Lone
.Ldone:
    ret

# quantize_row_bf16_avx2(rcx = out bf16*, rdx = x f32*, r8d = n): 8 at a time, then 1
quantize_row_bf16_avx2:
    mov r8d, r8d
    mov r9, r8
    and r9, -8
    xor eax, eax
.Lvec:
    cmp rax, r9
    jae .Lone
    vmovups ymm0, [rdx + rax * 4]
    GF2BF_AVX2 ymm0, ymm2, ymm3
    vextracti128 xmm1, ymm0, 1
    vpackusdw xmm0, xmm0, xmm1        # values <= 0xffff: no saturation
    vmovdqu [rcx + rax * 2], xmm0
    add rax, 8
    jmp .Lvec
.Lone:
    cmp rax, r8
    jae .Ldone
    vmovd xmm0, dword ptr [rdx + rax * 4]
    GF2BF_AVX2 ymm0, ymm2, ymm3
    vmovd r11d, xmm0
    mov word ptr [rcx + rax * 2], r11w
    inc rax
    jmp .Lone
.Ldone:
    vzeroupper
    ret

# matvec_bf16_sse2(rcx = out, rdx = W bf16*, r8 = x bf16*, r9d = n, dword [rsp+40] = d)
# Rows one after the other; 8 columns per step in two partial sums, then 1 at a time.
matvec_bf16_sse2:
    mov r10d, dword ptr [rsp + 40]    # rows left
    mov r9d, r9d
    lea r9, [r9 * 2]                  # row bytes
    mov r11, r9
    and r11, -16
.Lrow:
    test r10, r10
    jz .Ldone
    xorps xmm4, xmm4
    xorps xmm5, xmm5
    xor eax, eax
.Lvec:
    cmp rax, r11
    jae .Lone
    movdqu xmm2, [rdx + rax]
    pxor xmm0, xmm0
    pxor xmm1, xmm1
    punpcklwd xmm0, xmm2
    punpckhwd xmm1, xmm2
    movdqu xmm3, [r8 + rax]
    pxor xmm2, xmm2
    punpcklwd xmm2, xmm3
    mulps xmm0, xmm2
    addps xmm4, xmm0
    pxor xmm2, xmm2
    punpckhwd xmm2, xmm3
    mulps xmm1, xmm2
    addps xmm5, xmm1
    add rax, 16
    jmp .Lvec
.Lone:
    cmp rax, r9
    jae .Lrow_done
    pxor xmm0, xmm0
    pinsrw xmm0, word ptr [rdx + rax], 1
    pxor xmm1, xmm1
    pinsrw xmm1, word ptr [r8 + rax], 1
    mulss xmm0, xmm1
    addss xmm5, xmm0
    add rax, 2
    jmp .Lone
.Lrow_done:
    addps xmm4, xmm5
    KHSUM_SSE2 xmm4, xmm0
    movss dword ptr [rcx], xmm4
    add rcx, 4
    add rdx, r9
    dec r10
    jmp .Lrow
.Ldone:
    ret

# matvec_bf16_avx2(rcx = out, rdx = W bf16*, r8 = x bf16*, r9d = n, dword [rsp+40] = d)
# Rows one after the other; 16 columns per step in 2 partial sums (FMA), then 8, then 1.
# Software prefetch 2 KiB ahead (as the block types, ggml_qmacros.inc GPREFETCH): measured
# streamed 2048x2048, 14-15 -> 19-20 GB/s (F16's and the SSE2 bodies': no gain, none there).
matvec_bf16_avx2:
    mov r10d, dword ptr [rsp + 40]
    mov r9d, r9d
    lea r9, [r9 * 2]
    mov r11, r9
    and r11, -32
.Lrow:
    test r10, r10
    jz .Ldone
    vxorps xmm0, xmm0, xmm0
    vxorps xmm1, xmm1, xmm1
    xor eax, eax
.Lvec16:
    cmp rax, r11
    jae .Lvec8
    prefetcht0 [rdx + rax + 2048]
    vpmovzxwd ymm2, xmmword ptr [rdx + rax]
    vpmovzxwd ymm3, xmmword ptr [r8 + rax]
    vpslld ymm2, ymm2, 16
    vpslld ymm3, ymm3, 16
    vfmadd231ps ymm0, ymm2, ymm3
    vpmovzxwd ymm4, xmmword ptr [rdx + rax + 16]
    vpmovzxwd ymm5, xmmword ptr [r8 + rax + 16]
    vpslld ymm4, ymm4, 16
    vpslld ymm5, ymm5, 16
    vfmadd231ps ymm1, ymm4, ymm5
    add rax, 32
    jmp .Lvec16
.Lvec8:
    mov r11, r9
    and r11, -16
    cmp rax, r11
    jae .Lone
    vpmovzxwd ymm2, xmmword ptr [rdx + rax]
    vpmovzxwd ymm3, xmmword ptr [r8 + rax]
    vpslld ymm2, ymm2, 16
    vpslld ymm3, ymm3, 16
    vfmadd231ps ymm0, ymm2, ymm3
    add rax, 16
.Lone:                                # VEX.128 writes zero lanes 1..7: they add 0
    cmp rax, r9
    jae .Lrow_done
    vpxor xmm2, xmm2, xmm2
    vpinsrw xmm2, xmm2, word ptr [rdx + rax], 1
    vpxor xmm3, xmm3, xmm3
    vpinsrw xmm3, xmm3, word ptr [r8 + rax], 1
    vfmadd231ps ymm1, ymm2, ymm3
    add rax, 2
    jmp .Lone
.Lrow_done:
    mov r11, r9
    and r11, -32
    vaddps ymm0, ymm0, ymm1
    KHSUM_AVX ymm0, xmm0, xmm4
    vmovss dword ptr [rcx], xmm0
    add rcx, 4
    add rdx, r9
    dec r10
    jmp .Lrow
.Ldone:
    vzeroupper
    ret
