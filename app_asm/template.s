# Chat templates: render a conversation's text for a chat format, recognise a model's format
# from its GGUF `tokenizer.chat_template`. Pure: no firmware, no printing, no allocation.
#
# The formats are data (peasm/chat_templates.py declares the rows and what each field means,
# generated as chat_templates.inc and chat_table.inc). The text rendered here is what each
# model's own Jinja template renders for the same messages (tests/test_app_template.py checks
# it against jinja2); control-token texts such as "<|im_start|>" stay text: the tokenizer turns
# them into single ids when it parses special tokens.
#
#   Both renderers also leave in template_spans (template_n_spans pairs of u32 [start, end)
#   byte offsets in `out`, in order) where the conversation's own text went: the system
#   text, the user's turns, the replies. The session tokenizes those as plain text and only
#   the template's fields for special tokens (a typed "<|im_end|>" stays text). Up to
#   TEMPLATE_MAX_SPANS ranges; a conversation with more messages protects only the first.
#   template_render_turn(rcx = out, rdx = capacity, r8 = CHAT_TURN*) -> rax = bytes written,
#       or CHAT_E_SPACE (does not fit; the buffer's content is then unspecified), CHAT_E_ROW.
#       One new user turn and the generation prompt: [ASSISTANT_SUFFIX closing the reply
#       before it, with CHAT_TURN_F_AFTER_REPLY] [BOS and the system text, with
#       CHAT_TURN_F_FIRST] USER_PREFIX text USER_SUFFIX GENERATION_PROMPT. For incremental
#       prefill: the KV cache holds everything before it.
#   template_render(rcx = out, rdx = capacity, r8 = CHAT_CONV*) -> rax as above.
#       A whole conversation: MESSAGES alternate user, assistant, user...; a user message gets
#       the generation prompt after it; a last assistant reply is left open (not closed by
#       ASSISTANT_SUFFIX), as the KV cache holds it after a generation.
#   template_detect(rcx = template text, rdx = length) -> eax = row, or CHAT_NONE
#   template_find(rcx = name, rdx = length) -> eax = row named so, or CHAT_NONE
#   template_flags(ecx = row) -> eax = the row's CHAT_F_* flags (0 for a bad row)
#   template_text(ecx = row, edx = CHAT_TEMPLATE_<FIELD> offset) -> rax = bytes, rdx = length
#       (rax = rdx = 0 for an empty field or a bad row)
#   template_default_system(ecx = row, rdx = template text, r8 = length) -> rax = bytes (inside
#       the template text), rdx = length; 0, 0 when the template inserts no default system
#       message. Found as the row's SYSTEM_PREFIX literally in the template, then the text up to
#       its SYSTEM_SUFFIX, when that text has no quote, brace or backslash (so it is a literal
#       in the template, not an expression): SmolLM2's "You are a helpful AI assistant named
#       SmolLM, trained by Hugging Face". A template that writes the prefix with an escaped
#       "\n" (backslash, n) is not recognised.
# All follow the Microsoft x64 ABI (clobber rax rcx rdx r8-r11 only).
#
# Private helpers share the renderer's state in callee-saved registers (saved by the public
# routines): rbx = output, r12 = capacity, r13 = bytes written, r14 = the row's address,
# r15d = 1 once something did not fit (nothing more is written). They never call out.
.include "chat_templates.inc"
.include "chat_table.inc"

.equ TEMPLATE_MAX_SPANS, 1024

.section .bss
.balign 8
.global template_spans, template_n_spans
template_spans:   .skip 8 * TEMPLATE_MAX_SPANS
template_n_spans: .skip 4

.section .text
.global template_render_turn, template_render, template_detect, template_find
.global template_text, template_default_system, template_flags

# template_render_turn(rcx = out, rdx = capacity, r8 = CHAT_TURN*) -> rax
template_render_turn:
    push rbx
    push rbp
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    mov rbx, rcx
    mov r12, rdx
    mov rbp, r8
    xor r13d, r13d
    xor r15d, r15d
    mov dword ptr [rip + template_n_spans], 0
    mov ecx, [rbp + CHAT_TURN_ROW]
    call row_address
    test rax, rax
    jz .Lbad_row
    mov r14, rax
    call emit_turn
    mov rax, r13
    test r15d, r15d
    jz .Lout
    mov rax, CHAT_E_SPACE
