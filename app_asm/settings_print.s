# The settings as text (see settings.inc): a value as repl.cfg takes it, what a key accepts,
# /cfg's list with where each value came from, and the lines /save_cfg writes to repl.cfg.
# Only reads the table settings.s owns (settings_first).
.include "settings.inc"

.section .rdata
s_on:              .asciz "on"
s_off:             .asciz "off"
s_nl:              .asciz "\n"
s_comma:           .asciz ", "
s_u_number:        .asciz "a number from "
s_u_bool:          .asciz "on or off"
s_u_str:           .asciz "a file name (up to %u bytes, no control characters)"
s_u_text:          .asciz "text on one line (up to %u bytes; empty: none)"
s_u_u64:           .asciz "a whole number (0: from the clock)"
s_u_one_of:        .asciz "one of "
s_src_default:     .asciz "default"
s_src_cfg:         .asciz "repl.cfg"
s_src_command:     .asciz "command"
s_src_found:       .asciz "found on the volume"
s_setting:         .asciz "%s = "
s_setting_source:  .asciz "  (%s)\n"
s_range_f32:       .asciz " to "
s_range_u32:       .asciz "a whole number from %u to %u"
s_empty:           .asciz "(none)"
s_cfg_header:      .asciz "# repl.cfg written by /save_cfg\n"
.balign 8
source_names:      .quad s_src_default, s_src_cfg, s_src_command, s_src_found

.section .text
.global settings_print_setting, settings_print_usage, settings_print_all, settings_write_cfg
.extern settings_first, str_len, print_fixed, rt_print_cstr, rt_print_u64, rt_printf

# print_enum_name(rcx = names, edx = index)
print_enum_name:
    push rbx
    push rsi
    sub rsp, 40
    mov rbx, rcx
    mov esi, edx
.Lwalk:
    test esi, esi
    jz .Lprint
    cmp byte ptr [rbx], 0
    je .Lprint
    mov rcx, rbx
    call str_len
    lea rbx, [rbx + rax + 1]
    dec esi
    jmp .Lwalk
.Lprint:
    mov rcx, rbx
    call rt_print_cstr
    add rsp, 40
    pop rsi
    pop rbx
    ret

# settings_print_setting(rcx = entry): "key = value", as repl.cfg takes it
settings_print_setting:
    push rbx
    sub rsp, 32
    mov rbx, rcx
    lea rcx, [rip + s_setting]
    mov rdx, [rbx + SET_NAME]
    call rt_printf
    mov rcx, rbx
    call settings_print_value
    add rsp, 32
    pop rbx
    ret

# settings_print_value(rcx = entry)
settings_print_value:
    push rbx
    sub rsp, 32
    mov rbx, rcx
    mov rax, [rbx + SET_PTR]
    mov ecx, [rbx + SET_TYPE]
    cmp ecx, SET_T_F32
    jne .Lnot_f32
    movss xmm0, [rax]
    mov ecx, 3
    call print_fixed
    jmp .Lout
.Lnot_f32:
    cmp ecx, SET_T_U32
    jne .Lnot_u32
    mov ecx, [rax]
    call rt_print_u64
    jmp .Lout
.Lnot_u32:
    cmp ecx, SET_T_U64
    jne .Lnot_u64
    mov rcx, [rax]
    call rt_print_u64
    jmp .Lout
.Lnot_u64:
    cmp ecx, SET_T_BOOL
    jne .Lnot_bool
    lea rcx, [rip + s_off]
    cmp dword ptr [rax], 0
    je .Lprint_word
    lea rcx, [rip + s_on]
.Lprint_word:
    call rt_print_cstr
    jmp .Lout
.Lnot_bool:
    cmp ecx, SET_T_ENUM
    jne .Lstring
    mov rcx, [rbx + SET_ENUM]
    mov edx, [rax]
    call print_enum_name
    jmp .Lout
.Lstring:
    lea rcx, [rip + s_empty]
    cmp byte ptr [rax], 0
    je .Lprint_word
    mov rcx, rax
    call rt_print_cstr
.Lout:
    add rsp, 32
    pop rbx
    ret

