# One turn of the conversation: render the line for the chat format (chat.s, template.s),
# encode it, feed the new tokens through the model (prefill), then sample, print and feed back
# tokens until a stop: an end-of-turn or end-of-sequence id (not printed), max_tokens, the
# context's end, a stop rule on the printed text, Esc, or the time budget (set_budget ms; the
# original's cycle budgets). The KV cache keeps the conversation between turns; when a turn
# does not fit, the oldest turns are dropped (context shift); one that can never fit is
# refused and the conversation kept. Esc and the budget also stop the prefill, between two
# batches (prefill.s): the turn is then taken back whole, the conversation (history, position,
# pending token, token list) as before it; KV rows a stopped re-prefill after a shift
# overwrote are fed again from the token list at the next turn (sess_kv_pos).
.include "model.inc"
.include "tokenizer.inc"
.include "sampler.inc"
.include "settings.inc"
.include "chat_templates.inc"
.include "session.inc"

.equ TAIL_BYTES, 8                    # printed bytes remembered for the stop rules
.equ SESS_PARSE_SPECIAL, 8            # sess_encode's flags (sess_tokens.s)
.equ SESS_PROTECT, 16
.equ CHAT_RENDER_TURN, 0              # chat_render_prompt's modes (chat.s)
.equ CHAT_RENDER_WHOLE, 1
.equ CHAT_RENDER_ALONE, 2

.section .bss
.balign 8
t_start:      .skip 8
t_prefill:    .skip 8
n_prompt:     .skip 4
n_gen:        .skip 4
tail:         .skip 8                 # the last TAIL_BYTES printed bytes, newest in the top byte
piece_len:    .skip 8
deadline:     .skip 8                 # rt_ticks at which the time budget runs out

.section .rdata
s_no_model:   .asciz "no model loaded: put a model on the volume, or /model FILE\n"
s_model_err:  .asciz "model: %s\n"
s_nl:         .asciz "\n"
s_full:       .asciz "\n[context full: the conversation was cleared to go on]\n"
s_too_long:   .asciz "prompt too long for the context: %u tokens, the context holds %u (nothing was cleared)\n"
s_budget:     .asciz " [time budget: %u ms]"
s_stats:      .asciz "[stats] prompt_tokens=%u gen_tokens=%u prefill_tok_s=%h decode_tok_s=%h\n"
s_ev_gen:     .asciz "generation"
s_stopped:    .asciz " [stopped]"
s_shift:      .asciz "[context full: the oldest turns were dropped; the system prompt is kept]\n"
s_ctx_end:    .asciz "\n[context full: the next turn drops the oldest ones]"
s_too_long_text: .asciz "prompt too long for the chat format's buffer\n"
s_pf_stopped: .asciz "[stopped during the prompt: %u of %u tokens fed; the conversation is as before it]"
s_pf_budget:  .asciz "[time budget: %u ms, during the prompt: %u of %u tokens fed; the conversation is as before it]"

.section .text
.global generate
.extern sess_model, sess_tok, sess_sampler, sess_pos, sess_loaded, sess_history, sess_pending
.extern sess_prompt_buf, session_clear, set_max_tokens, set_stats, set_stop_you, set_stop_nl
.extern set_chat_format, model_forward, model_forward_batch, model_error_text, sess_encode, sess_decode, sess_encode_error
.extern sampler_sample, rt_print_cstr, rt_print_utf8, rt_print_u64, rt_ticks, rt_tsc_hz
.extern print_hundredths, rt_memcpy, log_event, repl_poll_stop, rt_printf, set_budget
.extern chat_prepare, chat_render_prompt, chat_add_user, chat_reply_append, chat_drop_oldest
.extern chat_is_stop, chat_bos_in_text, chat_row, chat_save, chat_restore
.extern sess_kv_pos, prefill_run, prefill_kept

# generate(rcx = prompt text, rdx = length)
# A non-empty line is a user turn: chat.s renders it for the chat format (for raw, the text
# itself). When it does not fit the context, the oldest turns are dropped and the rest of the
# conversation is rendered and prefilled again (a turn that could not fit even alone is refused
# and the conversation stays as it was). An empty line lets the reply go on.
# Frame: [rsp + 32], [rsp + 40] outgoing stack arguments; [rsp + 48] the line, [rsp + 56] its
# length, [rsp + 64] the pending token taken into this prompt (-1: none; it goes back when
# the prompt is refused or stopped), [rsp + 68] sess_pos and [rsp + 72] sess_kv_pos before
# the turn. r15d until the prefill: CHAT_RENDER_TURN, or CHAT_RENDER_WHOLE after a shift
# (chat_save then holds the messages before it).
generate:
    push rbx
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, 80
    mov [rsp + 48], rcx
    mov [rsp + 56], rdx
    mov dword ptr [rsp + 64], -1
    mov eax, [rip + sess_pos]
    mov [rsp + 68], eax
    mov eax, [rip + sess_kv_pos]
    mov [rsp + 72], eax
    cmp dword ptr [rip + sess_loaded], 0
    je .Lno_model
    call chat_prepare
    mov r15d, CHAT_RENDER_TURN
