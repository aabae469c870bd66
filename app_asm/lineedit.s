# Typing a line at the keyboard: the keys keyboard.s decodes become an edited line, with
# recall, and keys typed during a generation are kept for the next line.
#
# Keys: printable characters are added (as UTF-8), Enter (CR, LF or CR LF, folded into one by
# keyboard.s) ends the line, Backspace (BS, DEL, or a serial terminal's SCAN_DELETE) erases
# one character, Up/Down recall the last HISTORY_LINES lines, Esc and Ctrl-U clear the line.
# Every other key is said on one line and the line shown again under its prompt; so is each
# limit reached (the line's length, once per line; keys typed ahead beyond TYPEAHEAD, at the
# next line): nothing typed is dropped in silence.
.include "uefi.inc"
.include "repl.inc"

.equ HISTORY_LINES, 8                 # up/down recall
.equ TYPEAHEAD, 4096                  # keys typed during a generation (more are dropped, and
                                      # the next line says how many)
.equ CTRL_U, 0x15
.equ CHAR_DEL, 0x7F

.section .bss
.balign 8
.global line_buf, line_len
line_buf:      .skip LINE_MAX + 8
line_len:      .skip 8
history:       .skip HISTORY_LINES * LINE_MAX
history_lens:  .skip HISTORY_LINES * 8
history_count: .skip 8                # lines stored (saturates at HISTORY_LINES)
history_next:  .skip 8                # slot the next line goes to
history_view:  .skip 8                # how far back up/down has gone (0 = the new line)
utf8_tmp:      .skip 8
cur_prompt:    .skip 8                # the prompt on screen (shown again after a report)
typeahead:     .skip TYPEAHEAD * 8    # keys read while generating: (character, scan code)
ta_first:      .skip 4
ta_count:      .skip 4
ta_dropped:    .skip 4                # keys that found the typeahead full
line_full_said: .skip 4               # the line-length limit was reported for this line

.section .rdata
s_erase:       .asciz "\b \b"
s_line_full:   .asciz "\n[line full: %u bytes at most; what follows is not added]\n"
s_ta_dropped:  .asciz "[%u keys typed during the generation were not kept: %u at most are]\n"
s_key_unused:  .asciz "\n[%s%u: not used here; keys: Enter, Backspace, Up/Down (recall), Esc (clear the line)]\n"
s_key_unused_named: .asciz "\n[%s: not used here; keys: Enter, Backspace, Up/Down (recall), Esc (clear the line)]\n"
s_scan_code:   .asciz "scan code "
s_ctrl:        .asciz "control character "
s_key_tab:     .asciz "Tab"
.balign 8
scan_names:                           # EFI scan codes 0 .. SCAN_ESC
    .quad 0, k_up, k_down, k_right, k_left, k_home, k_end, k_insert, 0, k_page_up, k_page_down
    .quad k_f1, k_f2, k_f3, k_f4, k_f5, k_f6, k_f7, k_f8, k_f9, k_f10, k_f11, k_f12, 0
k_up:          .asciz "Up"
k_down:        .asciz "Down"
k_right:       .asciz "Right (cursor keys do not move in the line)"
k_left:        .asciz "Left (cursor keys do not move in the line)"
k_home:        .asciz "Home"
k_end:         .asciz "End"
k_insert:      .asciz "Insert"
k_page_up:     .asciz "Page Up"
k_page_down:   .asciz "Page Down"
k_f1:          .asciz "F1"
k_f2:          .asciz "F2"
k_f3:          .asciz "F3"
k_f4:          .asciz "F4"
k_f5:          .asciz "F5"
k_f6:          .asciz "F6"
k_f7:          .asciz "F7"
k_f8:          .asciz "F8"
k_f9:          .asciz "F9"
k_f10:         .asciz "F10"
k_f11:         .asciz "F11"
k_f12:         .asciz "F12"

.section .text
.global line_edit, repl_poll_stop, repl_prompt
.extern rt_read_key, rt_poll_key, rt_print_cstr, rt_print_utf8, rt_printf, rt_memcpy

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
# that arrive meanwhile are kept, in order, for the next line (UEFI cannot peek at a key);
# beyond TYPEAHEAD they are counted, and the next prompt says how many were lost.
repl_poll_stop:
    sub rsp, 40
.Lpoll:
    call rt_poll_key
    cmp eax, -1
    je .Lno
    cmp edx, SCAN_ESC
    je .Lstop
    mov ecx, [rip + ta_count]
    cmp ecx, TYPEAHEAD
    jb .Lroom
    inc dword ptr [rip + ta_dropped]
    jmp .Lpoll
.Lroom:
    add ecx, [rip + ta_first]
    and ecx, TYPEAHEAD - 1
    lea r8, [rip + typeahead]
    mov [r8 + rcx * 8], eax
    mov [r8 + rcx * 8 + 4], edx
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

# next_key() -> eax = character (code point), edx = scan code: a key typed ahead, else one
# from ConIn (rt_read_key)
next_key:
    sub rsp, 40
    mov ecx, [rip + ta_count]
    test ecx, ecx
    jz .Lwait
    mov ecx, [rip + ta_first]
    lea r8, [rip + typeahead]
    mov eax, [r8 + rcx * 8]
    mov edx, [r8 + rcx * 8 + 4]
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

