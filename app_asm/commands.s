# The REPL's commands: one table (name, handler, settings key, argument usage, help) and the
# handlers. A handler gets rcx = its arguments (after one space), rdx = their length, r8 =
# its table entry; it prints what it did or one line saying what was wrong.
.include "runtime.inc"
.include "tokenizer.inc"
.include "model.inc"
.include "settings.inc"
.include "kernels.inc"
.include "commands.inc"

.equ SAVE_BUF_BYTES, 65536            # /save_cfg, /save_log, /save_dump text

.section .bss
.balign 8
save_buf:      .skip SAVE_BUF_BYTES
name_buf:      .skip SET_STR_MAX            # a file name argument, NUL-terminated

.section .rdata
s_unknown:     .asciz "unknown command '"
s_try_help:    .asciz "' (type /help for the list)\n"
s_usage:       .asciz "usage: /%s %s\n"
s_usage_bare:  .asciz "usage: /%s\n"
s_space:       .asciz " "
s_bad_value:   .asciz "bad value: expected "
s_usage_paren: .asciz " (usage: /%s %s)\n"
s_help_head:   .asciz "commands (anything else is a prompt; end a line with \\ to continue it, ;; alone submits):\n"
s_indent:      .asciz "  /"
s_pad:         .asciz "                        "
s_ctx:         .asciz "context: %u / %u tokens used\n"
s_cleared:     .asciz "conversation cleared\n"
s_version:     .asciz "llm-uefi 0.1.0: GGUF and llama2.c models in x86-64 assembly, on UEFI (built by peasm)\n"
s_kernels:     .asciz "kernels: "
s_sse2:        .asciz "sse2\n"
s_avx2:        .asciz "avx2 + fma\n"
s_no_tok:      .asciz "no tokenizer loaded\n"
s_shutdown:    .asciz "powering off\n"
s_no_model:    .asciz "no model loaded\n"
s_name_long:   .asciz "file name too long (%u bytes): %u bytes at most\n"
s_none:        .asciz ""
s_text:        .asciz "TEXT"
s_value:       .asciz "[VALUE]"
# command names and help
n_help:        .asciz "help"
h_help:        .asciz "this list"
n_temp:        .asciz "temp"
h_temp:        .asciz "sampling temperature (0: greedy)"
n_top_p:       .asciz "top_p"
h_top_p:       .asciz "nucleus sampling threshold (1: off)"
n_top_k:       .asciz "top_k"
h_top_k:       .asciz "keep the k most likely tokens (0: off)"
n_min_p:       .asciz "min_p"
h_min_p:       .asciz "drop tokens below min_p * the top probability (0: off)"
n_repeat:      .asciz "repeat"
h_repeat:      .asciz "repetition penalty over recent tokens (1: off)"
n_norepeat:    .asciz "norepeat"
h_norepeat:    .asciz "forbid repeating n-grams of this size (0: off)"
n_max_tokens:  .asciz "max_tokens"
h_max_tokens:  .asciz "tokens generated per turn at most"
n_seed:        .asciz "seed"
h_seed:        .asciz "random seed (restarts the sampler's sequence)"
n_stats:       .asciz "stats"
h_stats:       .asciz "print [stats] after each generation (on/off)"
n_stop_you:    .asciz "stop_you"
h_stop_you:    .asciz "you_ai format: stop when the model starts a You: turn"
n_stop_nl:     .asciz "stop_nl"
h_stop_nl:     .asciz "stop at a blank line"
n_parse_special: .asciz "parse_special"
h_parse_special: .asciz "typed special-token texts (e.g. <|im_end|>) become their tokens"
n_chat_format: .asciz "chat_format"
h_chat_format: .asciz "auto (the model's own), raw, you_ai, chatml, llama2, llama3, zephyr, phi3, gemma, mistral"
n_system:      .asciz "system"
h_system:      .asciz "the system prompt: show it, set it to TEXT, or - to clear it"
s_text_opt:    .asciz "[TEXT|-]"
n_history:     .asciz "history"
h_history:     .asciz "the conversation's turns so far"
n_attn:        .asciz "attn"
h_attn:        .asciz "kernel path: auto, sse2 or avx2"
n_threads:     .asciz "threads"
h_threads:     .asciz "cores sharing the work (0: all)"
n_ctx:         .asciz "ctx"
h_ctx:         .asciz "tokens used / context length"
n_mem:         .asciz "mem"
h_mem:         .asciz "memory: weights, KV cache, run state, tokenizer, free (and the largest free range)"
n_clear:       .asciz "clear"
h_clear:       .asciz "forget the conversation"
n_cfg:         .asciz "cfg"
h_cfg:         .asciz "the settings and where each came from"
n_cpu:         .asciz "cpu"
h_cpu:         .asciz "CPU features and the kernel path in use"
n_version:     .asciz "version"
h_version:     .asciz "what this is"
n_tokenize:    .asciz "tokenize"
h_tokenize:    .asciz "the token ids of TEXT (no BOS)"
n_detokenize:  .asciz "detokenize"
h_detokenize:  .asciz "the text of token ids, as generation prints them"
s_ids:         .asciz "ID..."
s_bad_ids:     .asciz "usage: /detokenize ID... (decimal token ids)\n"
n_shutdown:    .asciz "shutdown"
n_budget:      .asciz "budget"
h_budget:      .asciz "time budget per generation in ms (0: none); over it stops as Esc does"
k_budget:      .asciz "budget"
s_ms_opt:      .asciz "[MS]"
h_shutdown:    .asciz "power off"
k_temperature: .asciz "temperature"
k_top_p:       .asciz "top_p"
k_top_k:       .asciz "top_k"
k_min_p:       .asciz "min_p"
k_repeat:      .asciz "repeat_penalty"
k_norepeat:    .asciz "no_repeat_ngram"
k_max_tokens:  .asciz "max_tokens"
k_seed:        .asciz "seed"
k_stats:       .asciz "stats"
k_stop_you:    .asciz "stop_you"
k_stop_nl:     .asciz "stop_nl"
k_parse_special: .asciz "parse_special"
k_chat_format: .asciz "chat_format"
k_attn:        .asciz "attn"
k_model:       .asciz "model"

