# argmax: the index of the first maximum (numpy's rule). Two passes: the maximum value,
# then the first element equal to it (x must hold no NaN; -0 and +0 count as equal).
.include "kernels.inc"

.section .text
.global argmax_sse2, argmax_avx2

# argmax_sse2(rcx = x, edx = n) -> eax (0 when n = 0)
argmax_sse2:
    mov edx, edx
    xor eax, eax
    test rdx, rdx
    jz .Ldone
    lea r9, [rdx * 4]
    mov r10, r9
    and r10, -16
    movss xmm0, dword ptr [rcx]
    shufps xmm0, xmm0, 0
.Lmax4:
    cmp rax, r10
    jae .Lmax_fold
    movups xmm1, [rcx + rax]
    maxps xmm0, xmm1
    add rax, 16
    jmp .Lmax4
.Lmax_fold:
    movhlps xmm1, xmm0
    maxps xmm0, xmm1
    movaps xmm1, xmm0
    shufps xmm1, xmm1, 0x55
    maxss xmm0, xmm1
.Lmax1:
    cmp rax, r9
    jae .Lfind
    maxss xmm0, dword ptr [rcx + rax]
    add rax, 4
    jmp .Lmax1
.Lfind:
    shufps xmm0, xmm0, 0
    xor eax, eax
.Lfind4:
    cmp rax, r10
    jae .Lfind1
    movups xmm1, [rcx + rax]
    cmpeqps xmm1, xmm0
    movmskps edx, xmm1
    test edx, edx
    jnz .Lfound
    add rax, 16
    jmp .Lfind4
.Lfind1:
    cmp rax, r9
    jae .Lnone
    ucomiss xmm0, dword ptr [rcx + rax]
    je .Lfound1
    add rax, 4
    jmp .Lfind1
.Lfound:
    bsf edx, edx
    shr rax, 2
    add eax, edx
    ret
.Lfound1:
    shr rax, 2
    ret
.Lnone:                               # only with a NaN in x
    xor eax, eax
.Ldone:
    ret

# argmax_avx2(rcx = x, edx = n) -> eax (0 when n = 0)
argmax_avx2:
    mov edx, edx
    xor eax, eax
    test rdx, rdx
    jz .Ldone
    lea r9, [rdx * 4]
    mov r10, r9
    and r10, -32
    vbroadcastss ymm0, dword ptr [rcx]
.Lmax8:
    cmp rax, r10
    jae .Lmax_fold
    vmaxps ymm0, ymm0, [rcx + rax]
    add rax, 32
    jmp .Lmax8
.Lmax_fold:
    vextractf128 xmm1, ymm0, 1
    vmaxps xmm0, xmm0, xmm1
    vmovhlps xmm1, xmm1, xmm0
    vmaxps xmm0, xmm0, xmm1
    vmovshdup xmm1, xmm0
    vmaxss xmm0, xmm0, xmm1
.Lmax1:
    cmp rax, r9
    jae .Lfind
    vmaxss xmm0, xmm0, dword ptr [rcx + rax]
    add rax, 4
    jmp .Lmax1
.Lfind:
    vbroadcastss ymm0, xmm0
    xor eax, eax
.Lfind8:
    cmp rax, r10
    jae .Lfind1
    vcmpeqps ymm1, ymm0, [rcx + rax]
    vmovmskps edx, ymm1
    test edx, edx
    jnz .Lfound
    add rax, 32
    jmp .Lfind8
.Lfind1:
    cmp rax, r9
    jae .Lnone
    vucomiss xmm0, dword ptr [rcx + rax]
    je .Lfound1
    add rax, 4
    jmp .Lfind1
.Lfound:
    bsf edx, edx
    shr rax, 2
    add eax, edx
    vzeroupper
    ret
.Lfound1:
    shr rax, 2
    vzeroupper
    ret
.Lnone:
    xor eax, eax
.Ldone:
    vzeroupper
    ret
