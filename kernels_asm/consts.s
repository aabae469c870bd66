# Broadcast constants shared by the kernels: 8 lanes each, 32-byte aligned, so an SSE2
# body can use them as aligned xmmword operands and an AVX2 body as ymmword operands.
# Values are written as IEEE-754 bit patterns (no decimal parsing in either assembler).
.section .rdata
.balign 32, 0                   # zeros (the default fill is nops, and the two assemblers pick different ones)
.global kc_one, kc_sign, kexp_lo, kexp_hi, kexp_log2e, kexp_ln2_hi, kexp_ln2_lo
.global kexp_bias, kexp_p0, kexp_p1, kexp_p2, kexp_p3, kexp_p4, kexp_p5
kc_one:   # 1.0
    .long 0x3f800000, 0x3f800000, 0x3f800000, 0x3f800000, 0x3f800000, 0x3f800000, 0x3f800000, 0x3f800000
kc_sign:   # sign bit (xor to negate)
    .long 0x80000000, 0x80000000, 0x80000000, 0x80000000, 0x80000000, 0x80000000, 0x80000000, 0x80000000
kexp_lo:   # -104: exp below rounds to 0 (the smallest subnormal is exp(-103.28))
    .long 0xc2d00000, 0xc2d00000, 0xc2d00000, 0xc2d00000, 0xc2d00000, 0xc2d00000, 0xc2d00000, 0xc2d00000
kexp_hi:   # 88: exp saturates at exp(88) = 1.65e38, no inf
    .long 0x42b00000, 0x42b00000, 0x42b00000, 0x42b00000, 0x42b00000, 0x42b00000, 0x42b00000, 0x42b00000
kexp_log2e:   # 1/ln 2
    .long 0x3fb8aa3b, 0x3fb8aa3b, 0x3fb8aa3b, 0x3fb8aa3b, 0x3fb8aa3b, 0x3fb8aa3b, 0x3fb8aa3b, 0x3fb8aa3b
kexp_ln2_hi:   # ln 2 = hi + lo, hi = 0.693359375 (9 bits: n*hi is exact)
    .long 0x3f318000, 0x3f318000, 0x3f318000, 0x3f318000, 0x3f318000, 0x3f318000, 0x3f318000, 0x3f318000
kexp_ln2_lo:   # -2.12194440e-4
    .long 0xb95e8083, 0xb95e8083, 0xb95e8083, 0xb95e8083, 0xb95e8083, 0xb95e8083, 0xb95e8083, 0xb95e8083
kexp_bias:   # 127 (int32): the exponent bias
    .long 0x0000007f, 0x0000007f, 0x0000007f, 0x0000007f, 0x0000007f, 0x0000007f, 0x0000007f, 0x0000007f
kexp_p0:   # 1.9875691500e-4  (Cephes expf polynomial, highest degree first)
    .long 0x39506967, 0x39506967, 0x39506967, 0x39506967, 0x39506967, 0x39506967, 0x39506967, 0x39506967
kexp_p1:   # 1.3981999507e-3
    .long 0x3ab743ce, 0x3ab743ce, 0x3ab743ce, 0x3ab743ce, 0x3ab743ce, 0x3ab743ce, 0x3ab743ce, 0x3ab743ce
kexp_p2:   # 8.3334519073e-3
    .long 0x3c088908, 0x3c088908, 0x3c088908, 0x3c088908, 0x3c088908, 0x3c088908, 0x3c088908, 0x3c088908
kexp_p3:   # 4.1665795894e-2
    .long 0x3d2aa9c1, 0x3d2aa9c1, 0x3d2aa9c1, 0x3d2aa9c1, 0x3d2aa9c1, 0x3d2aa9c1, 0x3d2aa9c1, 0x3d2aa9c1
kexp_p4:   # 1.6666665459e-1
    .long 0x3e2aaaaa, 0x3e2aaaaa, 0x3e2aaaaa, 0x3e2aaaaa, 0x3e2aaaaa, 0x3e2aaaaa, 0x3e2aaaaa, 0x3e2aaaaa
kexp_p5:   # 5.0000001201e-1
    .long 0x3f000000, 0x3f000000, 0x3f000000, 0x3f000000, 0x3f000000, 0x3f000000, 0x3f000000, 0x3f000000
