# The conversation as the chat format sees it: which format is in use (the chat_format
# setting; auto: the model's own, recognised from its GGUF tokenizer.chat_template, else raw),
# the system prompt (system_prompt; else the default the model's template inserts), the
# messages so far (for /history and the context shift), the end-of-turn token ids. Rendering
# is template.s's; generate.s drives a turn. Microsoft x64 ABI everywhere.
#
#   chat_model_loaded()         after a model loads: its template's row and default system
#                               text (pointers into the loaded file image); history cleared
#   chat_prepare()              before a turn: chat_row from the settings, the stop ids
#   chat_render_prompt(rcx = user text, rdx = length, r8d = CHAT_RENDER_*) -> rax = text,
#       rdx = length (in chat_render_buf); rax = 0 when it does not fit the buffer.
#       CHAT_RENDER_TURN: the new turn only (the KV cache holds the rest: the first turn
#       brings BOS and the system text, later ones close the reply before them);
#       CHAT_RENDER_WHOLE: system + the history + the new turn (re-prefill after a shift);
#       CHAT_RENDER_ALONE: system + the new turn, as if the conversation were empty.
#   chat_add_user(rcx = text, rdx = length)   the turn is accepted: record it, open its reply
#   chat_reply_append(rcx = bytes, rdx = length)   a printed piece of the reply
#   chat_drop_oldest() -> eax = 1 when the oldest user turn and its reply were dropped
#   chat_is_stop(ecx = token) -> eax = 1 for an end-of-turn / end-of-sequence id
#   chat_bos_in_text() -> eax != 0 when the format's text carries BOS itself
#   chat_clear()                no messages (session_clear calls it)
#   chat_save() / chat_restore()   a copy of the messages, taken before a context shift drops
#                               turns, put back when that turn is taken back (generate.s)
#   cmd_system, cmd_history     the /system and /history commands (commands.s's table)
# The history keeps the last CHAT_HIST_BYTES bytes of messages (older ones drop out of it,
# not out of the KV cache); a reply longer than what is left is cut.
.include "chat_templates.inc"
.include "settings.inc"
.include "tokenizer.inc"
.include "model.inc"

.equ CHAT_MAX_MSGS, 256
.equ CHAT_HIST_BYTES, 32768
.equ CHAT_RENDER_CAP, TOK_MAX_TEXT
.equ CHAT_MAX_STOPS, 4
.equ CHAT_RENDER_TURN, 0
.equ CHAT_RENDER_WHOLE, 1
.equ CHAT_RENDER_ALONE, 2
.equ HALF_HIST, CHAT_HIST_BYTES / 2
# keystone takes one symbol per memory operand: the sums as .equ
.equ NEXT_TEXT, CHAT_MSG_SIZE + CHAT_MSG_TEXT        # the message after this one
.equ NEXT_LEN, CHAT_MSG_SIZE + CHAT_MSG_LEN
.equ LAST_LEN, CHAT_MSG_LEN - CHAT_MSG_SIZE          # the message before this index
.equ THIRD_TEXT, 2 * CHAT_MSG_SIZE + CHAT_MSG_TEXT
.equ BACK2_TEXT, CHAT_MSG_TEXT - 2 * CHAT_MSG_SIZE
.equ BACK2_LEN, CHAT_MSG_LEN - 2 * CHAT_MSG_SIZE

.section .bss
.balign 8
chat_msgs:        .skip (CHAT_MAX_MSGS + 1) * CHAT_MSG_SIZE   # + the new turn of a WHOLE render
chat_turn:        .skip CHAT_TURN_SIZE
chat_conv:        .skip CHAT_CONV_SIZE
chat_value:       .skip GGUF_VALUE_SIZE
chat_def_sys:     .skip 8             # the model template's default system text, or 0
chat_def_sys_len: .skip 8
hist_used:        .skip 8
chat_n_msgs:      .skip 4             # user, reply, user, reply...: a reply is always open last
chat_row:         .skip 4             # the format in use
chat_model_row:   .skip 4             # the model's own (CHAT_NONE: none recognised)
chat_stops:       .skip 4 * CHAT_MAX_STOPS
hist_buf:         .skip CHAT_HIST_BYTES
saved_used:       .skip 8             # chat_save's copy
saved_n_msgs:     .skip 4
.balign 8
saved_msgs:       .skip CHAT_MAX_MSGS * CHAT_MSG_SIZE
saved_hist:       .skip CHAT_HIST_BYTES
chat_render_buf:  .skip CHAT_RENDER_CAP

