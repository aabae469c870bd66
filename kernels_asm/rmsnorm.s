# rmsnorm: out = weight * (x * s), s = 1 / sqrt(sum(x^2) / n + eps), as llama2.c computes it
# (an f32 sum of squares, then one division and one square root). out may equal x.
.include "kernels.inc"
.include "kmacros.inc"

.section .text
.global rmsnorm_sse2, rmsnorm_avx2
.extern kc_one

# rmsnorm_sse2(rcx = out, rdx = x, r8 = weight, r9d = n, float [rsp+40] = eps)
rmsnorm_sse2:
    mov r9d, r9d
    test r9, r9
    jz .Ldone
    cvtsi2ss xmm5, r9                 # n as a float
    lea r10, [r9 * 4]                 # bytes
    mov r11, r10
    and r11, -32                      # 8 at a time
    mov r9, r10
    and r9, -16                       # then 4, then 1
    xorps xmm0, xmm0
    xorps xmm1, xmm1
    xor eax, eax
.Lsq8:
    cmp rax, r11
    jae .Lsq4
    movups xmm2, [rdx + rax]
    movups xmm3, [rdx + rax + 16]
    mulps xmm2, xmm2
    mulps xmm3, xmm3
    addps xmm0, xmm2
    addps xmm1, xmm3
    add rax, 32
    jmp .Lsq8
.Lsq4:
    cmp rax, r9
    jae .Lsq_fold
    movups xmm2, [rdx + rax]
    mulps xmm2, xmm2
    addps xmm0, xmm2
    add rax, 16
.Lsq_fold:
    addps xmm0, xmm1
    KHSUM_SSE2 xmm0, xmm1
.Lsq1:
    cmp rax, r10
    jae .Lscale
    movss xmm2, dword ptr [rdx + rax]
    mulss xmm2, xmm2
    addss xmm0, xmm2
    add rax, 4
    jmp .Lsq1
.Lscale:
    divss xmm0, xmm5
    addss xmm0, dword ptr [rsp + 40]  # + eps
    sqrtss xmm0, xmm0
    movss xmm1, dword ptr [rip + kc_one]
    divss xmm1, xmm0
    shufps xmm1, xmm1, 0              # s in every lane
    xor eax, eax
.Lout4:
    cmp rax, r9
    jae .Lout1
    movups xmm2, [rdx + rax]
    movups xmm3, [r8 + rax]
    mulps xmm2, xmm1
    mulps xmm2, xmm3
    movups [rcx + rax], xmm2
    add rax, 16
    jmp .Lout4
.Lout1:
    cmp rax, r10
    jae .Ldone
    movss xmm2, dword ptr [rdx + rax]
    mulss xmm2, xmm1
    mulss xmm2, dword ptr [r8 + rax]
    movss dword ptr [rcx + rax], xmm2
    add rax, 4
    jmp .Lout1
.Ldone:
    ret

# rmsnorm_avx2(rcx = out, rdx = x, r8 = weight, r9d = n, float [rsp+40] = eps)
rmsnorm_avx2:
    mov r9d, r9d
    test r9, r9
    jz .Ldone
    vcvtsi2ss xmm5, xmm5, r9
    lea r10, [r9 * 4]
    mov r11, r10
    and r11, -64                      # 16 at a time
    mov r9, r10
    and r9, -32                       # then 8, then 1
    vxorps xmm0, xmm0, xmm0
    vxorps xmm1, xmm1, xmm1
    xor eax, eax
.Lsq16:
    cmp rax, r11
    jae .Lsq8
    vmovups ymm2, [rdx + rax]
    vmovups ymm3, [rdx + rax + 32]
    vfmadd231ps ymm0, ymm2, ymm2
    vfmadd231ps ymm1, ymm3, ymm3
    add rax, 64
    jmp .Lsq16
.Lsq8:
    cmp rax, r9
    jae .Lsq_fold
    vmovups ymm2, [rdx + rax]
    vfmadd231ps ymm0, ymm2, ymm2
    add rax, 32
.Lsq_fold:
    vaddps ymm0, ymm0, ymm1
    KHSUM_AVX ymm0, xmm0, xmm1
.Lsq1:
    cmp rax, r10
    jae .Lscale
    vmovss xmm2, dword ptr [rdx + rax]
    vfmadd231ss xmm0, xmm2, xmm2
    add rax, 4
    jmp .Lsq1
.Lscale:
    vdivss xmm0, xmm0, xmm5
    vaddss xmm0, xmm0, dword ptr [rsp + 40]
    vsqrtss xmm0, xmm0, xmm0
    vmovss xmm1, dword ptr [rip + kc_one]
    vdivss xmm1, xmm1, xmm0
    vbroadcastss ymm1, xmm1
    xor eax, eax
.Lout8:
    cmp rax, r9
    jae .Lout1
    vmulps ymm2, ymm1, [rdx + rax]
    vmulps ymm2, ymm2, [r8 + rax]
    vmovups [rcx + rax], ymm2
    add rax, 32
    jmp .Lout8
.Lout1:
    cmp rax, r10
    jae .Ldone
    vmulss xmm2, xmm1, dword ptr [rdx + rax]
    vmulss xmm2, xmm2, dword ptr [r8 + rax]
    vmovss dword ptr [rcx + rax], xmm2
    add rax, 4
    jmp .Lout1
.Ldone:
    vzeroupper
    ret
