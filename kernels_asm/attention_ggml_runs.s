# Attention as llama.cpp's CPU backend computes it for a GGUF model, the AVX2 path
# (attention.s's AVX2 entry comes here for ATT_STYLE_GGML): the arithmetic of
# attention_ggml.s (its header: ggml's flash attention for one query row, as its AVX2+FMA
# build does it), every operation on every value the same, scheduled by runs of up to
# AR_RUN keys instead of key by key (attention_ggml_heads_avx2_keywise, which the tests
# compare this with bit for bit). Per head and run of keys t0 .. t0+n-1:
#
#   A. the scores s[t] = dot(q_h, k[t]) * scale, each ag_dot_avx2's sum (inline for f16
#      caches whose head size is a multiple of 32, its loop and fold as written there)
#   B. the running maximum in key order, as the key loop compares (s > M, ordered): each key
#      gets a kind and the f32 argument of its exponential:
#        0  no new maximum:            arg = s - M        (vs = expf(arg), ms = 1)
#        1  the first maximum:         arg = 0, unused    (vs = 1, ms = 0, acc not scaled)
#        2  a new maximum after it:    arg = Mold - s     (vs = 1, ms = expf(arg), acc scaled)
#      (the key loop tells the first maximum by S = 0: S stays +0 exactly while M = -inf, as
#      every weight is then expf(NaN) = 0, and is >= 1 from the first maximum on)
#   C. the exponentials, four at a time: ag_expf's double-precision steps on four lanes
#      (the same constants, products and sums in the same order, no FMA, the same
#      rounding to f32); arguments below -104 or NaN give +0 as there
#   D. S = FMA(S, ms, vs) in key order, then the accumulator, a block of up to 64 columns
#      at a time in registers across the run's keys: per key, scaled when kind = 2 (f16
#      caches: rounded to f16), then FMA(v, vs, acc) (f16: rounded to f16). Each column's
#      sequence of operations is the key loop's; the columns never mix.
#   out_h = acc * (1 / S), in f32, as there.
.include "kernels.inc"
.include "ggml.inc"
.include "kmacros.inc"

.section .text
.global attention_ggml_heads_avx2
.extern ag_round_q_avx2, ag_dot_avx2, ag_scale_avx2
.extern ag_lo, ag_hi, ag_log2e, ag_ln2_hi, ag_ln2_lo, ag_c0, ag_c1, ag_c2, ag_c3, ag_c4, ag_c5
.extern ag_c6, ag_c7, ag_c8, ag_c9, ag_c10

.equ AR_RUN, 64                       # keys per run (a multiple of 4)
# frame: [rsp+0..31] shadow space, then
.equ AR_XMM, 32                       # xmm6-xmm15 saved (160 bytes)
.equ AR_HEAD_END, 192                 # dword: one past the last head
.equ AR_KV_MUL, 196                   # dword: n_heads / n_kv_heads
.equ AR_SC, 200                       # f32: 1 / sqrtf(head_size)
.equ AR_M, 204                        # f32: the largest score so far
.equ AR_S, 208                        # f32: the sum of the weights so far
.equ AR_F16, 212                      # dword: 1 when the caches are f16
.equ AR_SHIFT, 216                    # dword: log2 of a cache element's bytes
.equ AR_N, 220                        # dword: keys in this run
.equ AR_J, 224                        # dword: the key of the run being scored (called dots)
.equ AR_E, 256                        # f32[AR_RUN]: scores, then arguments, then expf values
.equ AR_VS_E, 4 * AR_RUN              # from AR_E: f32[AR_RUN], each key's vs
.equ AR_KIND_E, 8 * AR_RUN            # from AR_E: dword[AR_RUN], each key's kind (B above)
.equ AR_FRAME, AR_E + 12 * AR_RUN + 8 # 8 pushes + the frame: rsp 16-aligned at our calls

