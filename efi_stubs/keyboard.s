# Keyboard input through ConIn, as characters the user typed rather than keys as a console
# delivers them. Waiting uses WaitForEvent on ConIn's WaitForKey event rather than spinning on
# ReadKeyStroke, so an idle prompt does not burn the CPU.
#
# What consoles deliver, and what the program gets (UEFI 2.10 section 12.3, EFI_INPUT_KEY;
# OVMF's serial terminal driver passes each received byte on as one UnicodeChar):
#   - Enter: CR (a PC keyboard, most terminals), LF, or CR then LF (terminals set to send CR+LF,
#     pasted Windows text). CR, LF and CR LF each become ONE CHAR_CARRIAGE_RETURN: an LF that
#     directly follows a CR is dropped.
#   - UTF-8 over a serial line: every byte arrives as its own character U+0080..U+00FF. A run
#     that forms one well-formed UTF-8 sequence (RFC 3629: no overlong forms, no surrogates,
#     nothing above U+10FFFF) becomes that character; anything else stays the Latin-1
#     characters it was. A lead byte waits for its continuation bytes: KEY_SEQ_WAIT_MS after
#     the last one, an incomplete sequence is given up and passed on as it came (a local
#     keyboard's U+00E9 "e acute" is also the lead byte E9, so it shows after that wait or the
#     next key). The ambiguity is inherent: a local keyboard typing the two characters that
#     spell a UTF-8 sequence in Latin-1 gets the one character.
#   - UTF-16 surrogate pairs (a local keyboard's characters outside the BMP) become their
#     code point; a lone surrogate becomes U+FFFD.
.include "uefi.inc"

.equ KEY_QUEUE, 8                     # decoded keys waiting (a flush yields at most 4 + 1)
.equ KEY_SEQ_WAIT_MS, 100             # how long an incomplete UTF-8 sequence or surrogate waits
.equ KEY_SEQ_STEP_MS, 10
.equ REPLACEMENT_CHAR, 0xFFFD

.section .bss
.balign 8
key_buf:    .skip 8                   # EFI_INPUT_KEY
event_idx:  .skip 8
key_queue:  .skip KEY_QUEUE * 8       # (code point, scan code) dword pairs
kq_head:    .skip 4
kq_count:   .skip 4
u8_bytes:   .skip 4                   # the UTF-8 sequence gathered so far
u8_have:    .skip 4                   # its bytes so far (0: none pending)
u8_need:    .skip 4                   # its length, from the lead byte
hi_surr:    .skip 4                   # a high surrogate waiting for its low half (0: none)
last_cr:    .skip 4                   # the last key was CR: an LF now is the same Enter

.section .text
.global rt_read_key, rt_poll_key
.extern rt_con_in, rt_boot_services

# rt_poll_key() -> eax = the next character typed (a Unicode code point, 0 for a key with no
# character) and edx = its EFI scan code, or eax = -1 when no complete key is ready. Enter is
# always CHAR_CARRIAGE_RETURN (13). Clobbers the volatile registers.
rt_poll_key:
    sub rsp, 40
.Lqueue:
    mov ecx, [rip + kq_count]
    test ecx, ecx
    jnz .Lpop
    mov rcx, [rip + rt_con_in]
    lea rdx, [rip + key_buf]
    call qword ptr [rcx + EFI_SIMPLE_TEXT_INPUT_PROTOCOL_ReadKeyStroke]
    test rax, rax
    jnz .Lnone
    movzx ecx, word ptr [rip + key_buf + EFI_INPUT_KEY_UnicodeChar]
    movzx edx, word ptr [rip + key_buf + EFI_INPUT_KEY_ScanCode]
    call key_feed
    jmp .Lqueue
.Lpop:
    mov ecx, [rip + kq_head]
    lea r8, [rip + key_queue]
    mov eax, [r8 + rcx * 8]
    mov edx, [r8 + rcx * 8 + 4]
    inc ecx
    and ecx, KEY_QUEUE - 1
    mov [rip + kq_head], ecx
    dec dword ptr [rip + kq_count]
    add rsp, 40
    ret
.Lnone:
    mov eax, -1
    xor edx, edx
    add rsp, 40
    ret

# rt_read_key() -> eax = code point, edx = scan code (as rt_poll_key); waits for a key. While a
# UTF-8 sequence or a surrogate pair is incomplete it polls every KEY_SEQ_STEP_MS for at most
# KEY_SEQ_WAIT_MS, then passes on what it has.
rt_read_key:
    push rbx
    sub rsp, 32
    xor ebx, ebx                      # ms waited for the rest of a sequence