.section .rdata
k_chat_template:  .ascii "tokenizer.chat_template"
.equ K_CHAT_TEMPLATE_LEN, 23
k_system_prompt:  .asciz "system_prompt"
s_system:         .asciz "system: "
s_default:        .asciz "(the model's default) "
s_none:           .asciz "(none)\n"
s_user:           .asciz "user: "
s_assistant:      .asciz "assistant: "
s_no_turns:       .asciz "(no turns yet)\n"
s_nl:             .asciz "\n"
s_format:         .asciz "format: "
s_sys_set:        .asciz "system prompt set; conversation cleared\n"
s_sys_cleared:    .asciz "system prompt cleared; conversation cleared\n"
s_sys_bad:        .asciz "bad value: expected text on one line, up to 511 bytes (usage: /system [TEXT], - clears)\n"

.section .text
.global chat_model_loaded, chat_prepare, chat_render_prompt, chat_add_user, chat_reply_append
.global chat_drop_oldest, chat_is_stop, chat_bos_in_text, chat_clear, cmd_system, cmd_history
.global chat_save, chat_restore
.global chat_row, chat_render_buf
.extern sess_model, sess_gguf, sess_tok, sess_pos, sess_pending, session_clear
.extern set_chat_format, set_system_prompt, settings_find, settings_set
.extern gguf_get_str, sess_token_id, str_len, rt_memcpy, rt_print_cstr, rt_print_utf8
.extern template_render_turn, template_render, template_detect, template_text
.extern template_default_system, template_flags, no_args, trim

# chat_model_loaded()
chat_model_loaded:
    sub rsp, 40
    mov dword ptr [rip + chat_model_row], CHAT_NONE
    mov qword ptr [rip + chat_def_sys], 0
    mov qword ptr [rip + chat_def_sys_len], 0
    cmp dword ptr [rip + sess_model + MODEL_FORMAT], MODEL_FORMAT_GGUF
    jne .Ldone
    lea rcx, [rip + sess_gguf]
    lea rdx, [rip + k_chat_template]
    mov r8d, K_CHAT_TEMPLATE_LEN
    lea r9, [rip + chat_value]
    call gguf_get_str
    test eax, eax
    jnz .Ldone                        # no template (or not a string): raw
    mov rcx, [rip + chat_value + GGUF_VALUE_DATA]
    mov rdx, [rip + chat_value + GGUF_VALUE_COUNT]
    call template_detect
    mov [rip + chat_model_row], eax
    cmp eax, CHAT_NONE
    je .Ldone
    mov ecx, eax
    mov rdx, [rip + chat_value + GGUF_VALUE_DATA]
    mov r8, [rip + chat_value + GGUF_VALUE_COUNT]
    call template_default_system
    mov [rip + chat_def_sys], rax
    mov [rip + chat_def_sys_len], rdx
.Ldone:
    call chat_clear
    add rsp, 40
    ret

# chat_prepare(): chat_row from chat_format; the stop ids: the row's end-of-turn texts as
# tokens of this vocabulary, then the model's EOS and BOS (llama2.c's 2 and 1 for .bin models)
chat_prepare:
    push rbx
    push rsi
    sub rsp, 40
    mov eax, [rip + set_chat_format]
    cmp eax, CHAT_AUTO
    jne .Lhave_row
    mov eax, [rip + chat_model_row]
    cmp eax, CHAT_NONE
    jne .Lhave_row
    mov eax, CHAT_RAW
.Lhave_row:
    mov [rip + chat_row], eax
    lea rbx, [rip + chat_stops]
    mov esi, CHAT_TEMPLATE_STOP0
    call stop_id
    mov [rbx], eax
    mov esi, CHAT_TEMPLATE_STOP1
    call stop_id
    mov [rbx + 4], eax
    mov eax, TOK_EOS
    mov ecx, TOK_BOS
    cmp dword ptr [rip + sess_model + MODEL_FORMAT], MODEL_FORMAT_GGUF
    jne .Lids
    mov eax, [rip + sess_model + MODEL_EOS_ID]
    mov ecx, [rip + sess_model + MODEL_BOS_ID]
.Lids:
    mov [rbx + 8], eax
    mov [rbx + 12], ecx
    add rsp, 40
    pop rsi
    pop rbx
    ret

# stop_id(esi = field offset) -> eax = the token whose piece is the row's text, or -1.
# Called from chat_prepare's frame (aligned for the calls below after its own return address).
stop_id:
    sub rsp, 40
    mov ecx, [rip + chat_row]
    mov edx, esi
    call template_text
    mov r8, rdx
    mov rdx, rax
    mov eax, -1
    test r8, r8
    jz .Lout
    mov rcx, rdx
    mov rdx, r8
    call sess_token_id