# repl_prompt(rcx = NUL-terminated prompt): prints it and remembers it, so the line can be
# shown again under it after a report
repl_prompt:
    mov [rip + cur_prompt], rcx
    jmp rt_print_cstr

# redisplay(): the prompt and the line typed so far, on a fresh line
redisplay:
    sub rsp, 40
    mov rcx, [rip + cur_prompt]
    test rcx, rcx
    jz .Lline
    call rt_print_cstr
.Lline:
    lea rcx, [rip + line_buf]
    mov rdx, [rip + line_len]
    call rt_print_utf8
    add rsp, 40
    ret

# report_key(eax = character, edx = scan code): one line naming a key that does nothing here,
# then the line again
report_key:
    sub rsp, 40
    test eax, eax
    jz .Lscan
    lea rcx, [rip + s_key_unused_named]
    lea rdx, [rip + s_key_tab]
    cmp eax, CHAR_TAB
    je .Lsay
    lea rcx, [rip + s_key_unused]     # "control character N"
    mov r8d, eax
    lea rdx, [rip + s_ctrl]
    jmp .Lsay
.Lscan:
    lea rcx, [rip + s_key_unused]     # "scan code N", or its name when it has one
    mov r8d, edx
    lea rdx, [rip + s_scan_code]
    cmp r8d, SCAN_ESC
    ja .Lsay
    lea rax, [rip + scan_names]
    mov rax, [rax + r8 * 8]
    test rax, rax
    jz .Lsay
    lea rcx, [rip + s_key_unused_named]
    mov rdx, rax
.Lsay:
    call rt_printf
    call redisplay
    add rsp, 40
    ret

# line_edit() -> the line typed in line_buf/line_len (Enter ends it; it goes into the recall
# ring). The caller has printed the prompt (repl_prompt); the newline after Enter is the
# caller's to print.
line_edit:
    push rbx
    push rsi
    sub rsp, 40
    mov qword ptr [rip + line_len], 0
    mov qword ptr [rip + history_view], 0
    mov dword ptr [rip + line_full_said], 0
    mov edx, [rip + ta_dropped]
    test edx, edx
    jz .Lkey
    mov dword ptr [rip + ta_dropped], 0
    lea rcx, [rip + s_ta_dropped]
    mov r8d, TYPEAHEAD
    call rt_printf
    call redisplay
.Lkey:
    call next_key
    mov ebx, edx                      # scan code
    cmp eax, CHAR_CARRIAGE_RETURN     # Enter (keyboard.s folds LF and CR LF into it)
    je .Lsubmit_typed
    cmp eax, CHAR_BACKSPACE
    je .Lbackspace
    cmp eax, CHAR_DEL
    je .Lbackspace
    test eax, eax
    jnz .Lchar
    cmp ebx, SCAN_DELETE              # a serial terminal's DEL (0x7f, the Backspace key of
    je .Lbackspace                    # most terminal emulators) arrives as this scan code
    cmp ebx, SCAN_UP
    je .Lup
    cmp ebx, SCAN_DOWN
    je .Ldown
    cmp ebx, SCAN_ESC
    je .Lclear
    mov edx, ebx
    call report_key
    jmp .Lkey
.Lclear:
    call erase_line
    mov dword ptr [rip + line_full_said], 0
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
    mov dword ptr [rip + line_full_said], 0
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
    cmp eax, CTRL_U
    je .Lclear
    cmp eax, 0x20
    jae .Lprintable
    xor edx, edx                      # other control characters: said, not added
    call report_key
    jmp .Lkey
.Lprintable:
    lea rsi, [rip + utf8_tmp]         # code point -> UTF-8 (1 to 4 bytes, RFC 3629)
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
    cmp eax, 0x10000
    jae .Lfour
    mov ecx, eax
    shr ecx, 12
    or ecx, 0xE0
    mov [rsi], cl
    mov edx, 3
    jmp .Ltail2
.Lfour:
    mov ecx, eax
    shr ecx, 18
    or ecx, 0xF0
    mov [rsi], cl
    mov ecx, eax
    shr ecx, 12
    and ecx, 0x3F
    or ecx, 0x80
    mov [rsi + 1], cl
    inc rsi
    mov edx, 4
.Ltail2:                              # the last two bytes of a 3- or 4-byte sequence
    mov ecx, eax
    shr ecx, 6
    and ecx, 0x3F
    or ecx, 0x80
    mov [rsi + 1], cl
    and eax, 0x3F
    or eax, 0x80
    mov [rsi + 2], al
    lea rsi, [rip + utf8_tmp]
.Lappend:
    mov rcx, [rip + line_len]
    lea rax, [rcx + rdx]
    cmp rax, LINE_MAX
    ja .Lfull
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
.Lfull:                               # said once per line; later keys are not added either
    cmp dword ptr [rip + line_full_said], 0
    jne .Lkey
    mov dword ptr [rip + line_full_said], 1
    lea rcx, [rip + s_line_full]
    mov edx, LINE_MAX
    call rt_printf
    call redisplay
    jmp .Lkey
.Lsubmit_typed:
    call remember_line
    add rsp, 40
    pop rsi
    pop rbx
    ret

