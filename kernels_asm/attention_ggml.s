# Attention for one query position as llama.cpp's CPU backend computes it for a GGUF model
# (ATT_STYLE = ATT_STYLE_GGML; attention.s's entries come here): ggml's flash-attention
# kernel for one query row (ggml-cpu ops.cpp, ggml_compute_forward_flash_attn_ext_f16, the
# "one chunk" loop llama.cpp's decode runs; flash attention is llama.cpp's default on the
# CPU). Per head h (kvh = h / (n_heads / n_kv_heads)), with scale = 1 / sqrtf(head_size):
#
#   f16 caches: q_h is rounded to f16 (IN PLACE: ggml converts Q to the K cache's type)
#   M = -inf, S = 0, acc[0..hs) = 0
#   for t = 0..pos:
#       s = dot(q_h, k[t][kvh]) * scale                 (the cache type's vec_dot, below)
#       if s > M:  ms = expf(M - s) (0 while M = -inf), M = s, acc = acc * ms, vs = 1
#       else:      ms = 1, vs = expf(s - M)
#       acc = acc + v[t][kvh] * vs;  S = S * ms + vs
#   out_h = acc * (1 / S)
#
# f16 caches keep acc in f16 (ggml_vec_scale_f16 / ggml_vec_mad_f16): acc is rounded to f16
# (nearest even) after each scaling and each accumulation; f32 caches keep it in f32.
# The two paths do what ggml's two builds do:
#   AVX2 (ggml's AVX2+FMA build): dot = ggml_vec_dot_f16 / _f32: the first n & ~31 elements in
#     four 8-lane FMA sums (lanes i..i+7, i+8.., i+16.., i+24.. of each 32), folded as
#     (s0 + s2) + (s1 + s3), its two halves added, then two horizontal adds; the rest one at
#     a time: f16 caches add the f32 products to that sum in double, f32 caches in f32 with
#     FMA. acc updates: one FMA each (v * vs + acc), then the rounding; S = FMA(S, ms, vs).
#   SSE2 (ggml's portable scalar code): dot = the f32 products summed in double; acc + v * vs
#     and S * ms + vs each a product, then a sum.
# expf: the exponential in double (ag_expf), rounded once to f32: the correctly rounded
# value but for arguments within ~1e-15 of a rounding boundary (glibc's expf, which ggml
# calls, is the same to within that).
# att (ATT_SCRATCH) is not written. Any head_size (no alignment needed); pos < seq_len.
# The AVX2 entry, attention_ggml_heads_avx2, is attention_ggml_runs.s's: this arithmetic
# scheduled by runs of keys; the key loop's AVX2 form below stays as its reference.
.include "kernels.inc"
.include "ggml.inc"
.include "ggml_cvt.inc"
.include "attention_ggml.inc"

.section .text
.global attention_ggml_heads_sse2, attention_ggml_heads_avx2_keywise, ag_expf
.global ag_round_q_avx2, ag_dot_avx2, ag_scale_avx2     # for attention_ggml_runs.s
.global ag_lo, ag_hi, ag_log2e, ag_ln2_hi, ag_ln2_lo, ag_c0, ag_c1, ag_c2, ag_c3, ag_c4, ag_c5
.global ag_c6, ag_c7, ag_c8, ag_c9, ag_c10                # ag_expf's, for its vector form there

# attention_ggml_heads_<path>(rcx = params, edx = first head, r8d = heads): heads
# first .. first+heads-1 (their out rows); the caller's contract: attention_heads_<path>
attention_ggml_heads_sse2:
    lea rax, [rip + ag_dot_sse2]
    lea r10, [rip + ag_mad_sse2]
    lea r11, [rip + ag_scale_sse2]
    xor r9d, r9d                      # no FMA
    jmp ag_common