.Lrender:
    mov rsi, [rsp + 48]
    mov rdi, [rsp + 56]
    test rdi, rdi
    jz .Lencode                       # an empty line: no new turn
    mov rcx, rsi
    mov rdx, rdi
    mov r8d, r15d
    call chat_render_prompt
    test rax, rax
    jz .Ltoo_long_text
    mov rsi, rax
    mov rdi, rdx
.Lencode:
    # tokens go to slot 1 on; slot 0 is for a pending token of the last turn
    xor ebx, ebx
    cmp dword ptr [rip + sess_pos], 0
    jne .Lflags
    cmp dword ptr [rip + sess_pending], -1
    jne .Lflags
    call chat_bos_in_text
    test eax, eax
    jnz .Lflags
    mov ebx, TOK_ADD_BOS              # a conversation starts with BOS (unless its text has it)
.Lflags:
    mov r9d, ebx
    call .Lencode_text
    test eax, eax
    js .Ltok_error
    mov r12d, eax                     # token count
    mov rbx, [rip + sess_prompt_buf]
    add rbx, 4                        # first token
    mov eax, [rip + sess_pending]
    cmp eax, -1
    je .Lno_pending
    sub rbx, 4
    mov [rbx], eax
    mov [rsp + 64], eax
    inc r12d
    mov dword ptr [rip + sess_pending], -1
.Lno_pending:
    test r12d, r12d
    jnz .Lhave_tokens
    mov eax, TOK_BOS                  # an empty line with nothing to continue: a new sequence,
    cmp dword ptr [rip + sess_model + MODEL_FORMAT], MODEL_FORMAT_GGUF   # from the model's
    jne .Lbos                                                           # own BOS when it has one
    cmp dword ptr [rip + sess_model + MODEL_BOS_ID], MODEL_NO_ID
    je .Lbos
    mov eax, [rip + sess_model + MODEL_BOS_ID]
.Lbos:
    mov [rbx], eax
    mov r12d, 1
.Lhave_tokens:
    mov eax, [rip + sess_pos]
    add eax, r12d
    cmp eax, [rip + sess_model + MODEL_CTX_LEN]
    ja .Lover
    cmp r15d, CHAT_RENDER_WHOLE
    jne .Lroom
    add eax, [rip + set_max_tokens]   # after a shift: room for a whole reply too, as long as
    jc .Lmake_room                    # older turns remain to drop (else every turn would
    cmp eax, [rip + sess_model + MODEL_CTX_LEN]    # shift again)
    jbe .Lroom
.Lmake_room:
    call chat_drop_oldest
    test eax, eax
    jnz .Lrender
    jmp .Lroom
.Lover:
    cmp qword ptr [rsp + 56], 0
    je .Lwipe                         # an empty line that does not fit: start over
    cmp r15d, CHAT_RENDER_WHOLE
    je .Lshift_more
    cmp dword ptr [rip + sess_pos], 0
    je .Ltoo_long                     # even an empty context cannot hold it
    # would the turn fit an empty context (with the system text)? If not: refused, and the
    # conversation stays as it is
    mov rcx, [rsp + 48]
    mov rdx, [rsp + 56]
    mov r8d, CHAT_RENDER_ALONE
    call chat_render_prompt
    test rax, rax
    jz .Ltoo_long_text
    mov rsi, rax
    mov rdi, rdx
    call chat_bos_in_text
    xor r9d, r9d
    test eax, eax
    jnz .Lalone_flags
    mov r9d, TOK_ADD_BOS
.Lalone_flags:
    call .Lencode_text
    test eax, eax
    js .Ltok_error
    mov r12d, eax
    cmp eax, [rip + sess_model + MODEL_CTX_LEN]
    ja .Ltoo_long
    lea rcx, [rip + s_shift]
    call rt_print_cstr
    call chat_save                    # (put back if the prefill is stopped)
    mov r15d, CHAT_RENDER_WHOLE       # the KV cache is rebuilt from the kept turns
    mov dword ptr [rip + sess_pos], 0
    mov dword ptr [rip + sess_pending], -1