.Lout:
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbp
    pop rbx
    ret
.Lbad_row:
    mov rax, CHAT_E_ROW
    jmp .Lout

# template_render(rcx = out, rdx = capacity, r8 = CHAT_CONV*) -> rax
# Stack: [rsp] a CHAT_TURN for emit_turn, [rsp + 48] the CHAT_CONV*, [rsp + 56] the index.
template_render:
    push rbx
    push rbp
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, 64
    mov rbx, rcx
    mov r12, rdx
    xor r13d, r13d
    xor r15d, r15d
    mov dword ptr [rip + template_n_spans], 0
    mov [rsp + 48], r8
    mov dword ptr [rsp + 56], 0
    mov ecx, [r8 + CHAT_CONV_ROW]
    call row_address
    test rax, rax
    jz .Lbad_row
    mov r14, rax
    mov r8, [rsp + 48]
    mov rbp, rsp                      # the CHAT_TURN
    mov eax, [r8 + CHAT_CONV_ROW]
    mov [rbp + CHAT_TURN_ROW], eax
    mov dword ptr [rbp + CHAT_TURN_FLAGS], CHAT_TURN_F_FIRST
    mov rax, [r8 + CHAT_CONV_SYSTEM]
    mov [rbp + CHAT_TURN_SYSTEM], rax
    mov rax, [r8 + CHAT_CONV_SYSTEM_LEN]
    mov [rbp + CHAT_TURN_SYSTEM_LEN], rax
.Lnext:
    mov r8, [rsp + 48]
    mov eax, [rsp + 56]
    cmp eax, [r8 + CHAT_CONV_N_MESSAGES]
    jae .Ldone
    mov rdx, [r8 + CHAT_CONV_MESSAGES]
    shl rax, 4                        # CHAT_MSG_SIZE
    add rdx, rax
    test dword ptr [rsp + 56], 1
    jnz .Lreply
    mov rax, [rdx + CHAT_MSG_TEXT]
    mov [rbp + CHAT_TURN_TEXT], rax
    mov rax, [rdx + CHAT_MSG_LEN]
    mov [rbp + CHAT_TURN_TEXT_LEN], rax
    call emit_turn
    mov dword ptr [rbp + CHAT_TURN_FLAGS], CHAT_TURN_F_AFTER_REPLY
    jmp .Lstep
.Lreply:
    mov r8, [rdx + CHAT_MSG_LEN]
    mov rdx, [rdx + CHAT_MSG_TEXT]
    call emit_reply
.Lstep:
    inc dword ptr [rsp + 56]
    jmp .Lnext
.Ldone:
    mov rax, r13
    test r15d, r15d
    jz .Lout
    mov rax, CHAT_E_SPACE
.Lout:
    add rsp, 64
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbp
    pop rbx
    ret
.Lbad_row:
    mov rax, CHAT_E_ROW
    jmp .Lout

# emit_turn(rbp = CHAT_TURN*): one user turn (see template_render_turn). Renderer state as
# above; clobbers rax rcx rdx rsi rdi r8-r11.
emit_turn:
    mov r11d, [rbp + CHAT_TURN_FLAGS]
    mov r9d, [r14 + CHAT_TEMPLATE_FLAGS]
    test r11d, CHAT_TURN_F_AFTER_REPLY
    jz .Lfirst
    mov eax, CHAT_TEMPLATE_ASSISTANT_SUFFIX
    call put_field