# attention_ggml_heads_avx2_keywise: the AVX2 path key by key, as written above (the entry is
# attention_ggml_runs.s's attention_ggml_heads_avx2, the same arithmetic by runs of keys;
# this one stays as its reference, which the tests compare it with bit for bit)
attention_ggml_heads_avx2_keywise:
    lea rax, [rip + ag_dot_avx2]
    lea r10, [rip + ag_mad_avx2]
    lea r11, [rip + ag_scale_avx2]
    mov r9d, 1
    jmp ag_common

# frame: [rsp+0..31] shadow space, then
.equ AG_DOT, 32                       # qword: dot(rcx = q f32, rdx = k row, r8 = n, r9d = f16) -> xmm0
.equ AG_MAD, 40                       # qword: mad(rcx = acc, rdx = v row, r8 = n, r9d = f16, xmm3 = vs)
.equ AG_SCALE, 48                     # qword: scale(rcx = acc, r8 = n, r9d = f16, xmm3 = a)
.equ AG_HEAD_END, 56                  # dword: one past the last head
.equ AG_KV_MUL, 60                    # dword: n_heads / n_kv_heads
.equ AG_SC, 64                        # f32: 1 / sqrtf(head_size)
.equ AG_M, 68                         # f32: the largest score so far
.equ AG_S, 72                         # f32: the sum of the weights so far
.equ AG_F16, 76                       # dword: 1 when the caches are f16
.equ AG_FMA, 80                       # dword: 1 on the AVX2 path
.equ AG_MS, 84                        # f32
.equ AG_VS, 88                        # f32
.equ AG_SHIFT, 92                     # dword: log2 of a cache element's bytes
.equ AG_FRAME, 104                    # 8 pushes + 104: rsp 16-aligned at our calls

ag_common:
    push rbx
    push rbp
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, AG_FRAME
    mov [rsp + AG_DOT], rax
    mov [rsp + AG_MAD], r10
    mov [rsp + AG_SCALE], r11
    mov [rsp + AG_FMA], r9d
    add r8d, edx
    mov [rsp + AG_HEAD_END], r8d
    mov r12d, edx                     # h
    mov rbx, rcx                      # params
    mov r14d, dword ptr [rbx + ATT_HEAD_SIZE]
    cvtsi2ss xmm0, r14                # scale = 1 / sqrtf(hs), as llama.cpp's kq_scale
    sqrtss xmm0, xmm0
    mov eax, 0x3F800000
    movd xmm1, eax
    divss xmm1, xmm0
    movss dword ptr [rsp + AG_SC], xmm1
    AG_CACHE_SETUP AG_KV_MUL, AG_F16, AG_SHIFT
.Lhead:
    cmp r12d, dword ptr [rsp + AG_HEAD_END]
    jae .Ldone
    mov eax, r12d
    xor edx, edx
    div dword ptr [rsp + AG_KV_MUL]
    imul rax, r14
    mov ecx, [rsp + AG_SHIFT]
    mov rbp, rax
    shl rbp, cl                       # byte offset of KV head h / kv_mul in a cache row
    mov rsi, r12
    imul rsi, r14
    shl rsi, 2
    mov rdi, rsi
    add rsi, [rbx + ATT_Q]            # q_h
    add rdi, [rbx + ATT_OUT]          # out_h: the accumulator
    xor eax, eax
.Lzero:
    cmp rax, r14
    jae .Lzeroed
    mov dword ptr [rdi + rax * 4], 0
    inc rax
    jmp .Lzero
.Lzeroed:
    cmp dword ptr [rsp + AG_F16], 0
    je .Lq_ready
    mov rcx, rsi                      # q_h rounded to f16, in place
    mov r8, r14
    cmp dword ptr [rsp + AG_FMA], 0
    je .Lq_sse2
    call ag_round_q_avx2
    jmp .Lq_ready
.Lq_sse2:
    call ag_round_q
.Lq_ready:
    mov eax, 0xFF800000               # M = -inf
    mov [rsp + AG_M], eax
    mov dword ptr [rsp + AG_S], 0
    xor r13d, r13d                    # t
