# The model's error lines (model.inc): model_error_text, model_format_error and the small
# text builder the GGUF binder's messages share (model_put_str, model_put_i64).
.include "model.inc"

.section .rdata
# header field names, in header order, for model_format_error
field_names:
    .asciz "dim"
    .asciz "hidden_dim"
    .asciz "n_layers"
    .asciz "n_heads"
    .asciz "n_kv_heads"
    .asciz "vocab_size"
    .asciz "seq_len"
# one line per MODEL_E_* code, in code order (model_error_text skips `code` NULs)
model_messages:
    .asciz "ok"
    .asciz "model file is shorter than its 28-byte header"
    .asciz "model header: a dimension is zero or negative"
    .asciz "model header: a dimension is above this loader's limits"
    .asciz "model header: dim is not a multiple of n_heads"
    .asciz "model header: n_kv_heads does not divide n_heads"
    .asciz "model header: head size (dim / n_heads) is odd, RoPE needs pairs"
    .asciz "model file size mismatch: the header implies another size"
    .asciz "model: context length is 0 or above the model's seq_len"
    .asciz "model: run-state memory is smaller than model_state_bytes"
    .asciz "model: token id out of range"
    .asciz "model: position out of the context"
    .asciz "model: not ready (header, weights or run state not set up)"
    .asciz "gguf: architecture not supported (supported: llama qwen2)"
    .asciz "gguf: a metadata key is missing or wrong"
    .asciz "gguf: a tensor the architecture needs is missing"
    .asciz "gguf: a tensor's shape does not match the model's dimensions"
    .asciz "gguf: a tensor's type cannot be run by this program"
    .asciz "gguf: this GGUF version is not supported (supported: 2, 3)"
msg_unknown:    .asciz "model: unknown error code"
s_header:       .asciz "model header: "
s_is:           .asciz " is "
s_positive:     .asciz ", must be > 0"
s_limit:        .asciz ", above this loader's limit of "
s_mismatch:     .asciz "model file size mismatch: header implies "
s_file_has:     .asciz " bytes, file has "
s_short1:       .asciz "model file is "
s_short2:       .asciz " bytes, shorter than the 28-byte header"
s_dim:          .asciz " (dim "
s_n_heads:      .asciz ", n_heads "
s_n_heads0:     .asciz " (n_heads "
s_n_kv_heads:   .asciz ", n_kv_heads "
s_close:        .asciz ")"
s_ctx1:         .asciz "model: context length "
s_ctx2:         .asciz " is 0 or above seq_len "

.section .text
.global model_error_text, model_format_error, model_put_str, model_put_i64
.extern model_gguf_format_error, model_limits

# model_error_text(ecx = code) -> rax = NUL-terminated line
model_error_text:
    lea rax, [rip + msg_unknown]
    cmp ecx, MODEL_E_COUNT
    jae .Ldone
    lea rax, [rip + model_messages]
.Lskip:                               # skip `code` strings
    test ecx, ecx
    jz .Ldone
.Lscan:
    mov dl, [rax]
    inc rax
    test dl, dl
    jnz .Lscan
    dec ecx
    jmp .Lskip
.Ldone:
    ret

# nth_string(rax = first of consecutive NUL-terminated strings, ecx = n) -> rax = n-th.
# Private; clobbers dl.
nth_string:
    test ecx, ecx
    jz .Ldone
.Lscan:
    mov dl, [rax]
    inc rax
    test dl, dl
    jnz .Lscan
    dec ecx
    jmp nth_string
.Ldone:
    ret

# Private text builder used by model_format_error: rdi = next byte, rsi = last usable byte
# (kept for the NUL). Nothing is written at or past rsi.
# put_str(rcx = NUL-terminated string). Clobbers al, rcx.
# (model_put_str / model_put_i64: the same, for model_gguf.s's messages.)
model_put_str:
put_str:
    mov al, [rcx]
    test al, al
    jz .Ldone
    cmp rdi, rsi
    jae .Ldone
    mov [rdi], al
    inc rdi
    inc rcx
    jmp put_str
.Ldone:
    ret

# put_i64(rax = signed value) in decimal. Clobbers rax, rcx, rdx, r10, r11.
model_put_i64:
put_i64:
    sub rsp, 40                       # digits are built backwards in [rsp+8 .. rsp+31]
    lea r10, [rsp + 31]
    mov byte ptr [r10], 0
    mov r11, rax                      # the sign, for later
    test rax, rax
    jns .Ldigit
    neg rax                           # INT64_MIN stays negative; as unsigned it is right
.Ldigit:
    xor edx, edx
    mov ecx, 10
    div rcx
    add dl, '0'
    dec r10
    mov [r10], dl
    test rax, rax
    jnz .Ldigit
    test r11, r11
    jns .Lput
    dec r10
    mov byte ptr [r10], '-'
