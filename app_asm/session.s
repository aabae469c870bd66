# The chat session (see session.inc): loading a model and its tokenizer from the boot volume
# without ever trusting a file, fitting them in memory, and the conversation state.
.include "uefi.inc"
.include "model.inc"
.include "tokenizer.inc"
.include "sampler.inc"
.include "settings.inc"
.include "session.inc"

.section .bss
.balign 64
.global sess_model, sess_tok, sess_sampler, sess_pos, sess_loaded, sess_history
.global sess_pending, sess_prompt_buf, sess_model_name, sess_gguf
sess_model:        .skip MODEL_SIZE
.balign 8
sess_gguf:         .skip GGUF_SIZE       # the loaded GGUF file (when the model is one)
gguf_err_buf:      .skip 256
sess_tok:          .skip TOK_SIZE
.balign 8
sess_sampler:      .skip SMP_SIZE
sess_loaded:       .skip 4            # 1 when model, tokenizer and sampler are all ready
sess_pos:          .skip 4            # next KV-cache position
sess_pending:      .skip 4            # a sampled token not yet fed back (-1: none)
.balign 8
sess_history:      .skip 8            # int32[ctx_len]: the tokens at positions 0..pos-1
sess_prompt_buf:   .skip 8            # int32[TOK_SCRATCH_SLOTS]: encode's output
weights_buf:       .skip 8
weights_size:      .skip 8
state_buf:         .skip 8
state_size:        .skip 8
layers_buf:        .skip 8
layers_size:       .skip 8
tok_ws:            .skip 8
tok_ws_size:       .skip 8
smp_ws:            .skip 8
smp_ws_size:       .skip 8
hist_size:         .skip 8
file_size_tmp:     .skip 8
sess_model_name:   .skip SESSION_NAME_MAX
tok_name:          .skip SESSION_NAME_MAX


.section .rdata
s_cannot_open:    .asciz "cannot open the file"
s_cannot_read:    .asciz "cannot read the file"
s_colon:          .asciz ": "
s_ctx:            .asciz ", context "
s_ev_failed:      .asciz "model not loaded: "
s_ev_loaded:      .asciz "model loaded: "
s_loaded:         .asciz "model: "
s_loading:        .asciz "loading "
s_mib_free:       .asciz " MiB, "
s_mib_free2:      .asciz " MiB free, the largest piece "
s_mib_one:        .asciz " MiB in one piece)\n"
s_mib_weights:    .asciz " MiB (the weights need "
s_model_prefix:   .asciz "model "
s_mparams:        .asciz "M params)\n"
s_nl:             .asciz "\n"
s_no_memory:      .asciz "not enough memory: needs "
s_open_paren:     .asciz " ("
s_params:         .asciz ", "
s_sampler_fail:   .asciz "sampler: "
s_shrunk:         .asciz "context shrunk to "
s_shrunk2:        .asciz " tokens to fit in memory (the model allows "
s_shrunk3:        .asciz ")\n"
s_tok_none:       .asciz "no tokenizer found: put tokenizer.bin (or tok<vocab>.bin) beside the model\n"
s_tok_fallback:   .asciz "trying the tokenizer found by name instead (tok<vocab>.bin, tokenizer.bin)\n"
s_tok_ok:         .asciz "tokenizer: "
s_tok_prefix:     .asciz "tokenizer "
s_tokenizer_bin:  .asciz "tokenizer.bin"
s_mem_weights:    .asciz "weights    %h MiB  (%s, in its file form)\n"
s_mem_kv:         .asciz "KV cache   %h MiB  (%u layers x %u tokens x 2, %s)\n"
s_f16:            .asciz "f16"
s_f32:            .asciz "f32"
s_mem_state:      .asciz "run state  %h MiB  (activations, logits, layer table, sampler, history)\n"
s_mem_tok:        .asciz "tokenizer  %h MiB\n"
s_mem_free:       .asciz "free       %h MiB  (the largest free range %h MiB)\n"
s_mem_none:       .asciz "no model loaded\n"

