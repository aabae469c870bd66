# The REPL: reads lines (from the autorun file first, then the keyboard with line editing),
# runs /commands from one table, and hands everything else to the model as a prompt.
#
# Input rules: Enter submits; a line ending in '\' continues on the next line (the prompt
# gets a newline there); ";;" alone submits what has been gathered so far.
.include "uefi.inc"
.include "runtime.inc"
.include "tokenizer.inc"
.include "model.inc"
.include "sampler.inc"
.include "settings.inc"
.include "kernels.inc"

.equ LINE_MAX, 4096                   # bytes of one typed line
.equ PROMPT_MAX, 16384                # bytes of a multi-line prompt
.equ HISTORY_LINES, 8                 # up/down recall
.equ CMD_NAME, 0                      # command table entry: qword name (without '/')
.equ CMD_HANDLER, 8                   # qword handler(rcx = args, rdx = length, r8 = entry)
.equ CMD_SETTING, 16                  # qword settings key for setter commands, else 0
.equ CMD_ARGS, 24                     # qword usage of the arguments ("" if none)
.equ CMD_HELP, 32                     # qword one-line help
.equ CMD_ENTRY, 40

.section .bss
.balign 8
line_buf:      .skip LINE_MAX + 8
line_len:      .skip 8
prompt_buf:    .skip PROMPT_MAX + 8
prompt_len:    .skip 8
auto_buf:      .skip 8                # the autorun file, read whole
auto_len:      .skip 8
auto_pos:      .skip 8
history:       .skip HISTORY_LINES * LINE_MAX
history_lens:  .skip HISTORY_LINES * 8
history_count: .skip 8                # lines stored (saturates at HISTORY_LINES)
history_next:  .skip 8                # slot the next line goes to
history_view:  .skip 8                # how far back up/down has gone (0 = the new line)
utf8_tmp:      .skip 8
tok_count:     .skip 8

.section .rdata
s_prompt:      .asciz "> "
s_more:        .asciz "... "
s_nl:          .asciz "\n"
s_erase:       .asciz "\b \b"
s_unknown:     .asciz "unknown command '"
s_try_help:    .asciz "' (type /help for the list)\n"
s_usage:       .asciz "usage: /"
s_space:       .asciz " "
s_eq:          .asciz " = "
s_bad_value:   .asciz "bad value: expected "
s_help_head:   .asciz "commands (anything else is a prompt; end a line with \\ to continue it, ;; alone submits):\n"
s_indent:      .asciz "  /"
s_sep:         .asciz "  "
s_pad:         .asciz "                        "
s_ctx:         .asciz "context: "
s_of:          .asciz " / "
s_tokens:      .asciz " tokens used\n"
s_cleared:     .asciz "conversation cleared\n"
s_version:     .asciz "llm-uefi 0.1.0: llama2.c models in x86-64 assembly, on UEFI (built by peasm)\n"
s_kernels:     .asciz "kernels: "
s_sse2:        .asciz "sse2\n"
s_avx2:        .asciz "avx2 + fma\n"
s_tok_err:     .asciz "tokenizer: "
s_no_tok:      .asciz "no tokenizer loaded\n"
s_shutdown:    .asciz "powering off\n"
s_autorun:     .asciz "autorun: "
s_autorun_txt: .asciz "autorun.txt"
s_cannot:      .asciz "autorun: cannot read "
s_no_model:    .asciz "no model loaded\n"
s_help_hint:   .asciz "type /help for commands\n"
s_model_usage: .asciz "FILE"
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
n_chat_format: .asciz "chat_format"
h_chat_format: .asciz "raw (plain continuation) or you_ai (You:/AI: turns)"
n_attn:        .asciz "attn"
h_attn:        .asciz "kernel path: auto, sse2 or avx2"
n_ctx:         .asciz "ctx"
h_ctx:         .asciz "tokens used / context length"
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
n_shutdown:    .asciz "shutdown"
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
k_chat_format: .asciz "chat_format"
k_attn:        .asciz "attn"

