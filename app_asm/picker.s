# The list of model files discovery found (models.s fills it): name order, the configured
# model taken out when it failed, and the picker that chooses among them - or, when autorun
# is waiting, does not wait for a person and tries them in order.
.include "settings.inc"
.include "session.inc"

.equ PICK_PROMPT_MAX, 64

.section .bss
.balign 8
.global found_names, found_count, found_more, found_skipped
found_names:       .skip SESSION_MAX_MODELS * SESSION_NAME_MAX
found_count:       .skip 4
found_more:        .skip 4                # more model files than SESSION_MAX_MODELS
found_skipped:     .skip 4                # .bin files whose names could not be kept
sort_tmp:          .skip SESSION_NAME_MAX
pick_prompt:       .skip PICK_PROMPT_MAX

.section .rdata
s_found:          .asciz "models found:\n"
s_item:           .asciz "  %u. %s\n"
s_pick:           .asciz "choose a model [1-%u]: "
s_pick_bad:       .asciz "type a number from 1 to %u\n"
s_unattended:     .asciz "autorun runs unattended: trying the models in order (model= in repl.cfg picks one)\n"
s_k_model:        .asciz "model"

.section .text
.global found_sort, found_drop_configured, ucs2_has_bin_suffix, models_pick, name_icmp
.extern repl_prompt, repl_read_line, repl_autorun_pending, str_format, rt_printf, rt_print_cstr
.extern rt_memcpy, settings_find, settings_set, session_load_model, set_model, str_len, trim
.extern parse_uint

# ucs2_has_bin_suffix(rcx = NUL-terminated UCS-2 name) -> eax = 1 if it ends in .bin or .gguf (any
# case). Leaf.
ucs2_has_bin_suffix:
    mov rdx, rcx
.Lend:
    cmp word ptr [rdx], 0
    je .Lat_end
    add rdx, 2
    jmp .Lend
.Lat_end:
    xor eax, eax
    sub rdx, rcx
    cmp rdx, 8
    jb .Lout
    mov rdx, [rcx + rdx - 8]          # the last four units
    mov r8, 0x0020002000200000        # lower-case the letters, not the dot
    or rdx, r8
    mov r8, 0x006E00690062002E        # ".bin"
    cmp rdx, r8
    sete al
    je .Lout
    mov rdx, rcx                      # or ".gguf": the last four units "gguf" (any case)
.Lend2:                               #  after a "."
    cmp word ptr [rdx], 0
    je .Lat_end2
    add rdx, 2
    jmp .Lend2
.Lat_end2:
    sub rdx, rcx
    cmp rdx, 10
    jb .Lout
    cmp word ptr [rcx + rdx - 10], '.'
    jne .Lout
    mov rdx, [rcx + rdx - 8]
    mov r8, 0x0020002000200020
    or rdx, r8
    mov r8, 0x0066007500670067        # "gguf"
    cmp rdx, r8
    sete al
.Lout:
    ret

# name_icmp(rcx, rdx = NUL-terminated names) -> eax < 0, 0, > 0 as rcx sorts before, with,
# after rdx, ignoring ASCII case. Leaf.
name_icmp:
.Lbyte:
    movzx eax, byte ptr [rcx]
    movzx r8d, byte ptr [rdx]
    lea r9d, [rax - 'A']
    cmp r9d, 25
    ja .La
    or eax, 0x20
.La:
    lea r9d, [r8 - 'A']
    cmp r9d, 25
    ja .Lb
    or r8d, 0x20
.Lb:
    sub eax, r8d
    jnz .Ldone
    test r8d, r8d
    jz .Ldone
    inc rcx
    inc rdx
    jmp .Lbyte
.Ldone:
    ret

# found_sort(ecx = first index): found_names[first .. found_count) into name order (insertion
# sort: at most SESSION_MAX_MODELS names), so the picker numbers models the same on every
# firmware whatever order its directory reads give
found_sort:
    push rbx
    push rsi
    push rdi
    push r12
    sub rsp, 40
    mov r12d, ecx
    lea esi, [rcx + 1]                # the name to insert
.Lnext:
    cmp esi, [rip + found_count]
    jae .Lsorted
    lea rcx, [rip + sort_tmp]
    imul edx, esi, SESSION_NAME_MAX
    lea rax, [rip + found_names]
    add rdx, rax
    mov r8d, SESSION_NAME_MAX
    call rt_memcpy
    mov edi, esi                      # slot being filled
.Lshift:
    cmp edi, r12d
    jbe .Lplace
    lea rbx, [rip + found_names]
    imul eax, edi, SESSION_NAME_MAX
    add rbx, rax                      # slot edi; slot edi-1 is just below it
    lea rcx, [rip + sort_tmp]
    lea rdx, [rbx - SESSION_NAME_MAX]
    call name_icmp
    cmp eax, 0
    jge .Lplace
    mov rcx, rbx
    lea rdx, [rbx - SESSION_NAME_MAX]
    mov r8d, SESSION_NAME_MAX
    call rt_memcpy
    dec edi
    jmp .Lshift