# AR_EXPF4: ymm0 = 4 arguments (doubles, each an f32's value) -> xmm0 = their ag_expf values
# (f32), lane by lane ag_expf's steps: clamp to 88.7, n = round(x log2 e) (cvtpd2dq: the
# rounding mode, as cvtsd2si), r = (x - n ln2_hi) - n ln2_lo, the Estrin polynomial, times
# 2^n, rounded to f32; lanes with x < -104 or NaN: +0 (they are computed from -104 and then
# masked). xmm15 = four dwords 1023. Changes ymm0-ymm8.
.macro AR_EXPF4
    vbroadcastsd ymm5, qword ptr [rip + ag_lo]
    vcmppd ymm6, ymm0, ymm5, 0x1D     # x >= -104, ordered: the lanes kept
    vmaxpd ymm0, ymm0, ymm5           # (NaN: -104)
    vbroadcastsd ymm5, qword ptr [rip + ag_hi]
    vminpd ymm0, ymm0, ymm5
    vbroadcastsd ymm1, qword ptr [rip + ag_log2e]
    vmulpd ymm1, ymm1, ymm0
    vcvtpd2dq xmm7, ymm1              # n
    vcvtdq2pd ymm1, xmm7
    vbroadcastsd ymm2, qword ptr [rip + ag_ln2_hi]
    vmulpd ymm2, ymm2, ymm1
    vsubpd ymm0, ymm0, ymm2
    vbroadcastsd ymm5, qword ptr [rip + ag_ln2_lo]
    vmulpd ymm1, ymm1, ymm5
    vsubpd ymm0, ymm0, ymm1           # r
    vmulpd ymm1, ymm0, ymm0           # r^2
    vbroadcastsd ymm2, qword ptr [rip + ag_c1]    # a0 = 1 + r
    vmulpd ymm2, ymm2, ymm0
    vbroadcastsd ymm5, qword ptr [rip + ag_c0]
    vaddpd ymm2, ymm2, ymm5
    vbroadcastsd ymm3, qword ptr [rip + ag_c3]    # a1 = 1/2 + r/6
    vmulpd ymm3, ymm3, ymm0
    vbroadcastsd ymm5, qword ptr [rip + ag_c2]
    vaddpd ymm3, ymm3, ymm5
    vbroadcastsd ymm4, qword ptr [rip + ag_c5]    # a2 = 1/4! + r/5!
    vmulpd ymm4, ymm4, ymm0
    vbroadcastsd ymm5, qword ptr [rip + ag_c4]
    vaddpd ymm4, ymm4, ymm5
    vbroadcastsd ymm5, qword ptr [rip + ag_c7]    # a3 = 1/6! + r/7!
    vmulpd ymm5, ymm5, ymm0
    vbroadcastsd ymm8, qword ptr [rip + ag_c6]
    vaddpd ymm5, ymm5, ymm8
    vbroadcastsd ymm8, qword ptr [rip + ag_c9]    # a4 = 1/8! + r/9!
    vmulpd ymm0, ymm0, ymm8
    vbroadcastsd ymm8, qword ptr [rip + ag_c8]
    vaddpd ymm0, ymm0, ymm8
    vmulpd ymm3, ymm3, ymm1           # b0 = a0 + a1 r^2
    vaddpd ymm2, ymm2, ymm3
    vmulpd ymm5, ymm5, ymm1           # b1 = a2 + a3 r^2
    vaddpd ymm4, ymm4, ymm5
    vbroadcastsd ymm3, qword ptr [rip + ag_c10]   # b2 = a4 + r^2 / 10!
    vmulpd ymm3, ymm3, ymm1
    vaddpd ymm0, ymm0, ymm3
    vmulpd ymm1, ymm1, ymm1           # r^4
    vmulpd ymm4, ymm4, ymm1           # b0 + b1 r^4
    vaddpd ymm2, ymm2, ymm4
    vmulpd ymm1, ymm1, ymm1           # r^8
    vmulpd ymm0, ymm0, ymm1           # + b2 r^8
    vaddpd ymm2, ymm2, ymm0
    vpaddd xmm7, xmm7, xmm15          # 2^n as doubles (n + 1023 in 873 .. 1151)
    vpmovzxdq ymm7, xmm7
    vpsllq ymm7, ymm7, 52
    vmulpd ymm2, ymm2, ymm7
    vandpd ymm2, ymm2, ymm6
    vcvtpd2ps xmm0, ymm2
.endm