.section .data
.balign 8
commands:
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
    .quad n_chat_format, cmd_set, k_chat_format, s_value, h_chat_format
    .quad n_attn, cmd_set, k_attn, s_value, h_attn
    .quad n_ctx, cmd_ctx, 0, s_none, h_ctx
    .quad n_clear, cmd_clear, 0, s_none, h_clear
    .quad n_cfg, cmd_cfg, 0, s_none, h_cfg
    .quad n_cpu, cmd_cpu, 0, s_none, h_cpu
    .quad n_version, cmd_version, 0, s_none, h_version
    .quad n_tokenize, cmd_tokenize, 0, s_text, h_tokenize
    .quad n_shutdown, cmd_shutdown, 0, s_none, h_shutdown
    .quad 0, 0, 0, 0, 0

.section .text
.global repl_read_line, repl_run, repl_load_autorun, session_apply_settings
.extern rt_read_key, rt_print_cstr, rt_print_utf8, rt_print_u64, rt_shutdown, rt_memcpy
.extern cpu_print_features, cpu_features, kernels_init, kernels_path
.extern settings_find, settings_set, settings_print_value, settings_print_usage
.extern settings_print_all, set_temperature, set_top_p, set_top_k, set_min_p
.extern set_repeat_penalty, set_no_repeat_ngram, set_seed, set_attn, set_autorun
.extern sess_model, sess_tok, sess_sampler, sess_pos, sess_loaded, sess_prompt_buf
.extern session_clear, session_read_file, generate, trim, mem_eq, str_eq, str_len
.extern tok_encode, tok_error_text, sampler_seed, rt_file_status, session_print_status_error

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

# repl_load_autorun(): the autorun file (set_autorun, else autorun.txt if present) becomes the
# first input lines
repl_load_autorun:
    push rbx
    sub rsp, 32
    lea rbx, [rip + set_autorun]
    cmp byte ptr [rbx], 0
    jne .Lread
    lea rbx, [rip + s_autorun_txt]
.Lread:
    mov rcx, rbx
    lea rdx, [rip + auto_len]
    call session_read_file
    mov [rip + auto_buf], rax
    mov qword ptr [rip + auto_pos], 0
    test rax, rax
    jnz .Lout
    mov qword ptr [rip + auto_len], 0
    lea rax, [rip + set_autorun]      # only a configured file is missed out loud
    cmp byte ptr [rax], 0
    je .Lout
    lea rcx, [rip + s_cannot]
    call rt_print_cstr
    mov rcx, rbx
    call rt_print_cstr
    call session_print_status_error
    lea rcx, [rip + s_nl]
    call rt_print_cstr
.Lout:
    add rsp, 32
    pop rbx
    ret

# next_autorun_line() -> eax = 1 and the line in line_buf/line_len, or 0 when none is left
next_autorun_line:
    push rsi
    push rdi
    sub rsp, 40
    mov rsi, [rip + auto_buf]
    test rsi, rsi
    jz .Lnone
    mov rcx, [rip + auto_pos]
    mov rdx, [rip + auto_len]
    cmp rcx, rdx
    jae .Lnone
    xor edi, edi                      # bytes of this line
.Lscan:
    lea rax, [rcx + rdi]
    cmp rax, rdx
    jae .Lend
    cmp byte ptr [rsi + rax], 10
    je .Lend
    inc rdi
    jmp .Lscan
.Lend:
    lea rax, [rcx + rdi + 1]
    mov [rip + auto_pos], rax
    lea rdx, [rsi + rcx]
    cmp rdi, 0                        # drop a CR of CRLF files
    je .Lcopy
    cmp byte ptr [rdx + rdi - 1], 13
    jne .Lcopy
    dec rdi
.Lcopy:
    mov eax, LINE_MAX
    cmp rdi, rax
    cmova rdi, rax
    mov [rip + line_len], rdi
    lea rcx, [rip + line_buf]
    mov r8, rdi
    call rt_memcpy
    mov eax, 1
    jmp .Lout
