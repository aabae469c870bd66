# The K-quant unpackers: one super-block of Q2_K, Q3_K, Q4_K, Q5_K or Q6_K into the common
# form of kquant.inc (u8 quants, i16 scale and min per 16 weights, f32 d and dmin). The
# generic dequantize-row loop (ggml_kquants.s) runs on that form.
#
# Block layouts and bit packing: ggml-common.h (block_q2_K .. block_q6_K) and ggml's
# dequantize_row_q*_K, restated in tests/reference/quant_k.py. General-purpose code only,
# 8 quants per 64-bit operation (shifts and masks never carry across a byte that is kept),
# so the vector state of the caller survives (see kquant.inc for the contract).
.include "kquant.inc"

.section .rdata
.balign 8, 0
kq_m0f: .quad 0x0f0f0f0f0f0f0f0f
kq_m03: .quad 0x0303030303030303
kq_m01: .quad 0x0101010101010101
kq_m04: .quad 0x0404040404040404

.section .text
.global kq_unpack_q2_k, kq_unpack_q3_k, kq_unpack_q4_k, kq_unpack_q5_k, kq_unpack_q6_k

# 16 bytes at [rdx + KQ_TMP] -> i16[16] at [rdx + \dst], each byte zero- (or, with sx=1,
# sign-) extended, minus \bias. Clobbers rax, r9.
.macro KQ_BYTES_TO_WORDS dst, bias, sx
    xor r9d, r9d
kqb2w\@:
.if \sx
    movsx eax, byte ptr [rdx + r9 + KQ_TMP]
.else
    movzx eax, byte ptr [rdx + r9 + KQ_TMP]
.endif
    sub eax, \bias
    mov word ptr [rdx + r9 * 2 + \dst], ax
    inc r9d
    cmp r9d, 16
    jb kqb2w\@
.endm

# ----------------------------------------------------------------------------------------
# Q2_K {u8 scales[16]; u8 qs[64]; f16 d; f16 dmin}: weight 128n + 32j + l (l < 32) is bits
# 2j..2j+1 of qs[32n + l]; scales[s]: low nibble the scale, high nibble the min.

# the 4 weights groups of one qs qword at block offset \src: u[\dst + 32j], j = 0..3
.macro KQ2_QWORD src, dst
    mov rax, qword ptr [rcx + \src]
    mov r9, rax
    and r9, r11
    mov qword ptr [rdx + \dst], r9
    mov r9, rax
    shr r9, 2
    and r9, r11
    mov qword ptr [rdx + \dst + 32], r9
    mov r9, rax
    shr r9, 4
    and r9, r11
    mov qword ptr [rdx + \dst + 64], r9
    shr rax, 6
    and rax, r11
    mov qword ptr [rdx + \dst + 96], rax
.endm

kq_unpack_q2_k:
    mov r11, qword ptr [rip + kq_m03]
    KQ2_QWORD 16, 0
    KQ2_QWORD 24, 8
    KQ2_QWORD 32, 16
    KQ2_QWORD 40, 24
    KQ2_QWORD 48, 128
    KQ2_QWORD 56, 136
    KQ2_QWORD 64, 144
    KQ2_QWORD 72, 152
    xor r9d, r9d
.Lq2_scales:
    movzx eax, byte ptr [rcx + r9]
    mov r10d, eax
    and eax, 15
    shr r10d, 4
    mov word ptr [rdx + r9 * 2 + KQ_SC], ax
    mov word ptr [rdx + r9 * 2 + KQ_MN], r10w
    inc r9d
    cmp r9d, 16
    jb .Lq2_scales
    movzx eax, word ptr [rcx + 80]
    KQ_F16_BITS eax, r9d
    mov dword ptr [rdx + KQ_D], r9d
    movzx eax, word ptr [rcx + 82]
    KQ_F16_BITS eax, r9d
    mov dword ptr [rdx + KQ_DMIN], r9d
    ret

# ----------------------------------------------------------------------------------------
# Q3_K {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d}: weight 128n + 32j + l has low bits
# 2j..2j+1 of qs[32n + l] and third bit, bit 4n+j of hmask[l]; u = low + 4 * that bit (the
# weight is u - 4). Scale i (6 bits, stored +32): low 4 bits from byte i (i < 8) or the high
# nibble of byte i-8, high 2 bits = bits 2(i/4)..2(i/4)+1 of byte 8 + i%4.