.Lfirst:
    test r11d, CHAT_TURN_F_FIRST
    jz .Luser
    mov eax, CHAT_TEMPLATE_BOS
    call put_field
    cmp qword ptr [rbp + CHAT_TURN_SYSTEM_LEN], 0
    je .Luser
    test r9d, CHAT_F_SYS_IN_USER
    jnz .Luser
    mov eax, CHAT_TEMPLATE_SYSTEM_PREFIX      # a system turn of its own
    call put_field
    mov r10, r13
    mov rsi, [rbp + CHAT_TURN_SYSTEM]
    mov rcx, [rbp + CHAT_TURN_SYSTEM_LEN]
    call put_bytes
    test r9d, CHAT_F_TRIM
    jz .Lsys_end
    mov rdx, r10
    call trim_span
.Lsys_end:
    call add_span
    mov eax, CHAT_TEMPLATE_SYSTEM_SUFFIX
    call put_field
.Luser:
    mov eax, CHAT_TEMPLATE_USER_PREFIX
    call put_field
    mov r10, r13                              # the content starts here
    test r11d, CHAT_TURN_F_FIRST
    jz .Ltext
    cmp qword ptr [rbp + CHAT_TURN_SYSTEM_LEN], 0
    je .Ltext
    test r9d, CHAT_F_SYS_IN_USER
    jz .Ltext
    mov eax, CHAT_TEMPLATE_SYSTEM_PREFIX      # the system text opens the first user content
    call put_field
    mov rsi, [rbp + CHAT_TURN_SYSTEM]
    mov rcx, [rbp + CHAT_TURN_SYSTEM_LEN]
    call put_bytes
    mov eax, CHAT_TEMPLATE_SYSTEM_SUFFIX
    call put_field
.Ltext:
    mov rsi, [rbp + CHAT_TURN_TEXT]
    mov rcx, [rbp + CHAT_TURN_TEXT_LEN]
    call put_bytes
    test r9d, CHAT_F_TRIM
    jz .Lclose
    mov rdx, r10
    call trim_span
.Lclose:
    call add_span
    mov eax, CHAT_TEMPLATE_USER_SUFFIX
    call put_field
    mov eax, CHAT_TEMPLATE_GENERATION_PROMPT
    jmp put_field

# emit_reply(rdx = text, r8 = length): ASSISTANT_PREFIX and a reply in the history (left open).
emit_reply:
    mov eax, CHAT_TEMPLATE_ASSISTANT_PREFIX
    call put_field
    mov r10, r13
    mov rsi, rdx
    mov rcx, r8
    call put_bytes
    test dword ptr [r14 + CHAT_TEMPLATE_FLAGS], CHAT_F_TRIM
    jz .Lout
    mov rdx, r10
    call trim_span
.Lout:
    jmp add_span

# add_span(r10 = start, r13 = end): [start, end) into template_spans unless it is empty, the
# list is full or the output no longer fits. Clobbers rax, rcx.
add_span:
    test r15d, r15d
    jnz .Lret
    cmp r13, r10
    jbe .Lret
    mov eax, [rip + template_n_spans]
    cmp eax, TEMPLATE_MAX_SPANS
    jae .Lret
    lea rcx, [rip + template_spans]
    mov [rcx + rax * 8], r10d
    mov [rcx + rax * 8 + 4], r13d
    inc dword ptr [rip + template_n_spans]
.Lret:
    ret

# put_field(eax = CHAT_TEMPLATE_<FIELD> offset): append the row's text. Clobbers rax rcx rsi rdi.
put_field:
    mov eax, [r14 + rax]
    mov ecx, eax
    shr ecx, 16
    movzx eax, ax
    lea rsi, [rip + chat_template_pool]
    add rsi, rax
    jmp put_bytes

# put_bytes(rsi = bytes, rcx = length): append, or set r15d when it does not fit.
# Clobbers rax rcx rsi rdi.
put_bytes:
    test r15d, r15d
    jnz .Lout
    lea rax, [r13 + rcx]
    cmp rax, r12
    ja .Lfull
    lea rdi, [rbx + r13]
    mov r13, rax
    rep movsb
.Lout:
    ret
.Lfull:
    mov r15d, 1
    ret

# trim_span(rdx = start): strip leading and trailing whitespace from the bytes written since
# `start` (what Python's str.strip() strips among ASCII: 9-13, 28-31, space), moving the rest
# down. Clobbers rax rcx rsi rdi r8.
trim_span:
    test r15d, r15d
    jnz .Ldone