.Lpos:
    mov rdx, r13
    imul rdx, r15
    add rdx, rbp
    add rdx, [rbx + ATT_KCACHE]
    mov rcx, rsi
    mov r8, r14
    mov r9d, [rsp + AG_F16]
    call qword ptr [rsp + AG_DOT]
    mulss xmm0, dword ptr [rsp + AG_SC]   # s
    movss xmm1, dword ptr [rsp + AG_M]
    ucomiss xmm0, xmm1
    jbe .Lnot_max                     # s <= M (or a NaN): no new maximum
    movss dword ptr [rsp + AG_M], xmm0
    mov eax, 0x3F800000
    mov [rsp + AG_VS], eax            # vs = 1
    mov dword ptr [rsp + AG_MS], 0    # ms = expf(-inf) = 0 for the first
    cmp dword ptr [rsp + AG_S], 0
    je .Lmad                          # acc is still 0: nothing to scale
    subss xmm1, xmm0                  # Mold - M
    movaps xmm0, xmm1
    call ag_expf
    movss dword ptr [rsp + AG_MS], xmm0
    movaps xmm3, xmm0
    mov rcx, rdi
    mov r8, r14
    mov r9d, [rsp + AG_F16]
    call qword ptr [rsp + AG_SCALE]
    jmp .Lmad
.Lnot_max:
    subss xmm0, xmm1                  # s - M
    call ag_expf
    movss dword ptr [rsp + AG_VS], xmm0
    mov eax, 0x3F800000
    mov [rsp + AG_MS], eax
.Lmad:
    mov rdx, r13
    imul rdx, r15
    add rdx, rbp
    add rdx, [rbx + ATT_VCACHE]
    mov rcx, rdi
    mov r8, r14
    mov r9d, [rsp + AG_F16]
    movss xmm3, dword ptr [rsp + AG_VS]
    call qword ptr [rsp + AG_MAD]
    movss xmm0, dword ptr [rsp + AG_S]    # S = S * ms + vs
    cmp dword ptr [rsp + AG_FMA], 0
    je .Lsum_sse2
    vmovss xmm1, dword ptr [rsp + AG_MS]
    vfmadd213ss xmm0, xmm1, dword ptr [rsp + AG_VS]
    jmp .Lsummed
.Lsum_sse2:
    mulss xmm0, dword ptr [rsp + AG_MS]
    addss xmm0, dword ptr [rsp + AG_VS]
.Lsummed:
    movss dword ptr [rsp + AG_S], xmm0
    inc r13
    cmp r13d, dword ptr [rbx + ATT_POS]
    jbe .Lpos
    mov eax, 0x3F800000               # out_h = acc * (1 / S), in f32
    movd xmm3, eax
    divss xmm3, dword ptr [rsp + AG_S]
    mov rcx, rdi
    mov r8, r14
    xor r9d, r9d
    call qword ptr [rsp + AG_SCALE]
    inc r12
    jmp .Lhead
.Ldone:
    add rsp, AG_FRAME
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbp
    pop rbx
    ret

# ag_round_q(rcx = q f32*, r8 = n): q[i] = f16 value nearest q[i] (nearest even), both
# paths (the SSE2 conversion gives F16C's bits). Changes rax, xmm0-xmm5.
ag_round_q:
    xor eax, eax
.Lq:
    cmp rax, r8
    jae .Lq_done
    movss xmm0, dword ptr [rcx + rax * 4]
    GF2H_SSE2 xmm0, xmm1, xmm2, xmm4, xmm5
    GH2F_SSE2 xmm0, xmm1, xmm2, xmm4
    movss dword ptr [rcx + rax * 4], xmm0
    inc rax
    jmp .Lq
.Lq_done:
    ret