# The accumulator's block steps (AR_EACH n, op: op on registers ymm0 .. ymm(n-1), n = 1, 2, 4
# or 8, with its xmm name and index i; r9 = the block's acc, r10 = its v at the key,
# ymm8 = vs, ymm9 = ms broadcast).
.macro AR_LD y, x, i
    vmovups \y, [r9 + 32 * \i]
.endm
.macro AR_ST y, x, i
    vmovups [r9 + 32 * \i], \y
.endm
.macro AR_MAD16 y, x, i               # acc = f16(FMA(v, vs, acc)): ggml_vec_mad_f16
    vcvtph2ps ymm10, xmmword ptr [r10 + 16 * \i]
    vfmadd231ps \y, ymm10, ymm8
    vcvtps2ph \x, \y, 0
    vcvtph2ps \y, \x
.endm
.macro AR_MAD32 y, x, i               # acc = FMA(vs, v, acc): ggml_vec_mad_f32
    vfmadd231ps \y, ymm8, [r10 + 32 * \i]
.endm
.macro AR_SCALE16 y, x, i             # acc = f16(acc * ms): ggml_vec_scale_f16
    vmulps \y, ymm9, \y
    vcvtps2ph \x, \y, 0
    vcvtph2ps \y, \x
.endm
.macro AR_SCALE32 y, x, i
    vmulps \y, ymm9, \y
.endm
.macro AR_EACH n, op
    \op ymm0, xmm0, 0
.if \n > 1
    \op ymm1, xmm1, 1
.endif
.if \n > 2
    \op ymm2, xmm2, 2
    \op ymm3, xmm3, 3
.endif
.if \n > 4
    \op ymm4, xmm4, 4
    \op ymm5, xmm5, 5
    \op ymm6, xmm6, 6
    \op ymm7, xmm7, 7
.endif
.endm
# AR_COLS n, scale, mad: 8n columns of the accumulator (r9) across the run's keys (ecx of
# them, v rows from rdx at the block's column, r11 = the run's arrays). Changes rax, r10.
.macro AR_COLS n, scale, mad
    AR_EACH \n, AR_LD
    xor eax, eax
    mov r10, rdx
ar_key\@:
    cmp dword ptr [r11 + AR_KIND_E + rax * 4], 2
    jne ar_mad\@
    vbroadcastss ymm9, dword ptr [r11 + rax * 4]
    AR_EACH \n, \scale
ar_mad\@:
    vbroadcastss ymm8, dword ptr [r11 + AR_VS_E + rax * 4]
    AR_EACH \n, \mad
    add r10, r15
    inc eax
    cmp eax, ecx
    jb ar_key\@
    AR_EACH \n, AR_ST
.endm

# attention_ggml_heads_avx2(rcx = params, edx = first head, r8d = heads): heads
# first .. first+heads-1 (their out rows); the caller's contract: attention_heads_avx2.
# Needs AVX2, FMA, F16C. Any head_size, 0 <= pos < seq_len.
attention_ggml_heads_avx2:
    push rbx
    push rbp
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, AR_FRAME
    KSAVE_XMM6_15_VEX AR_XMM
    add r8d, edx
    mov [rsp + AR_HEAD_END], r8d
    mov r12d, edx                     # h
    mov rbx, rcx                      # params
    mov r14d, dword ptr [rbx + ATT_HEAD_SIZE]
    vcvtsi2ss xmm0, xmm0, r14         # scale = 1 / sqrtf(hs), as the key loop
    vsqrtss xmm0, xmm0, xmm0
    mov eax, 0x3F800000
    vmovd xmm1, eax
    vdivss xmm1, xmm1, xmm0
    vmovss dword ptr [rsp + AR_SC], xmm1
    mov eax, dword ptr [rbx + ATT_N_HEADS]
    xor edx, edx
    div dword ptr [rbx + ATT_N_KV_HEADS]
    mov dword ptr [rsp + AR_KV_MUL], eax
    xor eax, eax
    mov ecx, 2                        # f32 elements: 4 bytes
    cmp dword ptr [rbx + ATT_KV_TYPE], GGML_TYPE_F16
    jne .Lelement
    mov eax, 1
    mov ecx, 1                        # f16: 2
.Lelement:
    mov [rsp + AR_F16], eax
    mov [rsp + AR_SHIFT], ecx
    mov r15d, dword ptr [rbx + ATT_N_KV_HEADS]
    imul r15, r14
    shl r15, cl                       # bytes per cache row (kv_dim elements)
