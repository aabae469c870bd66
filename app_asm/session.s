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
.global sess_pending, sess_prompt_buf, sess_model_name
sess_model:        .skip MODEL_SIZE
sess_tok:          .skip TOK_SIZE
probe_struct:      .skip MODEL_SIZE       # for looking at other model files' headers
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
tok_ws:            .skip 8
tok_ws_size:       .skip 8
smp_ws:            .skip 8
smp_ws_size:       .skip 8
hist_size:         .skip 8
file_size_tmp:     .skip 8
header_buf:        .skip 32
sess_model_name:   .skip SESSION_NAME_MAX
tok_name:          .skip SESSION_NAME_MAX
err_buf:           .skip 256
found_names:       .skip SESSION_MAX_MODELS * SESSION_NAME_MAX
found_count:       .skip 4

.section .rdata
s_loading:        .asciz "loading "
s_dots:           .asciz " ... "
s_nl:             .asciz "\n"
s_model_prefix:   .asciz "model "
s_colon:          .asciz ": "
s_cannot_open:    .asciz "cannot open the file"
s_cannot_read:    .asciz "cannot read the file"
s_no_memory:      .asciz "not enough memory: needs "
s_mib_free:       .asciz " MiB, "
s_mib_free2:      .asciz " MiB free, the largest piece "
s_mib_weights:    .asciz " MiB (the weights need "
s_mib_one:        .asciz " MiB in one piece)\n"
s_shrunk:         .asciz "context shrunk to "
s_shrunk2:        .asciz " tokens to fit in memory (the model allows "
s_shrunk3:        .asciz ")\n"
s_loaded:         .asciz "model: "
s_open_paren:     .asciz " ("
s_dim:            .asciz "dim "
s_layers:         .asciz ", layers "
s_heads:          .asciz ", heads "
s_kv:             .asciz "/"
s_vocab:          .asciz ", vocab "
s_ctx:            .asciz ", context "
s_params:         .asciz ", "
s_mparams:        .asciz "M params)\n"
s_point:          .asciz "."
s_tok_prefix:     .asciz "tokenizer "
s_tok_ok:         .asciz "tokenizer: "
s_tok_none:       .asciz "no tokenizer found: put tokenizer.bin (or tok<vocab>.bin) beside the model\n"
s_tokenizer_bin:  .asciz "tokenizer.bin"
s_tok_stem:       .asciz "tok"
s_bin:            .asciz ".bin"
s_models_dir:     .asciz "models"
s_models_prefix:  .asciz "models/"
s_root_dir:       .asciz "/"
s_root:           .asciz ""
s_no_model:       .asciz "no model found: put a llama2.c .bin model in the volume root or models\\\n"
s_fallback:       .asciz "trying the models found on the volume instead\n"
s_found:          .asciz "models found:\n"
s_indent:         .asciz "  "
s_dot_sp:         .asciz ". "
s_pick:           .asciz "choose a model [1-"
s_pick2:          .asciz "]: "
s_pick_bad:       .asciz "type a number from the list\n"
s_sampler_fail:   .asciz "sampler: "
s_ev_loaded:      .asciz "model loaded: "
s_ev_failed:      .asciz "model not loaded: "
s_keeping:        .asciz "keeping the current model\n"
s_list_sep:       .asciz "  "
s_mib_comma:      .asciz " MiB, "
s_seq:            .asciz ", seq_len "
s_hidden:         .asciz ", hidden "
s_unshared:       .asciz " (own classifier)"
s_info_size:      .asciz ": "
s_status:         .asciz " (EFI status "
s_paren:          .asciz ")"

