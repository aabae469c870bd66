# swiglu as llama.cpp's CPU backend computes it (ggml_vec_swiglu_f32 in ggml-cpu's vec.cpp, the
# FFN gate of a GGUF model's graph): a[i] = silu(a[i]) * b[i] with silu(v) = v / (1 + exp(-v)),
# where exp is ggml's vector approximation ggml_v_expf on whole vectors and the C library's
# expf on the elements left over. For GGUF models (MODEL_SWIGLU, app_asm/model_state.s); the
# llama2.c models keep swiglu.s (run.c's expression).
#
# ggml_v_expf(x), lane by lane (ggml's comment: "adapted from ARM's optimized routines", max
# error 1.45 + 0.5 ulp), in f32:
#   z = x * 0x1.715476p+0 + 0x1.8p23          (one FMA on AVX2; a product, then a sum, on SSE2)
#   n = z - 0x1.8p23                          (x / ln 2 rounded to an integer)
#   b = (x - n * 0x1.62e4p-1) - n * 0x1.7f7d1cp-20     (each step one FMA on AVX2)
#   e = bits(z) << 23;  k = float with bits e + bits(1.0f)          (2^n)
#   u = b * b
#   j = ((c5 * b + c4) * u + (c3 * b + c2)) * u + c1 * b
#       c5 = 0x1.0e4020p-7, c4 = 0x1.573e2ep-5, c3 = 0x1.555e66p-3, c2 = 0x1.fffdb6p-2,
#       c1 = 0x1.ffffecp-1                    (FMAs on AVX2 as grouped; c1 * b a product)
#   no lane with |n| > 126:  exp = j * k + k
#   else, per lane: g = 0x82000000 where n <= 0, else 0; s1 = bits g + 0x7f000000,
#     s2 = bits e - g; |n| > 192: s1 * s1 (0 or inf); |n| > 126: (s2 * j + s2) * s1;
#     otherwise j * k + k.
# Then silu = v / (1 + exp(0 - v)) (a sum, a quotient) and a = silu * b (a product).
# The two paths are ggml's two x86 builds: AVX2 = its AVX2+FMA build (8 lanes, FMA as above);
# SSE2 = a build without AVX (ggml's SSE2 code: 4 lanes, every multiply-add a rounded product
# then a rounded sum). The n % 8 (AVX2) or n % 4 (SSE2) elements at the end take ggml's
# scalar expression v / (1.0f + expf(-v)) * b with expf = ag_expf (attention_ggml.s: exp in
# double rounded once to f32, glibc's expf but for arguments within ~1e-15 of a rounding
# boundary); -v above 0x1.62e42ep6 gives inf, as expf overflows (ag_expf clamps at 88.7, so
# -v in (88.7, 88.7228] takes exp(88.7): silu there, about -2.7e-37, is up to 2.3% too large
# in magnitude; only the elements past the last whole vector can meet this).
# tests/reference/ggml_swiglu.py is the numpy statement of the same; it matched llama.cpp
# 0c1e570's own swiglu outputs bit for bit on SmolLM2's FFN (15360 values, 10 layers).
#
# swiglu_ggml_<path>(rcx = a f32*, rdx = b f32*, r8d = n): a[i] = silu(a[i]) * b[i], i < n.
#   Any alignment. Clobbers rax, r8-r11, xmm0-xmm5 (AVX2: ymm0-ymm5; vzeroupper before the
#   elements left over, which every call reaches).
.include "kernels.inc"

