# sinf and cosf as glibc computes them (sysdeps/ieee754/flt-32: s_sinf.c, s_cosf.c,
# s_sincosf.c, s_sincosf.h, sincosf_poly.h, s_sincosf_data.c; glibc 2.28 on, 2.36 is Debian
# 12's), bit for bit: llama.cpp's RoPE cache takes its cos/sin from these, and they are not
# correctly rounded (tests/reference/glibc_sincosf.py states the algorithm and is the model
# the tests hold these bodies and the host's libm to). In short, by the top 12 bits of |y|:
# below pi/4 the polynomials on x = double(y) (tiny |y| < 2^-12: sin = y, cos = 1); below
# 120 a double reduction x - n*(pi/2), n from x * (2/pi * 2^24) truncated; otherwise a
# 32 x 96-bit fixed-point product with 4/pi (n = 0..3 and the remainder, times 2pi * 2^-64);
# then sign and quadrant from n, the degree-7 sine and degree-10 cosine polynomials in
# double and one rounding to f32. Inf and NaN give y - y.
#
# Two builds, as x86-64 glibc has them (its ifunc picks the FMA one on a CPU with FMA and
# AVX2): sincosf_glibc_fma fuses each multiply-add whose product has no other use, as GCC
# does when it compiles glibc with -mfma (the reduction and the six polynomial steps);
# sincosf_glibc_sse2 rounds each product.
#
# sincosf_glibc_<build>(xmm0 = y f32) -> xmm0 = sinf(y), xmm1 = cosf(y). Changes rax, rcx,
#   rdx, r8-r11, xmm2-xmm5; uses no stack.
.section .rdata
.balign 16, 0
# the two sincos_t polynomial tables (c0..c4, s1..s3); the second one's cosine is negated
scg_table:
    .quad 0x3ff0000000000000, 0xbfdffffffd0c621c, 0x3fa55553e1068f19, 0xbf56c087e89a359d
    .quad 0x3ef99343027bf8c3, 0xbfc555545995a603, 0x3f81107605230bc4, 0xbf2994eb3774cf24
    .quad 0xbff0000000000000, 0x3fdffffffd0c621c, 0xbfa55553e1068f19, 0x3f56c087e89a359d
    .quad 0xbef99343027bf8c3, 0xbfc555545995a603, 0x3f81107605230bc4, 0xbf2994eb3774cf24
scg_sign:    .quad 0x3ff0000000000000, 0xbff0000000000000, 0xbff0000000000000, 0x3ff0000000000000
scg_hpi_inv: .quad 0x41645f306dc9c883      # 2/pi * 2^24
scg_hpi:     .quad 0x3ff921fb54442d18      # pi/2
scg_pi63:    .quad 0x3c1921fb54442d18      # 2pi * 2^-64
# 4/pi to 192 bits, each word 8 bits further than the one before
scg_inv_pio4:
    .long 0x000000a2, 0x0000a2f9, 0x00a2f983, 0xa2f9836e, 0xf9836e4e, 0x836e4e44
    .long 0x6e4e4415, 0x4e441529, 0x441529fc, 0x1529fc27, 0x29fc2757, 0xfc2757d1
    .long 0x2757d1f5, 0x57d1f534, 0xd1f534dd, 0xf534ddc0, 0x34ddc0db, 0xddc0db62
    .long 0xc0db6295, 0xdb629599, 0x6295993c, 0x95993c43, 0x993c4390, 0x3c439041

.equ SCG_C0, 0
.equ SCG_C1, 8
.equ SCG_C2, 16
.equ SCG_C3, 24
.equ SCG_C4, 32
.equ SCG_S1, 40
.equ SCG_S2, 48
.equ SCG_S3, 56
.equ SCG_ENTRY, 64
.equ SCG_TOP_PIO4, 0x3F4         # abstop12 of f32(pi/4), 2^-12, 120, infinity
.equ SCG_TOP_TINY, 0x398
.equ SCG_TOP_120, 0x42F
.equ SCG_TOP_INF, 0x7F8

# acc = acc + a * b: fused (fma = 1) or the product rounded first into t (fma = 0); b a
# register, or in SCG_MADDP the coefficient at offset off of the table entry r9
.macro SCG_MADD fma, acc, a, b, t
.if \fma
    vfmadd231sd \acc, \a, \b
.else
    movapd \t, \a
    mulsd \t, \b
    addsd \acc, \t
.endif
.endm
.macro SCG_MADDP fma, acc, a, off, t
.if \fma
    vfmadd231sd \acc, \a, qword ptr [r9 + \off]
.else
    movapd \t, \a
    mulsd \t, qword ptr [r9 + \off]
    addsd \acc, \t
.endif
.endm