.section .text
.global session_load_model, session_autoload, session_clear, session_read_file
.global session_free_file, session_print_status_error, session_unload, session_apply_settings
.global session_switch_model, session_list_models, session_model_info, session_print_summary
.global session_write_file, session_delete_file, session_rename_file, session_file_exists
.extern rt_alloc_pages, rt_free_pages, rt_memory_free_bytes, rt_file_open, rt_file_close
.extern rt_file_size, rt_file_read, rt_file_read_entry, rt_file_status
.extern rt_print_cstr, rt_print_u64, rt_print_utf8, rt_read_key
.extern model_check_header, model_bind_weights, model_state_bytes, model_init_state
.extern model_format_error, tok_workspace_bytes, tok_load, tok_error_text
.extern sampler_workspace_bytes, sampler_init, sampler_strerror
.extern set_model, set_tokenizer, set_ctx_len, set_seed, str_len, str_copy, mem_ieq
.extern repl_read_line, parse_uint, trim, rt_ticks, print_uint_width
.extern set_temperature, set_top_p, set_top_k, set_min_p, set_repeat_penalty, set_no_repeat_ngram
.extern log_event2, rt_file_delete, rt_file_rename, rt_file_write

# session_print_status_error(): " (EFI status N)" for the last file operation
session_print_status_error:
    sub rsp, 40
    lea rcx, [rip + s_status]
    call rt_print_cstr
    mov rcx, [rip + rt_file_status]
    btr rcx, 63                       # the error bit off: the spec's small numbers
    call rt_print_u64
    lea rcx, [rip + s_paren]
    call rt_print_cstr
    add rsp, 40
    ret

# session_read_file(rcx = name, rdx = u64* size) -> rax = buffer or 0
session_read_file:
    push rbx
    push rsi
    push rdi
    push r12
    sub rsp, 40
    mov r12, rdx
    mov edx, EFI_FILE_MODE_READ
    call rt_file_open
    test rax, rax
    jz .Lfail
    mov rbx, rax                      # handle
    mov rcx, rbx
    call rt_file_size
    cmp rax, -1
    je .Lclose_fail
    mov rsi, rax                      # size
    lea rcx, [rax + 1]                # +1: a zero-length file still gets a buffer
    call rt_alloc_pages
    test rax, rax
    jnz .Lhave_buffer
    mov rax, EFI_OUT_OF_RESOURCES     # so callers can tell "no memory" from "no file"
    mov [rip + rt_file_status], rax
    jmp .Lclose_fail
.Lhave_buffer:
    mov rdi, rax
    mov rcx, rbx
    mov rdx, rdi
    mov r8, rsi
    call rt_file_read
    cmp rax, rsi
    jne .Lread_fail
    mov rcx, rbx
    call rt_file_close
    mov [r12], rsi
    mov rax, rdi
    jmp .Lout
.Lread_fail:
    mov rcx, rdi
    lea rdx, [rsi + 1]
    call rt_free_pages
.Lclose_fail:
    mov rcx, rbx
    call rt_file_close
.Lfail:
    xor eax, eax
.Lout:
    add rsp, 40
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret

# session_free_file(rcx = buffer, rdx = size)
session_free_file:
    inc rdx
    jmp rt_free_pages

# session_clear(): an empty conversation
session_clear:
    mov dword ptr [rip + sess_pos], 0
    mov dword ptr [rip + sess_pending], -1
    ret

# session_unload(): frees the model, tokenizer and sampler memory
session_unload:
    sub rsp, 40
    mov dword ptr [rip + sess_loaded], 0
    mov rcx, [rip + weights_buf]
    mov rdx, [rip + weights_size]
    call rt_free_pages
    mov rcx, [rip + state_buf]
    mov rdx, [rip + state_size]
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
    mov [rip + tok_ws], rax
    mov [rip + smp_ws], rax
    mov [rip + sess_history], rax
    add rsp, 40
    ret

# print_model_error(rcx = name, edx = MODEL_E_* code, r8 = the Model* that was checked):
# "model NAME: <reason>\n"
print_model_error:
    push rbx
    push rsi
    push rdi
    sub rsp, 32
    mov rbx, rcx
    mov esi, edx
    mov rdi, r8
    lea rcx, [rip + s_model_prefix]
    call rt_print_cstr
    mov rcx, rbx
    call rt_print_cstr
    lea rcx, [rip + s_colon]
    call rt_print_cstr
    mov rcx, rdi
    mov edx, esi
    lea r8, [rip + err_buf]
    mov r9d, 256
    call model_format_error
    lea rcx, [rip + err_buf]
    call rt_print_cstr
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    add rsp, 32
    pop rdi
    pop rsi
    pop rbx
    ret