# qs qword at block offset \src, hmask qword at \hsrc, for half \n (the hmask qword is
# pre-shifted so that bit 4n+j of each byte lands at bit 2 after a right shift by j):
# u[\dst + 32j], j = 0..3. r11 = 0x03.., rbx = 0x04.. masks.
.macro KQ3_QWORD src, hsrc, dst, n
    mov rax, qword ptr [rcx + \src]
    mov r8, qword ptr [rcx + \hsrc]
.if \n
    shr r8, 2                       # bit 4+j -> bit 2+j
.else
    shl r8, 2                       # bit j -> bit 2+j (bits 6, 7 of the top byte: unused)
.endif
    mov r9, rax
    and r9, r11
    mov r10, r8
    and r10, rbx
    or r9, r10
    mov qword ptr [rdx + \dst], r9
    mov r9, rax
    shr r9, 2
    and r9, r11
    mov r10, r8
    shr r10, 1
    and r10, rbx
    or r9, r10
    mov qword ptr [rdx + \dst + 32], r9
    mov r9, rax
    shr r9, 4
    and r9, r11
    mov r10, r8
    shr r10, 2
    and r10, rbx
    or r9, r10
    mov qword ptr [rdx + \dst + 64], r9
    shr rax, 6
    and rax, r11
    shr r8, 3
    and r8, rbx
    or rax, r8
    mov qword ptr [rdx + \dst + 96], rax
.endm

kq_unpack_q3_k:
    push rbx
    mov r11, qword ptr [rip + kq_m03]
    mov rbx, qword ptr [rip + kq_m04]
    KQ3_QWORD 32, 0, 0, 0
    KQ3_QWORD 40, 8, 8, 0
    KQ3_QWORD 48, 16, 16, 0
    KQ3_QWORD 56, 24, 24, 0
    KQ3_QWORD 64, 0, 128, 1
    KQ3_QWORD 72, 8, 136, 1
    KQ3_QWORD 80, 16, 144, 1
    KQ3_QWORD 88, 24, 152, 1
    # scales: L = bytes 0..7 (low nibbles: scales 0..7, high nibbles: 8..15), H = bytes 8..11
    mov rax, qword ptr [rcx + 96]
    mov r10d, dword ptr [rcx + 104]      # H
    mov r9, r10
    shr r9, 2
    shl r9, 32
    or r9, r10                      # bytes 0..3 = H, 4..7 = H >> 2
    mov r8, qword ptr [rip + kq_m0f]
    and r9, r11                     # high bits of scales 0..7
    shl r9, 4
    mov r10, rax
    and r10, r8
    or r10, r9
    mov qword ptr [rdx + KQ_TMP], r10
    mov r10d, dword ptr [rcx + 104]
    mov r9, r10
    shr r9, 6
    shl r9, 32
    shr r10, 4
    or r9, r10                      # bytes 0..3 = H >> 4, 4..7 = H >> 6
    and r9, r11
    shl r9, 4
    shr rax, 4
    and rax, r8
    or rax, r9
    mov qword ptr [rdx + KQ_TMP + 8], rax
    KQ_BYTES_TO_WORDS KQ_SC, 32, 0
    xor eax, eax
    mov qword ptr [rdx + KQ_MN], rax
    mov qword ptr [rdx + KQ_MN + 8], rax
    mov qword ptr [rdx + KQ_MN + 16], rax
    mov qword ptr [rdx + KQ_MN + 24], rax
    mov dword ptr [rdx + KQ_DMIN], eax
    movzx eax, word ptr [rcx + 108]
    KQ_F16_BITS eax, r9d
    mov dword ptr [rdx + KQ_D], r9d
    pop rbx
    ret