# the polynomials (no labels: expanded once per build): xmm2 = x, xmm3 = xs, r9 = p ->
# xmm3 = S, xmm2 = C (double)
.macro SCG_POLY fma
    movapd xmm4, xmm2
    mulsd xmm4, xmm2                  # x2
    movapd xmm5, xmm3
    mulsd xmm5, xmm4                  # x3 = xs * x2
    movsd xmm1, qword ptr [r9 + SCG_S2]
    SCG_MADDP \fma, xmm1, xmm4, SCG_S3, xmm0  # s2 + x2*s3
    SCG_MADDP \fma, xmm3, xmm5, SCG_S1, xmm0  # xs + x3*s1
    mulsd xmm5, xmm4                  # x5 = x3 * x2
    SCG_MADD \fma, xmm3, xmm5, xmm1, xmm0     # S
    movapd xmm5, xmm4
    mulsd xmm5, xmm4                  # x4 = x2 * x2
    movsd xmm1, qword ptr [r9 + SCG_C3]
    SCG_MADDP \fma, xmm1, xmm4, SCG_C4, xmm0  # c3 + x2*c4
    movsd xmm2, qword ptr [r9 + SCG_C0]
    SCG_MADDP \fma, xmm2, xmm4, SCG_C1, xmm0  # c0 + x2*c1
    SCG_MADDP \fma, xmm2, xmm5, SCG_C2, xmm0  # + x4*c2
    mulsd xmm5, xmm4                  # x6 = x4 * x2
    SCG_MADD \fma, xmm2, xmm5, xmm1, xmm0     # C
.endm

.section .text
.global sincosf_glibc_sse2, sincosf_glibc_fma

sincosf_glibc_sse2:
    xor r11d, r11d
    jmp sincosf_glibc
sincosf_glibc_fma:
    mov r11d, 1
    jmp sincosf_glibc

# the body of both: r11d = 1 for the FMA build
sincosf_glibc:
    movd eax, xmm0
    mov edx, eax
    shr edx, 20
    and edx, 0x7FF                    # abstop12(y)
    cvtss2sd xmm2, xmm0               # x
    lea r9, [rip + scg_table]         # p: entry 0
    xor r8d, r8d                      # n = 0
    cmp edx, SCG_TOP_PIO4
    jae .Lreduce
    cmp edx, SCG_TOP_TINY
    jb .Ltiny
    movapd xmm3, xmm2                 # xs = x
    jmp .Lpoly
.Lreduce:
    cmp edx, SCG_TOP_120
    jae .Llarge
    movsd xmm3, qword ptr [rip + scg_hpi_inv]
    mulsd xmm3, xmm2
    cvttsd2si r8d, xmm3
    add r8d, 0x800000
    sar r8d, 24                       # n = (int32(x * hpi_inv) + 2^23) >> 24
    cvtsi2sd xmm3, r8d
    test r11d, r11d
    jz .Lmid_sse2
    vfnmadd231sd xmm2, xmm3, qword ptr [rip + scg_hpi]   # x - n*hpi, one rounding
    jmp .Lmid_done
.Lmid_sse2:
    mulsd xmm3, qword ptr [rip + scg_hpi]
    subsd xmm2, xmm3
.Lmid_done:
    mov eax, r8d                      # q = n
    jmp .Lsign
.Llarge:
    cmp edx, SCG_TOP_INF
    jae .Lnan
    mov ecx, eax
    shr ecx, 23
    and ecx, 7                        # shift
    mov edx, eax
    shr edx, 26
    and edx, 15
    lea r10, [rip + scg_inv_pio4]
    lea r10, [r10 + rdx * 4]          # arr = inv_pio4 + ((xi >> 26) & 15)
    and eax, 0xFFFFFF
    or eax, 0x800000
    shl eax, cl                       # m = (mantissa | 2^23) << shift, 32 bits
    mov ecx, eax
    mov r8d, eax
    imul r8d, dword ptr [r10]         # m * arr[0] mod 2^32
    shl r8, 32
    mov eax, [r10 + 32]
    imul rax, rcx                     # m * arr[8]
    shr rax, 32
    or r8, rax
    mov eax, [r10 + 16]
    imul rax, rcx                     # m * arr[4]
    add r8, rax                       # res (2.62 fixed point, mod 2^64)
    mov eax, 1
    shl rax, 61
    add rax, r8
    shr rax, 62                       # n = (res + 2^61) >> 62
    mov rdx, rax
    shl rdx, 62
    sub r8, rdx
    cvtsi2sd xmm2, r8                 # the signed remainder
    mulsd xmm2, qword ptr [rip + scg_pi63]
    mov r8d, eax                      # n
    movd ecx, xmm0
    shr ecx, 31
    add eax, ecx                      # q = n + sign of y
.Lsign:
    mov ecx, eax
    and ecx, 3
    lea rdx, [rip + scg_sign]
    movsd xmm3, qword ptr [rdx + rcx * 8]
    mulsd xmm3, xmm2                  # xs = x * sign[q & 3]
    test eax, 2
    jz .Lpoly
    add r9, SCG_ENTRY                 # q & 2: entry 1
.Lpoly:                               # xmm2 = x, xmm3 = xs, r8d = n, r9 = p
    test r11d, r11d
    jz .Lpoly_sse2
    SCG_POLY 1
    jmp .Lround
.Lpoly_sse2:
    SCG_POLY 0
.Lround:
    cvtsd2ss xmm0, xmm3
    cvtsd2ss xmm1, xmm2
    test r8d, 1
    jz .Ldone
    movaps xmm2, xmm0                 # odd quadrant: sin = C, cos = S
    movaps xmm0, xmm1
    movaps xmm1, xmm2
.Ldone:
    ret
.Ltiny:                               # sin = y, cos = 1
    mov eax, 0x3F800000
    movd xmm1, eax
    ret
.Lnan:                                # inf, NaN: y - y for both
    movaps xmm1, xmm0
    subss xmm1, xmm0
    movaps xmm0, xmm1
    ret
