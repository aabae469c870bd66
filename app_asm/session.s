# The chat session (see session.inc): its state (the model, tokenizer and sampler, the
# conversation's position and history), loading a model from the boot volume without ever
# trusting a file, freeing it, and the settings taking effect. How large a context fits and
# /mem: session_mem.s; finding and loading the tokenizer: sess_tokens.s.
.include "uefi.inc"
.include "model.inc"
.include "tokenizer.inc"
.include "sampler.inc"
.include "settings.inc"
.include "session.inc"

.section .bss
.balign 64
.global sess_model, sess_tok, sess_sampler, sess_pos, sess_loaded, sess_history
.global sess_pending, sess_prompt_buf, sess_model_name, sess_gguf, sess_kv_pos
.global sess_weights_size, sess_state_size, sess_layers_size, sess_tok_ws, sess_tok_ws_size
.global sess_smp_ws_size, sess_hist_size
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
sess_kv_pos:       .skip 4            # KV-cache rows that hold sess_history[0..]: sess_pos, or
                                      #  fewer after a stopped prefill overwrote some (generate.s)
.balign 8
sess_prompt_buf:   .skip 8            # int32[TOK_SCRATCH_SLOTS]: encode's output
file_size_tmp:     .skip 8
sess_allocs:                          # the session's pages, (address, bytes) pairs: all freed
sess_weights:      .skip 8            #   by session_unload; /mem reports their sizes
sess_weights_size: .skip 8
sess_state:        .skip 8
sess_state_size:   .skip 8
sess_layers:       .skip 8
sess_layers_size:  .skip 8
sess_tok_ws:       .skip 8            # a tokenizer file's workspace (sess_tokens.s fills it)
sess_tok_ws_size:  .skip 8
sess_smp_ws:       .skip 8
sess_smp_ws_size:  .skip 8
sess_history:      .skip 8            # int32[ctx_len]: the tokens at positions 0..pos-1
sess_hist_size:    .skip 8
sess_allocs_end:
sess_model_name:   .skip SESSION_NAME_MAX


.section .rdata
s_cannot_read:    .asciz "cannot read the file"
s_ctx:            .asciz ", context "
s_ev_failed:      .asciz "model not loaded: "
s_ev_loaded:      .asciz "model loaded: "
s_loaded:         .asciz "model: "
s_loading:        .asciz "loading "
s_model_prefix:   .asciz "model "
s_mparams:        .asciz "M params)\n"
s_nl:             .asciz "\n"
s_open_paren:     .asciz " ("
s_params:         .asciz ", "
s_sampler_fail:   .asciz "sampler: "
s_shrunk:         .asciz "context shrunk to "
s_shrunk2:        .asciz " tokens to fit in memory (the model allows "
s_shrunk3:        .asciz ")\n"

.section .text
.global session_apply_settings, session_reseed, session_clear, session_load_model, session_print_summary, session_unload
.extern log_event2, model_bind_weights, model_layers_bytes, model_check_header, model_init_state, model_state_bytes, print_hundredths
.extern rt_alloc_pages, rt_file_status, rt_free_pages, rt_memory_free_bytes, rt_print_cstr, rt_print_u64
.extern rt_ticks, sampler_init, sampler_strerror, sampler_workspace_bytes, set_ctx_len, set_min_p
.extern set_no_repeat_ngram, set_repeat_penalty, set_seed, set_temperature, set_top_k
.extern set_top_p, str_copy, str_len
.extern vol_read_file, print_model_error, print_file_problem, check_model_file
.extern print_shape, cpu_features, kernels_init, set_attn, sampler_seed
.extern gguf_open, gguf_format_error, model_gguf_config, model_gguf_bind
.extern sess_vocab_free, sess_tok_load, fit_context, kv_type_apply, session_print_no_memory
.extern chat_clear, chat_model_loaded, threads_apply, session_repack_load, session_repack_sync

# session_clear(): an empty conversation (the KV cache and the chat history)
session_clear:
    mov dword ptr [rip + sess_pos], 0
    mov dword ptr [rip + sess_kv_pos], 0
    mov dword ptr [rip + sess_pending], -1
    jmp chat_clear

# session_unload(): frees the model, tokenizer and sampler memory (each of sess_allocs, in
# order, then its address is 0)
session_unload:
    push rbx
    sub rsp, 32
    mov dword ptr [rip + sess_loaded], 0
    call sess_vocab_free
    lea rbx, [rip + sess_allocs]
.Lfree:
    mov rcx, [rbx]
    mov rdx, [rbx + 8]
    call rt_free_pages
    mov qword ptr [rbx], 0
    add rbx, 16
    lea rax, [rip + sess_allocs_end]
    cmp rbx, rax
    jb .Lfree
    add rsp, 32
    pop rbx
    ret

# ctx_wanted() -> eax = the context to aim for: the model's seq_len, or the ctx_len setting
# when it is set and smaller. Leaf; clobbers edx.
ctx_wanted:
    mov eax, [rip + sess_model + MODEL_SEQ_LEN]
    mov edx, [rip + set_ctx_len]
    test edx, edx
    jz .Lout
    cmp edx, eax
    cmovb eax, edx                    # a configured ctx_len below seq_len
.Lout:
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
    call ctx_wanted
    mov r14d, eax
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
    mov [rip + sess_weights], rax
    mov rcx, [rip + file_size_tmp]
    mov [rip + sess_weights_size], rcx
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
    call ctx_wanted                   # the context wanted, now that it is known
    mov r14d, eax
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
    mov [rip + sess_layers_size], rax
    mov rcx, rax
    call rt_alloc_pages
    test rax, rax
    jz .Lno_room_free
    mov [rip + sess_layers], rax
    lea rcx, [rip + sess_model]
    mov r8, rax
    cmp dword ptr [rip + sess_model + MODEL_FORMAT], MODEL_FORMAT_GGUF
    je .Lbind_gguf
    mov rdx, [rip + sess_weights]
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
    mov [rip + sess_state_size], rax
    mov rcx, rax
    call rt_alloc_pages
    test rax, rax
    jz .Lno_room_free
    mov [rip + sess_state], rax
    lea rcx, [rip + sess_model]
    mov rdx, rax
    mov r8d, r14d
    mov r9, [rip + sess_state_size]
    call model_init_state
    test eax, eax
    jnz .Lbad_header_free
    # history: one int32 per context position
    mov ecx, r14d
    shl rcx, 2
    mov [rip + sess_hist_size], rcx
    call rt_alloc_pages
    test rax, rax
    jz .Lno_room_free
    mov [rip + sess_history], rax
    # sampler workspace
    mov ecx, [rip + sess_model + MODEL_VOCAB_SIZE]
    call sampler_workspace_bytes
    test rax, rax
    jz .Lsampler_fail
    mov [rip + sess_smp_ws_size], rax
    mov rcx, rax
    call rt_alloc_pages
    test rax, rax
    jz .Lno_room_free
    mov [rip + sess_smp_ws], rax
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
    mov r8, [rip + sess_smp_ws]
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
    call sess_tok_load
    test eax, eax
    jz .Lfail
    call session_apply_settings
    call session_repack_load          # the weights in 8-row groups for the path (repack)
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
    mov rcx, rbx
    call session_print_no_memory
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
# kernel path (attn) into the dispatch table and a loaded model's weight layout (repacked
# only when the path changes: session_repack.s). Cheap and idempotent: called after any change.
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
    call session_repack_sync          # a loaded model's weights follow the path
    call threads_apply                # how many cores share the rows (threads)
    add rsp, 40
    ret