.Ltail:
    cmp r13, rdx
    jbe .Ldone
    movzx eax, byte ptr [rbx + r13 - 1]
    call is_space
    test eax, eax
    jz .Lhead
    dec r13
    jmp .Ltail
.Lhead:
    mov r8, rdx
.Lskip:
    movzx eax, byte ptr [rbx + r8]    # a non-space byte ends the span, so this stops
    call is_space
    test eax, eax
    jz .Lmove
    inc r8
    jmp .Lskip
.Lmove:
    cmp r8, rdx
    je .Ldone
    mov rcx, r13
    sub rcx, r8
    lea rsi, [rbx + r8]
    lea rdi, [rbx + rdx]
    lea r13, [rdx + rcx]
    rep movsb                         # forward: the destination is below the source
.Ldone:
    ret

# is_space(eax = byte) -> eax = 1 for ASCII whitespace as str.strip() sees it, else 0.
# Clobbers ecx.
is_space:
    cmp eax, 32
    je .Lyes
    lea ecx, [rax - 9]
    cmp ecx, 4
    jbe .Lyes
    lea ecx, [rax - 28]
    cmp ecx, 3
    jbe .Lyes
    xor eax, eax
    ret
.Lyes:
    mov eax, 1
    ret

# row_address(ecx = row) -> rax = the row, or 0. Clobbers rdx.
row_address:
    xor eax, eax
    cmp ecx, CHAT_N_TEMPLATES
    jae .Lout
    imul eax, ecx, CHAT_TEMPLATE_SIZE
    lea rdx, [rip + chat_template_table]
    add rax, rdx
.Lout:
    ret

# field_text(eax = packed field) -> rax = bytes in the pool, rdx = length (0, 0 if empty).
field_text:
    mov edx, eax
    shr edx, 16
    jz .Lempty
    movzx eax, ax
    lea rcx, [rip + chat_template_pool]
    add rax, rcx
    ret
.Lempty:
    xor eax, eax
    ret

# template_flags(ecx = row) -> eax
template_flags:
    call row_address
    test rax, rax
    jz .Lout
    mov eax, [rax + CHAT_TEMPLATE_FLAGS]
.Lout:
    ret

# template_text(ecx = row, edx = field offset) -> rax = bytes, rdx = length
template_text:
    mov r8d, edx
    call row_address
    test rax, rax
    jz .Lnone
    mov eax, [rax + r8]
    jmp field_text
.Lnone:
    xor edx, edx
    ret

# mem_find(rcx = haystack, rdx = length, r8 = needle, r9 = length) -> rax = index of the first
# occurrence, or -1. An empty needle is found at 0. Clobbers rcx rdx r10 r11.
mem_find:
    xor eax, eax
    cmp r9, rdx
    ja .Lmissing
    sub rdx, r9                       # the last start
.Lstart:
    xor r10d, r10d
.Lcmp:
    cmp r10, r9
    jae .Lout                         # all matched: rax = index
    lea r11, [rcx + rax]
    movzx r11d, byte ptr [r11 + r10]
    cmp r11b, byte ptr [r8 + r10]
    jne .Lmiss
    inc r10
    jmp .Lcmp
.Lmiss:
    inc rax
    cmp rax, rdx
    jbe .Lstart
.Lmissing:
    mov rax, -1
.Lout:
    ret

# template_find(rcx = name, rdx = length) -> eax = row, or CHAT_NONE
template_find:
    push rsi
    push rdi
    push rbx
    mov rsi, rcx
    mov rdi, rdx
    xor ebx, ebx
.Lrow:
    cmp ebx, CHAT_N_TEMPLATES
    jae .Lnone
    mov ecx, ebx
    mov edx, CHAT_TEMPLATE_NAME
    call template_text
    cmp rdx, rdi
    jne .Lnext
    xor ecx, ecx
.Lcmp:
    cmp rcx, rdx
    jae .Lfound
    movzx r8d, byte ptr [rax + rcx]
    cmp r8b, [rsi + rcx]
    jne .Lnext
    inc rcx
    jmp .Lcmp
