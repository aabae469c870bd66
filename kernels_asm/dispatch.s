# The dispatch table: kernels_init picks the SSE2 or the AVX2/FMA bodies once, at boot; the
# app then calls every kernel through the table (see kernels.inc for each entry's contract).
.include "kernels.inc"

.section .data
.balign 8
.global k_matvec, k_rmsnorm, k_softmax, k_expf, k_swiglu, k_add, k_scale, k_axpy, k_dot
.global k_argmax, k_rope_table, k_rope_apply, k_attention, k_stream_read, kernels_path
.global k_rope_table_ggml, k_rope_apply_neox, k_swiglu_ggml, k_rope_apply_ggml, k_rmsnorm_ggml
k_matvec:      .quad 0
k_rmsnorm:     .quad 0
k_softmax:     .quad 0
k_expf:        .quad 0
k_swiglu:      .quad 0
k_add:         .quad 0
k_scale:       .quad 0
k_axpy:        .quad 0
k_dot:         .quad 0
k_argmax:      .quad 0
k_rope_table:  .quad 0
k_rope_apply:  .quad 0
k_attention:   .quad 0
k_stream_read: .quad 0
k_rope_table_ggml: .quad 0
k_rope_apply_neox: .quad 0
k_swiglu_ggml: .quad 0
k_rope_apply_ggml: .quad 0
k_rmsnorm_ggml: .quad 0
kernels_path:  .long 0                # K_PATH_* chosen by the last kernels_init (0: none yet)
.balign 8, 0
.global k_attention_heads
k_attention_heads: .quad 0            # attention_heads_<path>: some heads (parallel.s shares them)

.section .text
.global kernels_init
.extern matvec_sse2, rmsnorm_sse2, softmax_sse2, expf_sse2, swiglu_sse2, add_sse2, scale_sse2
.extern axpy_sse2, dot_sse2, argmax_sse2, rope_apply_sse2, attention_sse2, stream_read_sse2
.extern matvec_avx2, rmsnorm_avx2, softmax_avx2, expf_avx2, swiglu_avx2, add_avx2, scale_avx2
.extern axpy_avx2, dot_avx2, argmax_avx2, rope_apply_avx2, attention_avx2, stream_read_avx2
.extern rope_table_x87, rope_table_ggml_sse2, rope_table_ggml_avx2, rope_apply_neox_sse2, par_select_entries
.extern rope_apply_neox_avx2, rope_apply_ggml_avx2, rmsnorm_ggml_sse2
.extern attention_heads_sse2, attention_heads_avx2, swiglu_ggml_sse2, swiglu_ggml_avx2

# table entry `slot` = address of `body` (RIP-relative: the table needs no relocations)
.macro KSET slot, body
    lea rax, [rip + \body]
    mov qword ptr [rip + \slot], rax
.endm

# kernels_init(ecx = CPU_* feature bits, edx = K_CHOICE_*) -> eax = K_PATH_* chosen
kernels_init:
    cmp edx, K_CHOICE_SSE2
    je .Lsse2
    and ecx, K_CPU_AVX | K_CPU_AVX2 | K_CPU_FMA | K_CPU_F16C
    cmp ecx, K_CPU_AVX | K_CPU_AVX2 | K_CPU_FMA | K_CPU_F16C
    jne .Lsse2                        # auto or forced avx2, but the CPU cannot: SSE2
    KSET k_matvec, matvec_avx2
    KSET k_rmsnorm, rmsnorm_avx2
    KSET k_softmax, softmax_avx2
    KSET k_expf, expf_avx2
    KSET k_swiglu, swiglu_avx2
    KSET k_swiglu_ggml, swiglu_ggml_avx2
    KSET k_add, add_avx2
    KSET k_scale, scale_avx2
    KSET k_axpy, axpy_avx2
    KSET k_dot, dot_avx2
    KSET k_argmax, argmax_avx2
    KSET k_rope_table, rope_table_x87
    KSET k_rope_apply, rope_apply_avx2
    KSET k_attention, attention_avx2
    KSET k_attention_heads, attention_heads_avx2
    KSET k_stream_read, stream_read_avx2
    KSET k_rope_table_ggml, rope_table_ggml_avx2
    KSET k_rope_apply_neox, rope_apply_neox_avx2
    KSET k_rope_apply_ggml, rope_apply_ggml_avx2
    KSET k_rmsnorm_ggml, rmsnorm_ggml_sse2
    mov eax, K_PATH_AVX2
    jmp .Lchosen
.Lsse2:
    KSET k_matvec, matvec_sse2
    KSET k_rmsnorm, rmsnorm_sse2
    KSET k_softmax, softmax_sse2
    KSET k_expf, expf_sse2
    KSET k_swiglu, swiglu_sse2
    KSET k_swiglu_ggml, swiglu_ggml_sse2
    KSET k_add, add_sse2
    KSET k_scale, scale_sse2
    KSET k_axpy, axpy_sse2
    KSET k_dot, dot_sse2
    KSET k_argmax, argmax_sse2
    KSET k_rope_table, rope_table_x87
    KSET k_rope_apply, rope_apply_sse2
    KSET k_attention, attention_sse2
    KSET k_attention_heads, attention_heads_sse2
    KSET k_stream_read, stream_read_sse2
    KSET k_rope_table_ggml, rope_table_ggml_sse2
    KSET k_rope_apply_neox, rope_apply_neox_sse2
    KSET k_rope_apply_ggml, rope_apply_sse2
    KSET k_rmsnorm_ggml, rmsnorm_ggml_sse2
    mov eax, K_PATH_SSE2
.Lchosen:
    mov [rip + kernels_path], eax
    sub rsp, 8
    call par_select_entries           # k_matvec, k_attention through the job board with workers
    add rsp, 8
    mov eax, [rip + kernels_path]
    ret
