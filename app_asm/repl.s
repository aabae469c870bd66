# The REPL: reads lines (from the autorun file first, then the keyboard: lineedit.s), runs
# /commands (commands.s), and hands everything else to the model as a prompt.
#
# Input rules: Enter submits; a line ending in '\\' continues on the next line (the prompt
# gets a newline there); ";;" alone submits what has been gathered so far. Autorun lines end
# at LF, CR LF or CR (a BOM first is skipped); one over LINE_MAX bytes is cut and said; so is
# a gathered prompt reaching PROMPT_MAX.
.include "uefi.inc"
.include "repl.inc"
.include "runtime.inc"
.include "settings.inc"

.equ PROMPT_MAX, 16384                # bytes of a multi-line prompt

.section .bss
.balign 8
prompt_buf:    .skip PROMPT_MAX + 8
prompt_len:    .skip 8
auto_buf:      .skip 8                # the autorun file, read whole
auto_len:      .skip 8
auto_pos:      .skip 8
auto_line_no:  .skip 8
auto_name:     .skip 8                # the autorun file's name, for messages
prompt_cut:    .skip 4                # the gathered prompt reached PROMPT_MAX

.section .rdata
s_prompt:      .asciz "> "
s_more:        .asciz "... "
s_nl:          .asciz "\n"
s_autorun_txt: .asciz "autorun.txt"
s_cannot:      .asciz "autorun: cannot read "
s_help_hint:   .asciz "type /help for commands\n"
s_auto_long:   .asciz "%s:%u: line longer than %u bytes: cut there\n"
s_prompt_full: .asciz "[prompt full: %u bytes at most; the rest was not added]\n"

.section .text
.global repl_read_line, repl_run, repl_load_autorun, repl_autorun_pending
.extern rt_print_cstr, rt_print_utf8, rt_printf, rt_memcpy, set_autorun, vol_read_file, vol_print_status
.extern generate, run_command, text_skip_bom, text_line, line_edit, line_buf, line_len, repl_prompt

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
    mov [rip + auto_name], rbx
    mov rcx, rbx
    lea rdx, [rip + auto_len]
    call vol_read_file
    mov [rip + auto_buf], rax
    mov qword ptr [rip + auto_pos], 0
    mov qword ptr [rip + auto_line_no], 0
    test rax, rax
    jz .Lmissing
    mov rcx, rax                      # a BOM is not part of the first line
    mov rdx, [rip + auto_len]
    call text_skip_bom
    sub rax, [rip + auto_buf]
    mov [rip + auto_pos], rax
    jmp .Lout
.Lmissing:
    mov qword ptr [rip + auto_len], 0
    lea rax, [rip + set_autorun]      # only a configured file is missed out loud
    cmp byte ptr [rax], 0
    je .Lout
    lea rcx, [rip + s_cannot]
    call rt_print_cstr
    mov rcx, rbx
    call rt_print_cstr
    call vol_print_status
    lea rcx, [rip + s_nl]
    call rt_print_cstr
.Lout:
    add rsp, 32
    pop rbx
    ret

# repl_autorun_pending() -> eax = 1 while autorun lines remain (the picker then must not wait
# for the keyboard: an autorun boot runs unattended)
repl_autorun_pending:
    xor eax, eax
    cmp qword ptr [rip + auto_buf], 0
    je .Lout
    mov rcx, [rip + auto_pos]
    cmp rcx, [rip + auto_len]
    setb al
.Lout:
    ret

# next_autorun_line() -> eax = 1 and the line in line_buf/line_len, or 0 when none is left.
# Lines end at LF, CR LF or CR; a line over LINE_MAX bytes is cut there, and says so.
next_autorun_line:
    push rbx
    push rsi
    push rdi
    sub rsp, 32
    mov rsi, [rip + auto_buf]
    test rsi, rsi
    jz .Lnone
    mov rcx, [rip + auto_pos]
    mov rdx, [rip + auto_len]
    cmp rcx, rdx
    jae .Lnone
    add rcx, rsi
    add rdx, rsi
    call text_line                    # rax = start, rdx = length, r8 = next
    sub r8, rsi
    mov [rip + auto_pos], r8
    inc qword ptr [rip + auto_line_no]
    mov rbx, rax
    mov rdi, rdx
    cmp rdi, LINE_MAX
    jbe .Lcopy
    mov edi, LINE_MAX
    lea rcx, [rip + s_auto_long]
    mov rdx, [rip + auto_name]
    mov r8, [rip + auto_line_no]
    mov r9d, LINE_MAX
    call rt_printf
.Lcopy:
    mov [rip + line_len], rdi
    lea rcx, [rip + line_buf]
    mov rdx, rbx
    mov r8, rdi
    call rt_memcpy
    mov eax, 1
    jmp .Lout
.Lnone:
    xor eax, eax
.Lout:
    add rsp, 32
    pop rdi
    pop rsi
    pop rbx
    ret

# repl_read_line() -> rax = line bytes, rdx = length (valid until the next call). The
# caller has printed the prompt. An autorun line is echoed as if typed.
repl_read_line:
    sub rsp, 40
    call next_autorun_line
    test eax, eax
    jz .Lkeyboard
    lea rcx, [rip + line_buf]
    mov rdx, [rip + line_len]
    call rt_print_utf8
    jmp .Lsubmit
.Lkeyboard:
    call line_edit
.Lsubmit:
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    lea rax, [rip + line_buf]
    mov rdx, [rip + line_len]
    add rsp, 40
    ret

# append_prompt(rcx = bytes, rdx = length): add to the multi-line prompt (cut at PROMPT_MAX;
# the first cut says so)
append_prompt:
    sub rsp, 40
    mov r8, rdx
    mov rdx, rcx
    mov rax, [rip + prompt_len]
    mov r9d, PROMPT_MAX
    sub r9, rax
    cmp r8, r9
    jbe .Lfits
    mov r8, r9
    cmp dword ptr [rip + prompt_cut], 0
    jne .Lfits
    mov dword ptr [rip + prompt_cut], 1
    mov [rsp + 32], rdx
    mov [rsp + 48], r8                # (our own home slots)
    lea rcx, [rip + s_prompt_full]
    mov edx, PROMPT_MAX
    call rt_printf
    mov rdx, [rsp + 32]
    mov r8, [rsp + 48]
    mov rax, [rip + prompt_len]
.Lfits:
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
    call repl_prompt
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
    mov dword ptr [rip + prompt_cut], 0
    call generate
    jmp .Lloop