.Lshift_more:
    call chat_drop_oldest
    test eax, eax
    jnz .Lrender
    jmp .Ltoo_long                    # (not reached: the turn alone fits)
.Lwipe:
    lea rcx, [rip + s_full]
    call rt_print_cstr
    call session_clear
    jmp .Lencode
.Lroom:
    mov dword ptr [rip + n_gen], 0
    mov qword ptr [rip + tail], 0
    call rt_ticks
    mov [rip + t_start], rax
    mov rcx, -1                       # the time budget's end, in ticks
    mov edx, [rip + set_budget]
    test edx, edx
    jz .Lno_budget
    imul rdx, [rip + rt_tsc_hz]
    mov rcx, rax
    mov rax, rdx
    xor edx, edx
    mov r8d, 1000
    div r8
    add rcx, rax
.Lno_budget:
    mov [rip + deadline], rcx
    # prefill, through the model together (model_forward_batch: each weight read once per
    # batch, not once per token). After a shift: the re-rendered conversation from position 0
    # (the old token list stays until it is through). Else the prompt's r12d tokens go into
    # the token list, which is fed from its first row the KV cache lacks (sess_kv_pos).
    mov rcx, rbx
    mov edx, r12d
    xor r8d, r8d
    cmp r15d, CHAT_RENDER_WHOLE
    je .Lprefill
    mov ecx, [rip + sess_pos]
    call .Ltokens_to_history
    mov r8d, [rip + sess_kv_pos]
    mov edx, [rip + sess_pos]
    add edx, r12d
    sub edx, r8d
    mov rcx, [rip + sess_history]
    lea rcx, [rcx + r8 * 4]
.Lprefill:
    mov [rip + n_prompt], edx
    mov r9, [rip + deadline]
    call prefill_run
    test rax, rax
    jz .Lprefill_stopped
    mov r14, rax
    xor ecx, ecx
    cmp r15d, CHAT_RENDER_WHOLE
    jne .Lfed
    call .Ltokens_to_history          # the re-rendered list replaces the old one
.Lfed:
    mov eax, [rip + sess_pos]
    add eax, r12d
    mov [rip + sess_pos], eax
    mov [rip + sess_kv_pos], eax
    cmp qword ptr [rsp + 56], 0
    je .Lcounted
    mov rcx, [rsp + 48]               # the turn is taken: into the history
    mov rdx, [rsp + 56]
    call chat_add_user
.Lcounted:
    call rt_ticks
    mov [rip + t_prefill], rax
    mov r15d, [rbx + r12 * 4 - 4]     # previous token, for decoding
.Lsample:
    lea rcx, [rip + sess_sampler]
    mov rdx, r14
    mov r8, [rip + sess_history]
    mov r9d, [rip + sess_pos]
    call sampler_sample
    mov r13d, eax                     # next token
    inc dword ptr [rip + n_gen]
    mov ecx, r13d
    call chat_is_stop                 # end of turn / sequence: not printed, not kept
    test eax, eax
    jnz .Ldone
    mov edx, r15d
    mov r8d, r13d
    lea r9, [rip + piece_len]
    call sess_decode
    mov rsi, rax
    mov rcx, rax
    mov rdx, [rip + piece_len]
    call chat_reply_append
    mov rcx, rsi
    mov rdx, [rip + piece_len]
    call print_piece                  # eax = 1 if a stop rule fired
    test eax, eax
    jnz .Lstop_rule
    call repl_poll_stop               # Esc stops a generation
    test eax, eax
    jnz .Lstopped
    call rt_ticks                     # and so does the time budget
    cmp rax, [rip + deadline]
    jae .Lover_budget
    mov eax, [rip + n_gen]
    cmp eax, [rip + set_max_tokens]
    jae .Lkeep_pending
    mov eax, [rip + sess_pos]
    cmp eax, [rip + sess_model + MODEL_CTX_LEN]
    jae .Lctx_end
    mov edx, r13d
    call .Lfeed
    test rax, rax
    jz .Lmodel_error
    mov r14, rax
    mov r15d, r13d
    jmp .Lsample
.Lctx_end:
    mov [rip + sess_pending], r13d
    lea rcx, [rip + s_ctx_end]        # the next turn drops the oldest ones
    call rt_print_cstr
    jmp .Ldone