.section .text
.global session_apply_settings, session_reseed, session_clear, session_load_model, session_print_summary, session_unload
.global session_print_memory, mib_h, session_kv_type_name
.extern log_event2, model_bind_weights, model_layers_bytes, model_check_header, model_init_state, model_state_bytes, print_hundredths
.extern rt_alloc_pages, rt_file_status, rt_free_pages, rt_memory_free_bytes, rt_print_cstr, rt_print_u64
.extern rt_ticks, sampler_init, sampler_strerror, sampler_workspace_bytes, set_ctx_len, set_min_p
.extern set_no_repeat_ngram, set_repeat_penalty, set_seed, set_temperature, set_tokenizer, set_top_k
.extern set_top_p, str_copy, str_len, tok_error_text, tok_load, tok_workspace_bytes
.extern vol_free_file, vol_read_file, print_model_error, print_file_problem, check_model_file, print_mib
.extern print_shape, cpu_features, kernels_init, set_attn, sampler_seed, name_icmp, rt_printf
.extern gguf_open, gguf_format_error, model_gguf_config, model_gguf_bind
.extern sess_vocab_load, sess_vocab_free, vocab_ws_size
.extern chat_clear, chat_model_loaded, threads_apply, set_kv_type

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
    mov rcx, [rip + weights_size]
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
    mov rcx, [rip + state_size]       # the rest of the state and the session's tables
    sub rcx, rbx
    add rcx, [rip + layers_size]
    add rcx, [rip + smp_ws_size]
    add rcx, [rip + hist_size]
    call mib_h
    mov rdx, rax
    lea rcx, [rip + s_mem_state]
    call rt_printf
    mov rcx, [rip + tok_ws_size]
    cmp qword ptr [rip + tok_ws], 0
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

# session_clear(): an empty conversation (the KV cache and the chat history)
session_clear:
    mov dword ptr [rip + sess_pos], 0
    mov dword ptr [rip + sess_pending], -1
    jmp chat_clear

# session_unload(): frees the model, tokenizer and sampler memory
session_unload:
    sub rsp, 40
    mov dword ptr [rip + sess_loaded], 0
    call sess_vocab_free
    mov rcx, [rip + weights_buf]
    mov rdx, [rip + weights_size]
    call rt_free_pages
    mov rcx, [rip + state_buf]
    mov rdx, [rip + state_size]
    call rt_free_pages
    mov rcx, [rip + layers_buf]
    mov rdx, [rip + layers_size]
    call rt_free_pages
    mov rcx, [rip + tok_ws]
    mov rdx, [rip + tok_ws_size]
    call rt_free_pages
    mov rcx, [rip + smp_ws]
    mov rdx, [rip + smp_ws_size]
    call rt_free_pages
    mov rcx, [rip + sess_history]
    mov rdx, [rip + hist_size]
    call rt_free_pages
    xor eax, eax
    mov [rip + weights_buf], rax
    mov [rip + state_buf], rax
    mov [rip + layers_buf], rax
    mov [rip + tok_ws], rax
    mov [rip + smp_ws], rax
    mov [rip + sess_history], rax
    add rsp, 40
    ret

# fit_context(edx = wanted ctx, rcx = bytes available for the run state) -> eax = the largest
# ctx <= wanted whose run state fits, or 0 if not even SESSION_MIN_CTX does
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

# session_load_model(rcx = name) -> eax = 1 if loaded
session_load_model:
    push rbx
    push rsi
    push rdi
    push r12
    push r13
    push r14
    sub rsp, 56
    mov rbx, rcx                      # name
    call session_unload
    call session_clear
    lea rcx, [rip + s_loading]
    call rt_print_cstr
    mov rcx, rbx
    call rt_print_cstr
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    mov rcx, rbx
    lea rdx, [rip + sess_model]
    call check_model_file
    test eax, eax
    jz .Lfail
    # memory, as the map says it is now. Free memory comes in pieces, and the weights and the
    # run state are one allocation each: the weights need a free range of their own size, and
    # what stays free (less SESSION_RESERVE) must hold the state for at least a useful context.
    mov r12, [rip + sess_model + MODEL_FILE_SIZE]
    mov r14d, [rip + sess_model + MODEL_SEQ_LEN]
    mov eax, [rip + set_ctx_len]
    test eax, eax
    jz .Lctx_chosen
    cmp eax, r14d
    cmovb r14d, eax                   # a configured ctx_len below seq_len