# print_file_problem(rcx = "model "/"tokenizer " prefix, rdx = name, r8 = message)
print_file_problem:
    push rbx
    push rsi
    push rdi
    sub rsp, 32
    mov rbx, rdx
    mov rsi, r8
    call rt_print_cstr
    mov rcx, rbx
    call rt_print_cstr
    lea rcx, [rip + s_colon]
    call rt_print_cstr
    mov rcx, rsi
    call rt_print_cstr
    call session_print_status_error
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    add rsp, 32
    pop rdi
    pop rsi
    pop rbx
    ret

# probe_model(rcx = name, rdx = Model* to fill) -> eax = MODEL_OK if the file's header and
# size make a model, else a MODEL_E_* code, or -1 if the file cannot be opened/read. Reads
# 28 bytes only.
probe_model:
    push rbx
    push rsi
    push rdi
    sub rsp, 32
    mov rdi, rdx
    mov edx, EFI_FILE_MODE_READ
    call rt_file_open
    test rax, rax
    jz .Lno_file
    mov rbx, rax
    mov rcx, rbx
    call rt_file_size
    mov rsi, rax
    cmp rax, -1
    je .Lclose_no
    mov qword ptr [rip + header_buf], 0
    mov rcx, rbx
    lea rdx, [rip + header_buf]
    mov r8d, MODEL_HEADER_BYTES
    cmp rsi, r8
    cmovb r8, rsi
    call rt_file_read
    cmp rax, -1
    je .Lclose_no
    mov rcx, rbx
    call rt_file_close
    mov rcx, rdi
    lea rdx, [rip + header_buf]
    mov r8, rsi
    call model_check_header
    jmp .Lout
.Lclose_no:
    mov rcx, rbx
    call rt_file_close
.Lno_file:
    mov eax, -1
.Lout:
    add rsp, 32
    pop rdi
    pop rsi
    pop rbx
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

# print_mib(rcx = bytes): rounded up to MiB
print_mib:
    add rcx, 0xFFFFF
    shr rcx, 20
    jmp rt_print_u64

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
    call probe_model
    cmp eax, -1
    je .Lcannot_open
    test eax, eax
    jnz .Lbad_header
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
    mov edx, r14d
    call fit_context                  # can the state for some useful context fit at all?
    test eax, eax
    jz .Lno_room
    # the weights
    mov rcx, rbx
    lea rdx, [rip + file_size_tmp]
    call session_read_file
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
    mov rax, [rip + weights_buf]
    lea rcx, [rip + sess_model]       # the header again, from the loaded bytes
    mov rdx, rax
    mov r8, r12
    call model_check_header
    test eax, eax
    jnz .Lbad_header_free
    lea rcx, [rip + sess_model]
    mov rdx, [rip + weights_buf]
    call model_bind_weights
    test eax, eax
    jnz .Lbad_header_free
    # the run state
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
    lea rcx, [rip + s_ev_loaded]
    mov rdx, rbx
    call log_event2
    mov eax, 1
    jmp .Lout
.Lcannot_open:
    lea rcx, [rip + s_model_prefix]
    mov rdx, rbx
    lea r8, [rip + s_cannot_open]
    call print_file_problem
    jmp .Lfail
.Lcannot_read:
    lea rcx, [rip + s_model_prefix]
    mov rdx, rbx
    lea r8, [rip + s_cannot_read]
    call print_file_problem
    jmp .Lfail_free
.Lbad_size_changed:
    mov edx, MODEL_E_SIZE
    jmp .Lbad_code_free
.Lbad_header_free:
    mov edx, eax
.Lbad_code_free:
    mov rcx, rbx
    lea r8, [rip + sess_model]
    call print_model_error
    jmp .Lfail_free
