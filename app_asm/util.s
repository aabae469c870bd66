# Small text helpers the chat program shares: trimming, comparing, parsing numbers typed by a
# user or read from repl.cfg, and printing numbers. Pure: no UEFI here, except that the print
# helpers go through the runtime's console.
#
# Strings are (pointer, length) pairs unless a routine says NUL-terminated.

.section .bss
.balign 16
num_buf: .skip 64

.section .rdata
.balign 8
pow10_table:                          # 10^0 .. 10^18 as doubles, for parsing and printing
    .quad 0x3FF0000000000000, 0x4024000000000000, 0x4059000000000000, 0x408F400000000000
    .quad 0x40C3880000000000, 0x40F86A0000000000, 0x412E848000000000, 0x416312D000000000
    .quad 0x4197D78400000000, 0x41CDCD6500000000, 0x4202A05F20000000, 0x42374876E8000000
    .quad 0x426D1A94A2000000, 0x42A2309CE5400000, 0x42D6BCC41E900000, 0x430C6BF526340000
    .quad 0x4341C37937E08000, 0x4376345785D8A000, 0x43ABC16D674EC800
half: .quad 0x3FE0000000000000      # 0.5
dot:  .asciz "."
fmt_hundredths: .asciz "%h"
minus: .asciz "-"

.section .text
.global str_len, str_eq, mem_eq, mem_ieq, trim, parse_uint, parse_float, is_space
.global print_fixed, print_uint_width, print_hundredths, str_copy, text_skip_bom, text_line
.extern rt_print_cstr, rt_print_u64, rt_print_utf8, rt_printf

# str_len(rcx = NUL-terminated) -> rax
str_len:
    mov rax, rcx
.Lscan:
    cmp byte ptr [rax], 0
    je .Lend
    inc rax
    jmp .Lscan
.Lend:
    sub rax, rcx
    ret

# text_skip_bom(rcx = text, rdx = length) -> rax = text, rdx = length without a leading UTF-8
# byte order mark (EF BB BF, which Notepad writes). Every text file the program reads goes
# through this and text_line. Leaf.
text_skip_bom:
    mov rax, rcx
    cmp rdx, 3
    jb .Ldone
    cmp word ptr [rcx], 0xBBEF
    jne .Ldone
    cmp byte ptr [rcx + 2], 0xBF
    jne .Ldone
    add rax, 3
    sub rdx, 3
.Ldone:
    ret

# text_line(rcx = cursor, rdx = end of the text) -> rax = the line's start, rdx = its length
# without the line end, r8 = where the next line starts. A line ends at LF, CR LF or a lone CR
# (or at the end of the text, so a missing final newline loses nothing). Call while
# cursor < end. Leaf.
text_line:
    mov rax, rcx
    mov r8, rcx
.Lscan:
    cmp r8, rdx
    jae .Lend_of_text
    movzx r9d, byte ptr [r8]
    cmp r9d, 10
    je .Llf
    cmp r9d, 13
    je .Lcr
    inc r8
    jmp .Lscan
.Lend_of_text:
    mov rdx, r8
    sub rdx, rax
    ret
.Llf:
    mov rdx, r8
    sub rdx, rax
    inc r8
    ret
.Lcr:
    mov r9, r8
    sub r9, rax                       # the length
    inc r8
    cmp r8, rdx
    jae .Lcr_done
    cmp byte ptr [r8], 10
    jne .Lcr_done
    inc r8                            # CR LF
.Lcr_done:
    mov rdx, r9
    ret

# str_copy(rcx = dst, rdx = src, r8 = src length, r9 = dst capacity incl. NUL) -> rax =
# bytes copied (cut to capacity - 1), dst NUL-terminated (nothing written if capacity is 0)
str_copy:
    xor eax, eax
    test r9, r9
    jz .Ldone
    dec r9
    cmp r8, r9
    cmova r8, r9
