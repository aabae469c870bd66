# softmax in place: x = exp(x - max) / sum(exp(x - max)). Four passes: max, exp (stored
# back), sum, divide (a true division, as llama2.c does). The sum runs over the stored values
# one at a time in index order, as llama2.c adds them: vector partial sums round differently
# in the last bits, and at a 32000-token vocabulary that moved the sampler's coin across a
# boundary for about 3% of draws from flat distributions. It costs ~40 us per 32000 values.
.include "kernels.inc"
.include "kmacros.inc"
.include "expf.inc"

.section .text
.global softmax_sse2, softmax_avx2

# softmax_sse2(rcx = x, edx = n)
softmax_sse2:
    mov edx, edx
    test rdx, rdx
    jz .Ldone
    lea r9, [rdx * 4]                 # bytes
    mov r10, r9
    and r10, -16                      # whole vectors
    movss xmm4, dword ptr [rcx]
    shufps xmm4, xmm4, 0
    xor eax, eax
.Lmax4:
    cmp rax, r10
    jae .Lmax_fold
    movups xmm0, [rcx + rax]
    maxps xmm4, xmm0
    add rax, 16
    jmp .Lmax4
.Lmax_fold:
    movhlps xmm0, xmm4
    maxps xmm4, xmm0
    movaps xmm0, xmm4
    shufps xmm0, xmm0, 0x55
    maxss xmm4, xmm0
.Lmax1:
    cmp rax, r9
    jae .Lmax_done
    maxss xmm4, dword ptr [rcx + rax]
    add rax, 4
    jmp .Lmax1
.Lmax_done:
    shufps xmm4, xmm4, 0              # max in every lane
    xor eax, eax
.Lexp4:
    cmp rax, r10
    jae .Lexp1
    movups xmm0, [rcx + rax]
    subps xmm0, xmm4
    KEXP_SSE2 xmm0, xmm1, xmm2, xmm3
    movups [rcx + rax], xmm0
    add rax, 16
    jmp .Lexp4
.Lexp1:
    cmp rax, r9
    jae .Lexp_done
    movss xmm0, dword ptr [rcx + rax]
    subss xmm0, xmm4
    KEXP_SSE2 xmm0, xmm1, xmm2, xmm3
    movss dword ptr [rcx + rax], xmm0
    add rax, 4
    jmp .Lexp1
.Lexp_done:
    xorps xmm5, xmm5                  # the sum, in index order
    xor eax, eax
.Lsum1:
    cmp rax, r9
    jae .Lsummed
    addss xmm5, dword ptr [rcx + rax]
    add rax, 4
    jmp .Lsum1
.Lsummed:
    shufps xmm5, xmm5, 0
    xor eax, eax
.Ldiv4:
    cmp rax, r10
    jae .Ldiv1
    movups xmm0, [rcx + rax]
    divps xmm0, xmm5
    movups [rcx + rax], xmm0
    add rax, 16
    jmp .Ldiv4
.Ldiv1:
    cmp rax, r9
    jae .Ldone
    movss xmm0, dword ptr [rcx + rax]
    divss xmm0, xmm5
    movss dword ptr [rcx + rax], xmm0
    add rax, 4
    jmp .Ldiv1
.Ldone:
    ret

# softmax_avx2(rcx = x, edx = n)
softmax_avx2:
    mov edx, edx
    test rdx, rdx
    jz .Ldone
    lea r9, [rdx * 4]
    mov r10, r9
    and r10, -32
    vbroadcastss ymm4, dword ptr [rcx]
    xor eax, eax
.Lmax8:
    cmp rax, r10
    jae .Lmax_fold
    vmaxps ymm4, ymm4, [rcx + rax]
    add rax, 32
    jmp .Lmax8
.Lmax_fold:                           # to a scalar in xmm4 before the 1-at-a-time tail
    vextractf128 xmm0, ymm4, 1
    vmaxps xmm4, xmm4, xmm0
    vmovhlps xmm0, xmm0, xmm4
    vmaxps xmm4, xmm4, xmm0
    vmovshdup xmm0, xmm4
    vmaxss xmm4, xmm4, xmm0
.Lmax1:
    cmp rax, r9
    jae .Lmax_done
    vmaxss xmm4, xmm4, dword ptr [rcx + rax]
    add rax, 4
    jmp .Lmax1
.Lmax_done:
    vbroadcastss ymm4, xmm4
    xor eax, eax
.Lexp8:
    cmp rax, r10
    jae .Lexp1
    vmovups ymm0, [rcx + rax]
    vsubps ymm0, ymm0, ymm4
    KEXP_AVX2 ymm0, ymm1, ymm2, ymm3
    vmovups [rcx + rax], ymm0
    add rax, 32
    jmp .Lexp8
.Lexp1:
    cmp rax, r9
    jae .Lexp_done
    vmovss xmm0, dword ptr [rcx + rax]
    vsubss xmm0, xmm0, xmm4
    KEXP_AVX2 xmm0, xmm1, xmm2, xmm3
    vmovss dword ptr [rcx + rax], xmm0
    add rax, 4
    jmp .Lexp1
.Lexp_done:
    vxorps xmm5, xmm5, xmm5           # the sum, in index order
    xor eax, eax
.Lsum1:
    cmp rax, r9
    jae .Lsummed
    vaddss xmm5, xmm5, dword ptr [rcx + rax]
    add rax, 4
    jmp .Lsum1
.Lsummed:
    vbroadcastss ymm5, xmm5
    xor eax, eax
.Ldiv8:
    cmp rax, r10
    jae .Ldiv1
    vmovups ymm0, [rcx + rax]
    vdivps ymm0, ymm0, ymm5
    vmovups [rcx + rax], ymm0
    add rax, 32
    jmp .Ldiv8
.Ldiv1:
    cmp rax, r9
    jae .Ldone
    vmovss xmm0, dword ptr [rcx + rax]
    vdivss xmm0, xmm0, xmm5
    vmovss dword ptr [rcx + rax], xmm0
    add rax, 4
    jmp .Ldiv1
.Ldone:
    vzeroupper
    ret
