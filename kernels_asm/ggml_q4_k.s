# matvec_q4_k_avx2 (and matvec_q4_k_sse2 below): Q4_K weights times a Q8_K vector, AVX2 +
# FMA + F16C, the weights streamed once front to back.
#
# Q4_K (ggml-common.h block_q4_K): {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]}; the 32
# bytes qs[32j .. 32j+31] hold weights 64j + l (low nibbles) and 64j + 32 + l (high), one
# 6-bit scale and min per 32 weights (unpacked as in ggml_kunpack.s kq_scales_k4). Per
# super-block, as ggml_vec_dot_q4_K_q8_K:
#   isum = sum_j sc[j] * dot(nibbles of sub-block j, q8 of j)        (exact, i32 lanes)
#   msum = sum_j m[j] * (bsums[2j] + bsums[2j+1])                      (exact, i32 lanes)
#   acc += f32(isum lanes) * (yd * d) - f32(msum lanes) * (yd * dmin)  (8 f32 lanes, FMA)
# and the 8 lanes are added at the end of the row. One 32-byte load of qs gives two sub-
# blocks: the low nibbles by one AND, the high by a 16-bit shift and the AND; vpmaddubsw
# multiplies them (u8) by q8 (i8) into i16 pair sums (|.| <= 2 * 15 * 128), vpmaddwd by the
# sub-block's scale in 16 words, read from a table of the 64 possible scale vectors at an
# address computed in a general-purpose register (no shuffle). The model and its error
# bound: tests/reference/quant_k.py.
#
# Measured (in cache, best of 400 short runs, ns per super-block on the development host,
# Zen 3; the machine is shared, so only same-run comparisons mean anything):
#   scales broadcast by vpshufb from a register 7.6; without those 8 shuffles 5.6; without
#   the 8 vpmaddwd 7.6 (the multiplies are not the limit: the shuffle/shift pipes are);
#   scales as dwords on the stack + vpbroadcastd 8.3; scale and min bytes expanded by one
#   vpshufb 7.7; two rows per pass sharing the q8 and mask loads: in cache the same, streamed
#   median 0.64 of bandwidth against 0.72 for one row (two DRAM streams): dropped.
#   The scale table (this code) 6.8; with the mins as m (dwords) * vpmaddwd'ed bsum pairs
#   (vpmulld) 6.7; (d, dmin) broadcast by load and split by vmovsldup/vmovshdup 6.7.
#   Scales and mins decoded with vector ops (vpshufd, vpsrlvd, masks) instead of the ~20
#   general-purpose instructions: 7.5 (the vector shuffle pipes, not the instruction count,
#   are the limit). Each of the scale decode, the min term, the (d, dmin) step, the high-
#   nibble shift costs 0.3-0.5 when removed; the loop runs near 5 instructions a cycle.
# The weights are prefetched KQ_PREFETCH bytes ahead (kquant.inc): streamed (TinyLlama
# shapes), 0 / 256 / 512 / 1024 / 2048 / 4096 / 8192 bytes gave median ratios to stream_read
# of 0.65 / 0.69 / 0.70 / 0.72 / 0.75 / 0.81 / 0.79 (+-0.15 between runs).
# The nibbles need no shuffle: an AND and a shift give two sub-blocks' quants from one load
# (the one-shuffle unpack of the issue is for signed or non-linear codes, e.g. Q4_0's q-8).
.include "kquant.inc"
.include "kmacros.inc"

.section .rdata
.balign 32, 0
kq4_m0f:
    .byte 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15
    .byte 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15
# 64 x 32 bytes: entry s = 16 words of value s (a scale as a vpmaddwd operand, by address)
kq4_sctab:
    .irp s, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63
    .rept 16
    .word \s
    .endr
    .endr

.section .text
.global matvec_q4_k_avx2, kq4_sctab

# 64 weights: the qs bytes at block offset \q, q8 bytes at Q8_K offset \y (low nibbles) and
# \y + 32 (high); al, ah = 4 * their two scales (table offset / 8), then rax >>= 16. Adds 8
# i32 lanes to ymm1.
.macro KQ4_CHUNK q, y
    vmovdqu ymm6, [rdx + \q]
    vpsrlw ymm7, ymm6, 4
    vpand ymm6, ymm6, ymm5
    vpand ymm7, ymm7, ymm5
    vpmaddubsw ymm6, ymm6, [rbp + \y]
    vpmaddubsw ymm7, ymm7, [rbp + \y + 32]
    movzx ecx, al
    vpmaddwd ymm6, ymm6, [r11 + rcx * 8]
    movzx ecx, ah
    vpmaddwd ymm7, ymm7, [r11 + rcx * 8]
    shr rax, 16
    vpaddd ymm6, ymm6, ymm7
    vpaddd ymm1, ymm1, ymm6
.endm

# matvec_q4_k_avx2(rcx = out, rdx = W, r8 = xq, r9d = n, dword [rsp+40] = d): peasm/ggml.py's
# matvec contract (n a multiple of 256, a remainder ignored; xq = n/256 Q8_K blocks).
# Changes rax, rcx, rdx, r8-r11, ymm0-ymm5 (and the upper halves of ymm6-ymm9).
# Frame: 5 pushes, xmm6-xmm9 at [rsp].
matvec_q4_k_avx2:
    push rbx
    push rsi
    push rdi
    push rbp
    push r12
    sub rsp, 64
    vmovups [rsp], xmm6
    vmovups [rsp + 16], xmm7
    vmovups [rsp + 32], xmm8
    vmovups [rsp + 48], xmm9
    mov r10, rcx                    # out
    mov ebx, dword ptr [rsp + 64 + 40 + 40]   # rows left
    shr r9d, 8                      # super-blocks per row
    lea r11, [rip + kq4_sctab]
    vmovdqa ymm5, [rip + kq4_m0f]
    vmovdqa ymm4, [r11 + 32]        # 16 words of 1 (scale table entry 1)
.Lrow:
    test ebx, ebx
    jz .Ldone
    vxorps xmm0, xmm0, xmm0         # the row's 8 f32 lanes
    mov rbp, r8
    mov r12d, r9d
    test r12d, r12d
    jz .Lrow_done
.Lblock:
    prefetcht0 byte ptr [rdx + KQ_PREFETCH]
    prefetcht0 byte ptr [rdx + KQ_PREFETCH + 64]
    prefetcht0 byte ptr [rdx + KQ_PREFETCH + 128]
    vpbroadcastd xmm6, dword ptr [rdx]  # (d, dmin) x 4
    vcvtph2ps ymm6, xmm6
    vbroadcastss ymm7, dword ptr [rbp + Q8K_D]
    vmulps ymm6, ymm6, ymm7         # (yd*d, yd*dmin) x 4
    vmovsldup ymm2, ymm6
    vmovshdup ymm3, ymm6
    mov eax, dword ptr [rdx + 4]    # A: scales and mins, see kq_scales_k4
    mov ecx, dword ptr [rdx + 12]   # C
    mov esi, eax
    shr esi, 2
    and esi, 0x30303030
    and eax, 0x3f3f3f3f
    mov edi, ecx
    and edi, 0x0f0f0f0f
    or edi, esi
    shl rdi, 32
    or rax, rdi                     # sc 0..7
    shl rax, 2                      # 4 * sc (<= 252): table offsets / 8
    mov esi, dword ptr [rdx + 8]    # B
    mov edi, esi
    shr edi, 2
    and edi, 0x30303030
    and esi, 0x3f3f3f3f
    shr ecx, 4
    and ecx, 0x0f0f0f0f
    or ecx, edi
    shl rcx, 32
    or rsi, rcx                     # m 0..7
    vpmaddwd ymm7, ymm4, [rbp + Q8K_BSUMS]   # bsums[2j] + bsums[2j+1] (ymm4: words 1)
    vmovq xmm8, rsi
    vpmovzxbd ymm8, xmm8            # m 0..7 as dwords
    vpmulld ymm7, ymm7, ymm8
    vcvtdq2ps ymm7, ymm7
    vfnmadd231ps ymm0, ymm7, ymm3
    vpxor xmm1, xmm1, xmm1
    KQ4_CHUNK 16, 4
    KQ4_CHUNK 48, 68
    KQ4_CHUNK 80, 132
    KQ4_CHUNK 112, 196
    vcvtdq2ps ymm1, ymm1
    vfmadd231ps ymm0, ymm1, ymm2
    add rdx, 144
    add rbp, Q8K_BYTES
    dec r12d
    jnz .Lblock
