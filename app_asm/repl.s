# The REPL: reads lines (from the autorun file first, then the keyboard with line editing),
# runs /commands (commands.s), and hands everything else to the model as a prompt.
#
# Input rules: Enter submits; a line ending in '\' continues on the next line (the prompt
# gets a newline there); ";;" alone submits what has been gathered so far.
.include "uefi.inc"
.include "runtime.inc"
.include "settings.inc"

.equ LINE_MAX, 4096                   # bytes of one typed line
.equ PROMPT_MAX, 16384                # bytes of a multi-line prompt
.equ HISTORY_LINES, 8                 # up/down recall
.equ TYPEAHEAD, 256                   # keys typed during a generation (more are dropped)

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
.balign 4
typeahead:     .skip TYPEAHEAD * 4    # keys read while generating, kept for the next line
ta_first:      .skip 4
ta_count:      .skip 4

.section .rdata
s_prompt:      .asciz "> "
s_more:        .asciz "... "
s_nl:          .asciz "\n"
s_erase:       .asciz "\b \b"
s_autorun_txt: .asciz "autorun.txt"
s_cannot:      .asciz "autorun: cannot read "
s_help_hint:   .asciz "type /help for commands\n"

.section .text
.global repl_read_line, repl_run, repl_load_autorun, repl_poll_stop
.extern rt_read_key, rt_poll_key, rt_print_cstr, rt_print_utf8, rt_memcpy, set_autorun, vol_read_file
.extern vol_print_status, generate, run_command

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
    call vol_read_file
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
    call vol_print_status
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

# repl_poll_stop() -> eax = 1 when Esc has been pressed. Called between tokens: other keys
# that arrive meanwhile are kept, in order, for the next line (UEFI cannot peek at a key).
repl_poll_stop:
    sub rsp, 40
.Lpoll:
    call rt_poll_key
    cmp eax, -1
    je .Lno
    mov ecx, eax
    shr ecx, 16
    cmp ecx, SCAN_ESC
    je .Lstop
    mov ecx, [rip + ta_count]
    cmp ecx, TYPEAHEAD
    jae .Lpoll                        # full: drop it
    add ecx, [rip + ta_first]
    and ecx, TYPEAHEAD - 1
    lea rdx, [rip + typeahead]
    mov [rdx + rcx * 4], eax
    inc dword ptr [rip + ta_count]
    jmp .Lpoll
.Lstop:
    mov eax, 1
    jmp .Lout
.Lno:
    xor eax, eax
.Lout:
    add rsp, 40
    ret

# next_key() -> eax = (ScanCode << 16) | UnicodeChar: a key typed ahead, else one from ConIn
next_key:
    sub rsp, 40
    mov ecx, [rip + ta_count]
    test ecx, ecx
    jz .Lwait
    mov ecx, [rip + ta_first]
    lea rdx, [rip + typeahead]
    mov eax, [rdx + rcx * 4]
    inc ecx
    and ecx, TYPEAHEAD - 1
    mov [rip + ta_first], ecx
    dec dword ptr [rip + ta_count]
    jmp .Lout
.Lwait:
    call rt_read_key
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
    call next_key
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
    cmp ebx, SCAN_DELETE              # a serial terminal's DEL (0x7f, the Backspace key of
    je .Lbackspace                    # most terminal emulators) arrives as this scan code
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