.Lput:
    mov rcx, r10
    call put_str
    add rsp, 40
    ret

# model_format_error(rcx = Model*, edx = code, r8 = buffer, r9 = capacity) -> rax = length
model_format_error:
    push rbx
    push rsi
    push rdi
    push r12
    sub rsp, 8
    xor eax, eax
    test r9, r9
    jz .Lempty
    mov rbx, rcx
    mov r12d, edx
    mov rdi, r8
    lea rsi, [r8 + r9 - 1]
    cmp r12d, MODEL_E_ARCH
    jb .Lbin
    cmp r12d, MODEL_E_GGUF_VERSION
    ja .Lbin
    push r8                           # (the buffer, for the length at .Lend)
    push r8
    call model_gguf_format_error      # GGUF codes: rbx, r12d, rdi, rsi as here
    pop r8
    pop r8
    jmp .Lend
.Lbin:
    cmp r12d, MODEL_E_NONPOSITIVE
    je .Lfield
    cmp r12d, MODEL_E_TOO_BIG
    je .Lfield
    cmp r12d, MODEL_E_SIZE
    je .Lsize
    cmp r12d, MODEL_E_SHORT
    je .Lshort
    cmp r12d, MODEL_E_CTX
    je .Lctx
    mov ecx, r12d                     # the generic line, then the numbers that explain it
    call model_error_text
    mov rcx, rax
    call put_str
    cmp r12d, MODEL_E_HEADS
    je .Lheads
    cmp r12d, MODEL_E_HEAD_SIZE
    je .Lheads
    cmp r12d, MODEL_E_KV_HEADS
    je .Lkv
    jmp .Lend
.Lheads:                              # " (dim D, n_heads H)"
    lea rcx, [rip + s_dim]
    call put_str
    movsxd rax, dword ptr [rbx + MODEL_DIM]
    call put_i64
    lea rcx, [rip + s_n_heads]
    call put_str
    movsxd rax, dword ptr [rbx + MODEL_N_HEADS]
    call put_i64
    jmp .Lclose
.Lkv:                                 # " (n_heads H, n_kv_heads K)"
    lea rcx, [rip + s_n_heads0]
    call put_str
    movsxd rax, dword ptr [rbx + MODEL_N_HEADS]
    call put_i64
    lea rcx, [rip + s_n_kv_heads]
    call put_str
    movsxd rax, dword ptr [rbx + MODEL_N_KV_HEADS]
    call put_i64
.Lclose:
    lea rcx, [rip + s_close]
    call put_str
    jmp .Lend
.Lfield:                              # "model header: NAME is V, must be > 0" / "..., limit L"
    lea rcx, [rip + s_header]
    call put_str
    mov ecx, [rbx + MODEL_ERR_FIELD]
    cmp ecx, 6
    jbe .Lname
    mov ecx, 6                        # (a struct the caller scribbled on: stay in the table)
.Lname:
    mov r9d, r12d                     # the code (capacity is no longer needed)
    mov r12d, ecx                     # the field index
    lea rax, [rip + field_names]
    call nth_string
    mov rcx, rax
    call put_str
    lea rcx, [rip + s_is]
    call put_str
    movsxd rax, dword ptr [rbx + MODEL_ERR_VALUE]
    call put_i64
    lea rcx, [rip + s_positive]
    cmp r9d, MODEL_E_TOO_BIG
    jne .Lfield_tail
    lea rcx, [rip + s_limit]
    call put_str
    lea rax, [rip + model_limits]
    mov eax, [rax + r12 * 4]
    call put_i64
    jmp .Lend
.Lfield_tail:
    call put_str
    jmp .Lend
.Lsize:                               # "...header implies N bytes, file has M"
    lea rcx, [rip + s_mismatch]
    call put_str
    mov rax, [rbx + MODEL_EXPECTED_SIZE]
    call put_i64
    lea rcx, [rip + s_file_has]
    call put_str
    mov rax, [rbx + MODEL_FILE_SIZE]
    call put_i64
    jmp .Lend
.Lshort:
    lea rcx, [rip + s_short1]
    call put_str
    mov rax, [rbx + MODEL_FILE_SIZE]
    call put_i64
    lea rcx, [rip + s_short2]
    call put_str
    jmp .Lend
.Lctx:
    lea rcx, [rip + s_ctx1]
    call put_str
    mov eax, [rbx + MODEL_ERR_VALUE]
    call put_i64
    lea rcx, [rip + s_ctx2]
    call put_str
    mov eax, [rbx + MODEL_SEQ_LEN]
    call put_i64
.Lend:
    mov byte ptr [rdi], 0
    mov rax, rdi
    sub rax, r8
.Lempty:
    add rsp, 8
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret
