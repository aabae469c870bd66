# The accumulator steps of attention_ggml_runs.s (the GGUF attention's AVX2 path, its D):
# for a run of keys, each key's acc = acc * ms when it brings a new maximum (kind 2), then
# acc = FMA(v, vs, acc), f16 caches rounding acc to f16 (nearest even) after each, as
# ggml_vec_scale_f16 / ggml_vec_mad_f16 and their f32 forms in ggml's AVX2+FMA build do (see
# attention_ggml.s's header). A block of accumulator columns stays in registers across the
# run's keys; each column's operations are the key loop's, in its order.
#   ar_acc_f16 / ar_acc_f32: one head, 64 columns at a time, then 32, 16, 8, one by one.
#   ar_acc_joint2 / ar_acc_joint3: 2 or 3 heads of one KV head (f16 caches), 32 columns at a
#     time: each v row's f16 -> f32 conversion done once for the heads, which F16C's
#     conversions (the loop's bottleneck) then do a third less of.
.include "kernels.inc"
.include "attention_ggml_runs.inc"

.section .text
.global ar_acc_f16, ar_acc_f32, ar_acc_joint2, ar_acc_joint3

# The accumulator's block steps (AR_EACH n, op: op on registers ymm0 .. ymm(n-1), n = 1, 2, 4
# or 8, with its xmm name and index i; r9 = the block's acc, r10 = its v at the key,
# ymm8 = vs, ymm9 = ms broadcast; r11 = the head's arrays).
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
# them, v rows from rdx at the block's column, r11 = the head's arrays). Changes rax, r10.
.macro AR_COLS n, scale, mad
    AR_EACH \n, AR_LD
    xor eax, eax
    mov r10, rdx
ar_key\@:
    cmp dword ptr [r11 + AR_KIND_E + rax * 4], 2
    jne ar_mad\@
    vbroadcastss ymm9, dword ptr [r11 + AR_E_E + rax * 4]
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


# The joint steps: heads 0..g-1's accumulators at r9, r9 + 4 hs, r9 + 8 hs (r14 = hs), 32
# columns each (head i's in ymm(4i) .. ymm(4i+3)), v's 8 columns at a time converted once
# for the heads (ymm12), head i's vs in ymm(13+i), an acc scale in ymm12 (before v's). A key
# where no head has kind 2 scales none; where one has, all are scaled, by AR_AS_E's factor:
# 1 for the others, which changes no bit (acc is an f16 value, or a NaN with an f16's
# payload: acc * 1 is acc, and so is its rounding).
.macro AR_JSCALE y, x
    vmulps \y, ymm12, \y
    vcvtps2ph \x, \y, 0
    vcvtph2ps \y, \x
.endm
.macro AR_JMAD y, x, vs
    vfmadd231ps \y, ymm12, \vs
    vcvtps2ph \x, \y, 0
    vcvtph2ps \y, \x
.endm
.macro AR_JHEAD_SCALE i, a, b, c, d, xa, xb, xc, xd
    vbroadcastss ymm12, dword ptr [r11 + \i * AR_HB + AR_AS_E + rax * 4]
    AR_JSCALE \a, \xa
    AR_JSCALE \b, \xb
    AR_JSCALE \c, \xc
    AR_JSCALE \d, \xd
.endm
.macro AR_JV g, s, a, b, c, xa, xb, xc   # v's columns 8s..8s+7, into heads' acc a, b, c
    vcvtph2ps ymm12, xmmword ptr [r10 + 16 * \s]
    AR_JMAD \a, \xa, ymm13
    AR_JMAD \b, \xb, ymm14
.if \g > 2
    AR_JMAD \c, \xc, ymm15
.endif
.endm
.macro AR_JLS op, y, off
.if \op
    vmovups \y, [r9 + \off]
.else
    vmovups [r9 + \off], \y
.endif
.endm
.macro AR_JLOADSTORE g, op
    AR_JLS \op, ymm0, 0
    AR_JLS \op, ymm1, 32
    AR_JLS \op, ymm2, 64
    AR_JLS \op, ymm3, 96
    AR_JLS \op, ymm4, r14*4
    AR_JLS \op, ymm5, r14*4+32
    AR_JLS \op, ymm6, r14*4+64
    AR_JLS \op, ymm7, r14*4+96
.if \g > 2
    AR_JLS \op, ymm8, r14*8
    AR_JLS \op, ymm9, r14*8+32
    AR_JLS \op, ymm10, r14*8+64
    AR_JLS \op, ymm11, r14*8+96
.endif
.endm
.macro AR_JCOLS g
    AR_JLOADSTORE \g, 1
    xor eax, eax
    mov r10, rdx
ar_jkey\@:
    cmp dword ptr [r11 + AR_ANY_E + rax * 4], 0
    je ar_jmad\@
    AR_JHEAD_SCALE 0, ymm0, ymm1, ymm2, ymm3, xmm0, xmm1, xmm2, xmm3
    AR_JHEAD_SCALE 1, ymm4, ymm5, ymm6, ymm7, xmm4, xmm5, xmm6, xmm7
.if \g > 2
    AR_JHEAD_SCALE 2, ymm8, ymm9, ymm10, ymm11, xmm8, xmm9, xmm10, xmm11
.endif
ar_jmad\@:
    vbroadcastss ymm13, dword ptr [r11 + AR_VS_E + rax * 4]
    vbroadcastss ymm14, dword ptr [r11 + AR_HB + AR_VS_E + rax * 4]
.if \g > 2
    vbroadcastss ymm15, dword ptr [r11 + 2 * AR_HB + AR_VS_E + rax * 4]
.endif
    AR_JV \g, 0, ymm0, ymm4, ymm8, xmm0, xmm4, xmm8
    AR_JV \g, 1, ymm1, ymm5, ymm9, xmm1, xmm5, xmm9
    AR_JV \g, 2, ymm2, ymm6, ymm10, xmm2, xmm6, xmm10
    AR_JV \g, 3, ymm3, ymm7, ymm11, xmm3, xmm7, xmm11
    add r10, r15
    inc eax
    cmp eax, ecx
    jb ar_jkey\@
    AR_JLOADSTORE \g, 0
.endm

# ar_acc_f16 / ar_acc_f32 (ecx = the run's keys (>= 1), rdx = v row of its first key at the
# first column, r8 = columns, r9 = acc f32* at that column, r11 = the head's arrays
# (attention_ggml_runs.inc), r15 = bytes per cache row): D's accumulator steps, 64 columns at a time, then 32, 16, 8, then one by one.
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
    vmulss xmm0, xmm0, dword ptr [r11 + AR_E_E + rax * 4]
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
    vmulss xmm0, xmm0, dword ptr [r11 + AR_E_E + rax * 4]
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

# ar_acc_joint2 / ar_acc_joint3 (ecx = the run's keys (>= 1), rdx = v row of its first key,
# r8 = columns (a multiple of 32, > 0), r9 = head 0's acc f32*, r11 = head 0's arrays (the
# group's, attention_ggml_runs.inc), r14 = head_size, r15 = bytes per cache row; f16 caches):
# heads 0..1 / 0..2, the first r8 columns. Changes rax, rdx, r8-r10, ymm0-ymm15 (its caller
# saved xmm6-xmm15).
ar_acc_joint2:
.Lj:
    AR_JCOLS 2
    add r9, 128
    add rdx, 64
    sub r8, 32
    jnz .Lj
    ret

ar_acc_joint3:
.Lj:
    AR_JCOLS 3
    add r9, 128
    add rdx, 64
    sub r8, 32
    jnz .Lj
    ret