.section .rdata
.balign 32, 0
# every constant 8 lanes wide (32 bytes): a memory operand for either path
sg_r:     .long 0x4b400000, 0x4b400000, 0x4b400000, 0x4b400000, 0x4b400000, 0x4b400000, 0x4b400000, 0x4b400000
sg_log2e: .long 0x3fb8aa3b, 0x3fb8aa3b, 0x3fb8aa3b, 0x3fb8aa3b, 0x3fb8aa3b, 0x3fb8aa3b, 0x3fb8aa3b, 0x3fb8aa3b
sg_ln2hi: .long 0x3f317200, 0x3f317200, 0x3f317200, 0x3f317200, 0x3f317200, 0x3f317200, 0x3f317200, 0x3f317200
sg_ln2lo: .long 0x35bfbe8e, 0x35bfbe8e, 0x35bfbe8e, 0x35bfbe8e, 0x35bfbe8e, 0x35bfbe8e, 0x35bfbe8e, 0x35bfbe8e
sg_c5:    .long 0x3c072010, 0x3c072010, 0x3c072010, 0x3c072010, 0x3c072010, 0x3c072010, 0x3c072010, 0x3c072010
sg_c4:    .long 0x3d2b9f17, 0x3d2b9f17, 0x3d2b9f17, 0x3d2b9f17, 0x3d2b9f17, 0x3d2b9f17, 0x3d2b9f17, 0x3d2b9f17
sg_c3:    .long 0x3e2aaf33, 0x3e2aaf33, 0x3e2aaf33, 0x3e2aaf33, 0x3e2aaf33, 0x3e2aaf33, 0x3e2aaf33, 0x3e2aaf33
sg_c2:    .long 0x3efffedb, 0x3efffedb, 0x3efffedb, 0x3efffedb, 0x3efffedb, 0x3efffedb, 0x3efffedb, 0x3efffedb
sg_c1:    .long 0x3f7ffff6, 0x3f7ffff6, 0x3f7ffff6, 0x3f7ffff6, 0x3f7ffff6, 0x3f7ffff6, 0x3f7ffff6, 0x3f7ffff6
sg_one:   .long 0x3f800000, 0x3f800000, 0x3f800000, 0x3f800000, 0x3f800000, 0x3f800000, 0x3f800000, 0x3f800000
sg_abs:   .long 0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff
sg_126:   .long 0x42fc0000, 0x42fc0000, 0x42fc0000, 0x42fc0000, 0x42fc0000, 0x42fc0000, 0x42fc0000, 0x42fc0000
sg_192:   .long 0x43400000, 0x43400000, 0x43400000, 0x43400000, 0x43400000, 0x43400000, 0x43400000, 0x43400000
sg_g:     .long 0x82000000, 0x82000000, 0x82000000, 0x82000000, 0x82000000, 0x82000000, 0x82000000, 0x82000000
sg_s1:    .long 0x7f000000, 0x7f000000, 0x7f000000, 0x7f000000, 0x7f000000, 0x7f000000, 0x7f000000, 0x7f000000
sg_negz:  .long 0x80000000, 0, 0, 0
sg_ovf:   .long 0x42b17217            # expf overflows above this (0x1.62e42ep6)
sg_inf:   .long 0x7f800000

.section .text
.global swiglu_ggml_sse2, swiglu_ggml_avx2
.extern ag_expf

# swiglu_ggml_sse2(rcx = a, rdx = b, r8d = n): the contract above
swiglu_ggml_sse2:
    sub rsp, 40                       # shadow space, rsp 16-aligned at the calls (sg_tail pops it)
    mov r8d, r8d
    lea r9, [r8 * 4]                  # bytes
    mov r10, r9
    and r10, -16                      # bytes in whole vectors
    xor r8d, r8d                      # byte offset
.Lvec:
    cmp r8, r10
    jae .Ltail
    xorps xmm0, xmm0
    movups xmm1, [rcx + r8]
    subps xmm0, xmm1                  # 0 - v
    call sg_exp_sse2
    addps xmm0, [rip + sg_one]        # 1 + exp(-v)
    movups xmm1, [rcx + r8]
    divps xmm1, xmm0                  # silu
    movups xmm0, [rdx + r8]
    mulps xmm1, xmm0
    movups [rcx + r8], xmm1
    add r8, 16
    jmp .Lvec
.Ltail:
    jmp sg_tail

# swiglu_ggml_avx2(rcx = a, rdx = b, r8d = n): the contract above
swiglu_ggml_avx2:
    sub rsp, 40                       # as above
    mov r8d, r8d
    lea r9, [r8 * 4]
    mov r10, r9
    and r10, -32
    xor r8d, r8d