.Ltry:
    call rt_poll_key
    cmp eax, -1
    jne .Lgot
    mov eax, [rip + u8_have]
    or eax, [rip + hi_surr]
    jz .Lwait
    cmp ebx, KEY_SEQ_WAIT_MS
    jae .Lgive_up
    add ebx, KEY_SEQ_STEP_MS
    mov ecx, KEY_SEQ_STEP_MS * 1000
    mov rax, [rip + rt_boot_services]
    call qword ptr [rax + EFI_BOOT_SERVICES_Stall]
    jmp .Ltry
.Lgive_up:
    call key_flush_pending
    xor ebx, ebx
    jmp .Ltry
.Lwait:
    mov ecx, 1                        # WaitForEvent(1, &ConIn->WaitForKey, &index)
    mov rdx, [rip + rt_con_in]
    lea rdx, [rdx + EFI_SIMPLE_TEXT_INPUT_PROTOCOL_WaitForKey]
    lea r8, [rip + event_idx]
    mov rax, [rip + rt_boot_services]
    call qword ptr [rax + EFI_BOOT_SERVICES_WaitForEvent]
    test rax, rax
    jz .Ltry
    mov ecx, 1000                     # no event support: poll gently
    mov rax, [rip + rt_boot_services]
    call qword ptr [rax + EFI_BOOT_SERVICES_Stall]
    jmp .Ltry
.Lgot:
    add rsp, 32
    pop rbx
    ret

# key_push(ecx = code point, edx = scan code): onto the decoded queue (room is guaranteed:
# the queue is empty whenever key_feed runs, and one feed pushes at most 5). Leaf.
key_push:
    mov eax, [rip + kq_head]
    add eax, [rip + kq_count]
    and eax, KEY_QUEUE - 1
    lea r8, [rip + key_queue]
    mov [r8 + rax * 8], ecx
    mov [r8 + rax * 8 + 4], edx
    inc dword ptr [rip + kq_count]
    ret

# key_flush_pending(): an incomplete or malformed UTF-8 run goes out as the Latin-1 characters
# it arrived as; a waiting high surrogate as U+FFFD. Leaf (calls key_push only).
key_flush_pending:
    push rbx
    xor ebx, ebx
.Lbyte:
    cmp ebx, [rip + u8_have]
    jae .Lbytes_done
    lea rax, [rip + u8_bytes]
    movzx ecx, byte ptr [rax + rbx]
    xor edx, edx
    call key_push
    inc ebx
    jmp .Lbyte
.Lbytes_done:
    mov dword ptr [rip + u8_have], 0
    cmp dword ptr [rip + hi_surr], 0
    je .Ldone
    mov ecx, REPLACEMENT_CHAR
    xor edx, edx
    call key_push
    mov dword ptr [rip + hi_surr], 0
.Ldone:
    pop rbx
    ret

# key_feed(ecx = UnicodeChar, edx = ScanCode): one key from ConIn into the decoder, which
# pushes zero or more decoded keys (rules atop this file).
key_feed:
    push rbx
    push rsi
    sub rsp, 40
    mov ebx, ecx
    mov esi, edx
    test esi, esi
    jnz .Lother
    lea eax, [rbx - 0x80]
    cmp eax, 0x7F
    jbe .Lbyte                        # U+0080..U+00FF: perhaps a UTF-8 byte
.Lother:
    cmp dword ptr [rip + u8_have], 0
    je .Lno_run
    call key_flush_pending            # (also gives up a waiting high surrogate: none can wait
.Lno_run:                             #  while a run is pending)
    test esi, esi
    jnz .Lplain_hi
    lea eax, [rbx - 0xDC00]
    cmp eax, 0x3FF
    ja .Lnot_low
    mov ecx, REPLACEMENT_CHAR         # a low surrogate: completes a pair, or stands alone
    mov eax, [rip + hi_surr]
    test eax, eax
    jz .Lpush_ch
    sub eax, 0xD800
    shl eax, 10
    lea ecx, [rbx - 0xDC00]
    lea ecx, [rcx + rax + 0x10000]
    mov dword ptr [rip + hi_surr], 0
    jmp .Lpush_ch
