# The chat program's settings (see settings.inc for the interface): the values, the table
# that describes each key, a value's text checked and stored (settings_set), repl.cfg read
# (config_parse), the boot defaults kept and restored (/reset). Settings shown as text (a
# value, what a key accepts, /cfg, /save_cfg's lines): settings_print.s.
.include "settings.inc"
.include "chat_templates.inc"

.section .data
.balign 8
settings_values:                      # the values, contiguous: /reset copies the defaults back
.global set_temperature, set_top_p, set_top_k, set_min_p, set_repeat_penalty
.global set_no_repeat_ngram, set_max_tokens, set_seed, set_stats, set_stop_you, set_stop_nl
.global set_parse_special
.global set_attn, set_ctx_len, set_chat_format, set_model, set_tokenizer, set_autorun, set_budget
.global set_system_prompt, set_threads, set_kv_type, set_repack
set_seed:            .quad 0          # 0: from the clock at boot
set_temperature:     .float 1.0       # llama2.c's defaults
set_top_p:           .float 0.9
set_top_k:           .long 0          # 0: off
set_min_p:           .float 0.0       # 0: off
set_repeat_penalty:  .float 1.0       # 1: off
set_no_repeat_ngram: .long 0          # 0: off
set_max_tokens:      .long 256
set_stats:           .long 1
set_stop_you:        .long 1
set_stop_nl:         .long 0
set_parse_special:   .long 0          # typed special-token texts stay text
set_attn:            .long ATTN_AUTO
set_threads:         .long 0          # cores sharing the work; 0: all
set_ctx_len:         .long 0          # 0: the model's seq_len (shrunk if memory is short)
set_kv_type:         .long KV_AUTO    # the KV cache's element type, at the next model load
set_repack:          .long 1          # weights repacked to 8-row groups (AVX2), at the next model load
set_chat_format:     .long CHAT_AUTO      # the model's own format (raw without one)
set_budget:          .long 0          # ms per generation; 0: no limit
set_model:           .skip SET_STR_MAX
set_tokenizer:       .skip SET_STR_MAX
set_autorun:         .skip SET_STR_MAX
set_system_prompt:   .skip SET_TEXT_MAX   # empty: none (or the model template's default)
settings_values_end:

.balign 8
settings_table:
    .quad k_temperature, set_temperature
    .long SET_T_F32, 0, 0x00000000, 0x40A00000          # 0 .. 5
    .quad 0
    .quad k_top_p, set_top_p
    .long SET_T_F32, 0, 0x00000000, 0x3F800000          # 0 .. 1
    .quad 0
    .quad k_top_k, set_top_k
    .long SET_T_U32, 0, 0, 1048576
    .quad 0
    .quad k_min_p, set_min_p
    .long SET_T_F32, 0, 0x00000000, 0x3F800000          # 0 .. 1
    .quad 0
    .quad k_repeat_penalty, set_repeat_penalty
    .long SET_T_F32, 0, 0x3DCCCCCD, 0x41200000          # 0.1 .. 10
    .quad 0
    .quad k_no_repeat_ngram, set_no_repeat_ngram
    .long SET_T_U32, 0, 0, 16
    .quad 0
    .quad k_max_tokens, set_max_tokens
    .long SET_T_U32, 0, 1, 1048576
    .quad 0
    .quad k_seed, set_seed
    .long SET_T_U64, 0, 0, 0
    .quad 0
    .quad k_stats, set_stats
    .long SET_T_BOOL, 0, 0, 1
    .quad 0
    .quad k_stop_you, set_stop_you
    .long SET_T_BOOL, 0, 0, 1
    .quad 0
    .quad k_stop_nl, set_stop_nl
    .long SET_T_BOOL, 0, 0, 1
    .quad 0
    .quad k_parse_special, set_parse_special
    .long SET_T_BOOL, 0, 0, 1
    .quad 0
    .quad k_attn, set_attn
    .long SET_T_ENUM, 0, 0, 2
    .quad attn_names
    .quad k_threads, set_threads
    .long SET_T_U32, 0, 0, 1024
    .quad 0
    .quad k_ctx_len, set_ctx_len
    .long SET_T_U32, 0, 0, 1048576
    .quad 0
    .quad k_kv_type, set_kv_type
    .long SET_T_ENUM, 0, 0, KV_F32
    .quad kv_type_names
    .quad k_repack, set_repack
    .long SET_T_BOOL, 0, 0, 1
    .quad 0
    .quad k_chat_format, set_chat_format
    .long SET_T_ENUM, 0, 0, CHAT_AUTO
    .quad chat_format_names
    .quad k_budget, set_budget
    .long SET_T_U32, 0, 0, SET_BUDGET_MAX
    .quad 0
    .quad k_model, set_model
    .long SET_T_STR, 0, 0, 0
    .quad 0
    .quad k_tokenizer, set_tokenizer
    .long SET_T_STR, 0, 0, 0
    .quad 0
    .quad k_autorun, set_autorun
    .long SET_T_STR, 0, 0, 0
    .quad 0
    .quad k_system_prompt, set_system_prompt
    .long SET_T_TEXT, 0, 0, 0
    .quad 0
    .quad 0, 0                                           # end of the table
    .long 0, 0, 0, 0
    .quad 0