.Lctx_chosen:
    call rt_memory_free_bytes         # rax = all free, rdx = the largest range
    cmp rdx, r12
    jb .Lno_room
    mov rcx, rax
    sub rcx, r12
    jb .Lno_room
    sub rcx, SESSION_RESERVE
    jb .Lno_room
    cmp dword ptr [rip + sess_model + MODEL_FORMAT], MODEL_FORMAT_GGUF
    je .Lread_weights                 # (a GGUF's dimensions are known once it is read)
    mov edx, r14d
    call fit_context                  # can the state for some useful context fit at all?
    test eax, eax
    jz .Lno_room
.Lread_weights:
    # the weights
    mov rcx, rbx
    lea rdx, [rip + file_size_tmp]
    call vol_read_file
    test rax, rax
    jnz .Lread
    mov rax, EFI_OUT_OF_RESOURCES
    cmp [rip + rt_file_status], rax
    je .Lno_room
    jmp .Lcannot_read
.Lread:
    mov [rip + weights_buf], rax
    mov rcx, [rip + file_size_tmp]
    mov [rip + weights_size], rcx
    cmp rcx, r12
    jne .Lbad_size_changed
    # the config, from the loaded bytes: the whole GGUF (metadata, tensor directory), or the
    # llama2.c header again
    cmp dword ptr [rip + sess_model + MODEL_FORMAT], MODEL_FORMAT_GGUF
    jne .Lparse_bin
    lea rcx, [rip + sess_gguf]
    mov rdx, rax
    mov r8, r12
    call gguf_open
    test eax, eax
    jnz .Lbad_gguf_free
    lea rcx, [rip + sess_model]
    lea rdx, [rip + sess_gguf]
    call model_gguf_config
    test eax, eax
    jnz .Lbad_header_free
    jmp .Lparsed
.Lparse_bin:
    lea rcx, [rip + sess_model]
    mov rdx, rax
    mov r8, r12
    call model_check_header
    test eax, eax
    jnz .Lbad_header_free
.Lparsed:
    mov r14d, [rip + sess_model + MODEL_SEQ_LEN]   # the context wanted, now that it is known
    mov eax, [rip + set_ctx_len]
    test eax, eax
    jz .Lctx_wanted
    cmp eax, r14d
    cmovb r14d, eax
.Lctx_wanted:
    # the context: the state is fitted in one free range, now that the weights have theirs
    call rt_memory_free_bytes
    sub rax, SESSION_RESERVE
    jb .Lno_room_free
    cmp rdx, rax
    cmovb rax, rdx
    mov rcx, rax
    mov edx, r14d
    call fit_context
    test eax, eax
    jz .Lno_room_free
    cmp eax, r14d
    je .Lctx_ok
    mov r14d, eax
    lea rcx, [rip + s_shrunk]
    call rt_print_cstr
    mov ecx, r14d
    call rt_print_u64
    lea rcx, [rip + s_shrunk2]
    call rt_print_cstr
    mov ecx, [rip + sess_model + MODEL_SEQ_LEN]
    call rt_print_u64
    lea rcx, [rip + s_shrunk3]
    call rt_print_cstr
.Lctx_ok:
    lea rcx, [rip + sess_model]       # the layer table the binder fills
    call model_layers_bytes
    mov [rip + layers_size], rax
    mov rcx, rax
    call rt_alloc_pages
    test rax, rax
    jz .Lno_room_free
    mov [rip + layers_buf], rax
    lea rcx, [rip + sess_model]
    mov r8, rax
    cmp dword ptr [rip + sess_model + MODEL_FORMAT], MODEL_FORMAT_GGUF
    je .Lbind_gguf
    mov rdx, [rip + weights_buf]
    call model_bind_weights
    jmp .Lbound