.Lnext:
    inc ebx
    jmp .Lrow
.Lfound:
    mov eax, ebx
    jmp .Lout
.Lnone:
    mov eax, CHAT_NONE
.Lout:
    pop rbx
    pop rdi
    pop rsi
    ret

# template_detect(rcx = text, rdx = length) -> eax = row, or CHAT_NONE: the first entry of
# chat_detect_table whose strings all occur in the text.
template_detect:
    push rsi
    push rdi
    push rbx
    push r12
    push r13
    mov rsi, rcx
    mov rdi, rdx
    lea rbx, [rip + chat_detect_table]
    xor r12d, r12d                    # entry
.Lentry:
    cmp r12d, CHAT_N_DETECT
    jae .Lnone
    xor r13d, r13d                    # needle
.Lneedle:
    cmp r13d, CHAT_DETECT_NEEDLES
    jae .Lfound
    mov eax, [rbx + CHAT_DETECT_NEEDLE + r13 * 4]
    call field_text
    test rdx, rdx
    jz .Lfound                        # unused slots come last
    mov r8, rax
    mov r9, rdx
    mov rcx, rsi
    mov rdx, rdi
    call mem_find
    test rax, rax
    js .Lnext
    inc r13d
    jmp .Lneedle
.Lnext:
    inc r12d
    add rbx, CHAT_DETECT_SIZE
    jmp .Lentry
.Lfound:
    mov eax, [rbx + CHAT_DETECT_ROW]
    jmp .Lout
.Lnone:
    mov eax, CHAT_NONE
.Lout:
    pop r13
    pop r12
    pop rbx
    pop rdi
    pop rsi
    ret

# template_default_system(ecx = row, rdx = template, r8 = length) -> rax = text, rdx = length
# Registers: rsi = where the search resumes, rdi = bytes left, r12/r13 = SYSTEM_PREFIX,
# r14/r15 = SYSTEM_SUFFIX, rbx = the candidate text.
template_default_system:
    push rsi
    push rdi
    push rbx
    push r12
    push r13
    push r14
    push r15
    mov rsi, rdx
    mov rdi, r8
    mov ebx, ecx
    call row_address
    test rax, rax
    jz .Lnone
    test dword ptr [rax + CHAT_TEMPLATE_FLAGS], CHAT_F_SYS_IN_USER
    jnz .Lnone
    mov ecx, ebx
    mov edx, CHAT_TEMPLATE_SYSTEM_SUFFIX
    call template_text
    mov r14, rax
    mov r15, rdx
    mov ecx, ebx
    mov edx, CHAT_TEMPLATE_SYSTEM_PREFIX
    call template_text
    mov r12, rax
    mov r13, rdx
    test r13, r13
    jz .Lnone
    test r15, r15
    jz .Lnone
.Lsearch:
    mov rcx, rsi
    mov rdx, rdi
    mov r8, r12
    mov r9, r13
    call mem_find
    test rax, rax
    js .Lnone
    add rax, r13                      # past the prefix
    add rsi, rax
    sub rdi, rax
    mov rcx, rsi
    mov rdx, rdi
    mov r8, r14
    mov r9, r15
    call mem_find
    test rax, rax
    js .Lnone
    jz .Lsearch                       # nothing between: not a default message
    mov rbx, rsi
    xor ecx, ecx
.Lcheck:
    movzx edx, byte ptr [rbx + rcx]
    cmp edx, 0x27                     # '
    je .Lsearch
    cmp edx, 0x22                     # "
    je .Lsearch
    cmp edx, 0x7B                     # {
    je .Lsearch
    cmp edx, 0x7D                     # }
    je .Lsearch
    cmp edx, 0x5C                     # backslash
    je .Lsearch
    inc rcx
    cmp rcx, rax
    jb .Lcheck
    mov rdx, rax
    mov rax, rbx
    jmp .Lout
.Lnone:
    xor eax, eax
    xor edx, edx
.Lout:
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rdi
    pop rsi
    ret
