# matmat_q4_k_r8_avx2: Q4_K_R8 weights (Q4_K in 8-row groups, peasm/ggml.py; the layout and
# the arithmetic: ggml_q4_k_r8.s) times a batch of Q8_K inputs, the prefill's product. Each
# output is matvec_q4_k_r8_avx2's bit for bit (llama.cpp's repacked q4_K_8x8 gemv): the same
# exact integer sums, the same FMA chains over the super-blocks in order, one row a lane.
# What the batch shares: a group's super-block is unpacked once (its scales and mins, its
# nibbles split by shift and AND) for two inputs at a time, whose integer sums take separate
# registers; the group's weights (n / 256 * 1152 bytes) come from memory for the first pair
# and from cache for the others. An odd last input is run as a pair with itself (the same
# outputs written twice, the same bits).
#
#   matmat_q4_k_r8_avx2(rcx = out, rdx = W (Q4_K_R8), r8 = xq (Q8_K inputs), r9d = n,
#                       [rsp+40] d, [rsp+48] B, [rsp+56] out_stride, [rsp+64] xq_stride)
#       peasm/ggml.py's matmat contract (ggml_mm.inc), d rounded down to a multiple of 8
#       (whole groups; the caller's rows come in whole groups), n to a multiple of 256; W at
#       a group's start; outputs of different inputs must not overlap. Changes rax, rcx,
#       rdx, r8-r11, ymm0-ymm5 (and the upper halves of ymm6-ymm15).
.include "kquant.inc"
.include "kmacros.inc"

.section .rdata
.balign 32, 0
k4m_m3f:  .long 0x3f3f3f3f, 0x3f3f3f3f, 0x3f3f3f3f, 0x3f3f3f3f, 0x3f3f3f3f, 0x3f3f3f3f, 0x3f3f3f3f, 0x3f3f3f3f
k4m_m30:  .long 0x30303030, 0x30303030, 0x30303030, 0x30303030, 0x30303030, 0x30303030, 0x30303030, 0x30303030
k4m_wlo:  .long 0x00ff00ff, 0x00ff00ff, 0x00ff00ff, 0x00ff00ff, 0x00ff00ff, 0x00ff00ff, 0x00ff00ff, 0x00ff00ff

.section .text
.global matmat_q4_k_r8_avx2
.extern k4r8_scb, k4r8_sperm

# frame (after 8 pushes): xmm6-xmm15 at [rsp], the two inputs' s pairs, the loop state
.equ K4M_S0, 160          # 16 bytes: input 0's (s0 s2) (s1 s3) (s4 s6) (s5 s7)
.equ K4M_S1, 176          # input 1's
.equ K4M_OUTG, 192        # out for input 0 at this group's first row
.equ K4M_WG, 200          # W at this group
.equ K4M_B, 208           # inputs left (this pair included)
.equ K4M_X, 216           # this pair's first input
.equ K4M_O, 224           # this pair's first output
.equ K4M_FRAME, 232       # = 8 (mod 16): rsp 16-aligned inside
.equ K4M_ARGS, K4M_FRAME + 64    # from rsp: the return address (the fifth argument at +40)

# K4M_MINS x, s, acc: one input's min term (its Q8_K block at \x, the s pairs' scratch at
# [rsp + \s]): acc += f32(sum_j m[j] (bsums[2j] + bsums[2j+1])) * (dmin * yd), the mins of
# the 8 rows in ymm9 (0..3) and ymm10 (4..7), kept. Clobbers ymm5, ymm8, ymm11.
.macro K4M_MINS x, s, acc
    vmovdqu xmm8, [\x + Q8K_BSUMS]
    vphaddw xmm8, xmm8, [\x + Q8K_BSUMS + 16]
    vpshufb xmm8, xmm8, [rip + k4r8_sperm]
    vmovdqa [rsp + \s], xmm8
    vpand ymm5, ymm9, [rip + k4m_wlo]       # (m0, m2)
    vpbroadcastd ymm8, dword ptr [rsp + \s]
    vpmaddwd ymm5, ymm5, ymm8
    vpsrlw ymm11, ymm9, 8                   # (m1, m3)
    vpbroadcastd ymm8, dword ptr [rsp + \s + 4]
    vpmaddwd ymm11, ymm11, ymm8
    vpaddd ymm5, ymm5, ymm11
    vpand ymm11, ymm10, [rip + k4m_wlo]     # (m4, m6)
    vpbroadcastd ymm8, dword ptr [rsp + \s + 8]
    vpmaddwd ymm11, ymm11, ymm8
    vpaddd ymm5, ymm5, ymm11
    vpsrlw ymm11, ymm10, 8                  # (m5, m7)
    vpbroadcastd ymm8, dword ptr [rsp + \s + 12]
    vpmaddwd ymm11, ymm11, ymm8
    vpaddd ymm5, ymm5, ymm11                # msum, a row a lane
    vcvtdq2ps ymm5, ymm5
    vcvtph2ps ymm8, [r10 + 16]              # dmin of the 8 rows
    vbroadcastss ymm11, dword ptr [\x + Q8K_D]
    vmulps ymm8, ymm8, ymm11                # dmin * yd
    vfmadd231ps \acc, ymm5, ymm8