.Lbind_gguf:
    lea rdx, [rip + sess_gguf]
    call model_gguf_bind
.Lbound:
    test eax, eax
    jnz .Lbad_header_free
    # the run state
    call kv_type_apply
    lea rcx, [rip + sess_model]
    mov edx, r14d
    call model_state_bytes
    mov [rip + state_size], rax
    mov rcx, rax
    call rt_alloc_pages
    test rax, rax
    jz .Lno_room_free
    mov [rip + state_buf], rax
    lea rcx, [rip + sess_model]
    mov rdx, rax
    mov r8d, r14d
    mov r9, [rip + state_size]
    call model_init_state
    test eax, eax
    jnz .Lbad_header_free
    # history: one int32 per context position
    mov ecx, r14d
    shl rcx, 2
    mov [rip + hist_size], rcx
    call rt_alloc_pages
    test rax, rax
    jz .Lno_room_free
    mov [rip + sess_history], rax
    # sampler workspace
    mov ecx, [rip + sess_model + MODEL_VOCAB_SIZE]
    call sampler_workspace_bytes
    test rax, rax
    jz .Lsampler_fail
    mov [rip + smp_ws_size], rax
    mov rcx, rax
    call rt_alloc_pages
    test rax, rax
    jz .Lno_room_free
    mov [rip + smp_ws], rax
    lea rcx, [rip + sess_sampler]
    mov edx, [rip + sess_model + MODEL_VOCAB_SIZE]
    mov r8, rax
    mov r9, [rip + set_seed]
    test r9, r9
    jnz .Lseeded
    call rt_ticks                     # no seed configured: the clock
    mov r9, rax
    lea rcx, [rip + sess_sampler]
    mov edx, [rip + sess_model + MODEL_VOCAB_SIZE]
    mov r8, [rip + smp_ws]
.Lseeded:
    call sampler_init
    test eax, eax
    jnz .Lsampler_fail
    mov rcx, rbx
    call str_len
    lea rcx, [rip + sess_model_name]
    mov rdx, rbx
    mov r8, rax
    mov r9d, SESSION_NAME_MAX
    call str_copy
    call print_model_summary
    call load_tokenizer
    test eax, eax
    jz .Lfail
    call session_apply_settings
    mov dword ptr [rip + sess_loaded], 1
    call chat_model_loaded            # its chat template's format and default system text
    lea rcx, [rip + s_ev_loaded]
    mov rdx, rbx
    call log_event2
    mov eax, 1
    jmp .Lout
.Lcannot_read:
    lea rcx, [rip + s_model_prefix]
    mov rdx, rbx
    lea r8, [rip + s_cannot_read]
    call print_file_problem
    jmp .Lfail_free
.Lbad_size_changed:
    mov edx, MODEL_E_SIZE
    jmp .Lbad_code_free
.Lbad_gguf_free:                      # "model NAME: gguf: ..." from the reader's own line
    lea rcx, [rip + sess_gguf]
    mov edx, eax
    lea r8, [rip + gguf_err_buf]
    mov r9d, 256
    call gguf_format_error
    lea rcx, [rip + s_model_prefix]
    mov rdx, rbx
    lea r8, [rip + gguf_err_buf]
    call print_file_problem
    jmp .Lfail_free
.Lbad_header_free:
    mov edx, eax
.Lbad_code_free:
    mov rcx, rbx
    lea r8, [rip + sess_model]
    call print_model_error
    jmp .Lfail_free
.Lsampler_fail:
    lea rcx, [rip + s_sampler_fail]
    call rt_print_cstr
    mov ecx, eax
    call sampler_strerror
    mov rcx, rax
    call rt_print_cstr
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    jmp .Lfail_free
.Lno_room_free:
    call session_unload
.Lno_room:
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
    jmp .Lfail
.Lfail_free:
    call session_unload
