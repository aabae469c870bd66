# RoPE as ggml computes it for GGUF models (ggml's rope cache, "norm" and "neox" modes;
# the frequency formula of the RoFormer paper, arXiv:2104.09864, with ggml's iteration):
#
#   theta_scale = f32(base^(-2/n_rot))           (computed once by the loader: ROPE_SCALE)
#   theta_0 = f32(pos);  theta_{i+1} = f32(theta_i * theta_scale)    i < n_rot/2
#   t_i = theta_i / freq_factor_i (f32; factors only when the model has rope_freqs)
#   c_i = f32(cos t_i), s_i = f32(sin t_i)      (x87, then rounded once)
#
# "norm" mode (llama) rotates the pairs (2i, 2i+1) of each head, i < n_rot/2, and leaves
# elements n_rot..hs alone; its table has rope_apply's layout (kernels.inc): C[hs] then
# S[hs] with C[2i] = C[2i+1] = c_i, S[2i] = -s_i, S[2i+1] = +s_i, and C = 1, S = 0 past
# n_rot, so k_rope_apply does the rotation. "neox" mode (qwen2) rotates (i, i + n_rot/2);
# its table is C[i] = c_i, S[i] = s_i for i < n_rot/2, applied by rope_apply_neox_sse2.
.include "kernels.inc"

.section .text
.global rope_table_ggml_x87, rope_apply_neox_sse2

# rope_table_ggml_x87(rcx = table (2*hs floats), edx = pos, r8d = hs, r9d = n_rot (even,
#   <= hs), dword [rsp+40] = theta_scale (f32 bits), qword [rsp+48] = freq factors
#   (f32[n_rot/2]) or 0, dword [rsp+56] = style (0 norm, 1 neox)). Uses its shadow space
#   as scratch; changes rax, rdx, r8-r11, xmm0-xmm2; leaves the x87 stack empty.
rope_table_ggml_x87:
    mov r8d, r8d
    mov r9d, r9d
    cvtsi2ss xmm0, edx                # theta = f32(pos)
    movd xmm1, dword ptr [rsp + 40]   # theta_scale
    mov r10, [rsp + 48]               # freq factors or 0
    mov r11d, [rsp + 56]
    lea rdx, [rcx + r8 * 4]           # S
    xor eax, eax                      # pair index i
.Lpair:
    lea rax, [rax * 2]
    cmp rax, r9
    jae .Lrest
    shr rax, 1
    movaps xmm2, xmm0                 # t = theta (/ factor)
    test r10, r10
    jz .Lnofactor
    divss xmm2, dword ptr [r10 + rax * 4]
.Lnofactor:
    movss dword ptr [rsp + 8], xmm2
    fld dword ptr [rsp + 8]
    fsincos                           # cos t, sin t
    fstp dword ptr [rsp + 16]         # c
    fstp dword ptr [rsp + 24]         # s
    mulss xmm0, xmm1                  # theta *= theta_scale (f32)
    test r11d, r11d
    jnz .Lneox
    mov r8d, [rsp + 16]
    mov [rcx + rax * 8], r8d          # C[2i] = C[2i+1] = c
    mov [rcx + rax * 8 + 4], r8d
    mov r8d, [rsp + 24]
    mov [rdx + rax * 8 + 4], r8d      # S[2i+1] = s
    xor r8d, 0x80000000
    mov [rdx + rax * 8], r8d          # S[2i] = -s
    inc rax
    jmp .Lpair
.Lneox:
    mov r8d, [rsp + 16]
    mov [rcx + rax * 4], r8d          # C[i] = c
    mov r8d, [rsp + 24]
    mov [rdx + rax * 4], r8d          # S[i] = s
    inc rax
    jmp .Lpair
.Lrest:                               # norm mode past n_rot: C = 1, S = 0 (neox: unused)
    test r11d, r11d
    jnz .Ldone
    mov r8, rdx
    sub r8, rcx
    shr r8, 2                         # hs
.Lfill:
    cmp rax, r8
    jae .Ldone
    mov dword ptr [rcx + rax * 4], 0x3F800000
    mov dword ptr [rdx + rax * 4], 0
    inc rax
    jmp .Lfill
.Ldone:
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