.Lbad_header:
    mov rcx, rbx
    mov edx, eax
    lea r8, [rip + sess_model]
    call print_model_error
    jmp .Lfail
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
    add rax, 5000                     # millions, two decimals
    xor edx, edx
    mov ecx, 10000
    div rcx
    xor edx, edx
    mov ecx, 100
    div rcx
    mov [rsp + 32], rdx
    mov rcx, rax
    call rt_print_u64
    lea rcx, [rip + s_point]
    call rt_print_cstr
    mov rcx, [rsp + 32]
    mov edx, 2
    call print_uint_width
    lea rcx, [rip + s_mparams]
    call rt_print_cstr
    add rsp, 40
    ret

# print_shape(rcx = a checked Model*): "dim D, hidden H, layers L, heads H/KV, vocab V
# [(own classifier)], seq_len S"
print_shape:
    push rbx
    sub rsp, 32
    mov rbx, rcx
    lea rcx, [rip + s_dim]
    call rt_print_cstr
    mov ecx, [rbx + MODEL_DIM]
    call rt_print_u64
    lea rcx, [rip + s_hidden]
    call rt_print_cstr
    mov ecx, [rbx + MODEL_HIDDEN_DIM]
    call rt_print_u64
    lea rcx, [rip + s_layers]
    call rt_print_cstr
    mov ecx, [rbx + MODEL_N_LAYERS]
    call rt_print_u64
    lea rcx, [rip + s_heads]
    call rt_print_cstr
    mov ecx, [rbx + MODEL_N_HEADS]
    call rt_print_u64
    lea rcx, [rip + s_kv]
    call rt_print_cstr
    mov ecx, [rbx + MODEL_N_KV_HEADS]
    call rt_print_u64
    lea rcx, [rip + s_vocab]
    call rt_print_cstr
    mov ecx, [rbx + MODEL_VOCAB_SIZE]
    call rt_print_u64
    cmp dword ptr [rbx + MODEL_SHARED_CLASSIFIER], 0
    jne .Lshared
    lea rcx, [rip + s_unshared]
    call rt_print_cstr
.Lshared:
    lea rcx, [rip + s_seq]
    call rt_print_cstr
    mov ecx, [rbx + MODEL_SEQ_LEN]
    call rt_print_u64
    add rsp, 32
    pop rbx
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
    call session_read_file
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
    call session_free_file
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
    call session_free_file
    mov edi, TOK_E_WORKSPACE
.Lbad:
    lea rcx, [rip + s_tok_prefix]
    call rt_print_cstr
    mov rcx, rbx
    call rt_print_cstr
    lea rcx, [rip + s_colon]
    call rt_print_cstr
    mov ecx, edi
    call tok_error_text
    mov rcx, rax
    call rt_print_cstr
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

# load_tokenizer() -> eax = 1 if loaded: set_tokenizer, else tok<vocab>.bin, else tokenizer.bin
load_tokenizer:
    sub rsp, 40
    lea rcx, [rip + set_tokenizer]
    cmp byte ptr [rcx], 0
    je .Lauto
    call try_tokenizer
    cmp eax, -1
    jne .Lout
    lea rcx, [rip + s_tok_prefix]
    lea rdx, [rip + set_tokenizer]
    lea r8, [rip + s_cannot_open]
    call print_file_problem
.Lauto:
    call build_tok_name
    lea rcx, [rip + tok_name]
    call try_tokenizer
    cmp eax, -1
    jne .Lout
    lea rcx, [rip + s_tokenizer_bin]
    call try_tokenizer
    cmp eax, -1
    jne .Lout
    lea rcx, [rip + s_tok_none]
    call rt_print_cstr
    xor eax, eax
.Lout:
    cmp eax, 1
    sete al
    movzx eax, al
    add rsp, 40
    ret

# has_bin_suffix(rcx = NUL-terminated UTF-8 name) -> eax = 1 if it ends in .bin (any case)
has_bin_suffix:
    push rbx
    sub rsp, 32
    mov rbx, rcx
    call str_len
    cmp rax, 4
    jb .Lno
    lea rcx, [rbx + rax - 4]
    lea rdx, [rip + s_bin]
    mov r8d, 4
    call mem_ieq
    jmp .Lout