.Lover_budget:
    lea rcx, [rip + s_budget]
    mov edx, [rip + set_budget]
    call rt_printf
    jmp .Lkeep_pending
.Lstopped:
    lea rcx, [rip + s_stopped]
    call rt_print_cstr
    jmp .Lkeep_pending
.Lprefill_stopped:                    # ecx = why, edx = tokens fed: the turn is taken back
    cmp ecx, PREFILL_ERROR
    je .Lmodel_error
    mov esi, ecx
    mov edi, edx
    cmp r15d, CHAT_RENDER_WHOLE
    je .Lstopped_shift
    mov eax, [rip + sess_kv_pos]      # rows of the old list fed again stay; the new ones go
    add eax, edi
    cmp eax, [rip + sess_pos]
    cmova eax, [rip + sess_pos]
    mov [rip + sess_kv_pos], eax
    jmp .Lstopped_line
.Lstopped_shift:
    mov rcx, rbx
    mov edx, edi
    mov r8d, [rsp + 68]
    mov r9d, [rsp + 72]
    call prefill_kept
    mov [rip + sess_kv_pos], eax
    call .Lundo_shift
.Lstopped_line:
    mov eax, [rsp + 64]               # a pending token taken in goes back
    mov [rip + sess_pending], eax
    mov eax, [rip + n_prompt]
    mov [rip + n_prompt], edi         # (the stats count the tokens fed)
    lea rcx, [rip + s_pf_stopped]
    mov edx, edi
    mov r8d, eax
    cmp esi, PREFILL_ESC
    je .Lstopped_say
    lea rcx, [rip + s_pf_budget]
    mov edx, [rip + set_budget]
    mov r8d, edi
    mov r9d, eax
.Lstopped_say:
    call rt_printf
    call rt_ticks
    mov [rip + t_prefill], rax
    jmp .Ldone
.Lstop_rule:
.Lkeep_pending:
    mov [rip + sess_pending], r13d    # sampled and shown, not yet in the KV cache
.Ldone:
    call rt_ticks
    mov rbx, rax
    lea rcx, [rip + s_ev_gen]
    call log_event
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    cmp dword ptr [rip + set_stats], 0
    je .Lout
    call print_stats                  # rbx = end ticks
    jmp .Lout
.Lno_model:
    lea rcx, [rip + s_no_model]
    call rt_print_cstr
    jmp .Lout
.Ltok_error:
    mov esi, eax
    call .Lundo_refused
    mov ecx, esi
    call sess_encode_error            # a format whose %u is rdx
    mov rcx, rax
    call rt_printf
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    jmp .Lout
.Ltoo_long_text:
    call .Lundo_refused
    lea rcx, [rip + s_too_long_text]
    call rt_print_cstr
    jmp .Lout
.Ltoo_long:
    mov eax, [rsp + 64]               # a pending token taken in goes back
    mov [rip + sess_pending], eax
    lea rcx, [rip + s_too_long]
    mov edx, r12d
    mov r8d, [rip + sess_model + MODEL_CTX_LEN]
    call rt_printf
    jmp .Lout
.Lmodel_error:
    mov ecx, [rip + sess_model + MODEL_ERROR]
    call model_error_text
    lea rcx, [rip + s_model_err]
    mov rdx, rax
    call rt_printf
    call session_clear
.Lout:
    add rsp, 80
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret

# local: a refusal after a shift began (the render or the encoding of the kept conversation
# failed) puts the conversation back as it was, pending token too; nothing was fed
.Lundo_refused:
    cmp r15d, CHAT_RENDER_WHOLE
    jne .Lundo_out
    mov eax, [rsp + 64 + 8]
    mov [rip + sess_pending], eax
# local: the position and the messages from before the shift (chat_save's copy)
.Lundo_shift:
    sub rsp, 40
    mov eax, [rsp + 68 + 48]
    mov [rip + sess_pos], eax
    call chat_restore
    add rsp, 40
.Lundo_out:
    ret

# local: the prompt's r12d tokens (rbx) into the token list from position ecx
.Ltokens_to_history:
    sub rsp, 40
    mov rax, [rip + sess_history]
    lea rcx, [rax + rcx * 4]
    mov rdx, rbx
    mov r8d, r12d
    shl r8, 2
    call rt_memcpy
    add rsp, 40
    ret

