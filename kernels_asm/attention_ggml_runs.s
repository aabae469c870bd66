# Attention as llama.cpp's CPU backend computes it for a GGUF model, the AVX2 path
# (attention.s's AVX2 entry comes here for ATT_STYLE_GGML): the arithmetic of
# attention_ggml.s (its header: ggml's flash attention for one query row, as its AVX2+FMA
# build does it), every operation on every value the same, scheduled by runs of up to
# AR_RUN keys and groups of up to AR_GROUP query heads of one KV head instead of key by key
# and head by head (attention_ggml_heads_avx2_keywise, which the tests compare this with bit
# for bit). Per group of heads and run of keys t0 .. t0+n-1:
#
#   A. the scores s[t] = dot(q_h, k[t]) * scale, ag_dot_avx2's sums: inline for f16 caches
#      whose head size is a multiple of 32 (its loop and fold as written there; each k
#      block converted to f32 once for the group's heads), else calling it per head and key
#   then per head of the group:
#   B. the running maximum in key order, as the key loop compares (s > M, ordered): each key
#      gets a kind and the f32 argument of its exponential:
#        0  no new maximum:            arg = s - M        (vs = expf(arg), ms = 1)
#        1  the first maximum:         arg = 0, unused    (vs = 1, ms = 0, acc not scaled)
#        2  a new maximum after it:    arg = Mold - s     (vs = 1, ms = expf(arg), acc scaled)
#      (the key loop tells the first maximum by S = 0: S stays +0 exactly while M = -inf, as
#      every weight is then expf(NaN or -inf) = 0, and is >= 1 from the first maximum on)
#   C. the exponentials, four at a time: ag_expf's double-precision steps on four lanes
#      (the same constants, products and sums in the same order, no FMA, the same
#      rounding to f32); arguments below -104 or NaN give +0 as there
#   and each key's vs, ms and acc scale (eight keys at a time, selected by kind). Then
#   S = FMA(S, ms, vs) in key order, each head's (the group's heads' side by side), and
#   D. the accumulators (attention_ggml_acc.s): a block of columns in registers across the
#      run's keys; per key, scaled when kind = 2 (f16 caches: rounded to f16), then
#      FMA(v, vs, acc) (f16: rounded to f16). Each column's operations are the key loop's.
#   out_h = acc * (1 / S), in f32, as there.
.include "kernels.inc"
.include "ggml.inc"
.include "kmacros.inc"
.include "attention_ggml.inc"
.include "attention_ggml_runs.inc"
.include "attention_ggml_dots.inc"

.section .text
.global attention_ggml_heads_avx2, ar_expf_run
.extern ag_round_q_avx2, ag_dot_avx2, ag_scale_avx2
.extern ar_acc_f16, ar_acc_f32, ar_acc_joint2, ar_acc_joint3
.extern ag_lo, ag_hi, ag_log2e, ag_ln2_hi, ag_ln2_lo, ag_c0, ag_c1, ag_c2, ag_c3, ag_c4, ag_c5
.extern ag_c6, ag_c7, ag_c8, ag_c9, ag_c10

# frame: [rsp+0..31] shadow space, then
.equ AR_XMM, 32                       # xmm6-xmm15 saved (160 bytes)
.equ AR_HEAD_END, 192                 # dword: one past the last head
.equ AR_KV_MUL, 196                   # dword: n_heads / n_kv_heads
.equ AR_SC, 200                       # f32: 1 / sqrtf(head_size)
.equ AR_F16, 204                      # dword: 1 when the caches are f16
.equ AR_SHIFT, 208                    # dword: log2 of a cache element's bytes
.equ AR_N, 212                        # dword: keys in this run
.equ AR_J, 216                        # dword: a key of the run (called dots)
.equ AR_G, 220                        # dword: heads in this group
.equ AR_I, 224                        # dword: a head of the group
.equ AR_COLS_DONE, 228                 # dword: columns the joint accumulator steps did
.equ AR_MS, 232                       # (f32 M, f32 S)[AR_GROUP]: each head's largest score, sum
.equ AR_Y, 256                        # f32[AR_GROUP][8][8]: eight keys' lane sums per head
.equ AR_H0, AR_Y + 256 * AR_GROUP     # the group's arrays (attention_ggml_runs.inc)
.equ AR_FRAME, AR_H0 + AR_ANY_E + 4 * AR_RUN + 8   # 8 pushes + the frame: rsp 16-aligned