.Lno:
    xor eax, eax
.Lout:
    add rsp, 32
    pop rbx
    ret

# scan_dir(rcx = directory UTF-8 path ("" = root), rdx = prefix for names found): appends
# every *.bin whose header makes a model to found_names
scan_dir:
    push rbx
    push rsi
    push rdi
    push r12
    push r13
    sub rsp, 32
    mov r12, rdx                      # prefix
    mov edx, EFI_FILE_MODE_READ
    call rt_file_open
    test rax, rax
    jz .Ldone
    mov rbx, rax
.Lentry:
    mov rcx, rbx
    call rt_file_read_entry
    test rax, rax
    jz .Lclose
    test qword ptr [rax + EFI_FILE_INFO_Attribute], EFI_FILE_DIRECTORY
    jnz .Lentry
    cmp dword ptr [rip + found_count], SESSION_MAX_MODELS
    jae .Lclose
    # name: prefix + FileName (UCS-2, kept only when ASCII) into the next found slot
    mov esi, [rip + found_count]
    imul esi, esi, SESSION_NAME_MAX
    lea rdi, [rip + found_names]
    add rdi, rsi
    mov r13, rdi
    mov rcx, r12
.Lprefix:
    mov dl, [rcx]
    test dl, dl
    jz .Lname
    mov [rdi], dl
    inc rdi
    inc rcx
    jmp .Lprefix
.Lname:
    lea rsi, [rax + EFI_FILE_INFO_FileName]
    lea r8, [r13 + SESSION_NAME_MAX - 1]
.Lunit:
    movzx edx, word ptr [rsi]
    test edx, edx
    jz .Lterm
    cmp edx, 0x80
    jae .Lentry                       # non-ASCII names: skipped (rare on a boot stick)
    cmp rdi, r8
    jae .Lentry
    mov [rdi], dl
    inc rdi
    add rsi, 2
    jmp .Lunit
.Lterm:
    mov byte ptr [rdi], 0
    mov rcx, r13
    call has_bin_suffix
    test eax, eax
    jz .Lentry
    mov rcx, r13
    lea rdx, [rip + probe_struct]
    call probe_model
    test eax, eax
    jnz .Lentry
    inc dword ptr [rip + found_count]
    jmp .Lentry
.Lclose:
    mov rcx, rbx
    call rt_file_close
.Ldone:
    add rsp, 32
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret

# session_autoload() -> eax = 1 if a model is loaded
session_autoload:
    push rbx
    push rsi
    sub rsp, 56
    lea rcx, [rip + set_model]
    cmp byte ptr [rcx], 0
    je .Ldiscover
    call session_load_model
    test eax, eax
    jnz .Lout
    lea rcx, [rip + s_fallback]
    call rt_print_cstr
.Ldiscover:
    mov dword ptr [rip + found_count], 0
    lea rcx, [rip + s_root_dir]       # "\" opens the root itself on every firmware
    lea rdx, [rip + s_root]
    call scan_dir
    lea rcx, [rip + s_models_dir]
    lea rdx, [rip + s_models_prefix]
    call scan_dir
    mov ebx, [rip + found_count]
    test ebx, ebx
    jz .Lnone
    xor esi, esi                      # the choice (0-based)
    cmp ebx, 1
    je .Lchosen
    lea rcx, [rip + s_found]          # several: a numbered picker
    call rt_print_cstr
    xor esi, esi
.Llist:
    lea rcx, [rip + s_indent]
    call rt_print_cstr
    lea ecx, [rsi + 1]
    call rt_print_u64
    lea rcx, [rip + s_dot_sp]
    call rt_print_cstr
    mov eax, esi
    imul eax, eax, SESSION_NAME_MAX
    lea rcx, [rip + found_names]
    add rcx, rax
    call rt_print_cstr
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    inc esi
    cmp esi, ebx
    jb .Llist