.Lout:
    add rsp, 40
    ret

# chat_is_stop(ecx = token) -> eax
chat_is_stop:
    lea rdx, [rip + chat_stops]
    xor eax, eax
    cmp ecx, -1
    je .Lout
    cmp ecx, [rdx]
    je .Lyes
    cmp ecx, [rdx + 4]
    je .Lyes
    cmp ecx, [rdx + 8]
    je .Lyes
    cmp ecx, [rdx + 12]
    jne .Lout
.Lyes:
    mov eax, 1
.Lout:
    ret

# chat_bos_in_text() -> eax
chat_bos_in_text:
    sub rsp, 40
    mov ecx, [rip + chat_row]
    call template_flags
    and eax, CHAT_F_BOS_IN_TEXT
    add rsp, 40
    ret

# system_text() -> rax = the system text in effect, rdx = its length (0, 0: none): the
# system_prompt setting, else the model template's default when the format is the model's.
system_text:
    sub rsp, 40
    lea rcx, [rip + set_system_prompt]
    call str_len
    mov rdx, rax
    lea rax, [rip + set_system_prompt]
    test rdx, rdx
    jnz .Lout
    xor eax, eax
    mov ecx, [rip + chat_row]
    cmp ecx, [rip + chat_model_row]
    jne .Lout
    mov rax, [rip + chat_def_sys]
    mov rdx, [rip + chat_def_sys_len]
.Lout:
    add rsp, 40
    ret

# chat_render_prompt(rcx = text, rdx = length, r8d = mode) -> rax = text, rdx = length
chat_render_prompt:
    push rbx
    push rsi
    push rdi
    sub rsp, 32
    mov rsi, rcx
    mov rdi, rdx
    mov ebx, r8d
    call system_text
    cmp ebx, CHAT_RENDER_WHOLE
    je .Lwhole
    lea r8, [rip + chat_turn]
    mov ecx, [rip + chat_row]
    mov [r8 + CHAT_TURN_ROW], ecx
    mov [r8 + CHAT_TURN_SYSTEM], rax
    mov [r8 + CHAT_TURN_SYSTEM_LEN], rdx
    mov [r8 + CHAT_TURN_TEXT], rsi
    mov [r8 + CHAT_TURN_TEXT_LEN], rdi
    mov eax, CHAT_TURN_F_FIRST
    cmp ebx, CHAT_RENDER_ALONE
    je .Lflags
    cmp dword ptr [rip + sess_pos], 0
    jne .Lafter
    cmp dword ptr [rip + sess_pending], -1
    je .Lflags
.Lafter:
    mov eax, CHAT_TURN_F_AFTER_REPLY
.Lflags:
    mov [r8 + CHAT_TURN_FLAGS], eax
    lea rcx, [rip + chat_render_buf]
    mov edx, CHAT_RENDER_CAP
    call template_render_turn
    jmp .Lresult
.Lwhole:
    lea r8, [rip + chat_conv]
    mov ecx, [rip + chat_row]
    mov [r8 + CHAT_CONV_ROW], ecx
    mov [r8 + CHAT_CONV_SYSTEM], rax
    mov [r8 + CHAT_CONV_SYSTEM_LEN], rdx
    lea rax, [rip + chat_msgs]
    mov [r8 + CHAT_CONV_MESSAGES], rax
    mov ecx, [rip + chat_n_msgs]      # the new turn goes in the spare slot after them
    mov edx, ecx
    shl rdx, 4                        # CHAT_MSG_SIZE
    mov [rax + rdx + CHAT_MSG_TEXT], rsi
    mov [rax + rdx + CHAT_MSG_LEN], rdi
    inc ecx
    mov [r8 + CHAT_CONV_N_MESSAGES], ecx
    lea rcx, [rip + chat_render_buf]
    mov edx, CHAT_RENDER_CAP
    call template_render
.Lresult:
    mov rdx, rax
    lea rax, [rip + chat_render_buf]
    test rdx, rdx
    jns .Lout
    xor eax, eax
    xor edx, edx
.Lout:
    add rsp, 32
    pop rdi
    pop rsi
    pop rbx
    ret

# chat_clear()
chat_clear:
    mov dword ptr [rip + chat_n_msgs], 0
    mov qword ptr [rip + hist_used], 0
    ret

# chat_save(), chat_restore(): the messages (chat_n_msgs entries, their hist_used bytes of text)
# to saved_* and back; the entries point into hist_buf, whose bytes go back where they were
chat_save:
    mov eax, [rip + chat_n_msgs]
    mov [rip + saved_n_msgs], eax
    mov rax, [rip + hist_used]
    mov [rip + saved_used], rax
    lea rcx, [rip + saved_msgs]
    lea rdx, [rip + chat_msgs]
    lea r8, [rip + saved_hist]
    lea r9, [rip + hist_buf]
    jmp chat_copy