.Lhead:
    cmp r12d, dword ptr [rsp + AR_HEAD_END]
    jae .Ldone
    mov eax, r12d
    xor edx, edx
    div dword ptr [rsp + AR_KV_MUL]
    imul rax, r14
    mov ecx, [rsp + AR_SHIFT]
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
    cmp dword ptr [rsp + AR_F16], 0
    je .Lq_ready
    mov rcx, rsi                      # q_h rounded to f16, in place
    mov r8, r14
    call ag_round_q_avx2
.Lq_ready:
    mov dword ptr [rsp + AR_M], 0xFF800000    # M = -inf
    mov dword ptr [rsp + AR_S], 0
    xor r13d, r13d                    # t0: the run's first key
.Lrun:
    mov eax, dword ptr [rbx + ATT_POS]
    inc eax
    sub eax, r13d                     # keys left
    cmp eax, AR_RUN
    jbe .Lrun_n
    mov eax, AR_RUN
.Lrun_n:
    mov [rsp + AR_N], eax
# --- A: the scores
    mov rdx, r13
    imul rdx, r15
    add rdx, rbp
    add rdx, [rbx + ATT_KCACHE]       # k row of key t0
    xor r9d, r9d                      # j
    test r14d, 31
    jnz .Ldot_called
    cmp dword ptr [rsp + AR_F16], 0
    je .Ldot_called
.Ldot16:                              # ag_dot_avx2's f16 sum, no rest (n % 32 = 0)
    vxorps xmm0, xmm0, xmm0
    vxorps xmm1, xmm1, xmm1
    vxorps xmm2, xmm2, xmm2
    vxorps xmm3, xmm3, xmm3
    xor eax, eax
.Ldot16_block:
    cmp rax, r14
    jae .Ldot16_fold
    vcvtph2ps ymm4, xmmword ptr [rdx + rax * 2]
    vfmadd231ps ymm0, ymm4, [rsi + rax * 4]
    vcvtph2ps ymm5, xmmword ptr [rdx + rax * 2 + 16]
    vfmadd231ps ymm1, ymm5, [rsi + rax * 4 + 32]
    vcvtph2ps ymm4, xmmword ptr [rdx + rax * 2 + 32]
    vfmadd231ps ymm2, ymm4, [rsi + rax * 4 + 64]
    vcvtph2ps ymm5, xmmword ptr [rdx + rax * 2 + 48]
    vfmadd231ps ymm3, ymm5, [rsi + rax * 4 + 96]
    add rax, 32
    jmp .Ldot16_block
.Ldot16_fold:
    vaddps ymm0, ymm0, ymm2           # (s0 + s2) + (s1 + s3)
    vaddps ymm1, ymm1, ymm3
    vaddps ymm0, ymm0, ymm1
    vextractf128 xmm1, ymm0, 1
    vaddps xmm0, xmm0, xmm1
    vhaddps xmm0, xmm0, xmm0
    vhaddps xmm0, xmm0, xmm0
    vcvtss2sd xmm0, xmm0, xmm0        # through double, as there (no rest to add)
    vcvtsd2ss xmm0, xmm0, xmm0
    vmulss xmm0, xmm0, dword ptr [rsp + AR_SC]
    vmovss dword ptr [rsp + AR_E + r9 * 4], xmm0
    add rdx, r15
    inc r9d
    cmp r9d, [rsp + AR_N]
    jb .Ldot16
    jmp .Lmax_start
.Ldot_called:                         # any other shape: ag_dot_avx2 (keeps rdx)
    mov [rsp + AR_J], r9d
    mov rcx, rsi
    mov r8, r14
    mov r9d, [rsp + AR_F16]
    call ag_dot_avx2
    vmulss xmm0, xmm0, dword ptr [rsp + AR_SC]
    mov eax, [rsp + AR_J]
    vmovss dword ptr [rsp + AR_E + rax * 4], xmm0
    add rdx, r15
    inc eax
    mov r9d, eax
    cmp eax, [rsp + AR_N]
    jb .Ldot_called
