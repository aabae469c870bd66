# swiglu: the FFN gate, a = silu(a) * b with silu(v) = v / (1 + exp(-v)), computed as
# v * sigmoid(v) with e = exp(-|v|) (never overflows): sigmoid = 1/(1+e) for v >= 0 (the
# very expression llama2.c evaluates) and e/(1+e) for v < 0, so silu of a huge negative v is
# (-)0 as it should be, not v / exp(88).
.include "kernels.inc"
.include "expf.inc"

.section .text
.global swiglu_sse2, swiglu_avx2
.extern kc_sign, kc_one

# xmm4 = silu(xmm4) (all lanes); xmm0..xmm3 clobbered
.macro SILU_SSE2
    movaps xmm0, xmm4
    orps xmm0, [rip + kc_sign]        # -|v|
    KEXP_SSE2 xmm0, xmm1, xmm2, xmm3  # e = exp(-|v|) in (0, 1]
    movaps xmm1, xmm4
    psrad xmm1, 31                    # v < 0 (sign bit) mask
    movaps xmm2, [rip + kc_one]
    addps xmm2, xmm0                  # 1 + e
    andps xmm0, xmm1
    andnps xmm1, [rip + kc_one]
    orps xmm0, xmm1                   # e where v < 0, else 1
    divps xmm0, xmm2                  # sigmoid(v)
    mulps xmm4, xmm0
.endm

# the same on ymm/xmm registers: \vv = silu(\vv); \v0..\v3 clobbered
.macro SILU_AVX2 vv, v0, v1, v2, v3
    vorps \v0, \vv, [rip + kc_sign]
    KEXP_AVX2 \v0, \v1, \v2, \v3
    vmovaps \v1, [rip + kc_one]
    vaddps \v2, \v1, \v0              # 1 + e
    vblendvps \v0, \v1, \v0, \vv       # e where v < 0, else 1
    vdivps \v0, \v0, \v2
    vmulps \vv, \vv, \v0
.endm

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
    movups xmm4, [rcx + rax]
    SILU_SSE2
    movups xmm1, [rdx + rax]
    mulps xmm4, xmm1
    movups [rcx + rax], xmm4
    add rax, 16
    jmp .Lvec
.Lone:
    cmp rax, r9
    jae .Ldone
    movss xmm4, dword ptr [rcx + rax]
    SILU_SSE2
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
    SILU_AVX2 ymm4, ymm0, ymm1, ymm2, ymm3
    vmulps ymm4, ymm4, [rdx + rax]
    vmovups [rcx + rax], ymm4
    add rax, 32
    jmp .Lvec
.Lone:
    cmp rax, r9
    jae .Ldone
    vmovss xmm4, dword ptr [rcx + rax]
    SILU_AVX2 xmm4, xmm0, xmm1, xmm2, xmm3
    vmulss xmm4, xmm4, dword ptr [rdx + rax]
    vmovss dword ptr [rcx + rax], xmm4
    add rax, 4
    jmp .Lone
.Ldone:
    vzeroupper
    ret
