# swiglu: the FFN gate, a = silu(a) * b with silu(v) = v / (1 + exp(-v)).
# Large negative v: exp(-v) saturates at exp(88), so silu(v) -> v / 1.65e38, a tiny value
# of the right sign (no inf, no NaN).
.include "kernels.inc"
.include "expf.inc"

.section .text
.global swiglu_sse2, swiglu_avx2
.extern kc_sign, kc_one

# swiglu_sse2(rcx = a, rdx = b, r8d = n)
swiglu_sse2:
    mov r8d, r8d
    lea r9, [r8 * 4]
    mov r10, r9
    and r10, -16
    xor eax, eax
.Lvec:
    cmp rax, r10
    jae .Lone
    movups xmm4, [rcx + rax]          # v
    movaps xmm0, xmm4
    xorps xmm0, [rip + kc_sign]       # -v
    KEXP_SSE2 xmm0, xmm1, xmm2, xmm3
    addps xmm0, [rip + kc_one]
    divps xmm4, xmm0                  # silu(v)
    movups xmm1, [rdx + rax]
    mulps xmm4, xmm1
    movups [rcx + rax], xmm4
    add rax, 16
    jmp .Lvec
.Lone:
    cmp rax, r9
    jae .Ldone
    movss xmm4, dword ptr [rcx + rax]
    movaps xmm0, xmm4
    xorps xmm0, [rip + kc_sign]
    KEXP_SSE2 xmm0, xmm1, xmm2, xmm3
    addss xmm0, [rip + kc_one]
    divss xmm4, xmm0
    mulss xmm4, dword ptr [rdx + rax]
    movss dword ptr [rcx + rax], xmm4
    add rax, 4
    jmp .Lone
.Ldone:
    ret

# swiglu_avx2(rcx = a, rdx = b, r8d = n)
swiglu_avx2:
    mov r8d, r8d
    lea r9, [r8 * 4]
    mov r10, r9
    and r10, -32
    xor eax, eax
.Lvec:
    cmp rax, r10
    jae .Lone
    vmovups ymm4, [rcx + rax]
    vxorps ymm0, ymm4, [rip + kc_sign]
    KEXP_AVX2 ymm0, ymm1, ymm2, ymm3
    vaddps ymm0, ymm0, [rip + kc_one]
    vdivps ymm4, ymm4, ymm0
    vmulps ymm4, ymm4, [rdx + rax]
    vmovups [rcx + rax], ymm4
    add rax, 32
    jmp .Lvec
.Lone:
    cmp rax, r9
    jae .Ldone
    vmovss xmm4, dword ptr [rcx + rax]
    vxorps xmm0, xmm4, [rip + kc_sign]
    KEXP_AVX2 xmm0, xmm1, xmm2, xmm3
    vaddss xmm0, xmm0, dword ptr [rip + kc_one]
    vdivss xmm4, xmm4, xmm0
    vmulss xmm4, xmm4, dword ptr [rdx + rax]
    vmovss dword ptr [rcx + rax], xmm4
    add rax, 4
    jmp .Lone
.Ldone:
    vzeroupper
    ret
