# Q8_K, the activation format of the K-quants: quantize_row_q8_k (from_float).
#
# As ggml's quantize_row_q8_K (ggml-quants.c, llama.cpp 0c1e570; its x86 build calls the
# same reference code) for each 256 floats: max = the element of largest magnitude (the
# first such, by index; NaNs never win), iscale = -127 / max (ggml once used -128; the
# build llama.cpp ships now divides -127, so every quant is in -127..127), q[j] =
# round-to-nearest-even(iscale * x[j]) capped at 127, d = 1 / iscale, all f32; bsums[s] =
# the sum of q[16s .. 16s+15]. A block whose max magnitude is 0 is all zeros (d = 0). Layout: kquant.inc Q8K_* (block_q8_K).
# ggml rounds with the 1.5*2^23 trick, cvtps2dq with MXCSR's default rounding is the same
# for |iscale * x| <= 128, i.e. for every finite block whose max has |max| >= 2^-119; for
# blocks holding inf or NaN, or a smaller max, the quants are unspecified (no fault).
# The SSE2 and AVX2 bodies do the same operations in the same order: identical bytes.
.include "kquant.inc"

.section .rdata
.balign 16, 0
kq8_abs:  .long 0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff
kq8_bias: .byte 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80
kq8_m127: .long 0xc2fe0000         # -127.0
kq8_one:  .long 0x3f800000         # 1.0

.section .text
.global quantize_row_q8_k_sse2, quantize_row_q8_k_avx2

# quantize_row_q8_k_sse2(rcx = out blocks, rdx = x f32*, r8d = n): n/256 blocks (n a
# multiple of 256; a remainder is ignored). Changes rax, rcx, rdx, r8-r11, xmm0-xmm5.
quantize_row_q8_k_sse2:
    mov r8d, r8d
    shr r8, 8                       # blocks
    movaps xmm5, [rip + kq8_abs]
.Lblock:
    test r8, r8
    jz .Ldone
    xorps xmm0, xmm0                # max |x| (maxps keeps its second operand on NaN)
    xor eax, eax
.Lamax:
    movups xmm1, [rdx + rax]
    andps xmm1, xmm5
    maxps xmm1, xmm0
    movaps xmm0, xmm1
    add eax, 16
    cmp eax, 1024
    jb .Lamax
    movhlps xmm1, xmm0
    maxps xmm0, xmm1
    movaps xmm1, xmm0
    shufps xmm1, xmm1, 0x55
    maxss xmm0, xmm1
    xorps xmm1, xmm1
    ucomiss xmm0, xmm1
    jbe .Lzero                      # all zeros (no NaN can be here)
    shufps xmm0, xmm0, 0            # amax in every lane
    xor eax, eax
.Lfind:                             # the first index with |x| == amax
    movups xmm1, [rdx + rax]
    andps xmm1, xmm5
    cmpeqps xmm1, xmm0
    movmskps r9d, xmm1
    test r9d, r9d
    jnz .Lfound
    add eax, 16
    jmp .Lfind
.Lfound:
    bsf r9d, r9d
    lea rax, [rax + r9 * 4]
    movss xmm1, dword ptr [rip + kq8_m127]
    divss xmm1, dword ptr [rdx + rax]   # iscale = -127 / max
    movss xmm0, dword ptr [rip + kq8_one]
    divss xmm0, xmm1
    movss dword ptr [rcx + Q8K_D], xmm0
    shufps xmm1, xmm1, 0
    xor eax, eax                    # 16 floats a step
    xor r9d, r9d                    # bsums index
.Lquant:
    movups xmm2, [rdx + rax]
    movups xmm3, [rdx + rax + 16]
    mulps xmm2, xmm1
    mulps xmm3, xmm1
    cvtps2dq xmm2, xmm2
    cvtps2dq xmm3, xmm3
    packssdw xmm2, xmm3
    movups xmm3, [rdx + rax + 32]
    movups xmm4, [rdx + rax + 48]
    mulps xmm3, xmm1
    mulps xmm4, xmm1
    cvtps2dq xmm3, xmm3
    cvtps2dq xmm4, xmm4
    packssdw xmm3, xmm4
    packsswb xmm2, xmm3             # |q| <= 127 (ggml's cap at 127 never bites)
    mov r10, rax
    shr r10, 2
    movdqu [rcx + r10 + Q8K_QS], xmm2
    movdqu xmm3, [rip + kq8_bias]   # sum of 16 signed bytes: psadbw of (q + 128) - 2048
    pxor xmm2, xmm3
    pxor xmm3, xmm3
    psadbw xmm2, xmm3
    movhlps xmm3, xmm2
    paddq xmm2, xmm3
    movd r10d, xmm2
    sub r10d, 2048
    mov word ptr [rcx + r9 * 2 + Q8K_BSUMS], r10w
    inc r9d
    add eax, 64
    cmp eax, 1024
    jb .Lquant
    jmp .Lnext