# ----------------------------------------------------------------------------------------
# Q4_K {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]} and Q5_K {f16 d; f16 dmin; u8
# scales[12]; u8 qh[32]; u8 qs[128]}: weight 64j + 32h + l has 4 bits = nibble h of
# qs[32j + l]; Q5_K's fifth bit is bit 2j+h of qh[l]. 8 scales and 8 mins of 6 bits, one per
# 32 weights: with A, B, C the little-endian dwords of scales[0..3], [4..7], [8..11],
#   sc[0..3] = A & 0x3f..,  m[0..3] = B & 0x3f..,
#   sc[4..7] = (C & 0x0f..) | ((A >> 2) & 0x30..),  m[4..7] = ((C >> 4) & 0x0f..) | ((B >> 2) & 0x30..)
# (bytewise, the same as ggml's get_scale_min_k4).

# d, dmin and the scales/mins of a Q4_K/Q5_K block: KQ_SC/KQ_MN, each value twice
kq_scales_k4:
    mov eax, dword ptr [rcx + 4]         # A
    mov r9d, eax
    and eax, 0x3f3f3f3f
    mov dword ptr [rdx + KQ_TMP], eax    # sc 0..3
    shr r9d, 2
    and r9d, 0x30303030
    mov eax, dword ptr [rcx + 12]        # C
    and eax, 0x0f0f0f0f
    or eax, r9d
    mov dword ptr [rdx + KQ_TMP + 4], eax    # sc 4..7
    mov eax, dword ptr [rcx + 8]         # B
    mov r9d, eax
    and eax, 0x3f3f3f3f
    mov dword ptr [rdx + KQ_TMP + 8], eax    # m 0..3
    shr r9d, 2
    and r9d, 0x30303030
    mov eax, dword ptr [rcx + 12]
    shr eax, 4
    and eax, 0x0f0f0f0f
    or eax, r9d
    mov dword ptr [rdx + KQ_TMP + 12], eax   # m 4..7
    xor r9d, r9d
.Lk4_spread:                          # byte i -> words 2i, 2i+1 (16 words: sc, then mn)
    movzx eax, byte ptr [rdx + r9 + KQ_TMP]
    imul eax, eax, 0x00010001
    mov dword ptr [rdx + r9 * 4 + KQ_SC], eax
    inc r9d
    cmp r9d, 16
    jb .Lk4_spread
    movzx eax, word ptr [rcx]
    KQ_F16_BITS eax, r9d
    mov dword ptr [rdx + KQ_D], r9d
    movzx eax, word ptr [rcx + 2]
    KQ_F16_BITS eax, r9d
    mov dword ptr [rdx + KQ_DMIN], r9d
    ret

# qs qword at block offset \src -> u[\dst] (low nibbles), u[\dst + 32] (high). r11 = 0x0f..
.macro KQ4_QWORD src, dst
    mov rax, qword ptr [rcx + \src]
    mov r9, rax
    and r9, r11
    mov qword ptr [rdx + \dst], r9
    shr rax, 4
    and rax, r11
    mov qword ptr [rdx + \dst + 32], rax
.endm

kq_unpack_q4_k:
    mov r11, qword ptr [rip + kq_m0f]
    KQ4_QWORD 16, 0
    KQ4_QWORD 24, 8
    KQ4_QWORD 32, 16
    KQ4_QWORD 40, 24
    KQ4_QWORD 48, 64
    KQ4_QWORD 56, 72
    KQ4_QWORD 64, 80
    KQ4_QWORD 72, 88
    KQ4_QWORD 80, 128
    KQ4_QWORD 88, 136
    KQ4_QWORD 96, 144
    KQ4_QWORD 104, 152
    KQ4_QWORD 112, 192
    KQ4_QWORD 120, 200
    KQ4_QWORD 128, 208
    KQ4_QWORD 136, 216
    jmp kq_scales_k4

# Q5_K: qs qword at \src, qh qword at \hsrc, group j: u[\dst] (nibble 0, qh bit 2j) and
# u[\dst + 32] (nibble 1, qh bit 2j+1). r11 = 0x0f.., rbx = 0x01..
.macro KQ5_QWORD src, hsrc, dst, j
    mov rax, qword ptr [rcx + \src]
    mov r8, qword ptr [rcx + \hsrc]
.if \j
    shr r8, 2 * \j