.Lplace:
    imul ecx, edi, SESSION_NAME_MAX
    lea rax, [rip + found_names]
    add rcx, rax
    lea rdx, [rip + sort_tmp]
    mov r8d, SESSION_NAME_MAX
    call rt_memcpy
    inc esi
    jmp .Lnext
.Lsorted:
    add rsp, 40
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret


# note_found_model(rcx = name): /cfg shows the model that discovery loaded as
# "model = NAME  (found on the volume)"
note_found_model:
    push rbx
    push rsi
    sub rsp, 40
    mov rbx, rcx
    lea rcx, [rip + s_k_model]
    mov edx, 5
    call settings_find
    test rax, rax
    jz .Lout
    mov rsi, rax
    mov rcx, rbx
    call str_len
    mov r8, rax
    mov rcx, rsi
    mov rdx, rbx
    mov r9d, SET_SRC_FOUND
    call settings_set
.Lout:
    add rsp, 40
    pop rsi
    pop rbx
    ret


# found_name(ecx = index) -> rax = found_names[index]. Leaf.
found_name:
    imul eax, ecx, SESSION_NAME_MAX
    lea rcx, [rip + found_names]
    add rax, rcx
    ret

# models_pick() -> eax = 1 if a model is loaded: the one found (found_count >= 1), or with
# several a numbered picker; when autorun lines are waiting nobody may be there to answer, so
# the models are tried in order instead. What loads is noted for /cfg.
models_pick:
    push rbx
    push rsi
    push rdi
    sub rsp, 48
    mov ebx, [rip + found_count]
    xor esi, esi                      # the choice (0-based)
    cmp ebx, 1
    jbe .Lchosen
    lea rcx, [rip + s_found]          # several: a numbered list
    call rt_print_cstr
    xor esi, esi
.Llist:
    mov ecx, esi
    call found_name
    lea rcx, [rip + s_item]
    lea edx, [rsi + 1]
    mov r8, rax
    call rt_printf
    inc esi
    cmp esi, ebx
    jb .Llist
    call repl_autorun_pending
    test eax, eax
    jnz .Lunattended
    lea rcx, [rip + pick_prompt]
    mov edx, PICK_PROMPT_MAX
    lea r8, [rip + s_pick]
    mov r9d, ebx
    call str_format
.Lask:
    lea rcx, [rip + pick_prompt]
    call repl_prompt
    call repl_read_line               # rax = text, rdx = length
    mov rcx, rax
    call trim
    mov rcx, rax
    lea r8, [rsp + 32]
    call parse_uint
    test eax, eax
    jz .Lpick_bad
    mov rax, [rsp + 32]
    test rax, rax
    jz .Lpick_bad
    cmp rax, rbx
    ja .Lpick_bad
    lea esi, [rax - 1]
    jmp .Lchosen
.Lpick_bad:
    lea rcx, [rip + s_pick_bad]
    mov edx, ebx
    call rt_printf
    jmp .Lask
.Lunattended:
    lea rcx, [rip + s_unattended]
    call rt_print_cstr
    xor esi, esi
.Ltry:
    mov ecx, esi
    call found_name
    mov rdi, rax
    mov rcx, rax
    call session_load_model
    test eax, eax
    jnz .Lloaded
    inc esi
    cmp esi, ebx
    jb .Ltry
    jmp .Lout
.Lchosen:
    mov ecx, esi
    call found_name
    mov rdi, rax
    mov rcx, rax
    call session_load_model
    test eax, eax
    jz .Lout
.Lloaded:
    mov rcx, rdi
    call note_found_model
    mov eax, 1
.Lout:
    add rsp, 48
    pop rdi
    pop rsi
    pop rbx
    ret

# found_drop_configured(): takes set_model (which failed to load) out of found_names
found_drop_configured:
    push rbx
    push rsi
    sub rsp, 40
    xor esi, esi
.Lnext:
    cmp esi, [rip + found_count]
    jae .Ldone
    mov ecx, esi
    call found_name
    mov rbx, rax
    mov rcx, rax
    lea rdx, [rip + set_model]
    call name_icmp
    test eax, eax
    jz .Ldrop
    inc esi
    jmp .Lnext
.Ldrop:
    dec dword ptr [rip + found_count]
.Lmove:                               # the later names move up one slot
    cmp esi, [rip + found_count]
    jae .Ldone
    mov rcx, rbx
    lea rdx, [rbx + SESSION_NAME_MAX]
    mov r8d, SESSION_NAME_MAX
    call rt_memcpy
    add rbx, SESSION_NAME_MAX
    inc esi
    jmp .Lmove
.Ldone:
    add rsp, 40
    pop rsi
    pop rbx
    ret

