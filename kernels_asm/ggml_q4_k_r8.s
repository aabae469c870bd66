# matvec_q4_k_r8_avx2: Q4_K weights repacked into 8-row groups (the internal type Q4_K_R8 of
# peasm/ggml.py) times a Q8_K vector, AVX2 + FMA + F16C: what llama.cpp's CPU backend
# computes for a Q4_K weight it repacks at load (on an AVX2 host, every matrix product
# weight whose rows are a multiple of 8; its q4_K_8x8 gemv), bit for bit.
#
# Layout (the R8 layout of peasm/ggml.py, ggml_repack.s moves the bytes; Q4_K's block is
# {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]}, 16 bytes of "scale fields" then the nibbles):
# for each block column of an 8-row group, 8 * 144 bytes:
#     [0, 16)      the 8 rows' d (f16, row r's at 2r)
#     [16, 32)     their dmin
#     [32, 128)    scales word k (bytes 2k, 2k+1) of the 8 rows, k = 0..5: at 32 + 16k + 2r
#     [128, 1152)  32 vectors of 32 bytes: vector v's dword r = row r's qs[4v .. 4v+3]
# (qs[32j + i]: low nibble weight 64j + i, high nibble weight 64j + 32 + i; 6-bit scale sc
# and min m per 32 weights, unpacked as ggml's get_scale_min_k4 / the utmp masks.)
#
# Arithmetic per row r, per super-block (the facts of ggml's gemv for block_q4_Kx8, AVX2):
#   isum = sum_{j<8} sc[j] * dot(u of sub-block j, q8 of j)         (exact integers)
#   msum = sum_{j<8} m[j] * (bsums[2j] + bsums[2j+1])                (exact)
#   acc_row = fma(f32(isum), d * yd, acc_row)                         (f32)
#   acc_min = fma(f32(msum), dmin * yd, acc_min)
# and out[r] = acc_row - acc_min after the row's last super-block. Only the integer sums are
# grouped differently from ggml's registers, and they are exact: each lane of this code is
# one row, so the 8 rows take the 8 lanes of every vector operation. The integer dot: each
# 32-byte vector gives 4 weights of each of the 8 rows (a nibble AND, or a shift and an AND),
# times the 4 matching q8 bytes broadcast to every lane (vpmaddubsw: u8 x i8 pair sums,
# |.| <= 2 * 15 * 127), added in i16 over the 8 vectors of a sub-block (|.| <= 16 * 15 * 127
# = 30480 < 2^15, exact: Q8_K's quants are within -127..127), then times the row's scale
# word pair (vpmaddwd) into i32. Scales and mins of the 8 rows are unpacked together in
# vector registers (dword r = row r's 4 bytes). The mins: words of m against the pairs of s.
#
# Prefill: matmat_q4_k_r8_avx2 (ggml_mm_q4_k_r8.s), the same arithmetic two inputs at a
# time, so the batch's numbers are the decode's bit for bit.
#
# Measured (development host, Zen 3, shared: same-run comparisons only): in cache, 128 x 2048,
# best of 7: 4.1-4.4 ns per super-block and row, against 7.2 for the plain-layout matvec
# (ggml_q4_k.s, ggml's vec_dot order; 6.8 before that order). Streamed (`peasm bench kernels
# --only kquant`, TinyLlama shapes, one run at load 5): 16.9-21.6 GB/s, bw_ratio 0.88-1.13,
# where the plain matvec gave 10.2-15.4 in the same run. The batched body, 2048 x 2048, B = 32:
# 1.32-1.46 ns per 32 weights and input, the plain Q4_K matmat 1.83-2.93 in the same runs.
.include "kquant.inc"
.include "kmacros.inc"

.section .rdata
.global k4r8_scb, k4r8_sperm      # (also read by ggml_mm_q4_k_r8.s)
.balign 32, 0
# vpshufb masks: byte b (0..3) of each dword into both of its words (the row's scale twice,
# for vpmaddwd's pairs), 32 bytes each
k4r8_scb:
    .byte 0, 0x80, 0, 0x80, 4, 0x80, 4, 0x80, 8, 0x80, 8, 0x80, 12, 0x80, 12, 0x80
    .byte 0, 0x80, 0, 0x80, 4, 0x80, 4, 0x80, 8, 0x80, 8, 0x80, 12, 0x80, 12, 0x80
    .byte 1, 0x80, 1, 0x80, 5, 0x80, 5, 0x80, 9, 0x80, 9, 0x80, 13, 0x80, 13, 0x80
    .byte 1, 0x80, 1, 0x80, 5, 0x80, 5, 0x80, 9, 0x80, 9, 0x80, 13, 0x80, 13, 0x80
    .byte 2, 0x80, 2, 0x80, 6, 0x80, 6, 0x80, 10, 0x80, 10, 0x80, 14, 0x80, 14, 0x80
    .byte 2, 0x80, 2, 0x80, 6, 0x80, 6, 0x80, 10, 0x80, 10, 0x80, 14, 0x80, 14, 0x80
    .byte 3, 0x80, 3, 0x80, 7, 0x80, 7, 0x80, 11, 0x80, 11, 0x80, 15, 0x80, 15, 0x80
    .byte 3, 0x80, 3, 0x80, 7, 0x80, 7, 0x80, 11, 0x80, 11, 0x80, 15, 0x80, 15, 0x80
