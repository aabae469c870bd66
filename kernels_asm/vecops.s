# Small vector operations: add (residual connections), scale, axpy and dot (attention).
.include "kernels.inc"
.include "kmacros.inc"

.section .text
.global add_sse2, add_avx2, scale_sse2, scale_avx2, axpy_sse2, axpy_avx2, dot_sse2, dot_avx2

# add_sse2(rcx = dst, rdx = src, r8d = n): dst += src
add_sse2:
    mov r8d, r8d
    lea r9, [r8 * 4]
    mov r10, r9
    and r10, -16
    xor eax, eax
.Lvec:
    cmp rax, r10
    jae .Lone
    movups xmm0, [rcx + rax]
    movups xmm1, [rdx + rax]
    addps xmm0, xmm1
    movups [rcx + rax], xmm0
    add rax, 16
    jmp .Lvec
.Lone:
    cmp rax, r9
    jae .Ldone
    movss xmm0, dword ptr [rcx + rax]
    addss xmm0, dword ptr [rdx + rax]
    movss dword ptr [rcx + rax], xmm0
    add rax, 4
    jmp .Lone
.Ldone:
    ret

# add_avx2(rcx = dst, rdx = src, r8d = n): dst += src
add_avx2:
    mov r8d, r8d
    lea r9, [r8 * 4]
    mov r10, r9
    and r10, -32
    xor eax, eax
.Lvec:
    cmp rax, r10
    jae .Lone
    vmovups ymm0, [rcx + rax]
    vaddps ymm0, ymm0, [rdx + rax]
    vmovups [rcx + rax], ymm0
    add rax, 32
    jmp .Lvec
.Lone:
    cmp rax, r9
    jae .Ldone
    vmovss xmm0, dword ptr [rcx + rax]
    vaddss xmm0, xmm0, dword ptr [rdx + rax]
    vmovss dword ptr [rcx + rax], xmm0
    add rax, 4
    jmp .Lone
.Ldone:
    vzeroupper
    ret

# scale_sse2(rcx = x, edx = n, xmm2 = s): x *= s
scale_sse2:
    mov edx, edx
    lea r9, [rdx * 4]
    mov r10, r9
    and r10, -16
    shufps xmm2, xmm2, 0
    xor eax, eax
.Lvec:
    cmp rax, r10
    jae .Lone
    movups xmm0, [rcx + rax]
    mulps xmm0, xmm2
    movups [rcx + rax], xmm0
    add rax, 16
    jmp .Lvec
.Lone:
    cmp rax, r9
    jae .Ldone
    movss xmm0, dword ptr [rcx + rax]
    mulss xmm0, xmm2
    movss dword ptr [rcx + rax], xmm0
    add rax, 4
    jmp .Lone
.Ldone:
    ret

# scale_avx2(rcx = x, edx = n, xmm2 = s): x *= s
scale_avx2:
    mov edx, edx
    lea r9, [rdx * 4]
    mov r10, r9
    and r10, -32
    vbroadcastss ymm2, xmm2
    xor eax, eax
.Lvec:
    cmp rax, r10
    jae .Lone
    vmulps ymm0, ymm2, [rcx + rax]
    vmovups [rcx + rax], ymm0
    add rax, 32
    jmp .Lvec
.Lone:
    cmp rax, r9
    jae .Ldone
    vmulss xmm0, xmm2, dword ptr [rcx + rax]
    vmovss dword ptr [rcx + rax], xmm0
    add rax, 4
    jmp .Lone
.Ldone:
    vzeroupper
    ret

# axpy_sse2(rcx = y, rdx = x, r8d = n, xmm3 = a): y += a * x
axpy_sse2:
    mov r8d, r8d
    lea r9, [r8 * 4]
    mov r10, r9
    and r10, -16
    shufps xmm3, xmm3, 0
    xor eax, eax
.Lvec:
    cmp rax, r10
    jae .Lone
    movups xmm0, [rdx + rax]
    movups xmm1, [rcx + rax]
    mulps xmm0, xmm3
    addps xmm0, xmm1
    movups [rcx + rax], xmm0
    add rax, 16
    jmp .Lvec