.Lrow_done:
    vextractf128 xmm1, ymm0, 1
    vaddps xmm0, xmm0, xmm1
    vmovhlps xmm1, xmm1, xmm0
    vaddps xmm0, xmm0, xmm1
    vmovshdup xmm1, xmm0
    vaddss xmm0, xmm0, xmm1
    vmovss dword ptr [r10], xmm0
    add r10, 4
    dec ebx
    jmp .Lrow
.Ldone:
    vmovups xmm6, [rsp]
    vmovups xmm7, [rsp + 16]
    vmovups xmm8, [rsp + 32]
    vmovups xmm9, [rsp + 48]
    add rsp, 64
    pop r12
    pop rbp
    pop rdi
    pop rsi
    pop rbx
    vzeroupper
    ret

# ----------------------------------------------------------------------------------------
# matvec_q4_k_sse2: the same contract and sums with SSE2 only (no byte multiply, no byte
# shuffle, no F16C): nibbles widened to words and multiplied by their sub-block's scale
# (pmullw, |u * sc| <= 15 * 63), q8 widened to words (unpack, arithmetic shift), pmaddwd,
# i32 lanes per super-block; d and dmin converted in general-purpose registers
# (KQ_F16_BITS). Measured in cache: 26 ns per super-block, against 42 for a generic SSE2
# body that went through the unpacked form of ggml_kunpack.s (since replaced).

.section .rdata
.balign 16, 0
kq4s_m0f:
    .rept 16
    .byte 15
    .endr

.section .text
.global matvec_q4_k_sse2

# 16 bytes of qs at block offset \q: their low nibbles (sub-block scale words in xmm9) meet
# q8 at \ylo, their high nibbles (xmm10) q8 at \ylo + 32. Adds to the i32 lanes of xmm1.
.macro KQ4S_16 q, ylo
    movdqu xmm4, [rdx + \q]
    movdqa xmm5, xmm4
    psrlw xmm5, 4
    pand xmm4, xmm12
    pand xmm5, xmm12
    movdqa xmm6, xmm4
    punpcklbw xmm4, xmm11
    punpckhbw xmm6, xmm11
    pmullw xmm4, xmm9
    pmullw xmm6, xmm9
    movdqu xmm7, [rbp + \ylo]
    movdqa xmm8, xmm7
    punpcklbw xmm7, xmm7
    psraw xmm7, 8
    punpckhbw xmm8, xmm8
    psraw xmm8, 8
    pmaddwd xmm4, xmm7
    pmaddwd xmm6, xmm8
    paddd xmm1, xmm4
    paddd xmm1, xmm6
    movdqa xmm6, xmm5
    punpcklbw xmm5, xmm11
    punpckhbw xmm6, xmm11
    pmullw xmm5, xmm10
    pmullw xmm6, xmm10
    movdqu xmm7, [rbp + \ylo + 32]
    movdqa xmm8, xmm7
    punpcklbw xmm7, xmm7
    psraw xmm7, 8
    punpckhbw xmm8, xmm8
    psraw xmm8, 8
    pmaddwd xmm5, xmm7
    pmaddwd xmm6, xmm8
    paddd xmm1, xmm5
    paddd xmm1, xmm6
.endm

# scale word \k (0..7) of xmm3 into all 8 words of \dst
.macro KQ4S_BCAST dst, k
.if \k < 4
    pshuflw \dst, xmm3, \k * 0x55
    pshufd \dst, \dst, 0
.else
    pshufhw \dst, xmm3, (\k - 4) * 0x55
    pshufd \dst, \dst, 0xaa
.endif
.endm

# matvec_q4_k_sse2(rcx = out, rdx = W, r8 = xq, r9d = n, dword [rsp+40] = d). Changes rax,
# rcx, rdx, r8-r11, xmm0-xmm5. Frame: 6 pushes, xmm6-xmm12 at [rsp].
matvec_q4_k_sse2:
    push rbx
    push rsi
    push rdi
    push rbp
    push r12
    push r13
    sub rsp, 112
    movups [rsp], xmm6
    movups [rsp + 16], xmm7
    movups [rsp + 32], xmm8
    movups [rsp + 48], xmm9
    movups [rsp + 64], xmm10
    movups [rsp + 80], xmm11
    movups [rsp + 96], xmm12
    mov r10, rcx                    # out
    mov ebx, dword ptr [rsp + 112 + 48 + 40]  # rows left
    shr r9d, 8                      # super-blocks per row
    mov r13, r8                     # xq (KQ_F16_BITS changes r8)
    pxor xmm11, xmm11
    movdqa xmm12, [rip + kq4s_m0f]