# the 8 words s0..s7 reordered to the dword pairs (s0 s2) (s1 s3) (s4 s6) (s5 s7)
k4r8_sperm:
    .byte 0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15
k4r8_m3f:   .long 0x3f3f3f3f
k4r8_m30:   .long 0x30303030
k4r8_m0f:   .long 0x0f0f0f0f
k4r8_wlo:   .long 0x00ff00ff

.section .text
.global matvec_q4_k_r8_avx2

# frame: 6 pushes, then xmm6-xmm15 at [rsp], 16 bytes of scratch (the s pairs) at
# [rsp + K4R_S], 8 bytes of padding
.equ K4R_S, 160
.equ K4R_FRAME, 184
.equ K4R_ROWS, K4R_FRAME + 6 * 8 + 40   # from rsp: the fifth argument (d, the rows)

# one vector v (0..7) of chunk j: its low nibbles (sub-block 2j) into the i16 sums ymm8, its
# high nibbles (2j+1) into ymm9; q8 bytes 64j + 4v .. (low) and 64j + 32 + 4v .. (high)
# broadcast to every row's lane. Clobbers ymm5, ymm10, ymm11.
.macro K4R_VEC j, v
.if \v == 0 || \v == 2 || \v == 4 || \v == 6
    prefetcht0 byte ptr [rdx + KQ_PREFETCH + 128 + 256 * \j + 32 * \v]
.endif
    vmovdqu ymm10, [rdx + 128 + 256 * \j + 32 * \v]
    vpsrlw ymm11, ymm10, 4
    vpand ymm10, ymm10, ymm15
    vpand ymm11, ymm11, ymm15
    vpbroadcastd ymm5, dword ptr [rbp + Q8K_QS + 64 * \j + 4 * \v]
.if \v == 0
    vpmaddubsw ymm8, ymm10, ymm5
.else
    vpmaddubsw ymm10, ymm10, ymm5
    vpaddw ymm8, ymm8, ymm10
.endif
    vpbroadcastd ymm5, dword ptr [rbp + Q8K_QS + 64 * \j + 32 + 4 * \v]
.if \v == 0
    vpmaddubsw ymm9, ymm11, ymm5
.else
    vpmaddubsw ymm11, ymm11, ymm5
    vpaddw ymm9, ymm9, ymm11
.endif
.endm

# chunk j (sub-blocks 2j, 2j+1: 64 weights of each row) into isum ymm4; \sc = the scales
# register holding sc[2j], sc[2j+1] (bytes 2j % 4, 2j % 4 + 1 of each row's dword), \m =
# the offset of the first one's mask in k4r8_scb (32 * (2j % 4))
.macro K4R_CHUNK j, sc, m
    K4R_VEC \j, 0
    K4R_VEC \j, 1
    K4R_VEC \j, 2
    K4R_VEC \j, 3
    K4R_VEC \j, 4
    K4R_VEC \j, 5
    K4R_VEC \j, 6
    K4R_VEC \j, 7
    vpshufb ymm10, \sc, [r11 + \m]
    vpmaddwd ymm8, ymm8, ymm10
    vpshufb ymm10, \sc, [r11 + \m + 32]
    vpmaddwd ymm9, ymm9, ymm10
    vpaddd ymm4, ymm4, ymm8
    vpaddd ymm4, ymm4, ymm9
.endm

# matvec_q4_k_r8_avx2(rcx = out, rdx = W (Q4_K_R8), r8 = xq (Q8_K), r9d = n,
#                     dword [rsp+40] = d): peasm/ggml.py's matvec contract (n a multiple of
# 256, a remainder ignored; d a multiple of 8, whole groups: a remainder is ignored).
# Changes rax, rcx, rdx, r8-r11, ymm0-ymm5 (and the upper halves of ymm6-ymm15).
matvec_q4_k_r8_avx2:
    push rbx
    push rsi
    push rdi
    push rbp
    push r12
    push r13
    sub rsp, K4R_FRAME
    KSAVE_XMM6_15_VEX 0
    mov r10, rcx                    # out
    mov ebx, dword ptr [rsp + K4R_ROWS]
    shr ebx, 3                      # groups
    shr r9d, 8                      # super-blocks per row
    lea r11, [rip + k4r8_scb]
    vmovdqa ymm15, [rip + kg_nib]
    vpbroadcastd ymm12, dword ptr [rip + k4r8_m3f]
    vpbroadcastd ymm13, dword ptr [rip + k4r8_m30]
    vpbroadcastd ymm14, dword ptr [rip + k4r8_wlo]