.Lvec:
    cmp r8, r10
    jae .Ltail
    vxorps xmm0, xmm0, xmm0
    vsubps ymm0, ymm0, [rcx + r8]     # 0 - v
    call sg_exp_avx2
    vaddps ymm0, ymm0, [rip + sg_one]
    vmovups ymm1, [rcx + r8]
    vdivps ymm1, ymm1, ymm0
    vmulps ymm1, ymm1, [rdx + r8]
    vmovups [rcx + r8], ymm1
    add r8, 32
    jmp .Lvec
.Ltail:
    vzeroupper                        # the tail is SSE code (ag_expf)
    jmp sg_tail

# sg_tail(rcx = a, rdx = b, r8 = first byte offset, r9 = end byte offset): the elements left,
# one at a time: a = v / (1 + expf(-v)) * b; then returns for the body that jumped here
# (it drops that body's 40-byte frame). Clobbers rax, r8, r11, xmm0-xmm5.
sg_tail:
    cmp r8, r9
    jae .Ldone
    movss xmm0, dword ptr [rcx + r8]
    xorps xmm0, [rip + sg_negz]       # -v (exact)
    ucomiss xmm0, dword ptr [rip + sg_ovf]
    ja .Linf                          # expf overflows (not for NaN: unordered)
    call ag_expf
    jmp .Lexp
.Linf:
    movss xmm0, dword ptr [rip + sg_inf]
.Lexp:
    addss xmm0, dword ptr [rip + sg_one]
    movss xmm1, dword ptr [rcx + r8]
    divss xmm1, xmm0
    mulss xmm1, dword ptr [rdx + r8]
    movss dword ptr [rcx + r8], xmm1
    add r8, 4
    jmp sg_tail
.Ldone:
    add rsp, 40
    ret

# sg_exp_sse2: xmm0 = ggml_v_expf(xmm0) as ggml's SSE2 build computes it (every multiply-add a
# rounded product, then a rounded sum). Clobbers r11, xmm1-xmm5. Private.
sg_exp_sse2:
    movaps xmm1, xmm0
    mulps xmm1, [rip + sg_log2e]
    addps xmm1, [rip + sg_r]          # z
    movaps xmm2, xmm1
    subps xmm2, [rip + sg_r]          # n
    movaps xmm3, xmm2
    mulps xmm3, [rip + sg_ln2hi]
    subps xmm0, xmm3
    movaps xmm3, xmm2
    mulps xmm3, [rip + sg_ln2lo]
    subps xmm0, xmm3                  # b
    pslld xmm1, 23                    # e
    movaps xmm3, xmm0
    mulps xmm3, xmm0                  # u
    movaps xmm4, xmm0
    mulps xmm4, [rip + sg_c5]
    addps xmm4, [rip + sg_c4]
    mulps xmm4, xmm3                  # (c5 b + c4) u
    movaps xmm5, xmm0
    mulps xmm5, [rip + sg_c3]
    addps xmm5, [rip + sg_c2]
    addps xmm4, xmm5                  # + (c3 b + c2)
    mulps xmm4, xmm3
    mulps xmm0, [rip + sg_c1]
    addps xmm4, xmm0                  # j
    movdqa xmm5, xmm1
    paddd xmm5, [rip + sg_one]        # k = 2^n
    movaps xmm3, xmm2
    andps xmm3, [rip + sg_abs]        # |n|
    movaps xmm0, [rip + sg_126]
    cmpltps xmm0, xmm3                # c = |n| > 126 (ordered: false for NaN)
    movmskps r11d, xmm0
    test r11d, r11d
    jnz .Lbig
    mulps xmm4, xmm5
    addps xmm4, xmm5                  # j k + k
    movaps xmm0, xmm4
    ret