.section .bss
.balign 8
settings_defaults: .skip 16 * SET_STR_MAX  # a copy of the values as they were at boot

.section .rdata
k_temperature:     .asciz "temperature"
k_top_p:           .asciz "top_p"
k_top_k:           .asciz "top_k"
k_min_p:           .asciz "min_p"
k_repeat_penalty:  .asciz "repeat_penalty"
k_no_repeat_ngram: .asciz "no_repeat_ngram"
k_max_tokens:      .asciz "max_tokens"
k_seed:            .asciz "seed"
k_stats:           .asciz "stats"
k_stop_you:        .asciz "stop_you"
k_stop_nl:         .asciz "stop_nl"
k_parse_special:   .asciz "parse_special"
k_attn:            .asciz "attn"
k_threads:         .asciz "threads"
k_ctx_len:         .asciz "ctx_len"
k_kv_type:         .asciz "kv_type"
k_repack:          .asciz "repack"
k_chat_format:     .asciz "chat_format"
k_budget:          .asciz "budget"
k_model:           .asciz "model"
k_tokenizer:       .asciz "tokenizer"
k_autorun:         .asciz "autorun"
k_system_prompt:   .asciz "system_prompt"
attn_names:        .asciz "auto"
                   .asciz "sse2"
                   .asciz "avx2"
                   .byte 0
kv_type_names:     .asciz "auto"      # KV_AUTO, KV_F16, KV_F32
                   .asciz "f16"
                   .asciz "f32"
                   .byte 0
bool_words:        .asciz "0"
                   .asciz "1"
                   .asciz "off"
                   .asciz "on"
                   .asciz "false"
                   .asciz "true"
                   .asciz "no"
                   .asciz "yes"
                   .byte 0
s_cfg_noeq:        .asciz "repl.cfg:%u: expected key=value (line ignored)\n"
s_cfg_unknown:     .asciz "repl.cfg:%u: unknown key '%.*s' (line ignored)\n"
s_cfg_bad:         .asciz "repl.cfg:%u: bad value '%.*s' for %s: expected "
s_cfg_ignored:     .asciz " (line ignored)\n"

.section .text
.extern chat_format_names
.global settings_find, settings_set, config_parse, settings_first, settings_snapshot, settings_reset
.extern str_eq, str_len, trim, parse_float, parse_uint, str_copy, mem_ieq
.extern rt_print_cstr, rt_memcpy, rt_printf, text_skip_bom, text_line, settings_print_usage

# settings_first() -> rax = the first table entry
settings_first:
    lea rax, [rip + settings_table]
    ret

# settings_find(rcx = name, rdx = length) -> rax = entry or 0
settings_find:
    push rbx
    push rsi
    push rdi
    sub rsp, 32
    mov rsi, rcx
    mov rdi, rdx
    lea rbx, [rip + settings_table]
.Lnext:
    mov r8, [rbx + SET_NAME]
    test r8, r8
    jz .Lnone
    mov rcx, rsi
    mov rdx, rdi
    call str_eq
    test eax, eax
    jnz .Lfound
    add rbx, SET_ENTRY
    jmp .Lnext
.Lfound:
    mov rax, rbx
    jmp .Lout
.Lnone:
    xor eax, eax
.Lout:
    add rsp, 32
    pop rdi
    pop rsi
    pop rbx
    ret

