# RoPE as ggml computes it for GGUF models (ggml's rope cache, "norm" and "neox" modes;
# the frequency formula of the RoFormer paper, arXiv:2104.09864, with ggml's iteration):
#
#   theta_scale = f32(base^(-2/n_rot))           (computed once by the loader: ROPE_SCALE)
#   theta_0 = f32(pos);  theta_{i+1} = f32(theta_i * theta_scale)    i < n_rot/2
#   t_i = theta_i / freq_factor_i (f32; factors only when the model has rope_freqs)
#   c_i = cosf(t_i), s_i = sinf(t_i)   as glibc computes them (sincosf_glibc.s): ggml's
#                                      rope_yarn calls the C library's cosf and sinf, which
#                                      are not correctly rounded, and llama.cpp's logits
#                                      follow their bits
#
# "norm" mode (llama) rotates the pairs (2i, 2i+1) of each head, i < n_rot/2, and leaves
# elements n_rot..hs alone; its table has rope_apply's layout (kernels.inc): C[hs] then
# S[hs] with C[2i] = C[2i+1] = c_i, S[2i] = -s_i, S[2i+1] = +s_i, and C = 1, S = 0 past
# n_rot, so k_rope_apply does the rotation. "neox" mode (qwen2) rotates (i, i + n_rot/2);
# its table is C[i] = c_i, S[i] = s_i for i < n_rot/2, applied by rope_apply_neox_<path>.
# The rotations take ggml's arithmetic too (k_rope_apply_ggml, k_rope_apply_neox): its
# AVX2+FMA build fuses one product of each output, its SSE2 build rounds both.
.include "kernels.inc"

.section .text
.global rope_table_ggml_sse2, rope_table_ggml_avx2, rope_apply_neox_sse2, rope_apply_neox_avx2
.global rope_apply_ggml_avx2
.extern sincosf_glibc_sse2, sincosf_glibc_fma

# rope_table_ggml_<path>(rcx = table (2*hs floats), edx = pos, r8d = hs, r9d = n_rot (even,
#   <= hs), dword [rsp+40] = theta_scale (f32 bits), qword [rsp+48] = freq factors
#   (f32[n_rot/2]) or 0, dword [rsp+56] = style (0 norm, 1 neox)). The avx2 body takes
#   glibc's FMA build of cosf/sinf (what glibc picks on a CPU with FMA and AVX2, as llama.cpp
#   runs there), the sse2 body its SSE2 build. Changes rax, rcx, rdx, r8-r11, xmm0-xmm5.
rope_table_ggml_sse2:
    lea rax, [rip + sincosf_glibc_sse2]
    jmp rope_table_ggml_body
rope_table_ggml_avx2:
    lea rax, [rip + sincosf_glibc_fma]
    jmp rope_table_ggml_body

# the body of both: rax = the sincosf body (xmm0 = t -> xmm0 = sin t, xmm1 = cos t)
rope_table_ggml_body:
    push rbx
    push rbp
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, 24                       # [rsp] theta, [rsp+4] theta_scale; rsp 16-aligned
    mov rbx, rcx                      # C
    mov r12d, r8d                     # hs
    lea rsi, [rcx + r12 * 4]          # S
    mov r13d, r9d                     # n_rot
    mov rdi, rax
    cvtsi2ss xmm0, edx                # theta = f32(pos)
    movss dword ptr [rsp], xmm0
    mov eax, [rsp + 128]              # theta_scale
    mov [rsp + 4], eax
    mov r14, [rsp + 136]              # freq factors or 0
    mov r15d, [rsp + 144]             # style
    xor ebp, ebp                      # pair index i
.Lpair:
    lea rax, [rbp * 2]
    cmp rax, r13
    jae .Lrest
    movss xmm0, dword ptr [rsp]       # t = theta (/ factor)
    test r14, r14
    jz .Lnofactor
    divss xmm0, dword ptr [r14 + rbp * 4]
