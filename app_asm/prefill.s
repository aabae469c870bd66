# A turn's prefill that Esc and the time budget can stop (contracts in session.inc): the
# tokens go through model_forward_batch MODEL_BATCH at a time, the very batches one call
# would make of them (so every KV cache row and the logits are the same numbers), and between
# two batches one keyboard poll (repl_poll_stop: Esc; other keys are kept for the next line)
# and one RDTSC against the budget's deadline: a check per MODEL_BATCH tokens, nothing inside
# a batch. The batches before the last go through model_forward_rows, which leaves out the
# classifier (a row of it per batch cost SmolLM2-135M 7-10% of its prefill). Which KV rows a
# stopped re-prefill leaves usable: prefill_kept; generate.s takes the turn back.
.include "model.inc"
.include "session.inc"

.section .text
.global prefill_run, prefill_kept
.extern sess_model, sess_history, model_forward_batch, model_forward_rows, repl_poll_stop
.extern rt_ticks

# prefill_run(rcx = tokens u32[n], edx = n >= 1, r8d = pos0, r9 = deadline in rt_ticks)
prefill_run:
    push rbx
    push rsi
    push rdi
    push r12
    push r13
    sub rsp, 32
    mov rsi, rcx
    mov edi, edx
    mov r12d, r8d
    mov r13, r9
    xor ebx, ebx                      # tokens fed
.Lbatch:
    lea rcx, [rip + sess_model]
    lea rdx, [rsi + rbx * 4]
    call .Lrows
    mov r9d, r12d
    add r9d, ebx
    lea eax, [rbx + r8]
    cmp eax, edi
    jae .Llast
    call model_forward_rows
    jmp .Lfed
.Llast:
    call model_forward_batch
.Lfed:
    test rax, rax
    jz .Lerror
    call .Lrows
    add ebx, r8d
    cmp ebx, edi
    jae .Lout                         # all fed: rax = the logits
    call repl_poll_stop
    mov ecx, PREFILL_ESC
    test eax, eax
    jnz .Lstop
    call rt_ticks
    mov ecx, PREFILL_BUDGET
    cmp rax, r13
    jae .Lstop
    jmp .Lbatch
.Lerror:
    mov ecx, PREFILL_ERROR
.Lstop:
    xor eax, eax
.Lout:
    mov edx, ebx
    add rsp, 32
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret
# local: r8d = the next batch's rows, min(n - fed, MODEL_BATCH); keeps rax, rcx, rdx
.Lrows:
    mov r8d, edi
    sub r8d, ebx
    mov r9d, MODEL_BATCH
    cmp r8d, r9d
    cmova r8d, r9d
    ret

# prefill_kept(rcx = tokens u32 fed at positions 0.., edx = how many were fed, r8d = old
# positions, r9d = old KV rows (<= r8d)) -> eax = KV rows that hold sess_history[0..] (the old
# list, not yet replaced): a row depends on its token and every token before it, so the fed
# rows count up to the first token that differs from the old one; when every fed row agrees,
# the old rows after them (up to the old KV rows) are still in place. Leaf.
prefill_kept:
    mov r10, [rip + sess_history]
    mov r11d, edx
    cmp r11d, r8d
    cmova r11d, r8d                   # compared: min(fed, old positions)
    xor eax, eax
.Lsame:
    cmp eax, r11d
    jae .Lall
    mov r8d, [rcx + rax * 4]
    cmp r8d, [r10 + rax * 4]
    jne .Ldone
    inc eax
    jmp .Lsame
.Lall:
    cmp eax, edx
    jne .Ldone                        # the whole old list was fed again, as it was
    cmp eax, r9d
    cmovb eax, r9d
.Ldone:
    ret