.Lfail:
    lea rcx, [rip + s_ev_failed]
    mov rdx, rbx
    call log_event2
    xor eax, eax
.Lout:
    add rsp, 56
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret

# session_print_summary() / print_model_summary(): "model: NAME (dim D, hidden H, layers L,
# heads H/KV, vocab V, seq_len S, context C, X.XXM params)"
session_print_summary:
print_model_summary:
    sub rsp, 40
    lea rcx, [rip + s_loaded]
    call rt_print_cstr
    lea rcx, [rip + sess_model_name]
    call rt_print_cstr
    lea rcx, [rip + s_open_paren]
    call rt_print_cstr
    lea rcx, [rip + sess_model]
    call print_shape
    lea rcx, [rip + s_ctx]
    call rt_print_cstr
    mov ecx, [rip + sess_model + MODEL_CTX_LEN]
    call rt_print_u64
    lea rcx, [rip + s_params]
    call rt_print_cstr
    mov rax, [rip + sess_model + MODEL_N_PARAMS]
    add rax, 5000                     # millions, in hundredths
    xor edx, edx
    mov ecx, 10000
    div rcx
    mov rcx, rax
    call print_hundredths
    lea rcx, [rip + s_mparams]
    call rt_print_cstr
    add rsp, 40
    ret

# build_tok_name(): tok_name = "tok<vocab>.bin"
build_tok_name:
    push rdi
    lea rdi, [rip + tok_name]
    mov dword ptr [rdi], 0x006B6F74   # "tok\0"
    add rdi, 3
    mov eax, [rip + sess_model + MODEL_VOCAB_SIZE]
    sub rsp, 16                       # digits, reversed
    xor ecx, ecx
    mov r8d, 10
.Ldigit:
    xor edx, edx
    div r8d
    add dl, '0'
    mov [rsp + rcx], dl
    inc ecx
    test eax, eax
    jnz .Ldigit
.Lcopy:
    dec ecx
    mov al, [rsp + rcx]
    mov [rdi], al
    inc rdi
    test ecx, ecx
    jnz .Lcopy
    add rsp, 16
    mov dword ptr [rdi], 0x6E69622E   # ".bin"
    mov byte ptr [rdi + 4], 0
    pop rdi
    ret

# try_tokenizer(rcx = name) -> eax = 1 loaded, 0 failed (a line printed), -1 no such file
try_tokenizer:
    push rbx
    push rsi
    push rdi
    sub rsp, 48
    mov rbx, rcx
    lea rdx, [rip + file_size_tmp]
    call vol_read_file
    test rax, rax
    jz .Lmissing
    mov rsi, rax                      # file bytes
    mov rcx, [rip + file_size_tmp]
    mov edx, [rip + sess_model + MODEL_VOCAB_SIZE]
    call tok_workspace_bytes
    test rax, rax
    jz .Lfree_fail_code
    mov [rip + tok_ws_size], rax
    mov rcx, rax
    call rt_alloc_pages
    test rax, rax
    jz .Lfree_fail_code
    mov [rip + tok_ws], rax
    lea rcx, [rip + sess_tok]
    mov rdx, rsi
    mov r8, [rip + file_size_tmp]
    mov r9d, [rip + sess_model + MODEL_VOCAB_SIZE]
    mov [rsp + 32], rax
    mov rax, [rip + tok_ws_size]
    mov [rsp + 40], rax
    call tok_load
    mov edi, eax
    mov rcx, rsi                      # the file is copied into the workspace: free it
    mov rdx, [rip + file_size_tmp]
    call vol_free_file
    test edi, edi
    jnz .Lbad
    lea rcx, [rip + s_tok_ok]
    call rt_print_cstr
    mov rcx, rbx
    call rt_print_cstr
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    mov eax, 1
    jmp .Lout
.Lfree_fail_code:
    mov rcx, rsi
    mov rdx, [rip + file_size_tmp]
    call vol_free_file
    mov edi, TOK_E_WORKSPACE