.endm

# one vector v of chunk j: the nibbles split once (ymm10 low, ymm11 high), then each input's
# i16 sums: input 0 (q8 at r14) into ymm8 / ymm9, input 1 (r15) into ymm12 / ymm13.
# Clobbers ymm5, ymm10, ymm11.
.macro K4M_IN x, lo, hi, j, v
    vpbroadcastd ymm5, dword ptr [\x + Q8K_QS + 64 * \j + 4 * \v]
.if \v == 0
    vpmaddubsw \lo, ymm10, ymm5
.else
    vpmaddubsw ymm5, ymm10, ymm5
    vpaddw \lo, \lo, ymm5
.endif
    vpbroadcastd ymm5, dword ptr [\x + Q8K_QS + 64 * \j + 32 + 4 * \v]
.if \v == 0
    vpmaddubsw \hi, ymm11, ymm5
.else
    vpmaddubsw ymm5, ymm11, ymm5
    vpaddw \hi, \hi, ymm5
.endif
.endm
.macro K4M_VEC j, v
    vmovdqu ymm10, [r10 + 128 + 256 * \j + 32 * \v]
    vpsrlw ymm11, ymm10, 4
    vpand ymm10, ymm10, ymm15
    vpand ymm11, ymm11, ymm15
    K4M_IN r14, ymm8, ymm9, \j, \v
    K4M_IN r15, ymm12, ymm13, \j, \v
.endm
# chunk j (sub-blocks 2j, 2j+1) into isum ymm4 (input 0) and ymm14 (input 1); \sc, \m as
# ggml_q4_k_r8.s's K4R_CHUNK
.macro K4M_CHUNK j, sc, m
    K4M_VEC \j, 0
    K4M_VEC \j, 1
    K4M_VEC \j, 2
    K4M_VEC \j, 3
    K4M_VEC \j, 4
    K4M_VEC \j, 5
    K4M_VEC \j, 6
    K4M_VEC \j, 7
    vpshufb ymm10, \sc, [r11 + \m]
    vpshufb ymm11, \sc, [r11 + \m + 32]
    vpmaddwd ymm8, ymm8, ymm10
    vpmaddwd ymm9, ymm9, ymm11
    vpaddd ymm4, ymm4, ymm8
    vpaddd ymm4, ymm4, ymm9
    vpmaddwd ymm12, ymm12, ymm10
    vpmaddwd ymm13, ymm13, ymm11
    vpaddd ymm14, ymm14, ymm12
    vpaddd ymm14, ymm14, ymm13
.endm
# K4M_ROWS x, isum, acc: acc += f32(isum) * (d * yd), the input's Q8_K block at \x.
# Clobbers ymm8, ymm9.
.macro K4M_ROWS x, isum, acc
    vcvtdq2ps \isum, \isum
    vcvtph2ps ymm8, [r10]                   # d of the 8 rows
    vbroadcastss ymm9, dword ptr [\x + Q8K_D]
    vmulps ymm8, ymm8, ymm9                 # d * yd
    vfmadd231ps \acc, \isum, ymm8
.endm

matmat_q4_k_r8_avx2:
    push rbx
    push rbp
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, K4M_FRAME
    KSAVE_XMM6_15_VEX 0
    mov r12d, dword ptr [rsp + K4M_ARGS + 40]   # d
    shr r12d, 3                             # groups
    mov eax, dword ptr [rsp + K4M_ARGS + 48]    # B
    mov qword ptr [rsp + K4M_B], rax
    mov rsi, qword ptr [rsp + K4M_ARGS + 56]    # out_stride
    mov rdi, qword ptr [rsp + K4M_ARGS + 64]    # xq_stride
    mov r9d, r9d
    shr r9, 8                               # super-blocks per row
    mov qword ptr [rsp + K4M_OUTG], rcx
    mov qword ptr [rsp + K4M_WG], rdx
    mov qword ptr [rsp + K4M_X], r8         # (input 0: kept across the groups)
    lea r11, [rip + k4r8_scb]
    vmovdqa ymm15, [rip + kg_nib]
    mov rbp, qword ptr [rsp + K4M_B]        # rbp = B, the whole batch
    test rbp, rbp
    jz .Ldone