s_nl:          .asciz "\n"
s_file:        .asciz "FILE"
s_file_opt:    .asciz "[FILE]"
s_n_opt:       .asciz "[N]"
n_model:       .asciz "model"
h_model:       .asciz "switch to model FILE (no FILE: show the current one)"
n_models:      .asciz "models"
h_models:      .asciz "the models on the volume: name, size, shape"
n_model_info:  .asciz "model_info"
h_model_info:  .asciz "a model file's header, without loading it"
n_save_cfg:    .asciz "save_cfg"
h_save_cfg:    .asciz "write the current settings to repl.cfg"
n_reset:       .asciz "reset"
h_reset:       .asciz "settings back to the defaults; clear the conversation"
n_log:         .asciz "log"
h_log:         .asciz "the last N events (default 10)"
n_save_log:    .asciz "save_log"
h_save_log:    .asciz "write the last N events (default all) to llm_log.txt"
n_save_dump:   .asciz "save_dump"
h_save_dump:   .asciz "write settings, model, memory, CPU and the log to llm_dump.txt"
s_none_loaded: .asciz "no model loaded\n"
s_kv_in_use:   .asciz "KV cache of the loaded model: %s (kv_type applies at the next model load)\n"
s_keeping:     .asciz "keeping the current model\n"
s_cfg_name:    .asciz "repl.cfg"
s_cfg_tmp:     .asciz "repl.tmp"
s_cfg_bak:     .asciz "repl.bak"
s_log_name:    .asciz "llm_log.txt"
s_dump_name:   .asciz "llm_dump.txt"
s_saved:       .asciz "saved "
s_save_failed: .asciz "could not save "
s_saved_file:  .asciz "saved %s\n"
s_save_failed_file: .asciz "could not save %s\n"
s_reset_done:  .asciz "settings reset to the defaults; conversation cleared\n"
s_dump_head:   .asciz "# llm-uefi dump\n"
s_dump_cfg:    .asciz "\n# settings\n"
s_dump_model:  .asciz "\n# model\n"
s_dump_mem:    .asciz "\n# memory\nfree: %u MiB\n"
s_dump_log:    .asciz "\n# log\n"

