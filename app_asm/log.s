# The event log: a ring of the last LOG_ENTRIES events (boot, config, model loads, errors,
# generations), each with the time since boot, for /log, /save_log and /save_dump.
.equ LOG_ENTRIES, 64
.equ LOG_TEXT, 120                    # bytes of text per entry, NUL included
.equ LOG_ENTRY, 128                   # qword ticks since boot + text

.section .bss
.balign 16
log_ring:   .skip LOG_ENTRIES * LOG_ENTRY
log_count:  .skip 8                   # events ever logged (the ring holds the last 64)
boot_ticks: .skip 8

.section .rdata
s_open:   .asciz "["
s_secs:   .asciz " s] "
s_dot:    .asciz "."
s_nl:     .asciz "\n"
s_empty:  .asciz "(no events)\n"

.section .text
.global log_init, log_event, log_event2, log_print
.extern rt_ticks, rt_tsc_hz, rt_print_cstr, rt_print_u64, print_uint_width, str_len

# log_init(): time zero for the log
log_init:
    sub rsp, 40
    call rt_ticks
    mov [rip + boot_ticks], rax
    add rsp, 40
    ret

# log_event(rcx = NUL-terminated UTF-8 text)
log_event:
    xor edx, edx
    jmp log_event2

# log_event2(rcx = text, rdx = more text or 0): one entry, the two texts joined; text beyond
# LOG_TEXT - 1 bytes is cut at a character boundary and the entry ends in "..." to say so
log_event2:
    push rbx
    push rsi
    push rdi
    sub rsp, 32
    mov rsi, rcx
    mov rbx, rdx
    mov rax, [rip + log_count]        # the slot: count mod LOG_ENTRIES
    and eax, LOG_ENTRIES - 1
    imul eax, eax, LOG_ENTRY
    lea rdi, [rip + log_ring]
    add rdi, rax
    inc qword ptr [rip + log_count]
    call rt_ticks
    sub rax, [rip + boot_ticks]
    mov [rdi], rax
    add rdi, 8
    lea r8, [rdi + LOG_TEXT - 1]      # last byte: the NUL
    xor r9d, r9d                      # 1: something was cut
    mov rcx, rsi
    call .Lappend
    mov rcx, rbx
    call .Lappend
    test r9d, r9d
    jz .Lterm
    lea rdi, [r8 - 3]                 # room for "...", not inside a character
.Lboundary:
    movzx eax, byte ptr [rdi]
    and eax, 0xC0
    cmp eax, 0x80
    jne .Lmark
    dec rdi
    jmp .Lboundary
.Lmark:
    mov word ptr [rdi], 0x2E2E
    mov byte ptr [rdi + 2], 0x2E
    add rdi, 3
.Lterm:
    mov byte ptr [rdi], 0
    add rsp, 32
    pop rdi
    pop rsi
    pop rbx
    ret
# local: copy NUL-terminated rcx (may be 0) to rdi, stopping at r8 (r9d = 1 if that cut it)
.Lappend:
    test rcx, rcx
    jz .Ldone
.Lbyte:
    cmp rdi, r8
    jae .Lfull
    mov al, [rcx]
    test al, al
    jz .Ldone
    mov [rdi], al
    inc rdi
    inc rcx
    jmp .Lbyte
.Ldone:
    ret
.Lfull:
    cmp byte ptr [rcx], 0
    je .Ldone
    mov r9d, 1
    ret

# log_print(ecx = how many of the latest entries; 0 = all kept)
log_print:
    push rbx
    push rsi
    push rdi
    sub rsp, 48                       # [rsp+32]: a local beyond the callees' shadow space
    mov rbx, [rip + log_count]
    mov esi, LOG_ENTRIES
    cmp rbx, rsi
    cmovb rsi, rbx                    # entries kept
    test ecx, ecx
    jz .Lall
    cmp rcx, rsi
    cmovb rsi, rcx
.Lall:
    test rsi, rsi
    jnz .Lstart
    lea rcx, [rip + s_empty]
    call rt_print_cstr
    jmp .Lout
.Lstart:
    mov rdi, rbx
    sub rdi, rsi                      # index of the first entry shown
.Lentry:
    cmp rdi, rbx
    jae .Lout
    mov eax, edi
    and eax, LOG_ENTRIES - 1
    imul eax, eax, LOG_ENTRY
    lea rsi, [rip + log_ring]
    add rsi, rax
    lea rcx, [rip + s_open]
    call rt_print_cstr
    mov rax, [rsi]                    # milliseconds = ticks * 1000 / hz
    mov ecx, 1000
    mul rcx
    mov rcx, [rip + rt_tsc_hz]
    test rcx, rcx
    jz .Lzero
    cmp rdx, rcx
    jae .Lzero
    div rcx
    jmp .Lms
.Lzero:
    xor eax, eax
.Lms:
    xor edx, edx
    mov ecx, 1000
    div rcx
    mov [rsp + 32], rdx
    mov rcx, rax
    mov edx, 5
    call print_uint_width
    lea rcx, [rip + s_dot]
    call rt_print_cstr
    mov rcx, [rsp + 32]
    mov edx, 3
    call print_uint_width
    lea rcx, [rip + s_secs]
    call rt_print_cstr
    lea rcx, [rsi + 8]
    call rt_print_cstr
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    inc rdi
    jmp .Lentry
.Lout:
    add rsp, 48
    pop rdi
    pop rsi
    pop rbx
    ret