# --- B: the running maximum; each key's kind and argument
.Lmax_start:
    vmovss xmm1, dword ptr [rsp + AR_M]
    mov ecx, [rsp + AR_N]
    xor eax, eax
.Lmax:
    vmovss xmm0, dword ptr [rsp + AR_E + rax * 4]
    vucomiss xmm0, xmm1
    ja .Lnew_max                      # s > M (ordered)
    vsubss xmm0, xmm0, xmm1           # s - M
    mov dword ptr [rsp + AR_E + AR_KIND_E + rax * 4], 0
    jmp .Lmax_next
.Lnew_max:
    vmovd edx, xmm1
    cmp edx, 0xFF800000
    je .Lfirst_max                    # M = -inf (S = 0): the first maximum
    vsubss xmm2, xmm1, xmm0           # Mold - s
    mov dword ptr [rsp + AR_E + AR_KIND_E + rax * 4], 2
    vmovaps xmm1, xmm0
    vmovaps xmm0, xmm2
    jmp .Lmax_next
.Lfirst_max:
    mov dword ptr [rsp + AR_E + AR_KIND_E + rax * 4], 1
    vmovaps xmm1, xmm0
    vxorps xmm0, xmm0, xmm0
.Lmax_next:
    vmovss dword ptr [rsp + AR_E + rax * 4], xmm0
    inc eax
    cmp eax, ecx
    jb .Lmax
    vmovss dword ptr [rsp + AR_M], xmm1
.Lpad:                                # arguments 0 up to a multiple of 4
    test eax, 3
    jz .Lexp_start
    mov dword ptr [rsp + AR_E + rax * 4], 0
    inc eax
    jmp .Lpad
# --- C: the exponentials, four at a time
.Lexp_start:
    mov ecx, eax
    xor eax, eax
    mov edx, 1023
    vmovd xmm15, edx
    vpbroadcastd xmm15, xmm15
.Lexp:
    cmp eax, ecx
    jae .Lsum_start
    vcvtps2pd ymm0, xmmword ptr [rsp + AR_E + rax * 4]
    AR_EXPF4
    vmovups xmmword ptr [rsp + AR_E + rax * 4], xmm0
    add eax, 4
    jmp .Lexp
# --- D: S, then the accumulator
.Lsum_start:
    vmovss xmm0, dword ptr [rsp + AR_S]
    mov edx, 0x3F800000
    vmovd xmm4, edx                   # 1
    vxorps xmm5, xmm5, xmm5           # 0
    mov ecx, [rsp + AR_N]
    xor eax, eax
.Lsum:
    mov edx, [rsp + AR_E + AR_KIND_E + rax * 4]
    vmovss xmm1, dword ptr [rsp + AR_E + rax * 4]
    vmovaps xmm2, xmm1                # kind 0: vs = expf, ms = 1
    vmovaps xmm3, xmm4
    test edx, edx
    jz .Lsum_add
    vmovaps xmm2, xmm4                # kinds 1, 2: vs = 1, ms = 0 / expf
    vmovaps xmm3, xmm5
    cmp edx, 1
    je .Lsum_add
    vmovaps xmm3, xmm1
.Lsum_add:
    vfmadd213ss xmm0, xmm3, xmm2      # S = S * ms + vs
    vmovss dword ptr [rsp + AR_E + AR_VS_E + rax * 4], xmm2
    inc eax
    cmp eax, ecx
    jb .Lsum
    vmovss dword ptr [rsp + AR_S], xmm0
    mov rdx, r13
    imul rdx, r15
    add rdx, rbp
    add rdx, [rbx + ATT_VCACHE]       # v row of key t0
    mov r8, r14
    mov r9, rdi
    lea r11, [rsp + AR_E]
    cmp dword ptr [rsp + AR_F16], 0
    je .Lacc_f32
    call ar_acc_f16
    jmp .Lrun_done
.Lacc_f32:
    call ar_acc_f32
.Lrun_done:
    add r13d, [rsp + AR_N]
    cmp r13d, dword ptr [rbx + ATT_POS]
    jbe .Lrun
    mov eax, 0x3F800000               # out_h = acc * (1 / S), in f32
    vmovd xmm3, eax
    vdivss xmm3, xmm3, dword ptr [rsp + AR_S]
    mov rcx, rdi
    mov r8, r14
    xor r9d, r9d
    call ag_scale_avx2
    inc r12
    jmp .Lhead