.Lnone:
    xor eax, eax
.Lout:
    add rsp, 40
    pop rdi
    pop rsi
    ret

# erase_line(): backspace over what is on the input line
erase_line:
    push rbx
    push rsi
    sub rsp, 40
    lea rsi, [rip + line_buf]
    mov rbx, [rip + line_len]
.Lchar:
    test rbx, rbx
    jz .Ldone
    dec rbx
    movzx eax, byte ptr [rsi + rbx]   # one erase per character, not per byte
    and eax, 0xC0
    cmp eax, 0x80
    je .Lchar
    lea rcx, [rip + s_erase]
    call rt_print_cstr
    jmp .Lchar
.Ldone:
    mov qword ptr [rip + line_len], 0
    add rsp, 40
    pop rsi
    pop rbx
    ret

# recall(ecx = how far back, 1 = the last line) -> replaces the input line with that entry
recall:
    push rbx
    sub rsp, 32
    mov ebx, ecx
    call erase_line
    test ebx, ebx
    jz .Lout
    mov rax, [rip + history_next]
    sub rax, rbx
    add rax, HISTORY_LINES * 4
    xor edx, edx
    mov ecx, HISTORY_LINES
    div rcx                           # slot = (next - back) mod HISTORY_LINES
    lea rcx, [rip + history_lens]
    mov r8, [rcx + rdx * 8]
    mov [rip + line_len], r8
    imul rdx, rdx, LINE_MAX
    lea rax, [rip + history]
    lea rdx, [rax + rdx]
    lea rcx, [rip + line_buf]
    call rt_memcpy
    lea rcx, [rip + line_buf]
    mov rdx, [rip + line_len]
    call rt_print_utf8
.Lout:
    add rsp, 32
    pop rbx
    ret

# remember_line(): the submitted line goes into the recall ring (empty lines do not)
remember_line:
    sub rsp, 40
    mov r8, [rip + line_len]
    test r8, r8
    jz .Lout
    mov rax, [rip + history_next]
    lea rcx, [rip + history_lens]
    mov [rcx + rax * 8], r8
    imul rcx, rax, LINE_MAX
    lea rax, [rip + history]
    add rcx, rax
    lea rdx, [rip + line_buf]
    call rt_memcpy
    mov rax, [rip + history_next]
    inc rax
    cmp rax, HISTORY_LINES
    jb .Lwrap
    xor eax, eax
.Lwrap:
    mov [rip + history_next], rax
    mov rax, [rip + history_count]
    cmp rax, HISTORY_LINES
    jae .Lout
    inc qword ptr [rip + history_count]
.Lout:
    add rsp, 40
    ret

# repl_read_line() -> rax = line bytes, rdx = length (valid until the next call). The
# caller has printed the prompt. An autorun line is echoed as if typed.
repl_read_line:
    push rbx
    push rsi
    sub rsp, 40
    call next_autorun_line
    test eax, eax
    jz .Lkeyboard
    lea rcx, [rip + line_buf]
    mov rdx, [rip + line_len]
    call rt_print_utf8
    jmp .Lsubmit
.Lkeyboard:
    mov qword ptr [rip + line_len], 0
    mov qword ptr [rip + history_view], 0
.Lkey:
    call rt_read_key
    mov ebx, eax
    shr ebx, 16                       # scan code
    and eax, 0xFFFF                   # character
    cmp eax, 13                       # Enter
    je .Lsubmit_typed
    cmp eax, 10
    je .Lsubmit_typed
    cmp eax, 8                        # Backspace
    je .Lbackspace
    test eax, eax
    jnz .Lchar
    cmp ebx, SCAN_UP
    je .Lup
    cmp ebx, SCAN_DOWN
    je .Ldown
    jmp .Lkey