# AR_EXPF4: ymm0 = 4 arguments (doubles, each an f32's value) -> xmm0 = their ag_expf values
# (f32), lane by lane ag_expf's steps: clamp to 88.7, n = round(x log2 e) (cvtpd2dq: the
# rounding mode, as cvtsd2si), r = (x - n ln2_hi) - n ln2_lo, the Estrin polynomial, times
# 2^n, rounded to f32; lanes with x < -104 or NaN: +0 (they are computed from -104 and then
# masked). ag_expf's constants four times each from rsp + AR_XC (ar_expf_run's frame);
# xmm15 = four dwords 1023. Changes ymm0-ymm7.
.macro AR_XC_FILL c, k
    vbroadcastsd ymm0, qword ptr [rip + \c]
    vmovupd [rsp + AR_XC + 32 * \k], ymm0
.endm
.equ AR_XC, 64                        # f64[16][4] in ar_expf_run's frame
.equ AR_LO, AR_XC                     # the four-lane constants, from rsp
.equ AR_HI, AR_XC + 32
.equ AR_LOG2E, AR_XC + 64
.equ AR_LN2_HI, AR_XC + 96
.equ AR_LN2_LO, AR_XC + 128
.equ AR_CK, AR_XC + 160               # c_k at AR_CK + 32 k
.macro AR_EXPF4
    vcmppd ymm6, ymm0, [rsp + AR_LO], 0x1D    # x >= -104, ordered: the lanes kept
    vmaxpd ymm0, ymm0, [rsp + AR_LO]  # (NaN: -104)
    vminpd ymm0, ymm0, [rsp + AR_HI]
    vmulpd ymm1, ymm0, [rsp + AR_LOG2E]
    vcvtpd2dq xmm7, ymm1              # n
    vcvtdq2pd ymm1, xmm7
    vmulpd ymm2, ymm1, [rsp + AR_LN2_HI]
    vsubpd ymm0, ymm0, ymm2
    vmulpd ymm1, ymm1, [rsp + AR_LN2_LO]
    vsubpd ymm0, ymm0, ymm1           # r
    vmulpd ymm1, ymm0, ymm0           # r^2
    vmulpd ymm2, ymm0, [rsp + AR_CK + 32]     # a0 = 1 + r
    vaddpd ymm2, ymm2, [rsp + AR_CK]
    vmulpd ymm3, ymm0, [rsp + AR_CK + 96]     # a1 = 1/2 + r/6
    vaddpd ymm3, ymm3, [rsp + AR_CK + 64]
    vmulpd ymm4, ymm0, [rsp + AR_CK + 160]    # a2 = 1/4! + r/5!
    vaddpd ymm4, ymm4, [rsp + AR_CK + 128]
    vmulpd ymm5, ymm0, [rsp + AR_CK + 224]    # a3 = 1/6! + r/7!
    vaddpd ymm5, ymm5, [rsp + AR_CK + 192]
    vmulpd ymm0, ymm0, [rsp + AR_CK + 288]    # a4 = 1/8! + r/9!
    vaddpd ymm0, ymm0, [rsp + AR_CK + 256]
    vmulpd ymm3, ymm3, ymm1           # b0 = a0 + a1 r^2
    vaddpd ymm2, ymm2, ymm3
    vmulpd ymm5, ymm5, ymm1           # b1 = a2 + a3 r^2
    vaddpd ymm4, ymm4, ymm5
    vmulpd ymm3, ymm1, [rsp + AR_CK + 320]    # b2 = a4 + r^2 / 10!
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


# AR_SUMS g: S = FMA(S, ms, vs) over the run's keys (ecx of them) for heads 0..g-1 (their
# ms in AR_E_E, vs in AR_VS_E), each head's in key order as the key loop, the heads' chains
# interleaved. Changes rax, xmm0-xmm5.
.macro AR_SUMS_HEAD s, t, i
    vmovss \t, dword ptr [rsp + AR_H0 + \i * AR_HB + AR_E_E + rax * 4]
    vfmadd213ss \s, \t, dword ptr [rsp + AR_H0 + \i * AR_HB + AR_VS_E + rax * 4]
.endm
.macro AR_SUMS g
    vmovss xmm0, dword ptr [rsp + AR_MS + 4]