.Lnot_low:
    cmp dword ptr [rip + hi_surr], 0
    je .Lno_hi
    call key_flush_pending            # a high surrogate not followed by a low one
.Lno_hi:
    lea eax, [rbx - 0xD800]
    cmp eax, 0x3FF
    ja .Lnot_high
    mov [rip + hi_surr], ebx          # wait for the low half
    mov dword ptr [rip + last_cr], 0
    jmp .Lout
.Lplain_hi:
    cmp dword ptr [rip + hi_surr], 0
    je .Lnot_high
    call key_flush_pending
.Lnot_high:
    test esi, esi
    jnz .Lkey
    cmp ebx, CHAR_LINEFEED
    jne .Lnot_lf
    cmp dword ptr [rip + last_cr], 0
    mov dword ptr [rip + last_cr], 0
    jne .Lout                         # CR LF: the LF belongs to that Enter
    mov ebx, CHAR_CARRIAGE_RETURN     # a lone LF is an Enter of its own
    jmp .Lkey
.Lnot_lf:
    xor eax, eax
    cmp ebx, CHAR_CARRIAGE_RETURN
    sete al
    mov [rip + last_cr], eax
    jmp .Lpush_key
.Lkey:
    mov dword ptr [rip + last_cr], 0
.Lpush_key:
    mov ecx, ebx
    mov edx, esi
    call key_push
    jmp .Lout
.Lpush_ch:
    mov dword ptr [rip + last_cr], 0
    xor edx, edx
    call key_push
    jmp .Lout

.Lbyte:                               # ebx = 0x80..0xFF, no scan code
    mov dword ptr [rip + last_cr], 0
    cmp dword ptr [rip + hi_surr], 0
    je .Lno_hi2
    call key_flush_pending
.Lno_hi2:
    mov eax, [rip + u8_have]
    test eax, eax
    jz .Lstart
    cmp ebx, 0xBF
    ja .Lbroken                       # not a continuation byte: the run ends here
    lea rcx, [rip + u8_bytes]
    mov [rcx + rax], bl
    inc eax
    mov [rip + u8_have], eax
    cmp eax, [rip + u8_need]
    jb .Lout
    call u8_decode                    # complete: eax = code point or -1 if malformed
    cmp eax, -1
    je .Lmalformed
    mov dword ptr [rip + u8_have], 0
    mov ecx, eax
    jmp .Lpush_ch
.Lmalformed:
    call key_flush_pending
    jmp .Lout
.Lbroken:
    call key_flush_pending
.Lstart:                              # a lead byte starts a run; anything else is itself
    mov eax, 2
    cmp ebx, 0xC2
    jb .Lpush_self
    cmp ebx, 0xE0
    jb .Llead
    mov eax, 3
    cmp ebx, 0xF0
    jb .Llead
    mov eax, 4
    cmp ebx, 0xF4
    ja .Lpush_self
.Llead:
    mov [rip + u8_need], eax
    mov [rip + u8_bytes], bl
    mov dword ptr [rip + u8_have], 1
    jmp .Lout
.Lpush_self:
    mov ecx, ebx
    jmp .Lpush_ch
.Lout:
    add rsp, 40
    pop rsi
    pop rbx
    ret

# u8_decode() -> eax = the code point of the u8_need bytes in u8_bytes, or -1 when they are
# not well-formed UTF-8 (overlong, a surrogate, above U+10FFFF). Leaf.
u8_decode:
    lea r8, [rip + u8_bytes]
    mov r9d, [rip + u8_need]
    movzx eax, byte ptr [r8]
    mov ecx, 0x1F                     # lead byte payload: 5, 4 or 3 bits
    mov edx, 0x80                     # smallest code point of this length
    cmp r9d, 2
    je .Lmask
    mov ecx, 0x0F
    mov edx, 0x800
    cmp r9d, 3
    je .Lmask
    mov ecx, 0x07
    mov edx, 0x10000
.Lmask:
    and eax, ecx
    mov ecx, 1
.Lcont:
    movzx r10d, byte ptr [r8 + rcx]
    and r10d, 0x3F
    shl eax, 6
    or eax, r10d
    inc ecx
    cmp ecx, r9d
    jb .Lcont
    cmp eax, edx
    jb .Lbad
    cmp eax, 0x10FFFF
    ja .Lbad
    mov ecx, eax
    and ecx, 0xFFFFF800
    cmp ecx, 0xD800
    je .Lbad
    ret
.Lbad:
    mov eax, -1
    ret