.Lbad:
    lea rcx, [rip + s_tok_prefix]
    call rt_print_cstr
    mov rcx, rbx
    call rt_print_cstr
    lea rcx, [rip + s_colon]
    call rt_print_cstr
    mov ecx, edi
    call tok_error_text               # a format whose %u is rdx
    mov rcx, rax
    call rt_printf
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    xor eax, eax
    jmp .Lout
.Lmissing:
    mov eax, -1
.Lout:
    add rsp, 48
    pop rdi
    pop rsi
    pop rbx
    ret

# load_tokenizer() -> eax = 1 if loaded: set_tokenizer, else (or when it fails to load, after
# the line saying why) tok<vocab>.bin, else tokenizer.bin
load_tokenizer:
    sub rsp, 40
    cmp dword ptr [rip + sess_model + MODEL_FORMAT], MODEL_FORMAT_GGUF
    jne .Lfiles
    call sess_vocab_load              # the model's own vocabulary, when its file has one
    cmp eax, -1
    jne .Lout
.Lfiles:
    lea rcx, [rip + set_tokenizer]
    cmp byte ptr [rcx], 0
    je .Lauto
    call try_tokenizer
    cmp eax, 1
    je .Lout
    cmp eax, -1
    jne .Lfall_back
    lea rcx, [rip + s_tok_prefix]
    lea rdx, [rip + set_tokenizer]
    lea r8, [rip + s_cannot_open]
    call print_file_problem
.Lfall_back:
    lea rcx, [rip + s_tok_fallback]
    call rt_print_cstr
.Lauto:
    call build_tok_name
    lea rcx, [rip + tok_name]         # (not the configured file again)
    lea rdx, [rip + set_tokenizer]
    call name_icmp
    test eax, eax
    jz .Lby_name
    lea rcx, [rip + tok_name]
    call try_tokenizer
    cmp eax, 1
    je .Lout
.Lby_name:
    lea rcx, [rip + s_tokenizer_bin]
    lea rdx, [rip + set_tokenizer]
    call name_icmp
    test eax, eax
    jz .Lnone
    lea rcx, [rip + s_tokenizer_bin]
    call try_tokenizer
    cmp eax, 1
    je .Lout
    cmp eax, -1
    jne .Lout
    lea rcx, [rip + s_tokenizer_bin]
    call try_tokenizer
    cmp eax, -1
    jne .Lout
.Lnone:
    lea rcx, [rip + s_tok_none]
    call rt_print_cstr
    xor eax, eax
.Lout:
    cmp eax, 1
    sete al
    movzx eax, al
    add rsp, 40
    ret

# session_reseed(): restart the sampler's random sequence from set_seed (0: from the clock,
# as at boot)
session_reseed:
    sub rsp, 40
    mov rdx, [rip + set_seed]
    test rdx, rdx
    jnz .Lseed
    call rt_ticks
    mov rdx, rax
.Lseed:
    lea rcx, [rip + sess_sampler]
    call sampler_seed
    add rsp, 40
    ret

# session_apply_settings(): the settings take effect: sampling knobs into the sampler, the
# kernel path (attn) into the dispatch table. Cheap and idempotent: called after any change.
session_apply_settings:
    sub rsp, 40
    mov eax, [rip + set_temperature]
    mov [rip + sess_sampler + SMP_TEMPERATURE], eax
    mov eax, [rip + set_top_p]
    mov [rip + sess_sampler + SMP_TOPP], eax
    mov eax, [rip + set_top_k]
    mov [rip + sess_sampler + SMP_TOPK], eax
    mov eax, [rip + set_min_p]
    mov [rip + sess_sampler + SMP_MINP], eax
    mov eax, [rip + set_repeat_penalty]
    mov [rip + sess_sampler + SMP_REPEAT_PENALTY], eax
    mov eax, [rip + set_no_repeat_ngram]
    mov [rip + sess_sampler + SMP_NO_REPEAT_NGRAM], eax
    mov ecx, [rip + cpu_features]
    mov edx, [rip + set_attn]
    call kernels_init
    call threads_apply                # how many cores share the rows (threads)
    add rsp, 40
    ret