.Lloop:
    cmp rax, r8
    jae .Lterm
    movzx r10d, byte ptr [rdx + rax]
    mov [rcx + rax], r10b
    inc rax
    jmp .Lloop
.Lterm:
    mov byte ptr [rcx + rax], 0
.Ldone:
    ret

# mem_eq(rcx = a, rdx = b, r8 = length) -> eax = 1 if the bytes are equal
mem_eq:
    xor eax, eax
.Lloop:
    test r8, r8
    jz .Lyes
    movzx r9d, byte ptr [rcx]
    cmp r9b, [rdx]
    jne .Lno
    inc rcx
    inc rdx
    dec r8
    jmp .Lloop
.Lyes:
    mov eax, 1
.Lno:
    ret

# mem_ieq(rcx = a, rdx = b, r8 = length) -> eax = 1 if equal ignoring ASCII case
mem_ieq:
.Lloop:
    test r8, r8
    jz .Lyes
    movzx eax, byte ptr [rcx]
    movzx r9d, byte ptr [rdx]
    lea r10d, [rax - 'A']
    cmp r10d, 25
    ja .La_done
    or eax, 0x20
.La_done:
    lea r10d, [r9 - 'A']
    cmp r10d, 25
    ja .Lb_done
    or r9d, 0x20
.Lb_done:
    cmp eax, r9d
    jne .Lno
    inc rcx
    inc rdx
    dec r8
    jmp .Lloop
.Lyes:
    mov eax, 1
    ret
.Lno:
    xor eax, eax
    ret

# str_eq(rcx = (ptr, length) in rcx/rdx, r8 = NUL-terminated) -> eax = 1 if equal
str_eq:
    xor eax, eax
.Lloop:
    test rdx, rdx
    jz .Lend
    movzx r9d, byte ptr [r8]
    test r9d, r9d
    jz .Lno
    cmp r9b, [rcx]
    jne .Lno
    inc rcx
    inc r8
    dec rdx
    jmp .Lloop
.Lend:
    cmp byte ptr [r8], 0
    jne .Lno
    mov eax, 1
.Lno:
    ret

# is_space(ecx = byte) -> eax = 1 for space, tab, CR, LF
is_space:
    xor eax, eax
    cmp ecx, ' '
    je .Lyes
    cmp ecx, 9
    je .Lyes
    cmp ecx, 10
    je .Lyes
    cmp ecx, 13
    jne .Lno
.Lyes:
    mov eax, 1
.Lno:
    ret

# trim(rcx = ptr, rdx = length) -> rax = new ptr, rdx = new length (spaces/tabs/CR/LF off
# both ends)
trim:
    mov rax, rcx
.Lfront:
    test rdx, rdx
    jz .Ldone
    movzx ecx, byte ptr [rax]
    cmp ecx, ' '
    je .Lskip
    cmp ecx, 9
    je .Lskip
    cmp ecx, 13
    je .Lskip
    cmp ecx, 10
    jne .Lback
.Lskip:
    inc rax
    dec rdx
    jmp .Lfront
.Lback:
    movzx ecx, byte ptr [rax + rdx - 1]
    cmp ecx, ' '
    je .Lcut
    cmp ecx, 9
    je .Lcut
    cmp ecx, 13
    je .Lcut
    cmp ecx, 10
    jne .Ldone
.Lcut:
    dec rdx
    jnz .Lback
.Ldone:
    ret

# parse_uint(rcx = ptr, rdx = length, r8 = u64* out) -> eax = 1 if the whole text is a decimal
# number that fits 64 bits (a leading '+' allowed), else 0 and *out untouched
parse_uint:
    test rdx, rdx
    jz .Lbad
    cmp byte ptr [rcx], '+'
    jne .Lstart
    inc rcx
    dec rdx
    jz .Lbad
.Lstart:
    xor eax, eax