# ag_round_q_avx2(rcx = q f32*, r8 = n): the same with F16C, 8 at a time, then one.
# Changes rax, r10, ymm0 (upper half zeroed on return).
ag_round_q_avx2:
    mov r10, r8
    and r10, -8
    xor eax, eax
.Lq8:
    cmp rax, r10
    jae .Lq1
    vmovups ymm0, [rcx + rax * 4]
    vcvtps2ph xmm0, ymm0, 0
    vcvtph2ps ymm0, xmm0
    vmovups [rcx + rax * 4], ymm0
    add rax, 8
    jmp .Lq8
.Lq1:
    cmp rax, r8
    jae .Lq_end
    vmovss xmm0, dword ptr [rcx + rax * 4]
    vcvtps2ph xmm0, xmm0, 0
    vcvtph2ps xmm0, xmm0
    vmovss dword ptr [rcx + rax * 4], xmm0
    inc rax
    jmp .Lq1
.Lq_end:
    vzeroupper
    ret

# ag_dot_sse2(rcx = q f32*, rdx = k row, r8 = n, r9d = 1: f16 row / 0: f32 row) -> xmm0:
# the f32 products q[i] * k[i] summed in double from 0, rounded to f32 (ggml's scalar
# vec_dot_f16 / vec_dot_f32). Changes rax, r10, xmm0-xmm5.
ag_dot_sse2:
    xorpd xmm3, xmm3
    xor eax, eax
.Ld:
    cmp rax, r8
    jae .Ld_done
    test r9d, r9d
    jz .Ld_f32
    movzx r10d, word ptr [rdx + rax * 2]
    movd xmm0, r10d
    GH2F_SSE2 xmm0, xmm1, xmm2, xmm4
    jmp .Ld_mul
.Ld_f32:
    movss xmm0, dword ptr [rdx + rax * 4]
.Ld_mul:
    mulss xmm0, dword ptr [rcx + rax * 4]
    cvtss2sd xmm0, xmm0
    addsd xmm3, xmm0
    inc rax
    jmp .Ld
.Ld_done:
    cvtsd2ss xmm0, xmm3
    ret

# ag_mad_sse2(rcx = acc f32*, rdx = v row, r8 = n, r9d = f16 flag, xmm3 = vs):
# acc[i] = acc[i] + v[i] * vs (a product, then a sum), rounded to f16 when r9d = 1.
# Changes rax, r10, xmm0-xmm5.
ag_mad_sse2:
    xor eax, eax
.Lm:
    cmp rax, r8
    jae .Lm_done
    test r9d, r9d
    jz .Lm_f32
    movzx r10d, word ptr [rdx + rax * 2]
    movd xmm0, r10d
    GH2F_SSE2 xmm0, xmm1, xmm2, xmm4
    mulss xmm0, xmm3
    addss xmm0, dword ptr [rcx + rax * 4]
    GF2H_SSE2 xmm0, xmm1, xmm2, xmm4, xmm5
    GH2F_SSE2 xmm0, xmm1, xmm2, xmm4
    jmp .Lm_store
.Lm_f32:
    movss xmm0, dword ptr [rdx + rax * 4]
    mulss xmm0, xmm3
    addss xmm0, dword ptr [rcx + rax * 4]
.Lm_store:
    movss dword ptr [rcx + rax * 4], xmm0
    inc rax
    jmp .Lm
.Lm_done:
    ret

# ag_scale_sse2(rcx = acc f32*, r8 = n, r9d = f16 flag, xmm3 = a): acc[i] = acc[i] * a,
# rounded to f16 when r9d = 1. Changes rax, xmm0-xmm5.
ag_scale_sse2:
    xor eax, eax
.Ls:
    cmp rax, r8
    jae .Ls_done
    movss xmm0, dword ptr [rcx + rax * 4]
    mulss xmm0, xmm3
    test r9d, r9d
    jz .Ls_store
    GF2H_SSE2 xmm0, xmm1, xmm2, xmm4, xmm5
    GH2F_SSE2 xmm0, xmm1, xmm2, xmm4