.Ldone:
    KLOAD_XMM6_15_VEX AR_XMM
    vzeroupper
    add rsp, AR_FRAME
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbp
    pop rbx
    ret

# ar_acc_f16 / ar_acc_f32 (ecx = the run's keys (>= 1), rdx = v row of its first key,
# r8 = columns, r9 = acc f32*, r11 = the run's arrays (AR_E's layout), r15 = bytes per cache
# row): D's accumulator steps, 64 columns at a time, then 32, 16, 8, then one by one.
# Changes rax, rdx, r8-r10, ymm0-ymm10 (its caller saved xmm6-xmm10).
ar_acc_f16:
.Lb8:
    cmp r8, 64
    jb .Lb4
    AR_COLS 8, AR_SCALE16, AR_MAD16
    add r9, 256
    add rdx, 128
    sub r8, 64
    jmp .Lb8
.Lb4:
    cmp r8, 32
    jb .Lb2
    AR_COLS 4, AR_SCALE16, AR_MAD16
    add r9, 128
    add rdx, 64
    sub r8, 32
.Lb2:
    cmp r8, 16
    jb .Lb1
    AR_COLS 2, AR_SCALE16, AR_MAD16
    add r9, 64
    add rdx, 32
    sub r8, 16
.Lb1:
    cmp r8, 8
    jb .Lcol
    AR_COLS 1, AR_SCALE16, AR_MAD16
    add r9, 32
    add rdx, 16
    sub r8, 8
.Lcol:                                # the last hs % 8 columns, as ag_mad_avx2's tail
    test r8, r8
    jz .Lend
    vmovss xmm0, dword ptr [r9]
    xor eax, eax
    mov r10, rdx
1:
    cmp dword ptr [r11 + AR_KIND_E + rax * 4], 2
    jne 2f
    vmulss xmm0, xmm0, dword ptr [r11 + rax * 4]
    vcvtps2ph xmm0, xmm0, 0
    vcvtph2ps xmm0, xmm0
2:
    vpbroadcastw xmm1, word ptr [r10]
    vcvtph2ps xmm1, xmm1
    vfmadd231ss xmm0, xmm1, dword ptr [r11 + AR_VS_E + rax * 4]
    vcvtps2ph xmm0, xmm0, 0
    vcvtph2ps xmm0, xmm0
    add r10, r15
    inc eax
    cmp eax, ecx
    jb 1b
    vmovss dword ptr [r9], xmm0
    add r9, 4
    add rdx, 2
    dec r8
    jmp .Lcol
.Lend:
    ret

ar_acc_f32:
.Lb8:
    cmp r8, 64
    jb .Lb4
    AR_COLS 8, AR_SCALE32, AR_MAD32
    add r9, 256
    add rdx, 256
    sub r8, 64
    jmp .Lb8
.Lb4:
    cmp r8, 32
    jb .Lb2
    AR_COLS 4, AR_SCALE32, AR_MAD32
    add r9, 128
    add rdx, 128
    sub r8, 32
.Lb2:
    cmp r8, 16
    jb .Lb1
    AR_COLS 2, AR_SCALE32, AR_MAD32
    add r9, 64
    add rdx, 64
    sub r8, 16
.Lb1:
    cmp r8, 8
    jb .Lcol
    AR_COLS 1, AR_SCALE32, AR_MAD32
    add r9, 32
    add rdx, 32
    sub r8, 8
.Lcol:
    test r8, r8
    jz .Lend
    vmovss xmm0, dword ptr [r9]
    xor eax, eax
    mov r10, rdx
1:
    cmp dword ptr [r11 + AR_KIND_E + rax * 4], 2
    jne 2f
    vmulss xmm0, xmm0, dword ptr [r11 + rax * 4]
2:
    vmovss xmm1, dword ptr [r10]
    vfmadd231ss xmm0, xmm1, dword ptr [r11 + AR_VS_E + rax * 4]
    add r10, r15
    inc eax
    cmp eax, ecx
    jb 1b
    vmovss dword ptr [r9], xmm0
    add r9, 4
    add rdx, 4
    dec r8
    jmp .Lcol
.Lend:
    ret