.Lnofactor:
    call rdi                          # xmm0 = s, xmm1 = c
    movss xmm2, dword ptr [rsp]
    mulss xmm2, dword ptr [rsp + 4]   # theta *= theta_scale (f32)
    movss dword ptr [rsp], xmm2
    test r15d, r15d
    jnz .Lneox
    movss dword ptr [rbx + rbp * 8], xmm1        # C[2i] = C[2i+1] = c
    movss dword ptr [rbx + rbp * 8 + 4], xmm1
    movss dword ptr [rsi + rbp * 8 + 4], xmm0    # S[2i+1] = s
    movd eax, xmm0
    xor eax, 0x80000000
    mov [rsi + rbp * 8], eax                     # S[2i] = -s
    inc rbp
    jmp .Lpair
.Lneox:
    movss dword ptr [rbx + rbp * 4], xmm1        # C[i] = c
    movss dword ptr [rsi + rbp * 4], xmm0        # S[i] = s
    inc rbp
    jmp .Lpair
.Lrest:                               # norm mode past n_rot: C = 1, S = 0 (neox: unused)
    test r15d, r15d
    jnz .Ldone
.Lfill:
    cmp rax, r12
    jae .Ldone
    mov dword ptr [rbx + rax * 4], 0x3F800000
    mov dword ptr [rsi + rax * 4], 0
    inc rax
    jmp .Lfill
.Ldone:
    add rsp, 24
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbp
    pop rbx
    ret

# rope_apply_neox_sse2(rcx = v, rdx = table, r8d = n, r9d = hs, dword [rsp+40] = n_rot):
#   per head of hs floats (n a multiple of hs), for i < n_rot/2 with h = n_rot/2:
#   (a, b) = (v[i], v[i+h]) -> (a c_i - b s_i, a s_i + b c_i), two products and a sum
#   per output as ggml does. Elements n_rot..hs are left alone. Changes rax, r8-r11,
#   xmm0-xmm5.
rope_apply_neox_sse2:
    mov [rsp + 8], r8d                # floats left (shadow space; r8 is a temporary below)
    mov r9d, r9d
    mov r10d, [rsp + 40]
    shr r10, 1                        # h
    test r9, r9
    jz .Ldone
    lea r11, [rdx + r9 * 4]           # S
.Lhead:
    mov r8d, [rsp + 8]
    cmp r8, r9
    jb .Ldone
    xor eax, eax
.Li:
    cmp rax, r10
    jae .Lnext
    movss xmm0, dword ptr [rcx + rax * 4]      # a
    lea r8, [rax + r10]
    movss xmm1, dword ptr [rcx + r8 * 4]       # b
    movss xmm2, dword ptr [rdx + rax * 4]      # c
    movss xmm3, dword ptr [r11 + rax * 4]      # s
    movaps xmm4, xmm0
    mulss xmm4, xmm2                  # a c
    movaps xmm5, xmm1
    mulss xmm5, xmm3                  # b s
    subss xmm4, xmm5
    mulss xmm0, xmm3                  # a s
    mulss xmm1, xmm2                  # b c
    addss xmm0, xmm1
    movss dword ptr [rcx + rax * 4], xmm4
    movss dword ptr [rcx + r8 * 4], xmm0
    inc rax
    jmp .Li
.Lnext:
    lea rcx, [rcx + r9 * 4]
    sub [rsp + 8], r9d
    jmp .Lhead
.Ldone:
    ret

# rope_apply_neox_avx2: rope_apply_neox_sse2's contract, with the arithmetic of ggml's
#   AVX2+FMA build, where GCC fuses the first product of each output into its sum:
#   (a, b) -> (fma(a, c, -(b s)), fma(a, s, b c)), the other product rounded first.
rope_apply_neox_avx2:
    mov [rsp + 8], r8d                # floats left
    mov r9d, r9d
    mov r10d, [rsp + 40]
    shr r10, 1                        # h
    test r9, r9
    jz .Ldone
    lea r11, [rdx + r9 * 4]           # S
