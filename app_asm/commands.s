# The REPL's commands: one table (name, handler, settings key, argument usage, help), the
# dispatch (run_command), /help, and what every handler shares (no_args, print_usage). The
# handlers: cmd_settings.s (setters and the state commands), cmd_tokens.s (/tokenize,
# /detokenize), cmd_files.s (models and saving), chat.s (/system, /history). A handler gets
# rcx = its arguments (after one space), rdx = their length, r8 = its table entry; it prints
# what it did or one line saying what was wrong. Entry layout: commands.inc.
.include "runtime.inc"
.include "settings.inc"
.include "commands.inc"

.section .rdata
s_unknown:     .asciz "unknown command '"
s_try_help:    .asciz "' (type /help for the list)\n"
s_usage:       .asciz "usage: /%s %s\n"
s_usage_bare:  .asciz "usage: /%s\n"
s_space:       .asciz " "
s_help_head:   .asciz "commands (anything else is a prompt; end a line with \\ to continue it, ;; alone submits):\n"
s_indent:      .asciz "  /"
s_pad:         .asciz "                        "
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
.global run_command, no_args, print_usage
.extern rt_printf, rt_print_cstr, rt_print_utf8, str_eq, str_len
.extern cmd_set, cmd_ctx, cmd_mem, cmd_clear, cmd_cfg, cmd_cpu, cmd_version, cmd_reset, cmd_shutdown
.extern cmd_tokenize, cmd_detokenize
.extern cmd_model, cmd_models, cmd_model_info, cmd_save_cfg, cmd_log, cmd_save_log, cmd_save_dump
.extern cmd_system, cmd_history

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