.Lrow:
    test ebx, ebx
    jz .Ldone
    xorps xmm0, xmm0                # the row's 4 f32 lanes
    mov rbp, r13
    mov r12d, r9d
    test r12d, r12d
    jz .Lrow_done
.Lblock:
    movzx eax, word ptr [rdx]
    KQ_F16_BITS eax, ecx
    movd xmm2, ecx
    movzx eax, word ptr [rdx + 2]
    KQ_F16_BITS eax, ecx
    movd xmm4, ecx
    unpcklps xmm2, xmm4             # d dmin
    movss xmm4, dword ptr [rbp + Q8K_D]
    shufps xmm4, xmm4, 0
    mulps xmm2, xmm4                # yd*d  yd*dmin
    mov eax, dword ptr [rdx + 4]    # A: scales and mins, see kq_scales_k4
    mov ecx, dword ptr [rdx + 12]   # C
    mov esi, eax
    shr esi, 2
    and esi, 0x30303030
    and eax, 0x3f3f3f3f
    mov edi, ecx
    and edi, 0x0f0f0f0f
    or edi, esi
    shl rdi, 32
    or rax, rdi                     # sc 0..7
    mov esi, dword ptr [rdx + 8]    # B
    mov edi, esi
    shr edi, 2
    and edi, 0x30303030
    and esi, 0x3f3f3f3f
    shr ecx, 4
    and ecx, 0x0f0f0f0f
    or ecx, edi
    shl rcx, 32
    or rsi, rcx                     # m 0..7
    movq xmm3, rsi
    punpcklbw xmm3, xmm11           # m as 8 words
    movdqa xmm4, xmm3
    punpcklwd xmm3, xmm3            # m0 m0 .. m3 m3
    punpckhwd xmm4, xmm4            # m4 m4 .. m7 m7
    movdqu xmm5, [rbp + Q8K_BSUMS]
    pmaddwd xmm3, xmm5
    movdqu xmm5, [rbp + Q8K_BSUMS + 16]
    pmaddwd xmm4, xmm5
    paddd xmm3, xmm4
    cvtdq2ps xmm3, xmm3
    movaps xmm4, xmm2
    shufps xmm4, xmm4, 0x55         # yd*dmin
    mulps xmm3, xmm4
    subps xmm0, xmm3
    movq xmm3, rax
    punpcklbw xmm3, xmm11           # sc as 8 words
    pxor xmm1, xmm1
    KQ4S_BCAST xmm9, 0
    KQ4S_BCAST xmm10, 1
    KQ4S_16 16, Q8K_QS
    KQ4S_16 32, Q8K_QS + 16
    KQ4S_BCAST xmm9, 2
    KQ4S_BCAST xmm10, 3
    KQ4S_16 48, Q8K_QS + 64
    KQ4S_16 64, Q8K_QS + 80
    KQ4S_BCAST xmm9, 4
    KQ4S_BCAST xmm10, 5
    KQ4S_16 80, Q8K_QS + 128
    KQ4S_16 96, Q8K_QS + 144
    KQ4S_BCAST xmm9, 6
    KQ4S_BCAST xmm10, 7
    KQ4S_16 112, Q8K_QS + 192
    KQ4S_16 128, Q8K_QS + 208
    cvtdq2ps xmm1, xmm1
    shufps xmm2, xmm2, 0            # yd*d
    mulps xmm1, xmm2
    addps xmm0, xmm1
    add rdx, 144
    add rbp, Q8K_BYTES
    dec r12d
    jnz .Lblock
.Lrow_done:
    KHSUM_SSE2 xmm0, xmm1
    movss dword ptr [r10], xmm0
    add r10, 4
    dec ebx
    jmp .Lrow
.Ldone:
    movups xmm6, [rsp]
    movups xmm7, [rsp + 16]
    movups xmm8, [rsp + 32]
    movups xmm9, [rsp + 48]
    movups xmm10, [rsp + 64]
    movups xmm11, [rsp + 80]
    movups xmm12, [rsp + 96]
    add rsp, 112
    pop r13
    pop r12
    pop rbp
    pop rdi
    pop rsi
    pop rbx
    ret
