# matvec: out(d) = W(d, n) @ x(n), f32, W row-major. The hot spot of a forward pass: every
# weight is read once per token, so the goal is to stream W at memory bandwidth.
#
# Shape of the loop, chosen by measurement (`peasm bench kernels`): W is read strictly front
# to back, one row after the other, as ONE sequential stream; the hardware prefetcher runs
# ahead of it on its own. (Interleaving 4 rows, i.e. 4 concurrent streams sharing each
# load of x, and software prefetch 256..2048 bytes ahead, both measured slower: 4 streams
# reached about 40% of the bandwidth one stream reaches on the development host; cutting
# long rows into column tiles to keep x in L1 broke the stream the same way and measured
# slower too, although rows longer than ~3K floats do fall to ~50% of bandwidth.) Rows are
# still blocked by 4 for the reductions: each row leaves a vector of partial sums in a
# stack slot, and every 4 rows one transpose-and-add turns the 4 vectors into 4 results
# and one store. Inside a row: 4 accumulators, 32 (avx2) or 16 (sse2) columns per step,
# then 8 or 4 at a time, then 1 at a time, so nothing past W or x is read.
#
# Measured again on an AMD EPYC Zen 3 (family 25, 2 vCPUs, 32 MB L3; stream_read ~21 GB/s
# quiet): A/B in one process, CPU time, variants interleaved over 5-9 rounds, each streamed
# over 256 MiB as `peasm bench kernels` does, as ratios to stream_read in the same round
# (medians; the host was shared, single rounds vary by +-5%). This row-major body: 0.87-0.93
# at stories110M's 768x768, 2048x768, 768x2048 and 32000x768. The same loop without its x
# loads reached 0.94-1.0, and with every x load from one fixed address 0.95: the loss goes
# with the loads of x (as many bytes as of W pass the load pipes). Not better: 64 columns a step with
# a bottom-tested loop (0.90-0.95, within the noise); x 16 bytes off 32-byte alignment (no
# change); prefetcht0 1 KB ahead (0.83-0.86) and, on the 8-row body, 2 KB ahead (0.77); two
# rows at once sharing each x load (two streams of W: 0.81-0.82 at 768 columns, 1.03 in the
# one run at 2048); rows interleaved by pairs in 32-column chunks (this body's rounding kept, half the x
# loads: 0.94-0.97). Best: 8 rows interleaved in 8-column chunks, one x load for 8 FMAs,
# still one stream (matvec_f32_r8_avx2 below, on weights the loader repacks into F32_R8):
# 0.97-0.98 against this body's 0.87-0.90 in the same rounds (7-10% faster at every shape).
.include "kernels.inc"
.include "kmacros.inc"

.section .text
.global matvec_sse2, matvec_avx2, matvec_f32_r8_avx2

# matvec_sse2(rcx = out, rdx = W, r8 = x, r9d = n, dword [rsp+40] = d)
# frame: 4 pushes, 72 bytes: slots for 4 rows' partial sums at [rsp] .. [rsp+63]
matvec_sse2:
    push rbx
    push rsi
    push r12
    push r13
    sub rsp, 72
    mov r12d, dword ptr [rsp + 72 + 32 + 40]  # d
    mov r9d, r9d
    lea r10, [r9 * 4]                 # row stride in bytes
    mov r11, r10
    and r11, -64                      # 16 columns at a time up to here,
    mov r13, r10
    and r13, -16                      # then 4 at a time, then 1 at a time up to r10
.Lblock:
    test r12, r12
    jz .Ldone
    mov esi, 4
    cmp r12, 4
    cmovb rsi, r12                    # rows in this block
    xorps xmm0, xmm0
    movups [rsp], xmm0
    movups [rsp + 16], xmm0
    movups [rsp + 32], xmm0
    movups [rsp + 48], xmm0
    xor ebx, ebx
.Lrow:
    xorps xmm0, xmm0
    xorps xmm1, xmm1
    xorps xmm2, xmm2
    xorps xmm3, xmm3
    xor eax, eax
.Lcols16:
    cmp rax, r11
    jae .Lcols4
    movups xmm4, [rdx + rax]
    movups xmm5, [r8 + rax]
    mulps xmm4, xmm5
    addps xmm0, xmm4
    movups xmm4, [rdx + rax + 16]
    movups xmm5, [r8 + rax + 16]
    mulps xmm4, xmm5
    addps xmm1, xmm4
    movups xmm4, [rdx + rax + 32]
    movups xmm5, [r8 + rax + 32]
    mulps xmm4, xmm5
    addps xmm2, xmm4
    movups xmm4, [rdx + rax + 48]
    movups xmm5, [r8 + rax + 48]
    mulps xmm4, xmm5
    addps xmm3, xmm4
    add rax, 64
    jmp .Lcols16
.Lcols4:
    cmp rax, r13
    jae .Lcols1
    movups xmm4, [rdx + rax]
    movups xmm5, [r8 + rax]
    mulps xmm4, xmm5
    addps xmm0, xmm4
    add rax, 16
    jmp .Lcols4