.section .data
.balign 8
commands:                             # CMD_ENTRY bytes each; a zero name ends it
    .quad n_help, cmd_help, 0, s_none, h_help
    .quad n_temp, cmd_set, k_temperature, s_value, h_temp
    .quad n_top_p, cmd_set, k_top_p, s_value, h_top_p
    .quad n_top_k, cmd_set, k_top_k, s_value, h_top_k
    .quad n_min_p, cmd_set, k_min_p, s_value, h_min_p
    .quad n_repeat, cmd_set, k_repeat, s_value, h_repeat
    .quad n_norepeat, cmd_set, k_norepeat, s_value, h_norepeat
    .quad n_max_tokens, cmd_set, k_max_tokens, s_value, h_max_tokens
    .quad n_seed, cmd_set, k_seed, s_value, h_seed
    .quad n_stats, cmd_set, k_stats, s_value, h_stats
    .quad n_stop_you, cmd_set, k_stop_you, s_value, h_stop_you
    .quad n_stop_nl, cmd_set, k_stop_nl, s_value, h_stop_nl
    .quad n_parse_special, cmd_set, k_parse_special, s_value, h_parse_special
    .quad n_chat_format, cmd_set, k_chat_format, s_value, h_chat_format
    .quad n_attn, cmd_set, k_attn, s_value, h_attn
    .quad n_threads, cmd_set, n_threads, s_value, h_threads
    .quad n_budget, cmd_set, k_budget, s_ms_opt, h_budget
    .quad n_ctx, cmd_ctx, 0, s_none, h_ctx
    .quad n_mem, cmd_mem, 0, s_none, h_mem
    .quad n_clear, cmd_clear, 0, s_none, h_clear
    .quad n_system, cmd_system, 0, s_text_opt, h_system
    .quad n_history, cmd_history, 0, s_none, h_history
    .quad n_cfg, cmd_cfg, 0, s_none, h_cfg
    .quad n_cpu, cmd_cpu, 0, s_none, h_cpu
    .quad n_version, cmd_version, 0, s_none, h_version
    .quad n_tokenize, cmd_tokenize, 0, s_text, h_tokenize
    .quad n_detokenize, cmd_detokenize, 0, s_ids, h_detokenize
    .quad n_model, cmd_model, 0, s_file_opt, h_model
    .quad n_models, cmd_models, 0, s_none, h_models
    .quad n_model_info, cmd_model_info, 0, s_file, h_model_info
    .quad n_save_cfg, cmd_save_cfg, 0, s_none, h_save_cfg
    .quad n_reset, cmd_reset, 0, s_none, h_reset
    .quad n_log, cmd_log, 0, s_n_opt, h_log
    .quad n_save_log, cmd_save_log, 0, s_n_opt, h_save_log
    .quad n_save_dump, cmd_save_dump, 0, s_none, h_save_dump
    .quad n_shutdown, cmd_shutdown, 0, s_none, h_shutdown
    .quad 0, 0, 0, 0, 0


.section .text
.global run_command, no_args
.extern rt_printf, rt_print_cstr, rt_print_utf8, rt_print_u64, rt_shutdown, rt_capture_begin, rt_capture_end
.extern rt_memory_free_bytes, cpu_print_features, kernels_path
.extern settings_find, settings_set, settings_print_setting, settings_print_usage
.extern settings_print_all, settings_write_cfg, settings_reset, set_seed, set_attn
.extern sess_model, sess_tok, sess_sampler, sess_pos, sess_loaded, sess_prompt_buf, sess_model_name
.extern session_clear, session_apply_settings, session_reseed, models_switch, models_list
.extern models_info, session_print_summary, vol_write_file, vol_delete_file
.extern vol_rename_file, vol_file_exists, trim, str_eq, str_len, parse_uint, str_copy
.extern session_print_memory, set_parse_special, sess_encode, sess_encode_error, sess_decode, sess_tok_ready, tok_error_text, log_print, log_event, log_event2, name_icmp
.extern cmd_system, cmd_history
.extern threads_print, set_threads, session_kv_type_name