.if \g > 1
    vmovss xmm1, dword ptr [rsp + AR_MS + 12]
.endif
.if \g > 2
    vmovss xmm2, dword ptr [rsp + AR_MS + 20]
.endif
    xor eax, eax
ar_sums\@:
    AR_SUMS_HEAD xmm0, xmm3, 0
.if \g > 1
    AR_SUMS_HEAD xmm1, xmm4, 1
.endif
.if \g > 2
    AR_SUMS_HEAD xmm2, xmm5, 2
.endif
    inc eax
    cmp eax, ecx
    jb ar_sums\@
    vmovss dword ptr [rsp + AR_MS + 4], xmm0
.if \g > 1
    vmovss dword ptr [rsp + AR_MS + 12], xmm1
.endif
.if \g > 2
    vmovss dword ptr [rsp + AR_MS + 20], xmm2
.endif
.endm

# attention_ggml_heads_avx2(rcx = params, edx = first head, r8d = heads): heads
# first .. first+heads-1 (their out rows); the caller's contract: attention_heads_avx2.
# Needs AVX2, FMA, F16C. Any head_size, 0 <= pos < seq_len. Stack: about 5 KiB (the frame,
# AR_FRAME, and ar_expf_run's).
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
    mov r12d, edx                     # h: the group's first head
    mov rbx, rcx                      # params
    mov r14d, dword ptr [rbx + ATT_HEAD_SIZE]
    vcvtsi2ss xmm0, xmm0, r14         # scale = 1 / sqrtf(hs), as the key loop
    vsqrtss xmm0, xmm0, xmm0
    mov eax, 0x3F800000
    vmovd xmm1, eax
    vdivss xmm1, xmm1, xmm0
    vmovss dword ptr [rsp + AR_SC], xmm1
    AG_CACHE_SETUP AR_KV_MUL, AR_F16, AR_SHIFT
.Lgroup:
    cmp r12d, dword ptr [rsp + AR_HEAD_END]
    jae .Ldone
    mov eax, r12d
    xor edx, edx
    div dword ptr [rsp + AR_KV_MUL]   # eax = the KV head, edx = h's place among its heads
    mov ecx, [rsp + AR_KV_MUL]        # g = min(AR_GROUP, its heads from h on, heads left)
    sub ecx, edx
    mov edx, [rsp + AR_HEAD_END]
    sub edx, r12d
    cmp ecx, edx
    cmova ecx, edx
    mov edx, AR_GROUP
    cmp ecx, edx
    cmova ecx, edx
    mov [rsp + AR_G], ecx
    imul rax, r14
    mov ecx, [rsp + AR_SHIFT]
    mov rbp, rax
    shl rbp, cl                       # byte offset of the KV head in a cache row
    mov rsi, r12
    imul rsi, r14
    shl rsi, 2
    mov rdi, rsi
    add rsi, [rbx + ATT_Q]            # q of the group's first head (the others follow)
    add rdi, [rbx + ATT_OUT]          # its out row: the accumulator (the others follow)
    mov dword ptr [rsp + AR_I], 0
.Lhead_init:                          # each head: acc = 0, q rounded, M = -inf, S = 0
    mov eax, [rsp + AR_I]
    mov dword ptr [rsp + AR_MS + rax * 8], 0xFF800000
    mov dword ptr [rsp + AR_MS + rax * 8 + 4], 0
    imul rax, r14
    lea rcx, [rsi + rax * 4]
    lea rdx, [rdi + rax * 4]
    xor eax, eax
.Lzero:
    cmp rax, r14
    jae .Lzeroed
    mov dword ptr [rdx + rax * 4], 0
    inc rax
    jmp .Lzero
.Lzeroed:
    cmp dword ptr [rsp + AR_F16], 0
    je .Lq_ready
    mov r8, r14                       # q rounded to f16, in place
    call ag_round_q_avx2
.Lq_ready:
    inc dword ptr [rsp + AR_I]
    mov eax, [rsp + AR_I]
    cmp eax, [rsp + AR_G]
    jb .Lhead_init
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
    xor r9d, r9d                      # the key
    test r14d, 31
    jnz .Ldots_called
    test r14d, r14d
    jz .Ldots_called
    cmp dword ptr [rsp + AR_F16], 0
    je .Ldots_called
    lea r10, [rsi + r14 * 4]          # q of the group's second head
    lea r11, [r10 + r14 * 4]          # ... third
    mov eax, [rsp + AR_G]
    cmp eax, 2
    jb .Ldots1
    je .Ldots2
    AR_DOTS 3
    jmp .Lheads