# enum_index(rcx = text, rdx = length, r8 = names "a\0b\0\0") -> eax = index or -1
# (case-insensitive)
enum_index:
    push rbx
    push rsi
    push rdi
    push r12
    sub rsp, 40
    mov rsi, rcx
    mov rdi, rdx
    mov rbx, r8
    xor r12d, r12d
.Lname:
    cmp byte ptr [rbx], 0
    je .Lnone
    mov rcx, rbx
    call str_len
    cmp rax, rdi
    jne .Lskip
    mov rcx, rsi
    mov rdx, rbx
    mov r8, rdi
    call mem_ieq
    test eax, eax
    jz .Lskip
    mov eax, r12d
    jmp .Lout
.Lskip:
    mov rcx, rbx
    call str_len
    lea rbx, [rbx + rax + 1]
    inc r12d
    jmp .Lname
.Lnone:
    mov eax, -1
.Lout:
    add rsp, 40
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret

# settings_set(rcx = entry, rdx = text, r8 = length, r9d = source) -> eax = 1 ok, 0 bad
settings_set:
    push rbx
    push rsi
    push rdi
    push r12
    sub rsp, 56
    mov rbx, rcx
    mov rsi, rdx
    mov rdi, r8
    mov r12d, r9d
    mov eax, [rbx + SET_TYPE]
    cmp eax, SET_T_F32
    je .Lf32
    cmp eax, SET_T_U32
    je .Lu32
    cmp eax, SET_T_U64
    je .Lu64
    cmp eax, SET_T_BOOL
    je .Lbool
    cmp eax, SET_T_ENUM
    je .Lenum
    cmp eax, SET_T_TEXT
    je .Ltext
    # string: a file name, not empty; text: may be empty. Both must fit their storage (r9d
    # bytes with the NUL) and hold no control bytes (a NUL would cut them short).
    test rdi, rdi
    jz .Lbad
    mov r9d, SET_STR_MAX
    jmp .Lchars
.Ltext:
    mov r9d, SET_TEXT_MAX
.Lchars:
    lea rax, [r9 - 1]
    cmp rdi, rax
    ja .Lbad
    xor ecx, ecx
.Lchar:
    cmp rcx, rdi
    jae .Lcopy
    cmp byte ptr [rsi + rcx], 0x20
    jb .Lbad
    inc rcx
    jmp .Lchar
.Lcopy:
    mov rcx, [rbx + SET_PTR]
    mov rdx, rsi
    mov r8, rdi
    call str_copy                     # r9d: the storage's size
    jmp .Lgood
.Lf32:
    mov rcx, rsi
    mov rdx, rdi
    lea r8, [rsp + 32]
    call parse_float
    test eax, eax
    jz .Lbad
    movss xmm0, [rsp + 32]
    movd xmm1, dword ptr [rbx + SET_MIN]
    comiss xmm0, xmm1
    jb .Lbad                          # below the minimum (or NaN)
    movd xmm1, dword ptr [rbx + SET_MAX]
    comiss xmm1, xmm0
    jb .Lbad
    mov rax, [rbx + SET_PTR]
    movss [rax], xmm0
    jmp .Lgood
.Lu32:
    mov rcx, rsi
    mov rdx, rdi
    lea r8, [rsp + 32]
    call parse_uint
    test eax, eax
    jz .Lbad
    mov rax, [rsp + 32]
    mov ecx, [rbx + SET_MIN]
    cmp rax, rcx
    jb .Lbad
    mov ecx, [rbx + SET_MAX]
    cmp rax, rcx
    ja .Lbad
    mov rcx, [rbx + SET_PTR]
    mov [rcx], eax
    jmp .Lgood
.Lu64:
    mov rcx, rsi
    mov rdx, rdi
    lea r8, [rsp + 32]
    call parse_uint
    test eax, eax
    jz .Lbad
    mov rax, [rsp + 32]
    mov rcx, [rbx + SET_PTR]
    mov [rcx], rax
    jmp .Lgood
.Lbool:
    mov rcx, rsi
    mov rdx, rdi
    lea r8, [rip + bool_words]
    call enum_index
    cmp eax, -1
    je .Lbad
    and eax, 1                        # words alternate false, true
    mov rcx, [rbx + SET_PTR]
    mov [rcx], eax
    jmp .Lgood