.Lone:
    cmp rax, r9
    jae .Ldone
    movss xmm0, dword ptr [rdx + rax]
    mulss xmm0, xmm3
    addss xmm0, dword ptr [rcx + rax]
    movss dword ptr [rcx + rax], xmm0
    add rax, 4
    jmp .Lone
.Ldone:
    ret

# axpy_avx2(rcx = y, rdx = x, r8d = n, xmm3 = a): y += a * x (one rounding: FMA)
axpy_avx2:
    mov r8d, r8d
    lea r9, [r8 * 4]
    mov r10, r9
    and r10, -32
    vbroadcastss ymm3, xmm3
    xor eax, eax
.Lvec:
    cmp rax, r10
    jae .Lone
    vmovups ymm0, [rcx + rax]
    vfmadd231ps ymm0, ymm3, [rdx + rax]
    vmovups [rcx + rax], ymm0
    add rax, 32
    jmp .Lvec
.Lone:
    cmp rax, r9
    jae .Ldone
    vmovss xmm0, dword ptr [rcx + rax]
    vfmadd231ss xmm0, xmm3, dword ptr [rdx + rax]
    vmovss dword ptr [rcx + rax], xmm0
    add rax, 4
    jmp .Lone
.Ldone:
    vzeroupper
    ret

# dot_sse2(rcx = a, rdx = b, r8d = n) -> xmm0 = sum a*b (two 4-lane partial sums)
dot_sse2:
    mov r8d, r8d
    lea r9, [r8 * 4]
    mov r10, r9
    and r10, -32
    mov r11, r9
    and r11, -16
    xorps xmm0, xmm0
    xorps xmm1, xmm1
    xor eax, eax
.Lvec8:
    cmp rax, r10
    jae .Lvec4
    movups xmm2, [rcx + rax]
    movups xmm3, [rdx + rax]
    movups xmm4, [rcx + rax + 16]
    movups xmm5, [rdx + rax + 16]
    mulps xmm2, xmm3
    mulps xmm4, xmm5
    addps xmm0, xmm2
    addps xmm1, xmm4
    add rax, 32
    jmp .Lvec8
.Lvec4:
    cmp rax, r11
    jae .Lfold
    movups xmm2, [rcx + rax]
    movups xmm3, [rdx + rax]
    mulps xmm2, xmm3
    addps xmm0, xmm2
    add rax, 16
.Lfold:
    addps xmm0, xmm1
    KHSUM_SSE2 xmm0, xmm1
.Lone:
    cmp rax, r9
    jae .Ldone
    movss xmm2, dword ptr [rcx + rax]
    mulss xmm2, dword ptr [rdx + rax]
    addss xmm0, xmm2
    add rax, 4
    jmp .Lone
.Ldone:
    ret

# dot_avx2(rcx = a, rdx = b, r8d = n) -> xmm0 = sum a*b (two 8-lane partial sums, FMA)
dot_avx2:
    mov r8d, r8d
    lea r9, [r8 * 4]
    mov r10, r9
    and r10, -64
    mov r11, r9
    and r11, -32
    vxorps xmm0, xmm0, xmm0
    vxorps xmm1, xmm1, xmm1
    xor eax, eax
.Lvec16:
    cmp rax, r10
    jae .Lvec8
    vmovups ymm2, [rcx + rax]
    vmovups ymm3, [rcx + rax + 32]
    vfmadd231ps ymm0, ymm2, [rdx + rax]
    vfmadd231ps ymm1, ymm3, [rdx + rax + 32]
    add rax, 64
    jmp .Lvec16
.Lvec8:
    cmp rax, r11
    jae .Lfold
    vmovups ymm2, [rcx + rax]
    vfmadd231ps ymm0, ymm2, [rdx + rax]
    add rax, 32
.Lfold:
    vaddps ymm0, ymm0, ymm1
    KHSUM_AVX ymm0, xmm0, xmm1
.Lone:
    cmp rax, r9
    jae .Ldone
    vmovss xmm2, dword ptr [rcx + rax]
    vfmadd231ss xmm0, xmm2, dword ptr [rdx + rax]
    add rax, 4
    jmp .Lone
.Ldone:
    vzeroupper
    ret