.Ldots2:
    AR_DOTS 2
    jmp .Lheads
.Ldots1:
    AR_DOTS 1
    jmp .Lheads
.Ldots_called:                        # any other shape: ag_dot_avx2 (keeps rcx, rdx, r8, r9)
    mov dword ptr [rsp + AR_I], 0
.Ldc_head:
    mov rdx, r13
    imul rdx, r15
    add rdx, rbp
    add rdx, [rbx + ATT_KCACHE]
    mov eax, [rsp + AR_I]
    imul rax, r14
    lea rcx, [rsi + rax * 4]
    mov r8, r14
    mov r9d, [rsp + AR_F16]
    mov dword ptr [rsp + AR_J], 0
.Ldc_key:
    call ag_dot_avx2
    vmulss xmm0, xmm0, dword ptr [rsp + AR_SC]
    mov eax, [rsp + AR_I]
    imul eax, eax, AR_HB
    lea r11, [rsp + AR_H0 + AR_E_E]
    add r11, rax
    mov eax, [rsp + AR_J]
    vmovss dword ptr [r11 + rax * 4], xmm0
    add rdx, r15
    inc eax
    mov [rsp + AR_J], eax
    cmp eax, [rsp + AR_N]
    jb .Ldc_key
    inc dword ptr [rsp + AR_I]
    mov eax, [rsp + AR_I]
    cmp eax, [rsp + AR_G]
    jb .Ldc_head
.Lheads:
    mov ecx, [rsp + AR_N]             # no key scales a head yet
    xor eax, eax
.Lany:
    mov dword ptr [rsp + AR_H0 + AR_ANY_E + rax * 4], 0
    inc eax
    cmp eax, ecx
    jb .Lany
    xor r10d, r10d                    # r10 = the head, r11 = its arrays
.Lhead_bc:
    mov r11, r10
    imul r11, r11, AR_HB
    lea r11, [rsp + r11 + AR_H0]
# --- B: the running maximum; each key's kind and argument. Eight keys at a time while none
# of them is above M (then all are kind 0, arguments s - M); else, and for the last n % 8,
# key by key.
    vmovss xmm1, dword ptr [rsp + AR_MS + r10 * 8]
    mov ecx, [rsp + AR_N]
    xor eax, eax
.Lmax8:
    mov r8d, ecx                      # key by key to the end
    lea edx, [rax + 8]
    cmp edx, ecx
    ja .Lmax
    vbroadcastss ymm3, xmm1
    vmovups ymm0, [r11 + AR_E_E + rax * 4]
    vcmpps ymm2, ymm0, ymm3, 0x1E     # s > M (ordered), as below
    vmovmskps r8d, ymm2
    test r8d, r8d
    mov r8d, edx                      # or to these eight's end
    jnz .Lmax
    vsubps ymm0, ymm0, ymm3           # s - M
    vmovups [r11 + AR_E_E + rax * 4], ymm0
    vxorps xmm2, xmm2, xmm2
    vmovups [r11 + AR_KIND_E + rax * 4], ymm2
    mov eax, edx
    jmp .Lmax_end
.Lmax:
    cmp eax, r8d
    jae .Lmax_end
    vmovss xmm0, dword ptr [r11 + AR_E_E + rax * 4]
    vucomiss xmm0, xmm1
    ja .Lnew_max                      # s > M (ordered)
    vsubss xmm0, xmm0, xmm1           # s - M
    mov dword ptr [r11 + AR_KIND_E + rax * 4], 0
.Lmax_next:
    vmovss dword ptr [r11 + AR_E_E + rax * 4], xmm0
    inc eax
    jmp .Lmax
.Lnew_max:
    vmovd edx, xmm1
    cmp edx, 0xFF800000
    je .Lfirst_max                    # M = -inf (S = 0): the first maximum
    vsubss xmm2, xmm1, xmm0           # Mold - s
    mov dword ptr [r11 + AR_KIND_E + rax * 4], 2
    vmovaps xmm1, xmm0
    vmovaps xmm0, xmm2
    jmp .Lmax_next