.Lzero:
    xorps xmm0, xmm0
    xor eax, eax
.Lzero_loop:                        # 292 bytes: 18 x 16 + 4
    movups [rcx + rax], xmm0
    add eax, 16
    cmp eax, 288
    jb .Lzero_loop
    mov dword ptr [rcx + 288], 0
.Lnext:
    add rcx, Q8K_BYTES
    add rdx, 1024
    dec r8
    jmp .Lblock
.Ldone:
    ret

# quantize_row_q8_k_avx2: the same contract and operations, VEX-encoded (no SSE/AVX
# transition in the AVX2 path); 128-bit lanes, as the SSE2 body, so the bytes are the same.
quantize_row_q8_k_avx2:
    mov r8d, r8d
    shr r8, 8
    vmovaps xmm5, [rip + kq8_abs]
.Lblock:
    test r8, r8
    jz .Ldone
    vxorps xmm0, xmm0, xmm0
    xor eax, eax
.Lamax:
    vandps xmm1, xmm5, [rdx + rax]
    vmaxps xmm0, xmm1, xmm0
    add eax, 16
    cmp eax, 1024
    jb .Lamax
    vmovhlps xmm1, xmm1, xmm0
    vmaxps xmm0, xmm0, xmm1
    vshufps xmm1, xmm0, xmm0, 0x55
    vmaxss xmm0, xmm0, xmm1
    vxorps xmm1, xmm1, xmm1
    vucomiss xmm0, xmm1
    jbe .Lzero
    vshufps xmm0, xmm0, xmm0, 0
    xor eax, eax
.Lfind:
    vandps xmm1, xmm5, [rdx + rax]
    vcmpeqps xmm1, xmm1, xmm0
    vmovmskps r9d, xmm1
    test r9d, r9d
    jnz .Lfound
    add eax, 16
    jmp .Lfind
.Lfound:
    bsf r9d, r9d
    lea rax, [rax + r9 * 4]
    vmovss xmm1, dword ptr [rip + kq8_m127]
    vdivss xmm1, xmm1, dword ptr [rdx + rax]
    vmovss xmm0, dword ptr [rip + kq8_one]
    vdivss xmm0, xmm0, xmm1
    vmovss dword ptr [rcx + Q8K_D], xmm0
    vshufps xmm1, xmm1, xmm1, 0
    vmovdqu xmm4, [rip + kq8_bias]
    xor eax, eax
    xor r9d, r9d
.Lquant:
    vmulps xmm2, xmm1, [rdx + rax]
    vmulps xmm3, xmm1, [rdx + rax + 16]
    vcvtps2dq xmm2, xmm2
    vcvtps2dq xmm3, xmm3
    vpackssdw xmm2, xmm2, xmm3
    vmulps xmm3, xmm1, [rdx + rax + 32]
    vmulps xmm0, xmm1, [rdx + rax + 48]
    vcvtps2dq xmm3, xmm3
    vcvtps2dq xmm0, xmm0
    vpackssdw xmm3, xmm3, xmm0
    vpacksswb xmm2, xmm2, xmm3
    mov r10, rax
    shr r10, 2
    vmovdqu [rcx + r10 + Q8K_QS], xmm2
    vpxor xmm2, xmm2, xmm4
    vpxor xmm3, xmm3, xmm3
    vpsadbw xmm2, xmm2, xmm3
    vpsrldq xmm3, xmm2, 8
    vpaddq xmm2, xmm2, xmm3
    vmovd r10d, xmm2
    sub r10d, 2048
    mov word ptr [rcx + r9 * 2 + Q8K_BSUMS], r10w
    inc r9d
    add eax, 64
    cmp eax, 1024
    jb .Lquant
    jmp .Lnext
.Lzero:
    vxorps xmm0, xmm0, xmm0
    xor eax, eax
.Lzero_loop:
    vmovups [rcx + rax], xmm0
    add eax, 16
    cmp eax, 288
    jb .Lzero_loop
    mov dword ptr [rcx + 288], 0
.Lnext:
    add rcx, Q8K_BYTES
    add rdx, 1024
    dec r8
    jmp .Lblock
.Ldone:
    vzeroupper
    ret
