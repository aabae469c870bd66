# The session's memory (see session.inc): how large a context the run state can have in the
# memory that is free (the KV cache's element type counts), the line that says a model does
# not fit, and /mem (what the loaded model, its cache, the run state and the tokenizer take,
# and what is free). session.s owns the allocations; this file only sizes and reports them.
.include "uefi.inc"
.include "model.inc"
.include "settings.inc"
.include "session.inc"

.section .rdata
s_colon:          .asciz ": "
s_mib_free:       .asciz " MiB, "
s_mib_free2:      .asciz " MiB free, the largest piece "
s_mib_one:        .asciz " MiB in one piece)\n"
s_mib_weights:    .asciz " MiB (the weights need "
s_model_prefix:   .asciz "model "
s_no_memory:      .asciz "not enough memory: needs "
s_mem_weights:    .asciz "weights    %h MiB  (%s, in its file form)\n"
s_mem_kv:         .asciz "KV cache   %h MiB  (%u layers x %u tokens x 2, %s)\n"
s_f16:            .asciz "f16"
s_f32:            .asciz "f32"
s_mem_state:      .asciz "run state  %h MiB  (activations, logits, layer table, sampler, history)\n"
s_mem_tok:        .asciz "tokenizer  %h MiB\n"
s_mem_free:       .asciz "free       %h MiB  (the largest free range %h MiB)\n"
s_mem_none:       .asciz "no model loaded\n"

.section .text
.global mib_h, kv_type_apply, session_kv_type_name, fit_context, session_print_no_memory
.global session_print_memory
.extern sess_model, sess_model_name, sess_loaded, sess_weights_size, sess_state_size
.extern sess_layers_size, sess_tok_ws, sess_tok_ws_size, sess_smp_ws_size, sess_hist_size
.extern vocab_ws_size, set_kv_type, model_state_bytes, rt_memory_free_bytes, rt_print_cstr
.extern rt_print_u64, rt_printf, print_mib

# mib_h(rcx = bytes) -> rax = MiB in hundredths (for %h), rounded to the nearest. Leaf;
# clobbers rdx. Also gguf_info.s's.
mib_h:
    lea rax, [rcx + 5243]
    mov edx, 100
    mul rdx
    shrd rax, rdx, 20
    ret

# kv_type_apply(): sess_model's MODEL_KV_TYPE from the kv_type setting and the model's
# format: f16 or f32 as set; auto: GGML_TYPE_F16 for a GGUF (llama.cpp's default cache type),
# GGML_TYPE_F32 for a llama2.c model (run.c's). Before each model_state_bytes: the format is
# known once the file's header is. Leaf; clobbers eax, edx.
kv_type_apply:
    mov edx, [rip + set_kv_type]
    mov eax, GGML_TYPE_F16
    cmp edx, KV_F16
    je .Lset
    mov eax, GGML_TYPE_F32
    cmp edx, KV_F32
    je .Lset
    cmp dword ptr [rip + sess_model + MODEL_FORMAT], MODEL_FORMAT_GGUF
    jne .Lset
    mov eax, GGML_TYPE_F16
.Lset:
    mov [rip + sess_model + MODEL_KV_TYPE], eax
    ret

# session_kv_type_name() -> rax = "f16" or "f32": the loaded model's KV cache type (only
# meaningful while sess_loaded). Leaf; changes rax only.
session_kv_type_name:
    lea rax, [rip + s_f16]
    cmp dword ptr [rip + sess_model + MODEL_KV_TYPE], GGML_TYPE_F16
    je .Lout
    lea rax, [rip + s_f32]
.Lout:
    ret

# fit_context(edx = wanted ctx, rcx = bytes available for the run state) -> eax = the largest
# ctx <= wanted whose run state (model_state_bytes of sess_model, its KV type applied first)
# fits, or 0 if not even SESSION_MIN_CTX does (a model whose seq_len is below the minimum: its
# seq_len). A binary search; clobbers the volatile registers.
fit_context:
    push rbx
    push rsi
    push rdi
    push r12
    sub rsp, 40
    mov r12, rcx
    mov esi, edx
    call kv_type_apply                # the cache's element size counts
    mov edx, esi
    mov esi, SESSION_MIN_CTX          # lo: candidate known... (checked below)
    mov edi, edx                      # hi
    cmp edi, esi
    cmovb esi, edi                    # a model with seq_len below the minimum: its seq_len
    lea rcx, [rip + sess_model]
    mov edx, edi
    call model_state_bytes
    test rax, rax
    jz .Lnone
    cmp rax, r12
    jbe .Lhave_hi                     # everything fits
    lea rcx, [rip + sess_model]
    mov edx, esi
    call model_state_bytes
    test rax, rax
    jz .Lnone
    cmp rax, r12
    ja .Lnone