.Lbig:                                # xmm1 e, xmm2 n, xmm3 |n|, xmm4 j, xmm5 k
    xorps xmm0, xmm0
    cmpleps xmm2, xmm0                # n <= 0 (ordered)
    andps xmm2, [rip + sg_g]          # g
    movdqa xmm0, xmm2
    paddd xmm0, [rip + sg_s1]         # s1
    psubd xmm1, xmm2                  # s2 = e - g
    movaps xmm2, xmm1
    mulps xmm2, xmm4
    addps xmm2, xmm1
    mulps xmm2, xmm0                  # (s2 j + s2) s1
    mulps xmm4, xmm5
    addps xmm4, xmm5                  # k j + k
    movaps xmm1, [rip + sg_126]
    cmpltps xmm1, xmm3                # c
    andps xmm2, xmm1
    andnps xmm1, xmm4
    orps xmm2, xmm1                   # c ? (s2 j + s2) s1 : k j + k
    mulps xmm0, xmm0                  # s1 s1
    movaps xmm1, [rip + sg_192]
    cmpltps xmm1, xmm3                # d = |n| > 192
    andps xmm0, xmm1
    andnps xmm1, xmm2
    orps xmm0, xmm1
    ret

# sg_exp_avx2: ymm0 = ggml_v_expf(ymm0) as ggml's AVX2+FMA build computes it. Clobbers r11,
# ymm1-ymm5. Private.
sg_exp_avx2:
    vmovaps ymm1, [rip + sg_r]
    vfmadd231ps ymm1, ymm0, [rip + sg_log2e]      # z = x log2e + r
    vsubps ymm2, ymm1, [rip + sg_r]               # n
    vfnmadd231ps ymm0, ymm2, [rip + sg_ln2hi]     # x - n hi
    vfnmadd231ps ymm0, ymm2, [rip + sg_ln2lo]     # b = (x - n hi) - n lo
    vpslld ymm1, ymm1, 23                         # e
    vandps ymm3, ymm2, [rip + sg_abs]
    vcmpps ymm3, ymm3, [rip + sg_126], 30         # c = |n| > 126 (_CMP_GT_OQ)
    vmovmskps r11d, ymm3
    vmulps ymm4, ymm0, ymm0                       # u
    vmovaps ymm3, [rip + sg_c5]
    vfmadd213ps ymm3, ymm0, [rip + sg_c4]         # c5 b + c4
    vmovaps ymm5, [rip + sg_c3]
    vfmadd213ps ymm5, ymm0, [rip + sg_c2]         # c3 b + c2
    vfmadd213ps ymm3, ymm4, ymm5                  # (c5 b + c4) u + (c3 b + c2)
    vmulps ymm5, ymm0, [rip + sg_c1]              # c1 b
    vfmadd213ps ymm3, ymm4, ymm5                  # j
    vpaddd ymm5, ymm1, [rip + sg_one]             # k = 2^n
    test r11d, r11d
    jnz .Lbig
    vfmadd213ps ymm3, ymm5, ymm5                  # j k + k
    vmovaps ymm0, ymm3
    ret
.Lbig:                                # ymm1 e, ymm2 n, ymm3 j, ymm4 u, ymm5 k
    vxorps xmm0, xmm0, xmm0
    vcmpps ymm0, ymm2, ymm0, 18                   # n <= 0 (_CMP_LE_OQ)
    vandps ymm0, ymm0, [rip + sg_g]               # g
    vpaddd ymm4, ymm0, [rip + sg_s1]              # s1
    vpsubd ymm1, ymm1, ymm0                       # s2 = e - g
    vmovaps ymm0, ymm1
    vfmadd213ps ymm0, ymm3, ymm1                  # s2 j + s2
    vmulps ymm0, ymm0, ymm4                       # (s2 j + s2) s1
    vfmadd213ps ymm3, ymm5, ymm5                  # k j + k
    vandps ymm5, ymm2, [rip + sg_abs]             # |n|
    vcmpps ymm1, ymm5, [rip + sg_126], 30         # c
    vblendvps ymm3, ymm3, ymm0, ymm1              # c ? (s2 j + s2) s1 : k j + k
    vcmpps ymm1, ymm5, [rip + sg_192], 30         # d = |n| > 192
    vmulps ymm4, ymm4, ymm4                       # s1 s1
    vblendvps ymm0, ymm3, ymm4, ymm1
    ret