.Ldigit:
    movzx r9d, byte ptr [rcx]
    sub r9d, '0'
    cmp r9d, 9
    ja .Lbad
    mov r10, 0x1999999999999999       # rax = rax * 10 + digit, refusing overflow
    cmp rax, r10
    ja .Lbad
    lea rax, [rax + rax * 4]
    add rax, rax
    add rax, r9
    jc .Lbad
    inc rcx
    dec rdx
    jnz .Ldigit
    mov [r8], rax
    mov eax, 1
    ret
.Lbad:
    xor eax, eax
    ret

# parse_float(rcx = ptr, rdx = length, r8 = f32* out) -> eax = 1 if the whole text is a
# decimal number [+-]digits[.digits][e[+-]digits] (at least one digit, at most 18 significant
# ones kept), else 0 and *out untouched
parse_float:
    push rbx
    push rsi
    push rdi
    push r12
    mov r12, r8                       # the out pointer (r8 is scratch below)
    xor eax, eax                      # mantissa
    xor r9d, r9d                      # sign: 1 if negative
    xor r10d, r10d                    # decimal exponent adjustment
    xor r11d, r11d                    # digits seen
    xor ebx, ebx                      # significant digits kept
    test rdx, rdx
    jz .Lbad
    movzx esi, byte ptr [rcx]
    cmp esi, '-'
    jne .Lplus
    mov r9d, 1
    jmp .Lsign_skip
.Lplus:
    cmp esi, '+'
    jne .Lint
.Lsign_skip:
    inc rcx
    dec rdx
.Lint:
    test rdx, rdx
    jz .Lcheck
    movzx esi, byte ptr [rcx]
    cmp esi, '.'
    je .Lpoint
    cmp esi, 'e'
    je .Lexp
    cmp esi, 'E'
    je .Lexp
    sub esi, '0'
    cmp esi, 9
    ja .Lbad
    inc r11d
    call .Ladd_digit
    inc rcx
    dec rdx
    jmp .Lint
.Lpoint:
    inc rcx
    dec rdx
.Lfrac:
    test rdx, rdx
    jz .Lcheck
    movzx esi, byte ptr [rcx]
    cmp esi, 'e'
    je .Lexp
    cmp esi, 'E'
    je .Lexp
    sub esi, '0'
    cmp esi, 9
    ja .Lbad
    inc r11d
    cmp ebx, 18
    jae .Lfrac_next                   # beyond precision: ignore
    call .Ladd_digit
    dec r10d
.Lfrac_next:
    inc rcx
    dec rdx
    jmp .Lfrac
.Lexp:
    test r11d, r11d
    jz .Lbad
    inc rcx
    dec rdx
    jz .Lbad
    xor edi, edi                      # exponent sign
    movzx esi, byte ptr [rcx]
    cmp esi, '-'
    jne .Lexp_plus
    mov edi, 1
    jmp .Lexp_sign_skip
.Lexp_plus:
    cmp esi, '+'
    jne .Lexp_digits
.Lexp_sign_skip:
    inc rcx
    dec rdx
    jz .Lbad
.Lexp_digits:
    xor esi, esi                      # the exponent value (capped)
.Lexp_loop:
    movzx r8d, byte ptr [rcx]
    sub r8d, '0'
    cmp r8d, 9
    ja .Lbad
    cmp esi, 1000
    jae .Lexp_next
    imul esi, esi, 10
    add esi, r8d
.Lexp_next:
    inc rcx
    dec rdx
    jnz .Lexp_loop
    test edi, edi
    jz .Lexp_add
    neg esi
.Lexp_add:
    add r10d, esi
    jmp .Lscale
.Lcheck:
    test r11d, r11d
    jz .Lbad
.Lscale:
    # value = mantissa * 10^r10 as a double, then rounded once to f32
    cvtsi2sd xmm0, rax
    lea rsi, [rip + pow10_table]