chat_restore:
    mov eax, [rip + saved_n_msgs]
    mov [rip + chat_n_msgs], eax
    mov rax, [rip + saved_used]
    mov [rip + hist_used], rax
    lea rcx, [rip + chat_msgs]
    lea rdx, [rip + saved_msgs]
    lea r8, [rip + hist_buf]
    lea r9, [rip + saved_hist]
# chat_copy(rcx = entries to, rdx = from, r8 = texts to, r9 = from): the current counts' worth
chat_copy:
    push rsi
    push rdi
    sub rsp, 40
    mov rsi, r8
    mov rdi, r9
    mov r8d, [rip + chat_n_msgs]
    imul r8, r8, CHAT_MSG_SIZE
    call rt_memcpy
    mov rcx, rsi
    mov rdx, rdi
    mov r8, [rip + hist_used]
    call rt_memcpy
    add rsp, 40
    pop rdi
    pop rsi
    ret

# chat_add_user(rcx = text, rdx = length): room is made by dropping the oldest turns; a text
# longer than half the history is cut to that.
chat_add_user:
    push rsi
    push rdi
    sub rsp, 40
    mov rsi, rcx
    mov rdi, rdx
    mov eax, HALF_HIST
    cmp rdi, rax
    cmova rdi, rax
.Lroom:
    cmp dword ptr [rip + chat_n_msgs], CHAT_MAX_MSGS - 2
    ja .Ldrop
    mov rax, [rip + hist_used]
    add rax, rdi
    cmp rax, CHAT_HIST_BYTES
    jbe .Lfits
.Ldrop:
    call chat_drop_oldest
    test eax, eax
    jnz .Lroom
.Lfits:
    lea rcx, [rip + hist_buf]
    add rcx, [rip + hist_used]
    mov eax, [rip + chat_n_msgs]
    shl rax, 4
    lea rdx, [rip + chat_msgs]
    mov [rdx + rax + CHAT_MSG_TEXT], rcx          # the user's message
    mov [rdx + rax + CHAT_MSG_LEN], rdi
    lea r8, [rcx + rdi]
    mov [rdx + rax + NEXT_TEXT], r8   # its reply, empty for now
    mov qword ptr [rdx + rax + NEXT_LEN], 0
    add dword ptr [rip + chat_n_msgs], 2
    add [rip + hist_used], rdi
    mov rdx, rsi
    mov r8, rdi
    call rt_memcpy
    add rsp, 40
    pop rdi
    pop rsi
    ret

# chat_reply_append(rcx = bytes, rdx = length): to the open reply (the last message)
chat_reply_append:
    sub rsp, 40
    mov eax, [rip + chat_n_msgs]
    test eax, eax
    jz .Lout
    mov r8, [rip + hist_used]
    mov r9d, CHAT_HIST_BYTES
    sub r9, r8                        # room left
    cmp rdx, r9
    cmova rdx, r9
    shl rax, 4
    lea r9, [rip + chat_msgs]
    add [r9 + rax + LAST_LEN], rdx
    add [rip + hist_used], rdx
    mov r8, rdx
    mov rdx, rcx
    lea rcx, [rip + hist_buf]
    add rcx, [rip + hist_used]
    sub rcx, r8
    call rt_memcpy
.Lout:
    add rsp, 40
    ret

# chat_drop_oldest() -> eax = 1 when the oldest user message and its reply were dropped
chat_drop_oldest:
    push rsi
    push rdi
    sub rsp, 40
    xor eax, eax
    mov ecx, [rip + chat_n_msgs]
    cmp ecx, 2
    jb .Lout
    lea rsi, [rip + chat_msgs]
    mov rdx, [rip + hist_used]        # bytes of the first two: all, or up to the third's text
    cmp ecx, 2
    je .Lbytes
    lea rax, [rip + hist_buf]
    mov rdx, [rsi + THIRD_TEXT]
    sub rdx, rax
.Lbytes:
    mov rdi, rdx                      # bytes dropped
    mov eax, 2                        # move the messages down two slots, their texts down
.Lmsg:
    cmp eax, ecx
    jae .Lmoved
    mov r8d, eax
    shl r8, 4
    mov r9, [rsi + r8 + CHAT_MSG_TEXT]
    sub r9, rdi
    mov [rsi + r8 + BACK2_TEXT], r9
    mov r9, [rsi + r8 + CHAT_MSG_LEN]
    mov [rsi + r8 + BACK2_LEN], r9
    inc eax
    jmp .Lmsg
