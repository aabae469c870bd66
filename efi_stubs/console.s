# Console output. The app speaks UTF-8; UEFI's ConOut takes UCS-2. rt_print_utf8 decodes
# into a staging buffer and hands it to OutputString in chunks. The decoder's state lives
# across calls, so a character whose bytes arrive in two tokens still prints as one
# character. "\n" becomes "\r\n" (UEFI consoles need both). Characters outside the BMP and
# malformed sequences print as U+FFFD, since UCS-2 cannot hold them.
.include "uefi.inc"

.equ CON_BUF_UNITS, 256               # staging buffer, UCS-2 units (+ terminator)
.equ REPLACEMENT_CHAR, 0xFFFD

.section .bss
.balign 16
con_buf:        .skip 2 * (CON_BUF_UNITS + 4)
con_digits:     .skip 32

.section .data
.balign 8
capture_buf:    .quad 0               # rt_capture_begin: output goes here instead of ConOut
capture_cap:    .quad 0
capture_len:    .quad 0
utf8_codepoint: .long 0               # bits gathered so far of a multi-byte character
utf8_pending:   .long 0               # continuation bytes still expected

.section .text
.global rt_print_ucs2, rt_print_utf8, rt_print_cstr, rt_print_u64, rt_capture_begin, rt_capture_end
.global rt_printf
.extern rt_con_out, fmt_emit

# rt_printf(rcx = format, rdx, r8, r9, then stack arguments as for any call): the formatted
# text to the console (or the capture buffer), through rt_print_utf8. The directives (%s,
# %.*s, %u, %d, %x, %h, %%) and their 64-bit arguments are described in format.s.
# Preserves the callee-saved registers.
rt_printf:
    mov [rsp + 16], rdx               # spill the register arguments to their home slots, so
    mov [rsp + 24], r8                # that all arguments lie in one array
    mov [rsp + 32], r9
    sub rsp, 40
    lea rdx, [rsp + 40 + 16]
    lea r8, [rip + console_sink]
    xor r9d, r9d
    call fmt_emit
    add rsp, 40
    ret

# console_sink(rcx = unused context, rdx = bytes, r8 = length): fmt_emit's sink for rt_printf
console_sink:
    mov rcx, rdx
    mov rdx, r8
    jmp rt_print_utf8

# rt_print_ucs2(rcx = NUL-terminated UCS-2 string): ConOut->OutputString as is.
rt_print_ucs2:
    sub rsp, 40
    mov rdx, rcx
    mov rcx, [rip + rt_con_out]
    call qword ptr [rcx + EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL_OutputString]
    add rsp, 40
    ret

# rt_print_cstr(rcx = NUL-terminated UTF-8 string)
rt_print_cstr:
    mov rdx, rcx
.Lscan:
    cmp byte ptr [rdx], 0
    je .Lfound
    inc rdx
    jmp .Lscan
.Lfound:
    sub rdx, rcx
    jmp rt_print_utf8

# rt_print_u64(rcx = value): unsigned decimal.
rt_print_u64:
    lea r8, [rip + con_digits + 31]
    mov rax, rcx
    mov r9, r8
    mov ecx, 10
.Ldigit:
    xor edx, edx
    div rcx
    add dl, '0'
    dec r8
    mov [r8], dl
    test rax, rax
    jnz .Ldigit
    mov rcx, r8
    mov rdx, r9
    sub rdx, r8
    jmp rt_print_utf8

# rt_capture_begin(rcx = buffer, rdx = capacity): until rt_capture_end, rt_print_utf8 (and
# everything built on it) appends its UTF-8 bytes to the buffer instead of printing them, so
# the same printing code can write a file (/save_dump, /save_cfg). Bytes past the capacity
# are dropped.
rt_capture_begin:
    mov [rip + capture_buf], rcx
    mov [rip + capture_cap], rdx
    mov qword ptr [rip + capture_len], 0
    ret

# rt_capture_end() -> rax = bytes captured; printing goes to the console again
rt_capture_end:
    mov qword ptr [rip + capture_buf], 0
    mov rax, [rip + capture_len]
    ret