.Ls_store:
    movss dword ptr [rcx + rax * 4], xmm0
    inc rax
    jmp .Ls
.Ls_done:
    ret

# ag_dot_avx2(rcx = q f32*, rdx = k row, r8 = n, r9d = f16 flag) -> xmm0: ggml_vec_dot_f16 /
# ggml_vec_dot_f32 of its AVX2 build (see the top). Changes rax, r10, r11, ymm0-ymm5 (upper
# halves zeroed on return).
ag_dot_avx2:
    mov r10, r8
    and r10, -32
    vxorps xmm0, xmm0, xmm0
    vxorps xmm1, xmm1, xmm1
    vxorps xmm2, xmm2, xmm2
    vxorps xmm3, xmm3, xmm3
    xor eax, eax
.Lv:
    cmp rax, r10
    jae .Lv_fold
    test r9d, r9d
    jz .Lv_f32
    vcvtph2ps ymm4, xmmword ptr [rdx + rax * 2]
    vfmadd231ps ymm0, ymm4, [rcx + rax * 4]
    vcvtph2ps ymm4, xmmword ptr [rdx + rax * 2 + 16]
    vfmadd231ps ymm1, ymm4, [rcx + rax * 4 + 32]
    vcvtph2ps ymm4, xmmword ptr [rdx + rax * 2 + 32]
    vfmadd231ps ymm2, ymm4, [rcx + rax * 4 + 64]
    vcvtph2ps ymm4, xmmword ptr [rdx + rax * 2 + 48]
    vfmadd231ps ymm3, ymm4, [rcx + rax * 4 + 96]
    add rax, 32
    jmp .Lv
.Lv_f32:
    vmovups ymm4, [rdx + rax * 4]
    vfmadd231ps ymm0, ymm4, [rcx + rax * 4]
    vmovups ymm4, [rdx + rax * 4 + 32]
    vfmadd231ps ymm1, ymm4, [rcx + rax * 4 + 32]
    vmovups ymm4, [rdx + rax * 4 + 64]
    vfmadd231ps ymm2, ymm4, [rcx + rax * 4 + 64]
    vmovups ymm4, [rdx + rax * 4 + 96]
    vfmadd231ps ymm3, ymm4, [rcx + rax * 4 + 96]
    add rax, 32
    jmp .Lv
.Lv_fold:
    vaddps ymm0, ymm0, ymm2           # (s0 + s2) + (s1 + s3)
    vaddps ymm1, ymm1, ymm3
    vaddps ymm0, ymm0, ymm1
    vextractf128 xmm1, ymm0, 1
    vaddps xmm0, xmm0, xmm1
    vhaddps xmm0, xmm0, xmm0
    vhaddps xmm0, xmm0, xmm0
    test r9d, r9d
    jz .Lv_rest_f32
    vcvtss2sd xmm0, xmm0, xmm0        # f16 rows: the rest added in double
.Lv_rest16:
    cmp rax, r8
    jae .Lv_done16
    movzx r11d, word ptr [rdx + rax * 2]
    vmovd xmm1, r11d
    vcvtph2ps xmm1, xmm1
    vmulss xmm1, xmm1, dword ptr [rcx + rax * 4]
    vcvtss2sd xmm1, xmm1, xmm1
    vaddsd xmm0, xmm0, xmm1
    inc rax
    jmp .Lv_rest16
.Lv_done16:
    vcvtsd2ss xmm0, xmm0, xmm0
    vzeroupper
    ret
.Lv_rest_f32:                         # f32 rows: the rest in f32, one FMA each
    cmp rax, r8
    jae .Lv_done
    vmovss xmm1, dword ptr [rdx + rax * 4]
    vfmadd231ss xmm0, xmm1, dword ptr [rcx + rax * 4]
    inc rax
    jmp .Lv_rest_f32