.Lscale_up:
    cmp r10d, 0
    jle .Lscale_down
    mov edi, r10d
    cmp edi, 18
    jbe .Lup_ok
    mov edi, 18
.Lup_ok:
    mulsd xmm0, [rsi + rdi * 8]
    sub r10d, edi
    jmp .Lscale_up
.Lscale_down:
    cmp r10d, 0
    jge .Lscaled
    mov edi, r10d
    neg edi
    cmp edi, 18
    jbe .Ldown_ok
    mov edi, 18
.Ldown_ok:
    divsd xmm0, [rsi + rdi * 8]
    add r10d, edi
    jmp .Lscale_down
.Lscaled:
    cvtsd2ss xmm0, xmm0
    test r9d, r9d
    jz .Lstore
    xorps xmm1, xmm1
    subss xmm1, xmm0
    movaps xmm0, xmm1
.Lstore:
    movss [r12], xmm0
    mov eax, 1
    jmp .Lout
.Lbad:
    xor eax, eax
.Lout:
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret
# local helper: rax = rax * 10 + esi while fewer than 18 significant digits are kept,
# else count the dropped integer digit in the exponent
.Ladd_digit:
    cmp ebx, 18
    jae .Ldrop
    imul rax, rax, 10
    add rax, rsi
    test rax, rax
    jz .Lkept                         # leading zeros are not significant
    inc ebx
.Lkept:
    ret
.Ldrop:
    inc r10d
    ret

# print_uint_width(rcx = value, edx = minimum digits): zero-padded decimal
print_uint_width:
    lea r8, [rip + num_buf + 40]
    mov r9, r8
    mov rax, rcx
    mov r10d, edx
    mov ecx, 10
.Ldigit:
    xor edx, edx
    div rcx
    add dl, '0'
    dec r8
    mov [r8], dl
    dec r10d
    test rax, rax
    jnz .Ldigit
.Lpad:
    cmp r10d, 0
    jle .Lprint
    dec r8
    mov byte ptr [r8], '0'
    dec r10d
    jmp .Lpad
.Lprint:
    mov rcx, r8
    mov rdx, r9
    sub rdx, r8
    jmp rt_print_utf8

# print_hundredths(rcx = a value in hundredths): "X.YY" (sizes in MiB, tokens per second)
print_hundredths:
    mov rdx, rcx
    lea rcx, [rip + fmt_hundredths]
    jmp rt_printf

# print_fixed(xmm0 = f32 value, ecx = decimals 0..6): "-12.345" rounded half away from zero
print_fixed:
    push rbx
    push rsi
    sub rsp, 40
    mov esi, ecx
    cmp esi, 6
    jbe .Ldec_ok
    mov esi, 6
.Ldec_ok:
    cvtss2sd xmm0, xmm0
    xorpd xmm1, xmm1
    comisd xmm0, xmm1
    jae .Lpositive
    subsd xmm1, xmm0
    movapd xmm0, xmm1
    movsd [rsp + 32], xmm0
    lea rcx, [rip + minus]
    call rt_print_cstr
    movsd xmm0, [rsp + 32]
.Lpositive:
    lea rax, [rip + pow10_table]
    mulsd xmm0, [rax + rsi * 8]
    addsd xmm0, [rip + half]
    cvttsd2si rbx, xmm0               # scaled and rounded (values here are far below 2^63)
    mov rcx, [rax + rsi * 8]          # 10^decimals as an integer, from the double's value
    movq xmm1, rcx
    cvttsd2si rcx, xmm1
    mov rax, rbx
    xor edx, edx
    div rcx
    mov rbx, rdx                      # fraction digits
    mov rcx, rax
    call rt_print_u64
    test esi, esi
    jz .Ldone
    lea rcx, [rip + dot]
    call rt_print_cstr
    mov rcx, rbx
    mov edx, esi
    call print_uint_width
.Ldone:
    add rsp, 40
    pop rsi
    pop rbx
    ret