.Lenum:
    mov rcx, rsi
    mov rdx, rdi
    mov r8, [rbx + SET_ENUM]
    call enum_index
    cmp eax, -1
    je .Lbad
    mov rcx, [rbx + SET_PTR]
    mov [rcx], eax
.Lgood:
    mov [rbx + SET_SOURCE], r12d
    mov eax, 1
    jmp .Lout
.Lbad:
    xor eax, eax
.Lout:
    add rsp, 56
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret

# config_parse(rcx = text, rdx = length): apply repl.cfg; report and skip bad lines
config_parse:
    push rbx
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, 48
    call text_skip_bom                # a BOM (Notepad) is not part of the first key
    mov rsi, rax                      # cursor
    lea rdi, [rax + rdx]              # end
    xor r12d, r12d                    # line number
.Lline:
    cmp rsi, rdi
    jae .Ldone
    inc r12d
    mov rcx, rsi                      # the line (LF, CR LF or CR ends it); then any '#'
    mov rdx, rdi
    call text_line
    mov rbx, rax
    lea r13, [rax + rdx]
    mov rsi, r8                       # next line
    mov r14, rbx                      # cut at '#'
.Lhash:
    cmp r14, r13
    jae .Lcut
    cmp byte ptr [r14], '#'
    je .Lcut
    inc r14
    jmp .Lhash
.Lcut:
    mov rcx, rbx
    mov rdx, r14
    sub rdx, rbx
    call trim
    test rdx, rdx
    jz .Lline                         # blank or comment
    mov rbx, rax                      # the statement
    mov r13, rdx
    xor r14d, r14d                    # find '='
.Leq:
    cmp r14, r13
    jae .Lno_eq
    cmp byte ptr [rbx + r14], '='
    je .Lsplit
    inc r14
    jmp .Leq
.Lsplit:
    mov rcx, rbx                      # key = trim(statement[0:eq])
    mov rdx, r14
    call trim
    mov [rsp + 32], rax
    mov [rsp + 40], rdx
    lea rcx, [rbx + r14 + 1]          # value = trim(statement[eq+1:])
    mov rdx, r13
    sub rdx, r14
    dec rdx
    call trim
    mov rbx, rax
    mov r13, rdx
    mov rcx, [rsp + 32]
    mov rdx, [rsp + 40]
    call settings_find
    test rax, rax
    jz .Lunknown
    mov r15, rax
    mov rcx, rax
    mov rdx, rbx
    mov r8, r13
    mov r9d, SET_SRC_CFG
    call settings_set
    test eax, eax
    jnz .Lline
    lea rcx, [rip + s_cfg_bad]        # repl.cfg:N: bad value 'v' for key: expected ...
    mov edx, r12d
    mov r8, r13
    mov r9, rbx
    mov rax, [r15 + SET_NAME]
    mov [rsp + 32], rax
    call rt_printf
    mov rcx, r15
    call settings_print_usage
    lea rcx, [rip + s_cfg_ignored]
    call rt_print_cstr
    jmp .Lline
.Lunknown:
    lea rcx, [rip + s_cfg_unknown]
    mov edx, r12d
    mov r8, [rsp + 40]
    mov r9, [rsp + 32]
    call rt_printf
    jmp .Lline
.Lno_eq:
    lea rcx, [rip + s_cfg_noeq]
    mov edx, r12d
    call rt_printf
    jmp .Lline
.Ldone:
    add rsp, 48
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret

# settings_snapshot(): remember the current values as the defaults /reset returns to (called
# at boot, before repl.cfg is read)
settings_snapshot:
    sub rsp, 40
    lea rcx, [rip + settings_defaults]
    lea rdx, [rip + settings_values]
    lea r8, [rip + settings_values_end]
    sub r8, rdx
    call rt_memcpy
    add rsp, 40
    ret

# settings_reset(): every value back to its boot default, every source back to "default"
settings_reset:
    sub rsp, 40
    lea rcx, [rip + settings_values]
    lea rdx, [rip + settings_defaults]
    lea r8, [rip + settings_values_end]
    sub r8, rcx
    call rt_memcpy
    lea rax, [rip + settings_table]
.Lentry:
    cmp qword ptr [rax + SET_NAME], 0
    je .Ldone
    mov dword ptr [rax + SET_SOURCE], SET_SRC_DEFAULT
    add rax, SET_ENTRY
    jmp .Lentry
.Ldone:
    add rsp, 40
    ret