.Lcols1:
    cmp rax, r10
    jae .Lrow_done
    movss xmm4, dword ptr [rdx + rax]
    mulss xmm4, dword ptr [r8 + rax]
    addss xmm1, xmm4
    add rax, 4
    jmp .Lcols1
.Lrow_done:
    addps xmm0, xmm1
    addps xmm2, xmm3
    addps xmm0, xmm2
    mov rax, rbx
    shl rax, 4
    movups [rsp + rax], xmm0
    add rdx, r10
    inc rbx
    cmp rbx, rsi
    jb .Lrow
    movups xmm0, [rsp]                # rows a, b, c, d (zeros past the last row)
    movups xmm1, [rsp + 16]
    movups xmm2, [rsp + 32]
    movups xmm3, [rsp + 48]
    movaps xmm4, xmm0
    unpcklps xmm0, xmm1               # a0 b0 a1 b1
    unpckhps xmm4, xmm1               # a2 b2 a3 b3
    addps xmm0, xmm4
    movaps xmm5, xmm2
    unpcklps xmm2, xmm3               # c0 d0 c1 d1
    unpckhps xmm5, xmm3               # c2 d2 c3 d3
    addps xmm2, xmm5
    movaps xmm4, xmm0
    movlhps xmm0, xmm2                # a02 b02 c02 d02
    movhlps xmm2, xmm4                # a13 b13 c13 d13
    addps xmm0, xmm2                  # a b c d
    cmp rsi, 4
    jne .Lpartial
    movups [rcx], xmm0
    add rcx, 16
    sub r12, 4
    jmp .Lblock
.Lpartial:                            # the last 1..3 rows, one result at a time
    movss dword ptr [rcx], xmm0
    shufps xmm0, xmm0, 0x39
    add rcx, 4
    dec r12
    dec rsi
    jnz .Lpartial
    jmp .Lblock
.Ldone:
    add rsp, 72
    pop r13
    pop r12
    pop rsi
    pop rbx
    ret

# matvec_avx2(rcx = out, rdx = W, r8 = x, r9d = n, dword [rsp+40] = d)
# frame: 4 pushes, 136 bytes: slots for 4 rows' partial sums at [rsp] .. [rsp+127]
matvec_avx2:
    push rbx
    push rsi
    push r12
    push r13
    sub rsp, 136
    mov r12d, dword ptr [rsp + 136 + 32 + 40] # d
    mov r9d, r9d
    lea r10, [r9 * 4]
    mov r11, r10
    and r11, -128                     # 32 columns at a time up to here,
    mov r13, r10
    and r13, -32                      # then 8 at a time, then 1 at a time up to r10
.Lblock:
    test r12, r12
    jz .Ldone
    mov esi, 4
    cmp r12, 4
    cmovb rsi, r12
    vxorps xmm0, xmm0, xmm0
    vmovups [rsp], ymm0
    vmovups [rsp + 32], ymm0
    vmovups [rsp + 64], ymm0
    vmovups [rsp + 96], ymm0
    xor ebx, ebx
.Lrow:
    vxorps xmm0, xmm0, xmm0
    vxorps xmm1, xmm1, xmm1
    vxorps xmm2, xmm2, xmm2
    vxorps xmm3, xmm3, xmm3
    xor eax, eax
.Lcols32:
    cmp rax, r11
    jae .Lcols8
    vmovups ymm4, [r8 + rax]
    vmovups ymm5, [r8 + rax + 32]
    vfmadd231ps ymm0, ymm4, [rdx + rax]
    vfmadd231ps ymm1, ymm5, [rdx + rax + 32]
    vmovups ymm4, [r8 + rax + 64]
    vmovups ymm5, [r8 + rax + 96]
    vfmadd231ps ymm2, ymm4, [rdx + rax + 64]
    vfmadd231ps ymm3, ymm5, [rdx + rax + 96]
    sub rax, -128
    jmp .Lcols32
.Lcols8:
    cmp rax, r13
    jae .Lcols1
    vmovups ymm4, [r8 + rax]
    vfmadd231ps ymm0, ymm4, [rdx + rax]
    add rax, 32
    jmp .Lcols8
.Lcols1:                              # vmovss zeroes lanes 1..7, so they add 0
    cmp rax, r10
    jae .Lrow_done
    vmovss xmm4, dword ptr [r8 + rax]
    vmovss xmm5, dword ptr [rdx + rax]
    vfmadd231ps ymm1, ymm4, ymm5
    add rax, 4
    jmp .Lcols1