.Lup:
    mov rax, [rip + history_view]
    cmp rax, [rip + history_count]
    jae .Lkey
    inc rax
    mov [rip + history_view], rax
    mov ecx, eax
    call recall
    jmp .Lkey
.Ldown:
    mov rax, [rip + history_view]
    test rax, rax
    jz .Lkey
    dec rax
    mov [rip + history_view], rax
    mov ecx, eax
    call recall
    jmp .Lkey
.Lbackspace:
    mov rcx, [rip + line_len]
    test rcx, rcx
    jz .Lkey
    lea rdx, [rip + line_buf]
.Lpop:                                # drop one UTF-8 character
    dec rcx
    movzx eax, byte ptr [rdx + rcx]
    and eax, 0xC0
    cmp eax, 0x80
    jne .Lpopped
    test rcx, rcx
    jnz .Lpop
.Lpopped:
    mov [rip + line_len], rcx
    lea rcx, [rip + s_erase]
    call rt_print_cstr
    jmp .Lkey
.Lchar:
    cmp eax, 0x20
    jb .Lkey                          # other control characters are ignored
    lea rsi, [rip + utf8_tmp]         # UCS-2 -> UTF-8 (1 to 3 bytes)
    cmp eax, 0x80
    jae .Ltwo
    mov [rsi], al
    mov edx, 1
    jmp .Lappend
.Ltwo:
    cmp eax, 0x800
    jae .Lthree
    mov ecx, eax
    shr ecx, 6
    or ecx, 0xC0
    mov [rsi], cl
    and eax, 0x3F
    or eax, 0x80
    mov [rsi + 1], al
    mov edx, 2
    jmp .Lappend
.Lthree:
    mov ecx, eax
    shr ecx, 12
    or ecx, 0xE0
    mov [rsi], cl
    mov ecx, eax
    shr ecx, 6
    and ecx, 0x3F
    or ecx, 0x80
    mov [rsi + 1], cl
    and eax, 0x3F
    or eax, 0x80
    mov [rsi + 2], al
    mov edx, 3
.Lappend:
    mov rcx, [rip + line_len]
    lea rax, [rcx + rdx]
    cmp rax, LINE_MAX
    ja .Lkey                          # the line is full
    mov [rip + line_len], rax
    lea rax, [rip + line_buf]
    mov r8d, edx
.Lcopy:
    mov r9b, [rsi]
    mov [rax + rcx], r9b
    inc rsi
    inc rcx
    dec r8d
    jnz .Lcopy
    mov rcx, rsi                      # echo
    sub rcx, rdx
    call rt_print_utf8
    jmp .Lkey
.Lsubmit_typed:
    call remember_line
.Lsubmit:
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    lea rax, [rip + line_buf]
    mov rdx, [rip + line_len]
    add rsp, 40
    pop rsi
    pop rbx
    ret

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
    push rbx
    sub rsp, 32
    mov rbx, rcx
    lea rcx, [rip + s_usage]
    call rt_print_cstr
    mov rcx, [rbx + CMD_NAME]
    call rt_print_cstr
    mov rcx, [rbx + CMD_ARGS]
    cmp byte ptr [rcx], 0
    je .Lend
    lea rcx, [rip + s_space]
    call rt_print_cstr
    mov rcx, [rbx + CMD_ARGS]
    call rt_print_cstr
.Lend:
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    add rsp, 32
    pop rbx
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
    jne .Lnot_seed
    lea rcx, [rip + sess_sampler]     # a new seed restarts the random sequence
    mov rdx, [rip + set_seed]
    call sampler_seed
.Lnot_seed:
    mov rcx, [rbx + SET_PTR]
    lea rax, [rip + set_attn]
    cmp rcx, rax
    jne .Lshow
    mov ecx, [rip + cpu_features]
    mov edx, [rip + set_attn]
    call kernels_init
