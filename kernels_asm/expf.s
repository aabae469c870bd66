# expf over a vector: out[i] = exp(x[i]) (see expf.inc for the method and its accuracy).
.include "kernels.inc"
.include "expf.inc"

.section .text
.global expf_sse2, expf_avx2

# expf_sse2(rcx = out, rdx = x, r8d = n); out may equal x
expf_sse2:
    mov r8d, r8d
    lea r9, [r8 * 4]                  # bytes
    mov r10, r9
    and r10, -16
    xor eax, eax
.Lvec:
    cmp rax, r10
    jae .Lone
    movups xmm0, [rdx + rax]
    KEXP_SSE2 xmm0, xmm1, xmm2, xmm3
    movups [rcx + rax], xmm0
    add rax, 16
    jmp .Lvec
.Lone:
    cmp rax, r9
    jae .Ldone
    movss xmm0, dword ptr [rdx + rax]
    KEXP_SSE2 xmm0, xmm1, xmm2, xmm3
    movss dword ptr [rcx + rax], xmm0
    add rax, 4
    jmp .Lone
.Ldone:
    ret

# expf_avx2(rcx = out, rdx = x, r8d = n); out may equal x
expf_avx2:
    mov r8d, r8d
    lea r9, [r8 * 4]
    mov r10, r9
    and r10, -32
    xor eax, eax
.Lvec:
    cmp rax, r10
    jae .Lone
    vmovups ymm0, [rdx + rax]
    KEXP_AVX2 ymm0, ymm1, ymm2, ymm3
    vmovups [rcx + rax], ymm0
    add rax, 32
    jmp .Lvec
.Lone:
    cmp rax, r9
    jae .Ldone
    vmovss xmm0, dword ptr [rdx + rax]
    KEXP_AVX2 xmm0, xmm1, xmm2, xmm3
    vmovss dword ptr [rcx + rax], xmm0
    add rax, 4
    jmp .Lone
.Ldone:
    vzeroupper
    ret