.Lhead:
    mov r8d, [rsp + 8]
    cmp r8, r9
    jb .Ldone
    xor eax, eax
.Li:
    cmp rax, r10
    jae .Lnext
    vmovss xmm0, dword ptr [rcx + rax * 4]      # a
    lea r8, [rax + r10]
    vmovss xmm1, dword ptr [rcx + r8 * 4]       # b
    vmovss xmm2, dword ptr [rdx + rax * 4]      # c
    vmovss xmm3, dword ptr [r11 + rax * 4]      # s
    vmulss xmm5, xmm1, xmm3           # b s
    vfmsub231ss xmm5, xmm0, xmm2      # a c - (b s), one rounding
    vmulss xmm4, xmm1, xmm2           # b c
    vfmadd231ss xmm4, xmm0, xmm3      # a s + (b c), one rounding
    vmovss dword ptr [rcx + rax * 4], xmm5
    vmovss dword ptr [rcx + r8 * 4], xmm4
    inc rax
    jmp .Li
.Lnext:
    lea rcx, [rcx + r9 * 4]
    sub [rsp + 8], r9d
    jmp .Lhead
.Ldone:
    ret

# rope_apply_ggml_avx2(rcx = v, rdx = table, r8d = n, r9d = hs): k_rope_apply's contract and
#   table ("norm" pairs: C[2i] = C[2i+1] = c, S[2i] = -s, S[2i+1] = s) with the arithmetic
#   of ggml's AVX2+FMA build: (x0, x1) -> (fma(x0, c, -(x1 s)), fma(x0, s, x1 c)), the
#   other product rounded first. (ggml's SSE2 build rounds both products, as rope_apply_sse2
#   does: the sse2 path uses that body.) Changes rax, r8-r11, ymm0-ymm5.
rope_apply_ggml_avx2:
    mov r8d, r8d
    mov r9d, r9d
    test r9, r9
    jz .Ldone
    shl r8, 2                         # bytes left
    lea r10, [r9 * 4]                 # bytes per head
    lea r9, [rdx + r10]               # S
    mov r11, r10
    and r11, -32
.Lhead:
    cmp r8, r10
    jb .Ldone
    xor eax, eax
.Lvec:                                # 4 pairs
    cmp rax, r11
    jae .Lpair
    vmovups ymm0, [rcx + rax]         # v = (x0, x1, ...)
    vpermilps ymm1, ymm0, 0xB1        # (x1, x0, ...)
    vmovups ymm2, [rdx + rax]         # C
    vmovups ymm3, [r9 + rax]          # S
    vmulps ymm4, ymm1, ymm3           # x1 S[2i] = -(x1 s)  (odd lanes: x0 s)
    vmulps ymm5, ymm0, ymm2           # x0 c                (odd lanes: x1 c)
    vfmadd231ps ymm4, ymm0, ymm2      # even lanes: x0 c + (-(x1 s))
    vfmadd231ps ymm5, ymm1, ymm3      # odd lanes:  x0 s + (x1 c)
    vblendps ymm0, ymm4, ymm5, 0xAA
    vmovups [rcx + rax], ymm0
    add rax, 32
    jmp .Lvec
.Lpair:
    cmp rax, r10
    jae .Lnext
    vmovsd xmm0, qword ptr [rcx + rax]
    vpermilps xmm1, xmm0, 0xB1
    vmovsd xmm2, qword ptr [rdx + rax]
    vmovsd xmm3, qword ptr [r9 + rax]
    vmulps xmm4, xmm1, xmm3
    vmulps xmm5, xmm0, xmm2
    vfmadd231ps xmm4, xmm0, xmm2
    vfmadd231ps xmm5, xmm1, xmm3
    vblendps xmm0, xmm4, xmm5, 0x2
    vmovsd qword ptr [rcx + rax], xmm0
    add rax, 8
    jmp .Lpair
.Lnext:
    add rcx, r10
    sub r8, r10
    jmp .Lhead
.Ldone:
    vzeroupper
    ret
