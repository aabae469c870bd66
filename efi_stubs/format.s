# The one message formatter: a printf-like walk over a format string that hands each piece of
# text to a sink. rt_printf (console.s) sinks into the console; str_format sinks into a buffer,
# for code that must not print (the pure modules). Pure: no UEFI, no allocation.
#
# Directives (a small, fixed subset of C's printf; each takes the next 8-byte argument):
#   %s     a NUL-terminated UTF-8 string (a null pointer prints nothing)
#   %.*s   two arguments: a length, then a pointer: that many bytes of UTF-8
#   %u     unsigned 64-bit decimal          %d   signed 64-bit decimal
#   %x     unsigned 64-bit hexadecimal (lower case, no 0x)
#   %h     an unsigned number of hundredths as "X.YY" (sizes in MiB, tokens per second)
#   %%     a percent sign
# Anything else after '%' is printed as it stands. Arguments are 64-bit: pass a 32-bit value
# zero- or sign-extended (mov ecx, [x] zero-extends; movsxd for %d of a negative dword).

.equ FMT_DIGITS, 48                   # room for any 64-bit number in any of the bases above

.section .rdata
fmt_hex_digits: .ascii "0123456789abcdef"

.section .text
.global fmt_emit, str_format

# fmt_emit(rcx = format, rdx = arguments (an array of qwords), r8 = sink, r9 = sink context)
#   -> rax = the argument pointer after the last one used.
# The sink is called as sink(rcx = context, rdx = bytes, r8 = length) with length > 0 and may
# clobber the volatile registers (Microsoft x64 ABI).
fmt_emit:
    push rbx
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, 32 + FMT_DIGITS
    mov rsi, rcx                      # format cursor
    mov rdi, rdx                      # argument cursor
    mov r12, r8                       # sink
    mov r13, r9                       # its context
.Lliteral:
    mov rbx, rsi
.Lscan:
    movzx eax, byte ptr [rsi]
    test eax, eax
    jz .Lflush_end
    cmp eax, '%'
    je .Lflush_directive
    inc rsi
    jmp .Lscan
.Lflush_end:
    call .Lsink_run
    mov rax, rdi
    add rsp, 32 + FMT_DIGITS
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret
.Lflush_directive:
    call .Lsink_run
    inc rsi                           # past '%'
    movzx eax, byte ptr [rsi]
    cmp eax, 's'
    je .Lstring
    cmp eax, '.'
    je .Lcounted
    cmp eax, 'u'
    je .Lunsigned
    cmp eax, 'd'
    je .Lsigned
    cmp eax, 'x'
    je .Lhex
    cmp eax, 'h'
    je .Lhundredths
    cmp eax, '%'
    je .Lpercent
    lea rbx, [rsi - 1]                # unknown: the '%' prints as it stands
    jmp .Lscan
.Lpercent:
    mov rbx, rsi                      # the second '%' starts the next literal run
    inc rsi
    jmp .Lscan
.Lstring:
    inc rsi
    mov rdx, [rdi]
    add rdi, 8
    test rdx, rdx
    jz .Lliteral
    mov r8, rdx
.Lstrlen:
    cmp byte ptr [r8], 0
    je .Lstr_end
    inc r8
    jmp .Lstrlen
.Lstr_end:
    sub r8, rdx
    call .Lsink
    jmp .Lliteral
.Lcounted:
    cmp byte ptr [rsi + 1], '*'
    jne .Lunknown_dot
    cmp byte ptr [rsi + 2], 's'
    jne .Lunknown_dot
    add rsi, 3
    mov r8, [rdi]
    mov rdx, [rdi + 8]
    add rdi, 16
    call .Lsink
    jmp .Lliteral
.Lunknown_dot:
    lea rbx, [rsi - 1]
    jmp .Lscan
.Lunsigned:
    mov r14d, 10
    mov rax, [rdi]
    jmp .Lnumber
.Lhex:
    mov r14d, 16
    mov rax, [rdi]
    jmp .Lnumber
.Lsigned:
    mov r14d, 10
    mov rax, [rdi]
    test rax, rax
    jns .Lnumber
    neg rax
    lea rdx, [rip + .Lminus]
    mov r8d, 1
    push rax
    sub rsp, 8
    call .Lsink
    add rsp, 8
    pop rax
    mov r14d, 10
.Lnumber:                             # rax = value, r14 = base: digits right to left
    inc rsi
    add rdi, 8
    lea r15, [rsp + 32 + FMT_DIGITS]  # end of the digit buffer
    mov rcx, r15
    lea r9, [rip + fmt_hex_digits]
.Ldigit:
    xor edx, edx
    div r14
    movzx edx, byte ptr [r9 + rdx]
    dec rcx
    mov [rcx], dl
    test rax, rax
    jnz .Ldigit
.Lemit_digits:
    mov rdx, rcx
    mov r8, r15
    sub r8, rcx
    call .Lsink
    jmp .Lliteral
.Lhundredths:
    inc rsi
    mov rax, [rdi]
    add rdi, 8
    lea r15, [rsp + 32 + FMT_DIGITS]
    lea rcx, [r15 - 3]
    xor edx, edx
    mov r8d, 100
    div r8                            # rax = whole part, rdx = hundredths
    mov r9, rax
    mov eax, edx
    xor edx, edx
    mov r8d, 10
    div r8d
    add eax, '0'
    add edx, '0'
    mov byte ptr [rcx], '.'
    mov [rcx + 1], al
    mov [rcx + 2], dl
    mov rax, r9
.Lwhole:
    xor edx, edx
    div r8
    add edx, '0'
    dec rcx
    mov [rcx], dl
    test rax, rax
    jnz .Lwhole
    jmp .Lemit_digits

# local: hand the literal run [rbx, rsi) to the sink, if it is not empty
.Lsink_run:
    mov rdx, rbx
    mov r8, rsi
    sub r8, rbx
    jz .Lsink_none
    sub rsp, 40
    mov rcx, r13
    call r12
    add rsp, 40
.Lsink_none:
    ret
# local: sink(context, rdx, r8) when r8 > 0. Both helpers are called with rsp 16-aligned, so
# they realign for their own call.
.Lsink:
    test r8, r8
    jz .Lsink_none
    sub rsp, 40
    mov rcx, r13
    call r12
    add rsp, 40
    ret
.Lminus:
    .byte '-'

# str_format(rcx = buffer, rdx = capacity, r8 = format, r9 = first argument, further
# arguments on the stack as for any call) -> rax = bytes written, NUL not counted; the text is
# cut at capacity - 1 bytes and always NUL-terminated (nothing is written if capacity is 0);
# edx = 1 when it was cut, else 0.
str_format:
    mov [rsp + 32], r9                # the arguments, contiguous in the caller's frame
    sub rsp, 72
    mov [rsp + 32], rcx               # sink context: buffer, capacity, length, cut
    mov [rsp + 40], rdx
    mov qword ptr [rsp + 48], 0
    mov qword ptr [rsp + 56], 0
    mov rcx, r8
    lea rdx, [rsp + 72 + 32]          # the first argument's home slot
    lea r8, [rip + buffer_sink]
    lea r9, [rsp + 32]
    call fmt_emit
    mov rcx, [rsp + 32]
    mov rax, [rsp + 48]
    cmp qword ptr [rsp + 40], 0
    je .Lnothing
    mov byte ptr [rcx + rax], 0
.Lnothing:
    mov rdx, [rsp + 56]
    add rsp, 72
    ret

# buffer_sink(rcx = {buffer, capacity, length, cut}, rdx = bytes, r8 = length): append what
# fits below capacity - 1. Leaf.
buffer_sink:
    mov r9, [rcx + 8]
    sub r9, 1
    jb .Lfull
    sub r9, [rcx + 16]                # room left
    cmp r8, r9
    jbe .Lfits
    mov qword ptr [rcx + 24], 1
    mov r8, r9
.Lfits:
    mov r10, [rcx]
    add r10, [rcx + 16]
    add [rcx + 16], r8
.Lcopy:
    test r8, r8
    jz .Ldone
    mov al, [rdx]
    mov [r10], al
    inc rdx
    inc r10
    dec r8
    jmp .Lcopy
.Lfull:
    mov qword ptr [rcx + 24], 1
.Ldone:
    ret