.Lshow:
    mov rcx, [rbx + SET_NAME]
    call rt_print_cstr
    lea rcx, [rip + s_eq]
    call rt_print_cstr
    mov rcx, rbx
    call settings_print_value
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    mov rax, [rbx + SET_PTR]
    lea rcx, [rip + set_attn]
    cmp rax, rcx
    jne .Lout
    call print_kernel_path
    jmp .Lout
.Lbad:
    lea rcx, [rip + s_bad_value]
    call rt_print_cstr
    mov rcx, rbx
    call settings_print_usage
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    mov rcx, r12
    call print_usage
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

cmd_ctx:
    sub rsp, 40
    call no_args
    test eax, eax
    jz .Lout
    lea rcx, [rip + s_ctx]
    call rt_print_cstr
    mov ecx, [rip + sess_pos]
    call rt_print_u64
    lea rcx, [rip + s_of]
    call rt_print_cstr
    mov ecx, [rip + sess_model + MODEL_CTX_LEN]
    call rt_print_u64
    lea rcx, [rip + s_tokens]
    call rt_print_cstr
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
    cmp dword ptr [rip + sess_tok + TOK_MAGIC], TOK_MAGIC_VALUE
    jne .Lno_tok
    mov rax, [rip + sess_prompt_buf]
    mov [rsp + 32], rax
    mov qword ptr [rsp + 40], TOK_SCRATCH_SLOTS
    lea rcx, [rip + sess_tok]
    mov rdx, rsi
    mov r8, rdi
    xor r9d, r9d
    call tok_encode
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
    neg eax
    mov ebx, eax
    lea rcx, [rip + s_tok_err]
    call rt_print_cstr
    mov ecx, ebx
    call tok_error_text
    mov rcx, rax
    call rt_print_cstr
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

# append_prompt(rcx = bytes, rdx = length): add to the multi-line prompt (cut at PROMPT_MAX)
append_prompt:
    sub rsp, 40
    mov r8, rdx
    mov rdx, rcx
    mov rax, [rip + prompt_len]
    mov r9d, PROMPT_MAX
    sub r9, rax
    cmp r8, r9
    cmova r8, r9
    lea rcx, [rip + prompt_buf]
    add rcx, rax
    add [rip + prompt_len], r8
    call rt_memcpy
    add rsp, 40
    ret

# repl_run(): the loop; returns never (/shutdown powers off)
repl_run:
    push rbx
    push rsi
    push rdi
    sub rsp, 32
    lea rcx, [rip + s_help_hint]
    call rt_print_cstr
    mov qword ptr [rip + prompt_len], 0
.Lloop:
    lea rcx, [rip + s_prompt]
    cmp qword ptr [rip + prompt_len], 0
    je .Lshow
    lea rcx, [rip + s_more]
.Lshow:
    call rt_print_cstr
    call repl_read_line
    mov rsi, rax
    mov rdi, rdx
    cmp qword ptr [rip + prompt_len], 0
    jne .Lgathering
    test rdi, rdi
    jz .Lplain
    cmp byte ptr [rsi], '/'
    jne .Lplain
    lea rcx, [rsi + 1]
    lea rdx, [rdi - 1]
    call run_command
    jmp .Lloop
.Lgathering:
    cmp rdi, 2                        # ";;" alone submits
    jne .Lplain
    cmp word ptr [rsi], 0x3B3B
    jne .Lplain
    jmp .Lsubmit
.Lplain:
    test rdi, rdi
    jz .Lwhole
    cmp byte ptr [rsi + rdi - 1], '\\'
    jne .Lwhole
    mov rcx, rsi                      # "text\" continues: gather it with a newline
    lea rdx, [rdi - 1]
    call append_prompt
    lea rcx, [rip + s_nl]
    mov edx, 1
    call append_prompt
    jmp .Lloop
.Lwhole:
    mov rcx, rsi
    mov rdx, rdi
    call append_prompt
.Lsubmit:
    lea rcx, [rip + prompt_buf]
    mov rdx, [rip + prompt_len]
    mov qword ptr [rip + prompt_len], 0
    call generate
    jmp .Lloop
