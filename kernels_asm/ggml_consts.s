# Broadcast constants of the ggml type kernels (ggml_*.s): 8 lanes each, 32-byte aligned, so
# an SSE2 body can use them as aligned xmmword operands and an AVX2 body as ymmword operands.
# IEEE-754 values are written as bit patterns. What each constant is for is said next to it;
# the conversions that use most of them are described in ggml_cvt.inc.
.section .rdata
.balign 32, 0
.global kg_h_magn, kg_h_sub_lim, kg_h_inf_lim, kg_h_nan_lim, kg_h_rebias, kg_f_quiet
.global kg_f_2m24, kg_f_abs, kg_f_half, kg_f_h_norm, kg_f_h_ovf, kg_f_inf, kg_h_inf
.global kg_one_i32, kg_f_h_round, kg_h_man, kg_h_qbit, kg_f_bf_hi, kg_f_bf_quiet, kg_bf_round
.global kg_f_127, kg_nib, kg_b8, kg_b16, kg_one_i16, kg_bits_shuf, kg_bits_mask, kg_hi_f0
.global kg_q8_perm, kg_f_2p112
kg_h_magn:      # 0x7fff: an f16's magnitude bits (in each dword lane)
    .long 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff
kg_h_sub_lim:   # 0x0400: f16 magnitudes below this are zero or subnormal
    .long 0x0400, 0x0400, 0x0400, 0x0400, 0x0400, 0x0400, 0x0400, 0x0400
kg_h_inf_lim:   # 0x7bff: f16 magnitudes above this are inf or NaN
    .long 0x7bff, 0x7bff, 0x7bff, 0x7bff, 0x7bff, 0x7bff, 0x7bff, 0x7bff
kg_h_nan_lim:   # 0x7c00: f16 magnitudes above this are NaN
    .long 0x7c00, 0x7c00, 0x7c00, 0x7c00, 0x7c00, 0x7c00, 0x7c00, 0x7c00
kg_h_rebias:    # (127 - 15) << 23: f16 exponent -> f32 exponent (once more for inf/NaN)
    .long 0x38000000, 0x38000000, 0x38000000, 0x38000000, 0x38000000, 0x38000000, 0x38000000, 0x38000000
kg_f_quiet:     # an f32 NaN's quiet bit
    .long 0x00400000, 0x00400000, 0x00400000, 0x00400000, 0x00400000, 0x00400000, 0x00400000, 0x00400000
kg_f_2p112:     # 2^112 (f32): 2^(127 - 15), an f16's bits shifted up 13 times this is its value
    .long 0x77800000, 0x77800000, 0x77800000, 0x77800000, 0x77800000, 0x77800000, 0x77800000, 0x77800000
kg_f_2m24:      # 2^-24 (f32): an f16 subnormal's unit
    .long 0x33800000, 0x33800000, 0x33800000, 0x33800000, 0x33800000, 0x33800000, 0x33800000, 0x33800000
kg_f_abs:       # 0x7fffffff: an f32's magnitude bits
    .long 0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff
kg_f_half:      # 0.5 (f32): its ulp is 2^-24, an f16 subnormal's unit
    .long 0x3f000000, 0x3f000000, 0x3f000000, 0x3f000000, 0x3f000000, 0x3f000000, 0x3f000000, 0x3f000000
kg_f_h_norm:    # 2^-14 (f32): the smallest normal f16
    .long 0x38800000, 0x38800000, 0x38800000, 0x38800000, 0x38800000, 0x38800000, 0x38800000, 0x38800000
kg_f_h_ovf:     # f32 magnitudes above this (65520 - 1 ulp) round to the f16 inf
    .long 0x477fefff, 0x477fefff, 0x477fefff, 0x477fefff, 0x477fefff, 0x477fefff, 0x477fefff, 0x477fefff
kg_f_inf:       # f32 magnitudes above this are NaN
    .long 0x7f800000, 0x7f800000, 0x7f800000, 0x7f800000, 0x7f800000, 0x7f800000, 0x7f800000, 0x7f800000
kg_h_inf:       # the f16 inf
    .long 0x7c00, 0x7c00, 0x7c00, 0x7c00, 0x7c00, 0x7c00, 0x7c00, 0x7c00
kg_one_i32:     # 1 (int32)
    .long 1, 1, 1, 1, 1, 1, 1, 1
kg_f_h_round:   # 0xfff - ((127 - 15) << 23), mod 2^32: f32 -> f16 rounding bias and rebias
    .long 0xc8000fff, 0xc8000fff, 0xc8000fff, 0xc8000fff, 0xc8000fff, 0xc8000fff, 0xc8000fff, 0xc8000fff
kg_h_man:       # 0x3ff: an f16's mantissa bits
    .long 0x03ff, 0x03ff, 0x03ff, 0x03ff, 0x03ff, 0x03ff, 0x03ff, 0x03ff