.Lv_done:
    vzeroupper
    ret

# ag_mad_avx2(rcx = acc f32*, rdx = v row, r8 = n, r9d = f16 flag, xmm3 = vs):
# acc[i] = FMA(v[i], vs, acc[i]), rounded to f16 when r9d = 1 (ggml_vec_mad_f16 / _f32).
# Changes rax, r10, r11, ymm0, ymm1, ymm3 (upper halves zeroed on return).
ag_mad_avx2:
    mov r10, r8
    and r10, -8
    vbroadcastss ymm3, xmm3
    xor eax, eax
.La:
    cmp rax, r10
    jae .La_one
    vmovups ymm0, [rcx + rax * 4]
    test r9d, r9d
    jz .La_f32
    vcvtph2ps ymm1, xmmword ptr [rdx + rax * 2]
    vfmadd231ps ymm0, ymm1, ymm3
    vcvtps2ph xmm0, ymm0, 0
    vcvtph2ps ymm0, xmm0
    jmp .La_store
.La_f32:
    vfmadd231ps ymm0, ymm3, [rdx + rax * 4]
.La_store:
    vmovups [rcx + rax * 4], ymm0
    add rax, 8
    jmp .La
.La_one:
    cmp rax, r8
    jae .La_done
    vmovss xmm0, dword ptr [rcx + rax * 4]
    test r9d, r9d
    jz .La_one_f32
    movzx r11d, word ptr [rdx + rax * 2]
    vmovd xmm1, r11d
    vcvtph2ps xmm1, xmm1
    vfmadd231ss xmm0, xmm1, xmm3
    vcvtps2ph xmm0, xmm0, 0
    vcvtph2ps xmm0, xmm0
    jmp .La_one_store
.La_one_f32:
    vfmadd231ss xmm0, xmm3, dword ptr [rdx + rax * 4]
.La_one_store:
    vmovss dword ptr [rcx + rax * 4], xmm0
    inc rax
    jmp .La_one
.La_done:
    vzeroupper
    ret

# ag_scale_avx2(rcx = acc f32*, r8 = n, r9d = f16 flag, xmm3 = a): acc[i] = acc[i] * a,
# rounded to f16 when r9d = 1. Changes rax, r10, ymm0, ymm3 (upper halves zeroed on return).
ag_scale_avx2:
    mov r10, r8
    and r10, -8
    vbroadcastss ymm3, xmm3
    xor eax, eax
.Lc:
    cmp rax, r10
    jae .Lc_one
    vmulps ymm0, ymm3, [rcx + rax * 4]
    test r9d, r9d
    jz .Lc_store
    vcvtps2ph xmm0, ymm0, 0
    vcvtph2ps ymm0, xmm0
.Lc_store:
    vmovups [rcx + rax * 4], ymm0
    add rax, 8
    jmp .Lc
.Lc_one:
    cmp rax, r8
    jae .Lc_done
    vmulss xmm0, xmm3, dword ptr [rcx + rax * 4]
    test r9d, r9d
    jz .Lc_one_store
    vcvtps2ph xmm0, xmm0, 0
    vcvtph2ps xmm0, xmm0
.Lc_one_store:
    vmovss dword ptr [rcx + rax * 4], xmm0
    inc rax
    jmp .Lc_one
.Lc_done:
    vzeroupper
    ret