# settings_print_usage(rcx = entry): what the key accepts
settings_print_usage:
    push rbx
    push rsi
    sub rsp, 40
    mov rbx, rcx
    mov eax, [rbx + SET_TYPE]
    cmp eax, SET_T_F32
    jne .Lnot_f32
    lea rcx, [rip + s_u_number]
    call rt_print_cstr
    movd xmm0, dword ptr [rbx + SET_MIN]
    mov ecx, 3
    call print_fixed
    lea rcx, [rip + s_range_f32]
    call rt_print_cstr
    movd xmm0, dword ptr [rbx + SET_MAX]
    mov ecx, 3
    call print_fixed
    jmp .Lout
.Lnot_f32:
    cmp eax, SET_T_U32
    jne .Lnot_u32
    lea rcx, [rip + s_range_u32]
    mov edx, [rbx + SET_MIN]
    mov r8d, [rbx + SET_MAX]
    call rt_printf
    jmp .Lout
.Lnot_u32:
    lea rcx, [rip + s_u_bool]
    cmp eax, SET_T_BOOL
    je .Lword
    cmp eax, SET_T_STR
    jne .Lnot_str
    lea rcx, [rip + s_u_str]
    mov edx, SET_STR_MAX - 1
    call rt_printf
    jmp .Lout
.Lnot_str:
    cmp eax, SET_T_TEXT
    jne .Lnot_text
    lea rcx, [rip + s_u_text]
    mov edx, SET_TEXT_MAX - 1
    call rt_printf
    jmp .Lout
.Lnot_text:
    lea rcx, [rip + s_u_u64]
    cmp eax, SET_T_U64
    je .Lword
    lea rcx, [rip + s_u_one_of]       # an enum: list its names
    call rt_print_cstr
    mov rsi, [rbx + SET_ENUM]
.Lname:
    mov rcx, rsi
    call rt_print_cstr
    mov rcx, rsi
    call str_len
    lea rsi, [rsi + rax + 1]
    cmp byte ptr [rsi], 0
    je .Lout
    lea rcx, [rip + s_comma]
    call rt_print_cstr
    jmp .Lname
.Lword:
    call rt_print_cstr
.Lout:
    add rsp, 40
    pop rsi
    pop rbx
    ret

# settings_print_all(): "key = value  (source)" for every key
settings_print_all:
    push rbx
    sub rsp, 32
    call settings_first
    mov rbx, rax
.Lnext:
    mov rcx, [rbx + SET_NAME]
    test rcx, rcx
    jz .Ldone
    mov rcx, rbx
    call settings_print_setting
    mov eax, [rbx + SET_SOURCE]
    lea rdx, [rip + source_names]
    mov rdx, [rdx + rax * 8]
    lea rcx, [rip + s_setting_source]
    call rt_printf
    add rbx, SET_ENTRY
    jmp .Lnext
.Ldone:
    add rsp, 32
    pop rbx
    ret

# settings_write_cfg(): "key = value" lines for every setting (empty file names left out), as
# repl.cfg takes them back
settings_write_cfg:
    push rbx
    sub rsp, 32
    lea rcx, [rip + s_cfg_header]
    call rt_print_cstr
    call settings_first
    mov rbx, rax
.Lnext:
    mov rcx, [rbx + SET_NAME]
    test rcx, rcx
    jz .Ldone
    cmp dword ptr [rbx + SET_SOURCE], SET_SRC_FOUND
    je .Lskip                         # what discovery found is found again at the next boot
    cmp dword ptr [rbx + SET_TYPE], SET_T_STR
    je .Lmaybe_empty
    cmp dword ptr [rbx + SET_TYPE], SET_T_TEXT
    jne .Lwrite
.Lmaybe_empty:
    mov rax, [rbx + SET_PTR]
    cmp byte ptr [rax], 0
    je .Lskip
.Lwrite:
    mov rcx, rbx
    call settings_print_setting
    lea rcx, [rip + s_nl]
    call rt_print_cstr
.Lskip:
    add rbx, SET_ENTRY
    jmp .Lnext
.Ldone:
    add rsp, 32
    pop rbx
    ret