# run_command(rcx = line after '/', rdx = length)
run_command:
    push rbx
    push rsi
    push rdi
    push r12
    push r13
    sub rsp, 32
    mov rsi, rcx
    mov rdi, rdx
    xor r12d, r12d                    # name length: up to the first space
.Lname:
    cmp r12, rdi
    jae .Lsplit
    cmp byte ptr [rsi + r12], ' '
    je .Lsplit
    inc r12
    jmp .Lname
.Lsplit:
    lea rbx, [rip + commands]
.Lfind:
    mov r8, [rbx + CMD_NAME]
    test r8, r8
    jz .Lunknown
    mov rcx, rsi
    mov rdx, r12
    call str_eq
    test eax, eax
    jnz .Lfound
    add rbx, CMD_ENTRY
    jmp .Lfind
.Lfound:
    lea rcx, [rsi + r12]              # arguments: after the single separating space
    mov rdx, rdi
    sub rdx, r12
    jz .Lcall
    inc rcx
    dec rdx
.Lcall:
    mov r8, rbx
    call qword ptr [rbx + CMD_HANDLER]
    jmp .Lout
.Lunknown:
    lea rcx, [rip + s_unknown]
    call rt_print_cstr
    lea rcx, [rsi - 1]
    lea rdx, [r12 + 1]
    call rt_print_utf8
    lea rcx, [rip + s_try_help]
    call rt_print_cstr
.Lout:
    add rsp, 32
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret

# print_usage(rcx = command entry): "usage: /name ARGS\n"
print_usage:
    sub rsp, 40
    mov rdx, [rcx + CMD_NAME]
    mov r8, [rcx + CMD_ARGS]
    lea rcx, [rip + s_usage]
    cmp byte ptr [r8], 0
    jne .Lsay
    lea rcx, [rip + s_usage_bare]
.Lsay:
    call rt_printf
    add rsp, 40
    ret

# no_args(rdx = argument length, r8 = entry) -> eax = 1 if there are none; else prints the
# usage and returns 0
no_args:
    sub rsp, 40
    mov eax, 1
    test rdx, rdx
    jz .Lout
    mov rcx, r8
    call print_usage
    xor eax, eax
.Lout:
    add rsp, 40
    ret

# cmd_set: a setter command bound to a settings key. No value: show it.
cmd_set:
    push rbx
    push rsi
    push rdi
    push r12
    sub rsp, 40
    mov r12, r8
    call trim
    mov rsi, rax
    mov rdi, rdx
    mov rcx, [r12 + CMD_SETTING]
    call str_len
    mov rdx, rax
    mov rcx, [r12 + CMD_SETTING]
    call settings_find
    mov rbx, rax
    test rdi, rdi
    jz .Lshow
    mov rcx, rbx
    mov rdx, rsi
    mov r8, rdi
    mov r9d, SET_SRC_COMMAND
    call settings_set
    test eax, eax
    jz .Lbad
    call session_apply_settings
    mov rcx, [rbx + SET_PTR]
    lea rax, [rip + set_seed]
    cmp rcx, rax
    jne .Lshow
    call session_reseed               # a new seed restarts the random sequence
.Lshow:
    mov rcx, rbx
    call settings_print_setting
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    mov rax, [rbx + SET_PTR]
    lea rcx, [rip + set_threads]
    cmp rax, rcx
    jne .Lnot_threads
    call threads_print
    jmp .Lout
.Lnot_threads:
    lea rcx, [rip + set_attn]
    cmp rax, rcx
    jne .Lout
    call print_kernel_path
    jmp .Lout
.Lbad:                                # one line: what is wrong and how to say it
    lea rcx, [rip + s_bad_value]
    call rt_print_cstr
    mov rcx, rbx
    call settings_print_usage
    lea rcx, [rip + s_usage_paren]
    mov rdx, [r12 + CMD_NAME]
    mov r8, [r12 + CMD_ARGS]
    call rt_printf
.Lout:
    add rsp, 40
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret

# print_kernel_path(): "kernels: sse2" or "kernels: avx2 + fma"
print_kernel_path:
    sub rsp, 40
    lea rcx, [rip + s_kernels]
    call rt_print_cstr
    lea rcx, [rip + s_sse2]
    cmp dword ptr [rip + kernels_path], K_PATH_AVX2
    jne .Lprint
    lea rcx, [rip + s_avx2]
.Lprint:
    call rt_print_cstr
    add rsp, 40
    ret

cmd_help:
    push rbx
    push rsi
    sub rsp, 40
    call no_args
    test eax, eax
    jz .Lout
    lea rcx, [rip + s_help_head]
    call rt_print_cstr
    lea rbx, [rip + commands]
.Lentry:
    cmp qword ptr [rbx + CMD_NAME], 0
    je .Lout
    lea rcx, [rip + s_indent]
    call rt_print_cstr
    mov rcx, [rbx + CMD_NAME]
    call rt_print_cstr
    mov rcx, [rbx + CMD_NAME]
    call str_len
    mov rsi, rax
    mov rcx, [rbx + CMD_ARGS]
    cmp byte ptr [rcx], 0
    je .Lpad
    lea rcx, [rip + s_space]
    call rt_print_cstr
    mov rcx, [rbx + CMD_ARGS]
    call rt_print_cstr
    mov rcx, [rbx + CMD_ARGS]
    call str_len
    lea rsi, [rsi + rax + 1]
.Lpad:                                # help texts line up in a column
    mov eax, 22
    sub rax, rsi
    jg .Lpad_ok
    mov eax, 1
.Lpad_ok:
    lea rcx, [rip + s_pad + 24]
    sub rcx, rax
    call rt_print_cstr
    mov rcx, [rbx + CMD_HELP]
    call rt_print_cstr
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    add rbx, CMD_ENTRY
    jmp .Lentry
.Lout:
    add rsp, 40
    pop rsi
    pop rbx
    ret

cmd_mem:
    sub rsp, 40
    call no_args
    test eax, eax
    jz .Lout
    call session_print_memory
.Lout:
    add rsp, 40
    ret

cmd_ctx:
    sub rsp, 40
    call no_args
    test eax, eax
    jz .Lout
    lea rcx, [rip + s_ctx]
    mov edx, [rip + sess_pos]
    mov r8d, [rip + sess_model + MODEL_CTX_LEN]
    call rt_printf
.Lout:
    add rsp, 40
    ret

cmd_clear:
    sub rsp, 40
    call no_args
    test eax, eax
    jz .Lout
    call session_clear
    lea rcx, [rip + s_cleared]
    call rt_print_cstr
.Lout:
    add rsp, 40
    ret

cmd_cfg:
    sub rsp, 40
    call no_args
    test eax, eax
    jz .Lout
    call settings_print_all
    cmp dword ptr [rip + sess_loaded], 0
    je .Lout
    call session_kv_type_name         # what kv_type (auto by the format) made of this model
    mov rdx, rax
    lea rcx, [rip + s_kv_in_use]
    call rt_printf
.Lout:
    add rsp, 40
    ret

cmd_cpu:
    sub rsp, 40
    call no_args
    test eax, eax
    jz .Lout
    call cpu_print_features
    call print_kernel_path
    call threads_print
.Lout:
    add rsp, 40
    ret

cmd_version:
    sub rsp, 40
    call no_args
    test eax, eax
    jz .Lout
    lea rcx, [rip + s_version]
    call rt_print_cstr
.Lout:
    add rsp, 40
    ret

cmd_shutdown:
    sub rsp, 40
    call no_args
    test eax, eax
    jz .Lout
    lea rcx, [rip + s_shutdown]
    call rt_print_cstr
    call rt_shutdown
.Lout:
    add rsp, 40
    ret