.Lmoved:
    sub ecx, 2
    mov [rip + chat_n_msgs], ecx
    mov r8, [rip + hist_used]
    sub r8, rdi
    mov [rip + hist_used], r8
    lea rcx, [rip + hist_buf]         # texts: forward copy, the destination is below
    lea rdx, [rcx + rdi]
.Lcopy:
    test r8, r8
    jz .Ldone
    mov al, [rdx]
    mov [rcx], al
    inc rcx
    inc rdx
    dec r8
    jmp .Lcopy
.Ldone:
    mov eax, 1
.Lout:
    add rsp, 40
    pop rdi
    pop rsi
    ret

# cmd_system(rcx = arguments, rdx = length, r8 = entry): no text shows the system prompt in
# effect; "-" clears system_prompt; any other text sets it. Changing it clears the
# conversation (the system text opens the KV cache).
cmd_system:
    push rbx
    push rsi
    push rdi
    sub rsp, 32
    call trim                         # as repl.cfg trims its values
    mov rsi, rax
    mov rdi, rdx
    test rdi, rdi
    jz .Lshow
    lea rcx, [rip + k_system_prompt]
    mov edx, 13
    call settings_find
    mov rbx, rax
    cmp rdi, 1
    jne .Lset
    cmp byte ptr [rsi], 0x2D          # '-'
    jne .Lset
    xor edi, edi
.Lset:
    mov rcx, rbx
    mov rdx, rsi
    mov r8, rdi
    mov r9d, SET_SRC_COMMAND
    call settings_set
    test eax, eax
    jz .Lbad
    call session_clear
    lea rcx, [rip + s_sys_set]
    test rdi, rdi
    jnz .Lsay
    lea rcx, [rip + s_sys_cleared]
.Lsay:
    call rt_print_cstr
    jmp .Lout
.Lbad:
    lea rcx, [rip + s_sys_bad]
    call rt_print_cstr
    jmp .Lout
.Lshow:
    call chat_prepare
    call print_system
.Lout:
    add rsp, 32
    pop rdi
    pop rsi
    pop rbx
    ret

# print_system(): "system: TEXT" (marked when it is the model's default), or "(none)"
print_system:
    push rbx
    push rsi
    sub rsp, 40
    lea rcx, [rip + s_system]
    call rt_print_cstr
    call system_text
    mov rbx, rax
    mov rsi, rdx
    test rsi, rsi
    jnz .Lhave
    lea rcx, [rip + s_none]
    call rt_print_cstr
    jmp .Lout
.Lhave:
    lea rax, [rip + set_system_prompt]
    cmp rbx, rax
    je .Lprint
    lea rcx, [rip + s_default]
    call rt_print_cstr
.Lprint:
    mov rcx, rbx
    mov rdx, rsi
    call rt_print_utf8
    lea rcx, [rip + s_nl]
    call rt_print_cstr
.Lout:
    add rsp, 40
    pop rsi
    pop rbx
    ret

# cmd_history(): the format, the system text, then every message kept, one "user: " or
# "assistant: " block each
cmd_history:
    push rbx
    push rsi
    push rdi
    sub rsp, 32
    call no_args                      # (rdx, r8 as given: prints the usage when there are some)
    test eax, eax
    jz .Lout
    call chat_prepare
    lea rcx, [rip + s_format]
    call rt_print_cstr
    mov ecx, [rip + chat_row]
    mov edx, CHAT_TEMPLATE_NAME
    call template_text
    mov rcx, rax
    call rt_print_utf8
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    call print_system
    cmp dword ptr [rip + chat_n_msgs], 0
    jne .Lmsgs
    lea rcx, [rip + s_no_turns]
    call rt_print_cstr
    jmp .Lout
.Lmsgs:
    xor ebx, ebx
.Lnext:
    cmp ebx, [rip + chat_n_msgs]
    jae .Lout
    lea rcx, [rip + s_user]
    test ebx, 1
    jz .Lrole
    lea rcx, [rip + s_assistant]
.Lrole:
    call rt_print_cstr
    mov eax, ebx
    shl rax, 4
    lea rsi, [rip + chat_msgs]
    mov rcx, [rsi + rax + CHAT_MSG_TEXT]
    mov rdx, [rsi + rax + CHAT_MSG_LEN]
    call rt_print_utf8
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    inc ebx
    jmp .Lnext
.Lout:
    add rsp, 32
    pop rdi
    pop rsi
    pop rbx
    ret