# local: feed token edx at the next position -> rax = logits (or 0); records the history
.Lfeed:
    sub rsp, 40
    mov r8d, [rip + sess_pos]
    mov rax, [rip + sess_history]
    mov [rax + r8 * 4], edx
    lea rcx, [rip + sess_model]
    call model_forward
    test rax, rax
    jz .Lfeed_out
    mov ecx, [rip + sess_pos]
    inc ecx
    mov [rip + sess_pos], ecx
    mov [rip + sess_kv_pos], ecx      # (the prefill before made them equal)
.Lfeed_out:
    add rsp, 40
    ret

# local: encode rsi/rdi (text chat.s rendered) with r9d = sess_encode flags into the prompt
# buffer from slot 1 -> eax = tokens, or a negated error code. The template's special tokens
# become their ids; the conversation's own words stay text (SESS_PROTECT).
.Lencode_text:
    or r9d, SESS_PARSE_SPECIAL | SESS_PROTECT
    sub rsp, 56
    mov rcx, [rip + sess_prompt_buf]
    lea rax, [rcx + 4]
    mov [rsp + 32], rax
    mov qword ptr [rsp + 40], TOK_SCRATCH_SLOTS - 1
    mov rdx, rsi
    mov r8, rdi
    call sess_encode
    add rsp, 56
    ret

# print_piece(rcx = bytes, rdx = length) -> eax = 1 when a stop rule fires on the text so far.
# A lone control byte (other than newline and tab) is not printed, as llama2.c's safe_printf.
print_piece:
    push rbx
    push rsi
    push rdi
    sub rsp, 32
    mov rsi, rcx
    mov rdi, rdx
    test rdi, rdi
    jz .Lrules
    cmp rdi, 1
    jne .Lprint
    movzx eax, byte ptr [rsi]
    cmp eax, 0x20
    jae .Lprint
    cmp eax, 10
    je .Lprint
    cmp eax, 9
    jne .Lrules
.Lprint:
    mov rcx, rsi
    mov rdx, rdi
    call rt_print_utf8
    xor ecx, ecx                      # remember the last bytes for the stop rules
.Ltail:
    cmp rcx, rdi
    jae .Lrules
    mov rax, [rip + tail]
    shr rax, 8
    movzx edx, byte ptr [rsi + rcx]
    shl rdx, 56
    or rax, rdx
    mov [rip + tail], rax
    inc rcx
    jmp .Ltail
.Lrules:
    xor eax, eax
    mov rdx, [rip + tail]
    cmp dword ptr [rip + set_stop_nl], 0
    je .Lyou
    mov rcx, rdx                      # a blank line: the text ends in "\n\n"
    shr rcx, 48
    cmp ecx, 0x0A0A
    je .Lfire
.Lyou:
    cmp dword ptr [rip + set_stop_you], 0
    je .Lout
    cmp dword ptr [rip + chat_row], CHAT_YOU_AI
    jne .Lout
    mov rcx, rdx                      # the model starts the user's turn: "\nYou:"
    shr rcx, 24
    mov r8, 0x3A756F590A             # "\nYou:" with '\n' in the low byte
    cmp rcx, r8
    jne .Lout
.Lfire:
    mov eax, 1
.Lout:
    add rsp, 32
    pop rdi
    pop rsi
    pop rbx
    ret

# rate_hundredths(rcx = tokens, rdx = ticks) -> rax = tokens per second in hundredths (0 when
# the ticks are 0 or the rate would not fit)
rate_hundredths:
    xor eax, eax
    mov r9, rdx                       # ticks
    test r9, r9
    jz .Lhave
    mov rax, rcx
    imul rax, [rip + rt_tsc_hz]
    mov r8d, 100
    mul r8                            # rdx:rax = tokens * hz * 100
    cmp rdx, r9
    jae .Lhave_zero                   # would not fit: not a real rate
    div r9
    ret
.Lhave_zero:
    xor eax, eax
.Lhave:
    ret

# print_stats(rbx = end ticks): the [stats] line
print_stats:
    push rsi
    sub rsp, 48
    mov ecx, [rip + n_prompt]
    mov rdx, [rip + t_prefill]
    sub rdx, [rip + t_start]
    call rate_hundredths
    mov rsi, rax
    mov ecx, [rip + n_gen]
    mov rdx, rbx
    sub rdx, [rip + t_prefill]
    call rate_hundredths
    mov [rsp + 32], rax
    lea rcx, [rip + s_stats]
    mov edx, [rip + n_prompt]
    mov r8d, [rip + n_gen]
    mov r9, rsi
    call rt_printf
    add rsp, 48
    pop rsi
    ret