.Lgroup:
    test ebx, ebx
    jz .Ldone
    vxorps xmm0, xmm0, xmm0         # acc_row, one lane a row
    vxorps xmm1, xmm1, xmm1         # acc_min
    mov rbp, r8
    mov r12d, r9d
    test r12d, r12d
    jz .Lgroup_done
.Lblock:
    prefetcht0 byte ptr [rdx + KQ_PREFETCH]
    prefetcht0 byte ptr [rdx + KQ_PREFETCH + 64]
    # A, B, C: each row's scale bytes 0-3, 4-7, 8-11 (dword r = row r)
    K4R8_ABC rdx
    vpbroadcastd ymm5, dword ptr [rip + k4r8_m0f]
    vpsrld ymm11, ymm8, 2
    vpand ymm11, ymm11, ymm13
    vpand ymm6, ymm8, ymm12                 # sc 0..3 = A & 0x3f
    vpand ymm7, ymm10, ymm5
    vpor ymm7, ymm7, ymm11                  # sc 4..7 = (C & 0x0f) | ((A >> 2) & 0x30)
    vpsrld ymm11, ymm9, 2
    vpand ymm11, ymm11, ymm13
    vpand ymm9, ymm9, ymm12                 # m 0..3 = B & 0x3f
    vpsrld ymm10, ymm10, 4
    vpand ymm10, ymm10, ymm5
    vpor ymm10, ymm10, ymm11                # m 4..7 = ((C >> 4) & 0x0f) | ((B >> 2) & 0x30)
    # msum: s_j = bsums[2j] + bsums[2j+1]; words (m0, m2) x (s0, s2) + (m1, m3) x (s1, s3) + ...
    vmovdqu xmm8, [rbp + Q8K_BSUMS]
    vphaddw xmm8, xmm8, [rbp + Q8K_BSUMS + 16]
    vpshufb xmm8, xmm8, [rip + k4r8_sperm]
    vmovdqa [rsp + K4R_S], xmm8
    vpand ymm5, ymm9, ymm14                 # (m0, m2)
    vpbroadcastd ymm8, dword ptr [rsp + K4R_S]
    vpmaddwd ymm5, ymm5, ymm8
    vpsrlw ymm9, ymm9, 8                    # (m1, m3)
    vpbroadcastd ymm8, dword ptr [rsp + K4R_S + 4]
    vpmaddwd ymm9, ymm9, ymm8
    vpaddd ymm5, ymm5, ymm9
    vpand ymm9, ymm10, ymm14                # (m4, m6)
    vpbroadcastd ymm8, dword ptr [rsp + K4R_S + 8]
    vpmaddwd ymm9, ymm9, ymm8
    vpaddd ymm5, ymm5, ymm9
    vpsrlw ymm10, ymm10, 8                  # (m5, m7)
    vpbroadcastd ymm8, dword ptr [rsp + K4R_S + 12]
    vpmaddwd ymm10, ymm10, ymm8
    vpaddd ymm5, ymm5, ymm10                # msum, a row a lane
    vcvtdq2ps ymm5, ymm5
    vcvtph2ps ymm8, [rdx + 16]              # dmin of the 8 rows
    vbroadcastss ymm9, dword ptr [rbp + Q8K_D]
    vmulps ymm8, ymm8, ymm9                 # dmin * yd
    vfmadd231ps ymm1, ymm5, ymm8            # acc_min
    # isum
    vpxor xmm4, xmm4, xmm4
    K4R_CHUNK 0, ymm6, 0
    K4R_CHUNK 1, ymm6, 64
    K4R_CHUNK 2, ymm7, 0
    K4R_CHUNK 3, ymm7, 64
    vcvtdq2ps ymm4, ymm4
    vcvtph2ps ymm8, [rdx]                   # d of the 8 rows
    vbroadcastss ymm9, dword ptr [rbp + Q8K_D]
    vmulps ymm8, ymm8, ymm9                 # d * yd
    vfmadd231ps ymm0, ymm4, ymm8            # acc_row
    add rdx, 8 * 144
    add rbp, Q8K_BYTES
    dec r12d
    jnz .Lblock
.Lgroup_done:
    vsubps ymm0, ymm0, ymm1
    vmovups [r10], ymm0
    add r10, 32
    dec ebx
    jmp .Lgroup
.Ldone:
    KLOAD_XMM6_15_VEX 0
    add rsp, K4R_FRAME
    pop r13
    pop r12
    pop rbp
    pop rdi
    pop rsi
    pop rbx
    vzeroupper
    ret