.Lrow_done:
    vaddps ymm0, ymm0, ymm1
    vaddps ymm2, ymm2, ymm3
    vaddps ymm0, ymm0, ymm2
    mov rax, rbx
    shl rax, 5
    vmovups [rsp + rax], ymm0
    add rdx, r10
    inc rbx
    cmp rbx, rsi
    jb .Lrow
    vmovups ymm0, [rsp]
    vmovups ymm1, [rsp + 32]
    vmovups ymm2, [rsp + 64]
    vmovups ymm3, [rsp + 96]
    vhaddps ymm0, ymm0, ymm1          # per 128-bit half: a01 a23 b01 b23
    vhaddps ymm2, ymm2, ymm3
    vhaddps ymm0, ymm0, ymm2          # per half: a b c d
    vextractf128 xmm1, ymm0, 1
    vaddps xmm0, xmm0, xmm1
    cmp rsi, 4
    jne .Lpartial
    vmovups [rcx], xmm0
    add rcx, 16
    sub r12, 4
    jmp .Lblock
.Lpartial:
    vmovss dword ptr [rcx], xmm0
    vpermilps xmm0, xmm0, 0x39
    add rcx, 4
    dec r12
    dec rsi
    jnz .Lpartial
    jmp .Lblock
.Ldone:
    add rsp, 136
    pop r13
    pop r12
    pop rsi
    pop rbx
    vzeroupper
    ret

# matvec_f32_r8_avx2(rcx = out, rdx = W in the F32_R8 layout, r8 = x, r9d = n, dword [rsp+40] = d)
#   out(d) = W(d, n) @ x(n) for weights repacked into F32_R8 (peasm/ggml.py states the
#   layout: rows in groups of 8; a group is n/8 chunks of 256 bytes, chunk c = the 8 rows'
#   columns 8c .. 8c+7, row r's 32 bytes at 32r). n a multiple of 8 (what the repack,
#   kernels_asm/ggml_repack.s, accepts); whole groups only: the last d mod 8 outputs are
#   neither computed nor written (the repack packs only rows that are whole groups).
#   Per group: one x load shared by 8 FMAs (one accumulator per row, lane j = columns
#   8c + j, c in order), then the 8 accumulators reduced together: vhaddps pairs, pairs of
#   pairs, then the two 128-bit halves: row r = ((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7)).
#   W is still one sequential stream, and a step reads 256 bytes of it for one 32-byte
#   load of x (the row-major body reads as many bytes of x as of W).
#   Clobbers rax, r9-r11, ymm0-ymm5 (xmm6-xmm8 saved).
matvec_f32_r8_avx2:
    sub rsp, 56
    vmovups [rsp], xmm6
    vmovups [rsp + 16], xmm7
    vmovups [rsp + 32], xmm8
    mov r11d, dword ptr [rsp + 56 + 40]
    shr r11, 3                            # groups (d mod 8 rows: left alone)
    mov r9d, r9d
    lea r10, [r9 * 4]                     # x bytes (n * 4)
.Lr8_group:
    test r11, r11
    jz .Lr8_done
    vxorps xmm0, xmm0, xmm0
    vxorps xmm1, xmm1, xmm1
    vxorps xmm2, xmm2, xmm2
    vxorps xmm3, xmm3, xmm3
    vxorps xmm4, xmm4, xmm4
    vxorps xmm5, xmm5, xmm5
    vxorps xmm6, xmm6, xmm6
    vxorps xmm7, xmm7, xmm7
    xor eax, eax
    test r10, r10
    jz .Lr8_reduce
.Lr8_chunk:
    vmovups ymm8, [r8 + rax]
    vfmadd231ps ymm0, ymm8, [rdx]
    vfmadd231ps ymm1, ymm8, [rdx + 32]
    vfmadd231ps ymm2, ymm8, [rdx + 64]
    vfmadd231ps ymm3, ymm8, [rdx + 96]
    vfmadd231ps ymm4, ymm8, [rdx + 128]
    vfmadd231ps ymm5, ymm8, [rdx + 160]
    vfmadd231ps ymm6, ymm8, [rdx + 192]
    vfmadd231ps ymm7, ymm8, [rdx + 224]
    add rdx, 256
    add rax, 32
    cmp rax, r10
    jb .Lr8_chunk
.Lr8_reduce:
    vhaddps ymm0, ymm0, ymm1              # per 128-bit half: r0 r0 r1 r1 (pair sums)
    vhaddps ymm2, ymm2, ymm3
    vhaddps ymm4, ymm4, ymm5
    vhaddps ymm6, ymm6, ymm7
    vhaddps ymm0, ymm0, ymm2              # per half: r0 r1 r2 r3
    vhaddps ymm4, ymm4, ymm6              # per half: r4 r5 r6 r7
    vperm2f128 ymm1, ymm0, ymm4, 0x20     # low halves: r0..r3 | r4..r7
    vperm2f128 ymm2, ymm0, ymm4, 0x31     # high halves
    vaddps ymm0, ymm1, ymm2
    vmovups [rcx], ymm0
    add rcx, 32
    dec r11
    jmp .Lr8_group
.Lr8_done:
    vmovups xmm6, [rsp]
    vmovups xmm7, [rsp + 16]
    vmovups xmm8, [rsp + 32]
    add rsp, 56
    vzeroupper
    ret