kg_h_qbit:      # 0x200: an f16 NaN's quiet bit
    .long 0x0200, 0x0200, 0x0200, 0x0200, 0x0200, 0x0200, 0x0200, 0x0200
kg_f_bf_hi:     # 0xffff0000: the bits of an f32 a bf16 keeps
    .long 0xffff0000, 0xffff0000, 0xffff0000, 0xffff0000, 0xffff0000, 0xffff0000, 0xffff0000, 0xffff0000
kg_f_bf_quiet:  # 64 << 16: the quiet bit a NaN gets on its way to bf16 (as ggml)
    .long 0x00400000, 0x00400000, 0x00400000, 0x00400000, 0x00400000, 0x00400000, 0x00400000, 0x00400000
kg_bf_round:    # 0x7fff: bf16 round-to-nearest-even bias (plus the kept lsb)
    .long 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff
kg_f_127:       # 127.0 (f32)
    .long 0x42fe0000, 0x42fe0000, 0x42fe0000, 0x42fe0000, 0x42fe0000, 0x42fe0000, 0x42fe0000, 0x42fe0000
kg_nib:         # 0x0f in every byte: a nibble
    .long 0x0f0f0f0f, 0x0f0f0f0f, 0x0f0f0f0f, 0x0f0f0f0f, 0x0f0f0f0f, 0x0f0f0f0f, 0x0f0f0f0f, 0x0f0f0f0f
kg_b8:          # 8 in every byte: Q4_0's offset
    .long 0x08080808, 0x08080808, 0x08080808, 0x08080808, 0x08080808, 0x08080808, 0x08080808, 0x08080808
kg_b16:         # 16 in every byte: Q5_0's offset
    .long 0x10101010, 0x10101010, 0x10101010, 0x10101010, 0x10101010, 0x10101010, 0x10101010, 0x10101010
kg_one_i16:     # 1 in every word (pmaddwd by it sums pairs)
    .long 0x00010001, 0x00010001, 0x00010001, 0x00010001, 0x00010001, 0x00010001, 0x00010001, 0x00010001
kg_bits_shuf:   # vpshufb of a broadcast dword qh: byte k gets qh byte k / 8 (both 128-bit lanes)
    .byte 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1
    .byte 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3
kg_bits_mask:   # byte k: 1 << (k % 8), the bit of its qh byte element k reads
    .byte 1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128
    .byte 1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128
kg_hi_f0:       # 0xf0 in every byte: Q5_0's "5th bit clear" (nibble - 16 as int8)
    .long 0xf0f0f0f0, 0xf0f0f0f0, 0xf0f0f0f0, 0xf0f0f0f0, 0xf0f0f0f0, 0xf0f0f0f0, 0xf0f0f0f0, 0xf0f0f0f0
kg_q8_perm:     # vpermd order that undoes vpackssdw/vpacksswb's 128-bit lane interleave
    .long 0, 4, 1, 5, 2, 6, 3, 7

# The K-quant matvecs' (ggml_q2_k.s .. ggml_q6_k.s) besides kg_nib (0x0f) and kg_b16 (0x10);
# the SSE2 bodies read the first 16 bytes of the byte and word ones.
.balign 32, 0
.global kg_b03, kg_b04, kg_b30, kg_w32, kg_k_bcast, kg_k_sctab
kg_b03:         # 0x03 in every byte: a 2-bit quant (Q2_K, Q3_K's low bits)
    .long 0x03030303, 0x03030303, 0x03030303, 0x03030303, 0x03030303, 0x03030303, 0x03030303, 0x03030303
kg_b04:         # 0x04 in every byte: Q3_K's third bit at bit 2
    .long 0x04040404, 0x04040404, 0x04040404, 0x04040404, 0x04040404, 0x04040404, 0x04040404, 0x04040404
kg_b30:         # 0x30 in every byte: Q6_K's two high bits at bits 4-5
    .long 0x30303030, 0x30303030, 0x30303030, 0x30303030, 0x30303030, 0x30303030, 0x30303030, 0x30303030
kg_w32:         # 32 in every word: Q3_K's scale offset
    .long 0x00200020, 0x00200020, 0x00200020, 0x00200020, 0x00200020, 0x00200020, 0x00200020, 0x00200020
kg_k_bcast:     # vpshufb masks on 8 scale words in both 128-bit lanes (4 x 32 bytes): mask i
                # puts word 2i in every word of the low lane and word 2i+1 in the high lane
    .irp w, 0, 1, 2, 3, 4, 5, 6, 7
    .rept 8
    .byte 2 * \w, 2 * \w + 1
    .endr
    .endr
kg_k_sctab:     # 64 x 32 bytes: entry s = 16 words of value s (Q4_K/Q5_K: a 6-bit scale as
                # a vpmaddwd operand, found by address)
    .irp s, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63
    .rept 16
    .word \s
    .endr
    .endr