.Lgroup:
    test r12d, r12d
    jz .Ldone
    mov qword ptr [rsp + K4M_B], rbp
    mov rax, qword ptr [rsp + K4M_OUTG]
    mov qword ptr [rsp + K4M_O], rax
    mov r14, r8                             # the pair's first input
.Lpair:
    mov r15, r14
    mov rcx, qword ptr [rsp + K4M_O]        # input 0's outputs
    mov rdx, rcx
    cmp qword ptr [rsp + K4M_B], 2
    jb .Lsingle
    add r15, rdi                            # input 1: the next
    add rdx, rsi
.Lsingle:                                   # (else input 1 = input 0, the same outputs)
    mov qword ptr [rsp + K4M_X], r14
    vxorps xmm0, xmm0, xmm0                 # acc_row, input 0
    vxorps xmm1, xmm1, xmm1                 # acc_min, input 0
    vxorps xmm2, xmm2, xmm2                 # acc_row, input 1
    vxorps xmm3, xmm3, xmm3                 # acc_min, input 1
    mov r10, qword ptr [rsp + K4M_WG]
    mov rbx, r9
    test rbx, rbx
    jz .Lpair_done
.Lblock:
    prefetcht0 byte ptr [r10 + KQ_PREFETCH]
    prefetcht0 byte ptr [r10 + KQ_PREFETCH + 64]
    # scales and mins of the 8 rows (as ggml_q4_k_r8.s)
    K4R8_ABC r10
    vpsrld ymm11, ymm8, 2
    vpand ymm11, ymm11, [rip + k4m_m30]
    vpand ymm6, ymm8, [rip + k4m_m3f]       # sc 0..3
    vpand ymm7, ymm10, ymm15
    vpor ymm7, ymm7, ymm11                  # sc 4..7
    vpsrld ymm11, ymm9, 2
    vpand ymm11, ymm11, [rip + k4m_m30]
    vpand ymm9, ymm9, [rip + k4m_m3f]       # m 0..3
    vpsrld ymm10, ymm10, 4
    vpand ymm10, ymm10, ymm15
    vpor ymm10, ymm10, ymm11                # m 4..7
    K4M_MINS r14, K4M_S0, ymm1
    K4M_MINS r15, K4M_S1, ymm3
    vpxor xmm4, xmm4, xmm4
    vpxor xmm14, xmm14, xmm14
    K4M_CHUNK 0, ymm6, 0
    K4M_CHUNK 1, ymm6, 64
    K4M_CHUNK 2, ymm7, 0
    K4M_CHUNK 3, ymm7, 64
    K4M_ROWS r14, ymm4, ymm0
    K4M_ROWS r15, ymm14, ymm2
    add r10, 8 * 144
    add r14, Q8K_BYTES
    add r15, Q8K_BYTES
    dec rbx
    jnz .Lblock
.Lpair_done:
    vsubps ymm2, ymm2, ymm3
    vmovups [rdx], ymm2                     # input 1 first: an odd tail's input 0 wins (same bits)
    vsubps ymm0, ymm0, ymm1
    vmovups [rcx], ymm0
    mov r14, qword ptr [rsp + K4M_X]
    mov rax, qword ptr [rsp + K4M_B]
    sub rax, 2
    jbe .Lgroup_done                        # (1 or 2 inputs were left)
    mov qword ptr [rsp + K4M_B], rax
    lea r14, [r14 + rdi * 2]
    mov rax, qword ptr [rsp + K4M_O]
    lea rax, [rax + rsi * 2]
    mov qword ptr [rsp + K4M_O], rax
    jmp .Lpair
.Lgroup_done:
    mov rax, r9
    imul rax, rax, 8 * 144
    add qword ptr [rsp + K4M_WG], rax       # the next group
    add qword ptr [rsp + K4M_OUTG], 32
    dec r12d
    jmp .Lgroup
.Ldone:
    KLOAD_XMM6_15_VEX 0
    add rsp, K4M_FRAME
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbp
    pop rbx
    vzeroupper
    ret
