# RMSNorm as llama.cpp computes it for GGUF models: ggml-cpu's rms_norm (ops.cpp, f32 rows)
# then the separate ggml_mul by the weight:
#   sum = sum over i of double(f32(x_i * x_i)), in order, in double
#   mean = f32(sum / n) (the division in double);  scale = 1 / sqrtf(mean + eps) (f32)
#   out_i = f32(f32(x_i * scale) * w_i)
# Neither step has a product to fuse, so ggml's AVX2 and SSE2 builds give the same bits and
# one body serves both paths. (k_rmsnorm, llama2.c's, sums the squares in f32 partial sums:
# a different rounding, which changed one Q8 activation of SmolLM2 at position 13.)
.include "kernels.inc"

.section .text
.global rmsnorm_ggml_sse2

# rmsnorm_ggml_sse2(rcx = out, rdx = x, r8 = weight, r9d = n, float [rsp+40] = eps):
#   k_rmsnorm's contract (out may equal x; n = 0 writes nothing). Changes rax, r9, r10,
#   xmm0-xmm3.
rmsnorm_ggml_sse2:
    mov r9d, r9d
    test r9, r9
    jz .Ldone
    xorpd xmm0, xmm0                  # sum (double)
    xor eax, eax
.Lsum:
    movss xmm1, dword ptr [rdx + rax * 4]
    mulss xmm1, xmm1
    cvtss2sd xmm1, xmm1
    addsd xmm0, xmm1
    inc rax
    cmp rax, r9
    jb .Lsum
    cvtsi2sd xmm1, r9
    divsd xmm0, xmm1
    cvtsd2ss xmm0, xmm0               # mean
    addss xmm0, dword ptr [rsp + 40]
    sqrtss xmm0, xmm0
    mov eax, 0x3F800000
    movd xmm1, eax
    divss xmm1, xmm0                  # scale
    shufps xmm1, xmm1, 0
    xor eax, eax
.Lvec:                                # 4 at a time
    lea r10, [rax + 4]
    cmp r10, r9
    ja .Ltail
    movups xmm2, [rdx + rax * 4]
    mulps xmm2, xmm1
    movups xmm3, [r8 + rax * 4]
    mulps xmm2, xmm3
    movups [rcx + rax * 4], xmm2
    mov rax, r10
    jmp .Lvec
.Ltail:
    cmp rax, r9
    jae .Ldone
    movss xmm2, dword ptr [rdx + rax * 4]
    mulss xmm2, xmm1
    mulss xmm2, dword ptr [r8 + rax * 4]
    movss dword ptr [rcx + rax * 4], xmm2
    inc rax
    jmp .Ltail
.Ldone:
    ret