# rt_print_utf8(rcx = bytes, rdx = length). Preserves the callee-saved registers it uses.
rt_print_utf8:
    mov rax, [rip + capture_buf]
    test rax, rax
    jnz .Lcapture
    push rbx
    push rsi
    push rdi
    push r12
    push r13
    sub rsp, 32                       # 5 pushes + return address: rsp is 16-aligned after this
    mov rsi, rcx                      # next input byte
    lea r12, [rcx + rdx]              # end of input
    lea rbx, [rip + con_buf]          # staging buffer
    xor edi, edi                      # units in the buffer
    mov r13d, [rip + utf8_pending]
.Lnext_byte:
    cmp rsi, r12
    jae .Ldone
    movzx eax, byte ptr [rsi]
    inc rsi
    test r13d, r13d
    jz .Llead
    # inside a multi-byte character: expect a continuation byte 10xxxxxx
    mov ecx, eax
    and ecx, 0xC0
    cmp ecx, 0x80
    jne .Lbroken
    mov ecx, [rip + utf8_codepoint]
    shl ecx, 6
    and eax, 0x3F
    or eax, ecx
    mov [rip + utf8_codepoint], eax
    dec r13d
    jnz .Lnext_byte
    cmp eax, 0xFFFF                   # outside the BMP: UCS-2 cannot show it
    ja .Lreplace
    mov ecx, eax
    and ecx, 0xF800
    cmp ecx, 0xD800                   # a UTF-16 surrogate encoded in UTF-8 is malformed
    je .Lreplace
    jmp .Lemit
.Lbroken:                             # a character cut short: show U+FFFD, then the byte anew
    dec rsi
    xor r13d, r13d
.Lreplace:
    mov eax, REPLACEMENT_CHAR
    jmp .Lemit
.Llead:
    cmp eax, 0x80
    jb .Lascii
    mov ecx, eax
    and ecx, 0xE0
    cmp ecx, 0xC0
    jne .Lnot2
    and eax, 0x1F
    mov r13d, 1
    jmp .Lstart_multi
.Lnot2:
    mov ecx, eax
    and ecx, 0xF0
    cmp ecx, 0xE0
    jne .Lnot3
    and eax, 0x0F
    mov r13d, 2
    jmp .Lstart_multi
.Lnot3:
    mov ecx, eax
    and ecx, 0xF8
    cmp ecx, 0xF0
    jne .Lreplace                     # a stray continuation byte or 0xF8..0xFF
    and eax, 0x07
    mov r13d, 3
.Lstart_multi:
    mov [rip + utf8_codepoint], eax
    jmp .Lnext_byte
.Lascii:
    cmp eax, 10
    jne .Lemit
    mov word ptr [rbx + rdi * 2], 13  # "\n" -> "\r\n"
    inc edi
.Lemit:
    mov [rbx + rdi * 2], ax
    inc edi
    cmp edi, CON_BUF_UNITS
    jb .Lnext_byte
    call .Lflush
    jmp .Lnext_byte
.Ldone:
    mov [rip + utf8_pending], r13d
    call .Lflush
    add rsp, 32
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret

.Lcapture:                            # append to the capture buffer, as far as it has room
    mov r8, [rip + capture_len]
    mov r9, [rip + capture_cap]
    sub r9, r8
    cmp rdx, r9
    cmova rdx, r9
    add [rip + capture_len], rdx
    add r8, rax
.Lcopy:
    test rdx, rdx
    jz .Lcaptured
    mov al, [rcx]
    mov [r8], al
    inc rcx
    inc r8
    dec rdx
    jmp .Lcopy
.Lcaptured:
    ret

# Local helper: OutputString(staging buffer[0..rdi]); empties it. Called with rsp 16-aligned
# minus the return address, so it realigns for its own call.
.Lflush:
    test edi, edi
    jz .Lflush_done
    sub rsp, 40
    mov word ptr [rbx + rdi * 2], 0
    mov rdx, rbx
    mov rcx, [rip + rt_con_out]
    call qword ptr [rcx + EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL_OutputString]
    add rsp, 40
    xor edi, edi
.Lflush_done:
    ret