.Lask:
    lea rcx, [rip + s_pick]
    call rt_print_cstr
    mov ecx, ebx
    call rt_print_u64
    lea rcx, [rip + s_pick2]
    call rt_print_cstr
    call repl_read_line               # rax = text, rdx = length
    mov rcx, rax
    call trim
    mov rcx, rax
    lea r8, [rsp + 32]
    call parse_uint
    test eax, eax
    jz .Lpick_bad
    mov rax, [rsp + 32]
    test rax, rax
    jz .Lpick_bad
    cmp rax, rbx
    ja .Lpick_bad
    lea esi, [rax - 1]
    jmp .Lchosen
.Lpick_bad:
    lea rcx, [rip + s_pick_bad]
    call rt_print_cstr
    jmp .Lask
.Lchosen:
    mov eax, esi
    imul eax, eax, SESSION_NAME_MAX
    lea rcx, [rip + found_names]
    add rcx, rax
    call session_load_model
    jmp .Lout
.Lnone:
    lea rcx, [rip + s_no_model]
    call rt_print_cstr
    xor eax, eax
.Lout:
    add rsp, 56
    pop rsi
    pop rbx
    ret
# session_apply_settings(): copy the sampling settings into the sampler
session_apply_settings:
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
    ret


# session_switch_model(rcx = name): the file is checked first; if it cannot be a model the
# current one stays
session_switch_model:
    push rbx
    sub rsp, 32
    mov rbx, rcx
    lea rdx, [rip + probe_struct]
    call probe_model
    test eax, eax
    jz .Lload
    cmp eax, -1
    je .Lcannot
    mov rcx, rbx
    mov edx, eax
    lea r8, [rip + probe_struct]
    call print_model_error
    jmp .Lkeep
.Lcannot:
    lea rcx, [rip + s_model_prefix]
    mov rdx, rbx
    lea r8, [rip + s_cannot_open]
    call print_file_problem
.Lkeep:
    cmp dword ptr [rip + sess_loaded], 0
    je .Lout
    lea rcx, [rip + s_keeping]
    call rt_print_cstr
    jmp .Lout
.Lload:
    mov rcx, rbx
    call session_load_model
.Lout:
    add rsp, 32
    pop rbx
    ret

# print_probed_shape(): "X.XX MiB, " and the shape of probe_struct, then a new line
print_probed_shape:
    sub rsp, 40
    mov rax, [rip + probe_struct + MODEL_FILE_SIZE]
    add rax, 5243                     # MiB with two decimals: bytes * 100 / 2^20, rounded
    imul rax, rax, 100
    shr rax, 20
    xor edx, edx
    mov ecx, 100
    div rcx
    mov [rsp + 32], rdx
    mov rcx, rax
    call rt_print_u64
    lea rcx, [rip + s_point]
    call rt_print_cstr
    mov rcx, [rsp + 32]
    mov edx, 2
    call print_uint_width
    lea rcx, [rip + s_mib_comma]
    call rt_print_cstr
    lea rcx, [rip + probe_struct]
    call print_shape
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    add rsp, 40
    ret

# session_model_info(rcx = name): the header of a model file, or why it is not one
session_model_info:
    push rbx
    sub rsp, 32
    mov rbx, rcx
    lea rdx, [rip + probe_struct]
    call probe_model
    test eax, eax
    jz .Lgood
    cmp eax, -1
    je .Lcannot
    mov rcx, rbx
    mov edx, eax
    lea r8, [rip + probe_struct]
    call print_model_error
    jmp .Lout
.Lcannot:
    lea rcx, [rip + s_model_prefix]
    mov rdx, rbx
    lea r8, [rip + s_cannot_open]
    call print_file_problem
    jmp .Lout
.Lgood:
    mov rcx, rbx
    call rt_print_cstr
    lea rcx, [rip + s_info_size]
    call rt_print_cstr
    call print_probed_shape
.Lout:
    add rsp, 32
    pop rbx
    ret

# session_list_models(): "  N. NAME  size, shape" for every model on the volume
session_list_models:
    push rbx
    push rsi
    sub rsp, 40
    mov dword ptr [rip + found_count], 0
    lea rcx, [rip + s_root_dir]
    lea rdx, [rip + s_root]
    call scan_dir
    lea rcx, [rip + s_models_dir]
    lea rdx, [rip + s_models_prefix]
    call scan_dir
    mov ebx, [rip + found_count]
    test ebx, ebx
    jnz .Llist
    lea rcx, [rip + s_no_model]
    call rt_print_cstr
    jmp .Lout
.Llist:
    xor esi, esi
.Lnext:
    lea rcx, [rip + s_indent]
    call rt_print_cstr
    lea ecx, [rsi + 1]
    call rt_print_u64
    lea rcx, [rip + s_dot_sp]
    call rt_print_cstr
    mov eax, esi
    imul eax, eax, SESSION_NAME_MAX
    lea rcx, [rip + found_names]
    add rcx, rax
    mov [rsp + 32], rcx
    call rt_print_cstr
    lea rcx, [rip + s_list_sep]
    call rt_print_cstr
    mov rcx, [rsp + 32]
    lea rdx, [rip + probe_struct]
    call probe_model
    call print_probed_shape
    inc esi
    cmp esi, ebx
    jb .Lnext
.Lout:
    add rsp, 40
    pop rsi
    pop rbx
    ret

# session_file_exists(rcx = name) -> eax = 1 if it opens
session_file_exists:
    sub rsp, 40
    mov edx, EFI_FILE_MODE_READ
    call rt_file_open
    test rax, rax
    jz .Lno
    mov rcx, rax
    call rt_file_close
    mov eax, 1
    jmp .Lout
.Lno:
    xor eax, eax
.Lout:
    add rsp, 40
    ret

# session_delete_file(rcx = name) -> eax = 1 if it is gone (or was never there)
session_delete_file:
    sub rsp, 40
    mov rdx, EFI_FILE_MODE_READ | EFI_FILE_MODE_WRITE
    call rt_file_open
    test rax, rax
    jz .Lgone
    mov rcx, rax
    call rt_file_delete
    test rax, rax
    jnz .Lfail
.Lgone:
    mov eax, 1
    jmp .Lout
.Lfail:
    xor eax, eax
.Lout:
    add rsp, 40
    ret

# session_write_file(rcx = name, rdx = bytes, r8 = length) -> eax = 1 if the file now holds
# exactly those bytes (an old file of that name is replaced)
session_write_file:
    push rbx
    push rsi
    push rdi
    sub rsp, 32
    mov rbx, rcx
    mov rsi, rdx
    mov rdi, r8
    call session_delete_file          # CREATE would keep an old file's tail: start empty
    test eax, eax
    jz .Lfail
    mov rcx, rbx
    mov rdx, EFI_FILE_MODE_READ | EFI_FILE_MODE_WRITE | EFI_FILE_MODE_CREATE
    call rt_file_open
    test rax, rax
    jz .Lfail
    mov rbx, rax
    mov rcx, rbx
    mov rdx, rsi
    mov r8, rdi
    call rt_file_write
    mov rsi, rax
    mov rcx, rbx
    call rt_file_close                # Close flushes
    cmp rsi, rdi
    jne .Lfail
    mov eax, 1
    jmp .Lout
.Lfail:
    xor eax, eax
.Lout:
    add rsp, 32
    pop rdi
    pop rsi
    pop rbx
    ret

# session_rename_file(rcx = name, rdx = new name, same directory) -> eax = 1 if renamed
session_rename_file:
    push rbx
    push rsi
    sub rsp, 40
    mov rsi, rdx
    mov rdx, EFI_FILE_MODE_READ | EFI_FILE_MODE_WRITE
    call rt_file_open
    test rax, rax
    jz .Lfail
    mov rbx, rax
    mov rcx, rbx
    mov rdx, rsi
    call rt_file_rename
    mov rsi, rax
    mov rcx, rbx
    call rt_file_close
    test rsi, rsi
    jnz .Lfail
    mov eax, 1
    jmp .Lout
.Lfail:
    xor eax, eax
.Lout:
    add rsp, 40
    pop rsi
    pop rbx
    ret