# /tokenize TEXT: token ids of TEXT without BOS, space-separated
cmd_tokenize:
    push rbx
    push rsi
    push rdi
    sub rsp, 48
    mov rsi, rcx
    mov rdi, rdx
    call sess_tok_ready
    test eax, eax
    jz .Lno_tok
    mov rax, [rip + sess_prompt_buf]
    mov [rsp + 32], rax
    mov qword ptr [rsp + 40], TOK_SCRATCH_SLOTS
    mov rdx, rsi
    mov r8, rdi
    xor r9d, r9d                      # typed text: special tokens are plain text,
    cmp dword ptr [rip + set_parse_special], 0
    je .Lplain
    mov r9d, 8                        # unless parse_special is on (SESS_PARSE_SPECIAL)
.Lplain:
    call sess_encode
    test eax, eax
    js .Lerror
    mov edi, eax
    xor ebx, ebx
.Lid:
    cmp ebx, edi
    jae .Lend
    test ebx, ebx
    jz .Lfirst
    lea rcx, [rip + s_space]
    call rt_print_cstr
.Lfirst:
    mov rax, [rip + sess_prompt_buf]
    mov ecx, [rax + rbx * 4]
    call rt_print_u64
    inc ebx
    jmp .Lid
.Lend:
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    jmp .Lout
.Lerror:
    mov ecx, eax
    call sess_encode_error            # a format whose %u is rdx
    mov rcx, rax
    call rt_printf
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    jmp .Lout
.Lno_tok:
    lea rcx, [rip + s_no_tok]
    call rt_print_cstr
.Lout:
    add rsp, 48
    pop rdi
    pop rsi
    pop rbx
    ret


# /detokenize ID...: the pieces of the ids, each decoded after the one before it (the first
# after none), printed as generation prints them, then a newline. Every word must be a
# decimal below 2^32 (else one usage line, nothing decoded); ids past the vocab print nothing.
cmd_detokenize:
    push rbx
    push rsi
    push rdi
    push r12
    push r13
    push r14
    sub rsp, 56                       # shadow space, [rsp+32] word end, [rsp+40] a u64 out
    mov rsi, rcx
    mov rdi, rdx
    call sess_tok_ready
    test eax, eax
    jz .Lno_tok
    xor r13d, r13d                    # pass 0 checks every word, pass 1 prints
.Lpass:
    mov r12d, -1                      # the previous token: none
    xor ebx, ebx                      # offset in the arguments
    xor r14d, r14d                    # words seen
.Lword:
    cmp rbx, rdi
    jae .Lpass_done
    movzx eax, byte ptr [rsi + rbx]
    cmp eax, 0x20
    je .Lblank
    cmp eax, 0x09
    jne .Lstart
.Lblank:
    inc rbx
    jmp .Lword
.Lstart:
    mov rdx, rbx                      # find the word's end
.Lend_word:
    cmp rdx, rdi
    jae .Lhave_word
    movzx eax, byte ptr [rsi + rdx]
    cmp eax, 0x20
    je .Lhave_word
    cmp eax, 0x09
    je .Lhave_word
    inc rdx
    jmp .Lend_word
.Lhave_word:
    mov [rsp + 32], rdx
    lea rcx, [rsi + rbx]
    sub rdx, rbx
    lea r8, [rsp + 40]
    call parse_uint
    mov rbx, [rsp + 32]
    test eax, eax
    jz .Lbad
    mov r8, [rsp + 40]
    mov rax, 0xFFFFFFFF
    cmp r8, rax
    ja .Lbad
    inc r14d
    test r13d, r13d
    jz .Lword
    mov edx, r12d
    mov r12d, r8d                     # this id is the next one's previous
    lea r9, [rsp + 40]
    call sess_decode
    mov rcx, rax
    mov rdx, [rsp + 40]
    call rt_print_utf8
    jmp .Lword
.Lpass_done:
    test r13d, r13d
    jnz .Lprinted
    test r14d, r14d
    jz .Lbad
    mov r13d, 1
    jmp .Lpass
.Lprinted:
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    jmp .Lout
.Lbad:
    lea rcx, [rip + s_bad_ids]
    call rt_print_cstr
    jmp .Lout
.Lno_tok:
    lea rcx, [rip + s_no_tok]
    call rt_print_cstr
.Lout:
    add rsp, 56
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret


# file_arg(rcx = args, rdx = length) -> rax = the trimmed argument as a NUL-terminated
# string, rdx = its length (0 if none), or rdx = -1 after one line when it is longer than a
# file name setting may be (SET_STR_MAX - 1 bytes)
file_arg:
    sub rsp, 40
    call trim
    cmp rdx, SET_STR_MAX - 1
    ja .Ltoo_long
    mov r8, rdx
    mov rdx, rax
    lea rcx, [rip + name_buf]
    mov r9d, SET_STR_MAX
    call str_copy
    mov rdx, rax
    lea rax, [rip + name_buf]
    add rsp, 40
    ret
.Ltoo_long:
    lea rcx, [rip + s_name_long]
    mov r8d, SET_STR_MAX - 1
    call rt_printf
    mov rdx, -1
    add rsp, 40
    ret

# /model [FILE]: switch to another model (it is checked before the current one is let go);
# /cfg then shows it as "model = FILE  (command)"
cmd_model:
    push rbx
    push rsi
    sub rsp, 40
    call file_arg
    test rdx, rdx
    js .Lout
    jnz .Lswitch
    cmp dword ptr [rip + sess_loaded], 0
    je .Lnone
    call session_print_summary
    jmp .Lout
.Lnone:
    lea rcx, [rip + s_none_loaded]
    call rt_print_cstr
    jmp .Lout
.Lswitch:
    mov rbx, rax
    mov rsi, rdx
    mov rcx, rax
    call models_switch
    cmp dword ptr [rip + sess_loaded], 0
    je .Lout
    lea rcx, [rip + sess_model_name]
    mov rdx, rbx
    call name_icmp
    test eax, eax
    jnz .Lout                         # the switch did not happen
    lea rcx, [rip + k_model]
    mov edx, 5
    call settings_find
    mov rcx, rax
    mov rdx, rbx
    mov r8, rsi
    mov r9d, SET_SRC_COMMAND
    call settings_set
.Lout:
    add rsp, 40
    pop rsi
    pop rbx
    ret

# /models: every model file on the volume
cmd_models:
    sub rsp, 40
    call no_args
    test eax, eax
    jz .Lout
    call models_list
.Lout:
    add rsp, 40
    ret

# /model_info FILE: the header, without loading
cmd_model_info:
    push rbx
    sub rsp, 32
    mov rbx, r8
    call file_arg
    test rdx, rdx
    js .Lout
    jz .Lusage
    mov rcx, rax
    call models_info
    jmp .Lout
.Lusage:
    mov rcx, rbx
    call print_usage
.Lout:
    add rsp, 32
    pop rbx
    ret

# /reset: default settings, empty conversation
cmd_reset:
    sub rsp, 40
    call no_args
    test eax, eax
    jz .Lout
    call settings_reset
    call session_apply_settings
    call session_reseed
    call session_clear
    lea rcx, [rip + s_reset_done]
    call rt_print_cstr
.Lout:
    add rsp, 40
    ret

# optional_count(rcx = args, rdx = length, r8 = entry, r9d = default) -> rax = N, or -1 after
# printing the usage
optional_count:
    push rbx
    push rsi
    sub rsp, 40
    mov rbx, r8
    mov esi, r9d
    call trim
    test rdx, rdx
    jz .Ldefault
    mov rcx, rax
    lea r8, [rsp + 32]
    call parse_uint
    test eax, eax
    jz .Lbad
    mov rax, [rsp + 32]
    cmp rax, 1000000
    ja .Lbad
    jmp .Lout
.Ldefault:
    mov eax, esi
    jmp .Lout
.Lbad:
    mov rcx, rbx
    call print_usage
    mov rax, -1
.Lout:
    add rsp, 40
    pop rsi
    pop rbx
    ret

# /log [N]
cmd_log:
    sub rsp, 40
    mov r9d, 10
    call optional_count
    cmp rax, -1
    je .Lout
    mov ecx, eax
    call log_print
.Lout:
    add rsp, 40
    ret

# save_text(rcx = file name, rdx = captured length): write save_buf to the file; says so
save_text:
    push rbx
    push rsi
    sub rsp, 40
    mov rbx, rcx
    mov rsi, rdx
    mov rcx, rbx
    lea rdx, [rip + save_buf]
    mov r8, rsi
    call vol_write_file
    lea rcx, [rip + s_saved_file]
    test eax, eax
    jnz .Lsay
    lea rcx, [rip + s_save_failed_file]