.endif
    mov r9, rax
    and r9, r11
    mov r10, r8
    and r10, rbx
    shl r10, 4
    or r9, r10
    mov qword ptr [rdx + \dst], r9
    shr rax, 4
    and rax, r11
    shr r8, 1
    and r8, rbx
    shl r8, 4
    or rax, r8
    mov qword ptr [rdx + \dst + 32], rax
.endm

kq_unpack_q5_k:
    push rbx
    mov r11, qword ptr [rip + kq_m0f]
    mov rbx, qword ptr [rip + kq_m01]
    KQ5_QWORD 48, 16, 0, 0
    KQ5_QWORD 56, 24, 8, 0
    KQ5_QWORD 64, 32, 16, 0
    KQ5_QWORD 72, 40, 24, 0
    KQ5_QWORD 80, 16, 64, 1
    KQ5_QWORD 88, 24, 72, 1
    KQ5_QWORD 96, 32, 80, 1
    KQ5_QWORD 104, 40, 88, 1
    KQ5_QWORD 112, 16, 128, 2
    KQ5_QWORD 120, 24, 136, 2
    KQ5_QWORD 128, 32, 144, 2
    KQ5_QWORD 136, 40, 152, 2
    KQ5_QWORD 144, 16, 192, 3
    KQ5_QWORD 152, 24, 200, 3
    KQ5_QWORD 160, 32, 208, 3
    KQ5_QWORD 168, 40, 216, 3
    pop rbx
    jmp kq_scales_k4

# ----------------------------------------------------------------------------------------
# Q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}: weight 128n + 32k + l has low 4 bits
# = nibble k/2 of ql[64n + 32(k%2) + l] and high 2 bits = bits 2k..2k+1 of qh[32n + l]; the
# weight is u - 32; one signed 8-bit scale per 16 weights.

# ql qwords at \a (k = 0, 2) and \a + 32 (k = 1, 3), qh qword at \h -> u[\dst + 32k].
# r11 = 0x0f.., rbx = 0x03..
.macro KQ6_QWORD a, h, dst
    mov r8, qword ptr [rcx + \h]
    mov rax, qword ptr [rcx + \a]
    mov r9, rax
    and r9, r11
    mov r10, r8
    and r10, rbx
    shl r10, 4
    or r9, r10
    mov qword ptr [rdx + \dst], r9
    shr rax, 4
    and rax, r11
    mov r10, r8
    shr r10, 4
    and r10, rbx
    shl r10, 4
    or rax, r10
    mov qword ptr [rdx + \dst + 64], rax
    mov rax, qword ptr [rcx + \a + 32]
    mov r9, rax
    and r9, r11
    mov r10, r8
    shr r10, 2
    and r10, rbx
    shl r10, 4
    or r9, r10
    mov qword ptr [rdx + \dst + 32], r9
    shr rax, 4
    and rax, r11
    shr r8, 6
    and r8, rbx
    shl r8, 4
    or rax, r8
    mov qword ptr [rdx + \dst + 96], rax
.endm

kq_unpack_q6_k:
    push rbx
    mov r11, qword ptr [rip + kq_m0f]
    mov rbx, qword ptr [rip + kq_m03]
    KQ6_QWORD 0, 128, 0
    KQ6_QWORD 8, 136, 8
    KQ6_QWORD 16, 144, 16
    KQ6_QWORD 24, 152, 24
    KQ6_QWORD 64, 160, 128
    KQ6_QWORD 72, 168, 136
    KQ6_QWORD 80, 176, 144
    KQ6_QWORD 88, 184, 152
    mov rax, qword ptr [rcx + 192]
    mov qword ptr [rdx + KQ_TMP], rax
    mov rax, qword ptr [rcx + 200]
    mov qword ptr [rdx + KQ_TMP + 8], rax
    KQ_BYTES_TO_WORDS KQ_SC, 0, 1
    xor eax, eax
    mov qword ptr [rdx + KQ_MN], rax
    mov qword ptr [rdx + KQ_MN + 8], rax
    mov qword ptr [rdx + KQ_MN + 16], rax
    mov qword ptr [rdx + KQ_MN + 24], rax
    mov dword ptr [rdx + KQ_DMIN], eax
    movzx eax, word ptr [rcx + 208]
    KQ_F16_BITS eax, r9d
    mov dword ptr [rdx + KQ_D], r9d
    pop rbx
    ret