.Lsearch:                             # invariant: lo fits, hi does not
    mov ebx, edi
    sub ebx, esi
    cmp ebx, 1
    jbe .Lhave_lo
    shr ebx, 1
    add ebx, esi
    lea rcx, [rip + sess_model]
    mov edx, ebx
    call model_state_bytes
    cmp rax, r12
    ja .Ltoo_big
    mov esi, ebx
    jmp .Lsearch
.Ltoo_big:
    mov edi, ebx
    jmp .Lsearch
.Lhave_hi:
    mov eax, edi
    jmp .Lout
.Lhave_lo:
    mov eax, esi
    jmp .Lout
.Lnone:
    xor eax, eax
.Lout:
    add rsp, 40
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret

# session_print_no_memory(rcx = model file name): "model NAME: not enough memory: needs N MiB,
# F MiB free, the largest piece L MiB (the weights need W MiB in one piece)\n", where N is the
# weights, the run state for SESSION_MIN_CTX (or the model's shorter seq_len) and
# SESSION_RESERVE, against the memory map as it is now. sess_model holds the model's header.
# Clobbers the volatile registers.
session_print_no_memory:
    push rbx
    sub rsp, 48
    mov rbx, rcx
    lea rcx, [rip + s_model_prefix]
    call rt_print_cstr
    mov rcx, rbx
    call rt_print_cstr
    lea rcx, [rip + s_colon]
    call rt_print_cstr
    lea rcx, [rip + s_no_memory]
    call rt_print_cstr
    call kv_type_apply
    lea rcx, [rip + sess_model]       # weights + minimal state + reserve
    mov edx, SESSION_MIN_CTX
    mov eax, [rip + sess_model + MODEL_SEQ_LEN]
    cmp edx, eax
    cmova edx, eax
    call model_state_bytes
    add rax, [rip + sess_model + MODEL_FILE_SIZE]
    add rax, SESSION_RESERVE
    mov rcx, rax
    call print_mib
    lea rcx, [rip + s_mib_free]
    call rt_print_cstr
    call rt_memory_free_bytes
    mov [rsp + 32], rdx
    mov rcx, rax
    shr rcx, 20
    call rt_print_u64
    lea rcx, [rip + s_mib_free2]
    call rt_print_cstr
    mov rcx, [rsp + 32]
    shr rcx, 20
    call rt_print_u64
    lea rcx, [rip + s_mib_weights]
    call rt_print_cstr
    mov rcx, [rip + sess_model + MODEL_FILE_SIZE]
    call print_mib
    lea rcx, [rip + s_mib_one]
    call rt_print_cstr
    add rsp, 48
    pop rbx
    ret

# session_print_memory(): /mem: what the model, its KV cache, the run state and the tokenizer
# take, and what is free (all of it, and the largest range: one allocation must fit in it)
session_print_memory:
    push rbx
    sub rsp, 48
    cmp dword ptr [rip + sess_loaded], 0
    jne .Lloaded
    lea rcx, [rip + s_mem_none]
    call rt_print_cstr
    jmp .Lfree
.Lloaded:
    mov rcx, [rip + sess_weights_size]
    call mib_h
    mov rdx, rax
    lea r8, [rip + sess_model_name]
    lea rcx, [rip + s_mem_weights]
    call rt_printf
    mov ecx, [rip + sess_model + MODEL_N_LAYERS]
    imul rcx, [rip + sess_model + MODEL_KV_LAYER_BYTES]
    add rcx, rcx                      # keys and values
    mov rbx, rcx
    call mib_h
    mov [rsp + 40], rax
    call session_kv_type_name
    mov [rsp + 32], rax
    mov rdx, [rsp + 40]
    mov r8d, [rip + sess_model + MODEL_N_LAYERS]
    mov r9d, [rip + sess_model + MODEL_CTX_LEN]
    lea rcx, [rip + s_mem_kv]
    call rt_printf
    mov rcx, [rip + sess_state_size]  # the rest of the state and the session's tables
    sub rcx, rbx
    add rcx, [rip + sess_layers_size]
    add rcx, [rip + sess_smp_ws_size]
    add rcx, [rip + sess_hist_size]
    call mib_h
    mov rdx, rax
    lea rcx, [rip + s_mem_state]
    call rt_printf
    mov rcx, [rip + sess_tok_ws_size]
    cmp qword ptr [rip + sess_tok_ws], 0
    jne .Ltok
    xor ecx, ecx
.Ltok:
    add rcx, [rip + vocab_ws_size]
    call mib_h
    mov rdx, rax
    lea rcx, [rip + s_mem_tok]
    call rt_printf
.Lfree:
    call rt_memory_free_bytes         # rax = all free, rdx = the largest range
    mov rbx, rdx
    mov rcx, rax
    call mib_h
    mov [rsp + 40], rax
    mov rcx, rbx
    call mib_h
    mov r8, rax
    mov rdx, [rsp + 40]
    lea rcx, [rip + s_mem_free]
    call rt_printf
    add rsp, 48
    pop rbx
    ret