.Lfirst_max:
    mov dword ptr [r11 + AR_KIND_E + rax * 4], 1
    vmovaps xmm1, xmm0
    vxorps xmm0, xmm0, xmm0
    jmp .Lmax_next
.Lmax_end:
    cmp eax, ecx
    jb .Lmax8
    vmovss dword ptr [rsp + AR_MS + r10 * 8], xmm1
.Lpad:                                # arguments 0 up to a multiple of 4
    test eax, 3
    jz .Lexp_start
    mov dword ptr [r11 + AR_E_E + rax * 4], 0
    inc eax
    jmp .Lpad
# --- C: the exponentials, four at a time
.Lexp_start:
    lea rcx, [r11 + AR_E_E]
    mov edx, eax
    call ar_expf_run                  # (keeps r8-r11)
# --- each key's vs, the sum's factor ms (in AR_E_E's place: kind 2's expf is its ms) and
# the accumulator's scale, eight keys at a time (those past n: whatever, unread); kind 2
# marks AR_ANY_E
.Lsum_start:
    mov edx, 0x3F800000
    vmovd xmm4, edx
    vbroadcastss ymm4, xmm4           # 1.0
    vxorps xmm5, xmm5, xmm5           # 0.0
    mov edx, 1
    vmovd xmm6, edx
    vpbroadcastd ymm6, xmm6           # kind 1
    vpaddd ymm7, ymm6, ymm6           # kind 2
    mov ecx, [rsp + AR_N]
    xor eax, eax
.Lweights:
    vmovups ymm0, [r11 + AR_E_E + rax * 4]
    vmovdqu ymm1, [r11 + AR_KIND_E + rax * 4]
    vpcmpeqd ymm2, ymm1, ymm6
    vpcmpeqd ymm3, ymm1, ymm7
    vpor ymm8, ymm2, ymm3
    vblendvps ymm9, ymm0, ymm4, ymm8  # vs: expf for kind 0, else 1
    vblendvps ymm10, ymm4, ymm5, ymm2 # ms: 1 for kind 0, 0 for kind 1,
    vblendvps ymm10, ymm10, ymm0, ymm3    # expf for kind 2
    vblendvps ymm11, ymm4, ymm0, ymm3 # acc scale: expf for kind 2, else 1
    vmovups [r11 + AR_VS_E + rax * 4], ymm9
    vmovups [r11 + AR_E_E + rax * 4], ymm10
    vmovups [r11 + AR_AS_E + rax * 4], ymm11
    vpor ymm3, ymm3, [rsp + AR_H0 + AR_ANY_E + rax * 4]
    vmovdqu [rsp + AR_H0 + AR_ANY_E + rax * 4], ymm3
    add eax, 8
    cmp eax, ecx
    jb .Lweights
    inc r10d
    cmp r10d, [rsp + AR_G]
    jb .Lhead_bc
# --- S = S * ms + vs in key order, the group's heads side by side
    mov ecx, [rsp + AR_N]
    mov eax, [rsp + AR_G]
    cmp eax, 2
    jb .Lsums1
    je .Lsums2
    AR_SUMS 3
    jmp .Lsummed
.Lsums2:
    AR_SUMS 2
    jmp .Lsummed
.Lsums1:
    AR_SUMS 1
.Lsummed:
# --- D: the accumulators (joint for 2 or 3 heads of an f16 cache, then head by head)
    mov rdx, r13
    imul rdx, r15
    add rdx, rbp
    add rdx, [rbx + ATT_VCACHE]       # v row of key t0
    xor r8d, r8d
    cmp dword ptr [rsp + AR_F16], 0
    je .Lacc_c0
    cmp dword ptr [rsp + AR_G], 2
    jb .Lacc_c0
    mov r8, r14
    and r8, -32
    jz .Lacc_c0
    mov ecx, [rsp + AR_N]
    mov r9, rdi
    lea r11, [rsp + AR_H0]
    cmp dword ptr [rsp + AR_G], 2
    je .Lacc_joint2
    call ar_acc_joint3
    jmp .Lacc_joint_done
.Lacc_joint2:
    call ar_acc_joint2
.Lacc_joint_done:
    mov r8, r14
    and r8, -32