# ag_expf(xmm0 = x f32) -> xmm0 = exp(x) rounded to f32: in double, n = round(x log2 e),
# r = x - n ln2 (ln2 in two parts, n * hi exact), |r| <= ln2/2, exp(r) by its Taylor
# polynomial to degree 10 in Estrin's scheme (truncation < 3e-13 relative), times 2^n built
# in the exponent field; then one rounding to f32 (cvtsd2ss: subnormal results too). x < -104
# (and -inf, NaN): 0; x > 88.7: 88.7's value. SSE2 only; any path. Changes rax, xmm0-xmm5.
# (A NaN score thus weighs 0 here where ggml's expf would give NaN.)
ag_expf:
    cvtss2sd xmm0, xmm0
    ucomisd xmm0, qword ptr [rip + ag_lo]
    jb .Le_zero                       # below, or unordered (NaN)
    minsd xmm0, qword ptr [rip + ag_hi]
    movsd xmm1, qword ptr [rip + ag_log2e]
    mulsd xmm1, xmm0
    cvtsd2si eax, xmm1                # n, rounded to nearest
    cvtsi2sd xmm1, eax
    movsd xmm2, qword ptr [rip + ag_ln2_hi]
    mulsd xmm2, xmm1
    subsd xmm0, xmm2
    mulsd xmm1, qword ptr [rip + ag_ln2_lo]
    subsd xmm0, xmm1                  # r
    movapd xmm1, xmm0
    mulsd xmm1, xmm0                  # r^2
    movsd xmm2, qword ptr [rip + ag_c1]   # a0 = 1 + r
    mulsd xmm2, xmm0
    addsd xmm2, qword ptr [rip + ag_c0]
    movsd xmm3, qword ptr [rip + ag_c3]   # a1 = 1/2 + r/6
    mulsd xmm3, xmm0
    addsd xmm3, qword ptr [rip + ag_c2]
    movsd xmm4, qword ptr [rip + ag_c5]   # a2 = 1/4! + r/5!
    mulsd xmm4, xmm0
    addsd xmm4, qword ptr [rip + ag_c4]
    movsd xmm5, qword ptr [rip + ag_c7]   # a3 = 1/6! + r/7!
    mulsd xmm5, xmm0
    addsd xmm5, qword ptr [rip + ag_c6]
    mulsd xmm0, qword ptr [rip + ag_c9]   # a4 = 1/8! + r/9!
    addsd xmm0, qword ptr [rip + ag_c8]
    mulsd xmm3, xmm1                  # b0 = a0 + a1 r^2
    addsd xmm2, xmm3
    mulsd xmm5, xmm1                  # b1 = a2 + a3 r^2
    addsd xmm4, xmm5
    movsd xmm3, qword ptr [rip + ag_c10]  # b2 = a4 + r^2 / 10!
    mulsd xmm3, xmm1
    addsd xmm0, xmm3
    mulsd xmm1, xmm1                  # r^4
    mulsd xmm4, xmm1                  # b0 + b1 r^4
    addsd xmm2, xmm4
    mulsd xmm1, xmm1                  # r^8
    mulsd xmm0, xmm1                  # + b2 r^8
    addsd xmm2, xmm0
    add eax, 1023                     # 2^n as a double
    cdqe
    shl rax, 52
    movq xmm1, rax
    mulsd xmm2, xmm1
    cvtsd2ss xmm0, xmm2
    ret
.Le_zero:
    xorps xmm0, xmm0
    ret

.section .rdata
.align 8
ag_lo: .double -104.0
ag_hi: .double 88.7
ag_log2e: .double 1.4426950408889634
ag_ln2_hi: .double 6.93147180369123816490e-01
ag_ln2_lo: .double 1.90821492927058770002e-10
ag_c0: .double 1.0
ag_c1: .double 1.0
ag_c2: .double 0.5
ag_c3: .double 1.66666666666666666667e-01    # 1/3!
ag_c4: .double 4.16666666666666666667e-02    # 1/4!
ag_c5: .double 8.33333333333333333333e-03    # 1/5!
ag_c6: .double 1.38888888888888888889e-03    # 1/6!
ag_c7: .double 1.98412698412698412698e-04    # 1/7!
ag_c8: .double 2.48015873015873015873e-05    # 1/8!
ag_c9: .double 2.75573192239858906526e-06    # 1/9!
ag_c10: .double 2.75573192239858906526e-07   # 1/10!