.Lsay:
    mov rdx, rbx
    call rt_printf
    add rsp, 40
    pop rsi
    pop rbx
    ret

# /save_log [N]: llm_log.txt
cmd_save_log:
    push rbx
    sub rsp, 32
    xor r9d, r9d
    call optional_count
    cmp rax, -1
    je .Lout
    mov rbx, rax
    lea rcx, [rip + save_buf]
    mov edx, SAVE_BUF_BYTES
    call rt_capture_begin
    mov ecx, ebx
    call log_print
    call rt_capture_end
    lea rcx, [rip + s_log_name]
    mov rdx, rax
    call save_text
.Lout:
    add rsp, 32
    pop rbx
    ret

# /save_dump: llm_dump.txt with settings, model, memory, CPU and the whole log
cmd_save_dump:
    sub rsp, 40
    call no_args
    test eax, eax
    jz .Lout
    lea rcx, [rip + save_buf]
    mov edx, SAVE_BUF_BYTES
    call rt_capture_begin
    lea rcx, [rip + s_dump_head]
    call rt_print_cstr
    lea rcx, [rip + s_version]
    call rt_print_cstr
    call cpu_print_features
    call print_kernel_path
    lea rcx, [rip + s_dump_cfg]
    call rt_print_cstr
    call settings_print_all
    lea rcx, [rip + s_dump_model]
    call rt_print_cstr
    xor ecx, ecx
    xor edx, edx
    mov r8, rsp                       # (any entry: no arguments were given)
    call cmd_model
    call rt_memory_free_bytes
    lea rcx, [rip + s_dump_mem]
    mov rdx, rax
    shr rdx, 20
    call rt_printf
    xor ecx, ecx
    xor edx, edx
    mov r8, rsp
    call cmd_ctx
    lea rcx, [rip + s_dump_log]
    call rt_print_cstr
    xor ecx, ecx
    call log_print
    call rt_capture_end
    lea rcx, [rip + s_dump_name]
    mov rdx, rax
    call save_text
.Lout:
    add rsp, 40
    ret

# /save_cfg: the settings to repl.cfg, so that a power cut at any moment leaves a config
# that loads: write repl.tmp whole; move repl.cfg aside to repl.bak; rename repl.tmp to
# repl.cfg; drop repl.bak. (At boot, a missing repl.cfg falls back to repl.bak.)
cmd_save_cfg:
    push rbx
    sub rsp, 32
    call no_args
    test eax, eax
    jz .Lout
    lea rcx, [rip + save_buf]
    mov edx, SAVE_BUF_BYTES
    call rt_capture_begin
    call settings_write_cfg
    call rt_capture_end
    mov rbx, rax
    lea rcx, [rip + s_cfg_tmp]
    lea rdx, [rip + save_buf]
    mov r8, rbx
    call vol_write_file
    test eax, eax
    jz .Lfailed
    lea rcx, [rip + s_cfg_bak]
    call vol_delete_file
    lea rcx, [rip + s_cfg_name]
    call vol_file_exists
    test eax, eax
    jz .Lno_old
    lea rcx, [rip + s_cfg_name]
    lea rdx, [rip + s_cfg_bak]
    call vol_rename_file
    test eax, eax
    jz .Lfailed
.Lno_old:
    lea rcx, [rip + s_cfg_tmp]
    lea rdx, [rip + s_cfg_name]
    call vol_rename_file
    test eax, eax
    jz .Lfailed
    lea rcx, [rip + s_cfg_bak]
    call vol_delete_file
    lea rcx, [rip + s_saved]
    call rt_print_cstr
    jmp .Lname
.Lfailed:
    lea rcx, [rip + s_save_failed]
    call rt_print_cstr
.Lname:
    lea rcx, [rip + s_cfg_name]
    call rt_print_cstr
    lea rcx, [rip + s_nl]
    call rt_print_cstr
.Lout:
    add rsp, 32
    pop rbx
    ret