.Lacc_c0:
    mov [rsp + AR_COLS_DONE], r8d
    cmp r8, r14
    jae .Lrun_done
    mov dword ptr [rsp + AR_I], 0
.Lacc_head:                           # head i: columns c0 .. hs-1
    mov eax, [rsp + AR_I]
    imul rax, r14
    mov ecx, [rsp + AR_COLS_DONE]
    add rax, rcx
    lea r9, [rdi + rax * 4]
    mov rdx, r13
    imul rdx, r15
    add rdx, rbp
    add rdx, [rbx + ATT_VCACHE]
    mov r8, rcx
    mov ecx, [rsp + AR_SHIFT]
    shl r8, cl
    add rdx, r8
    mov r8, r14
    sub r8d, [rsp + AR_COLS_DONE]
    mov eax, [rsp + AR_I]
    imul eax, eax, AR_HB
    lea r11, [rsp + AR_H0]
    add r11, rax
    mov ecx, [rsp + AR_N]
    cmp dword ptr [rsp + AR_F16], 0
    je .Lacc_f32
    call ar_acc_f16
    jmp .Lacc_next
.Lacc_f32:
    call ar_acc_f32
.Lacc_next:
    inc dword ptr [rsp + AR_I]
    mov eax, [rsp + AR_I]
    cmp eax, [rsp + AR_G]
    jb .Lacc_head
.Lrun_done:
    add r13d, [rsp + AR_N]
    cmp r13d, dword ptr [rbx + ATT_POS]
    jbe .Lrun
    mov dword ptr [rsp + AR_I], 0
.Lout:                                # each head: out = acc * (1 / S), in f32
    mov eax, [rsp + AR_I]
    mov edx, 0x3F800000
    vmovd xmm3, edx
    vdivss xmm3, xmm3, dword ptr [rsp + AR_MS + rax * 8 + 4]
    imul rax, r14
    lea rcx, [rdi + rax * 4]
    mov r8, r14
    xor r9d, r9d
    call ag_scale_avx2
    inc dword ptr [rsp + AR_I]
    mov eax, [rsp + AR_I]
    cmp eax, [rsp + AR_G]
    jb .Lout
    add r12d, [rsp + AR_G]
    jmp .Lgroup
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

# ar_expf_run(rcx = x f32*, edx = count, a multiple of 4): x[i] = ag_expf(x[i]) (attention_ggml.s),
# bit for bit, four at a time (AR_EXPF4). Needs AVX2. Changes rax, rcx, rdx, ymm0-ymm5 only
# (keeps r8-r11). Frame: xmm6, xmm7, xmm15 saved at [rsp], the constants at AR_XC.
.equ AR_XF_FRAME, AR_XC + 16 * 32 + 8
ar_expf_run:
    sub rsp, AR_XF_FRAME
    vmovups [rsp], xmm6
    vmovups [rsp + 16], xmm7
    vmovups [rsp + 32], xmm15
    AR_XC_FILL ag_lo, 0
    AR_XC_FILL ag_hi, 1
    AR_XC_FILL ag_log2e, 2
    AR_XC_FILL ag_ln2_hi, 3
    AR_XC_FILL ag_ln2_lo, 4
    AR_XC_FILL ag_c0, 5
    AR_XC_FILL ag_c1, 6
    AR_XC_FILL ag_c2, 7
    AR_XC_FILL ag_c3, 8
    AR_XC_FILL ag_c4, 9
    AR_XC_FILL ag_c5, 10
    AR_XC_FILL ag_c6, 11
    AR_XC_FILL ag_c7, 12
    AR_XC_FILL ag_c8, 13
    AR_XC_FILL ag_c9, 14
    AR_XC_FILL ag_c10, 15
    mov eax, 1023
    vmovd xmm15, eax
    vpbroadcastd xmm15, xmm15
    mov eax, edx
    lea rdx, [rcx + rax * 4]          # the end
.Lexp:
    cmp rcx, rdx
    jae .Lexp_done
    vcvtps2pd ymm0, xmmword ptr [rcx]
    AR_EXPF4
    vmovups xmmword ptr [rcx], xmm0
    add rcx, 16
    jmp .Lexp
.Lexp_done:
    vmovups xmm6, [rsp]
    vmovups xmm7, [rsp + 16]
    vmovups xmm15, [rsp + 32]
    vzeroupper
    add rsp, AR_XF_FRAME
    ret
