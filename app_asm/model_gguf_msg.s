# The GGUF binder's error lines (model_gguf.s sets the fields they print): called by
# model_format_error (model_msg.s) for the codes MODEL_E_ARCH .. MODEL_E_GGUF_VERSION.
.include "model.inc"

.section .rdata
m_arch1:          .asciz "gguf: architecture '"
m_arch2:          .asciz "' is not supported (supported: llama qwen2)"
m_key:            .asciz "gguf: metadata key '"
m_key_missing:    .asciz "' is missing"
m_key_range1:     .asciz "' is "
m_key_range2:     .asciz ", must be 1.."
m_key_type:       .asciz "' has the wrong type"
m_tensor:         .asciz "gguf: tensor '"
m_missing:        .asciz "' is missing"
m_shape1:         .asciz "' has shape ["
m_shape2:         .asciz "], the model's dimensions need ["
m_comma:          .asciz ", "
m_close:          .asciz "]"
m_type1:          .asciz "' has type "
m_type_f32:       .asciz " (norms and biases must be F32)"
m_type_sup:       .asciz " (supported: "
m_space:          .asciz " "
m_paren:          .asciz ")"
m_type_n:         .asciz "ggml type "
m_version1:       .asciz "gguf: version "
m_version2:       .asciz " is not supported (supported: 2, 3)"

.section .text
.global model_gguf_format_error
.extern ggml_type_table, model_put_str, model_put_i64

# model_gguf_format_error: rbx = Model*, r12d = a GGUF code (MODEL_E_ARCH .. MODEL_E_TYPE),
# rdi/rsi = model_format_error's text builder (rdi advances). Clobbers rax, rcx, rdx,
# r9-r11.
model_gguf_format_error:
    sub rsp, 40
    cmp r12d, MODEL_E_ARCH
    je .Larch
    cmp r12d, MODEL_E_KEY
    je .Lkey
    cmp r12d, MODEL_E_GGUF_VERSION
    je .Lversion
    lea rcx, [rip + m_tensor]         # the tensor codes start alike
    call model_put_str
    lea rcx, [rbx + MODEL_ERR_NAME]
    call model_put_str
    cmp r12d, MODEL_E_SHAPE
    je .Lshape
    cmp r12d, MODEL_E_TYPE
    je .Ltype
    lea rcx, [rip + m_missing]
    jmp .Llast
.Larch:
    lea rcx, [rip + m_arch1]
    call model_put_str
    lea rcx, [rbx + MODEL_ERR_NAME]
    call model_put_str
    lea rcx, [rip + m_arch2]
    jmp .Llast
.Lkey:
    lea rcx, [rip + m_key]
    call model_put_str
    lea rcx, [rbx + MODEL_ERR_NAME]
    call model_put_str
    mov eax, [rbx + MODEL_ERR_FIELD]
    lea rcx, [rip + m_key_missing]
    test eax, eax
    jz .Llast
    lea rcx, [rip + m_key_type]
    cmp eax, 2
    je .Llast
    lea rcx, [rip + m_key_range1]
    call model_put_str
    mov rax, [rbx + MODEL_ERR_GOT]
    call model_put_i64
    mov rax, [rbx + MODEL_ERR_WANT]
    test rax, rax
    jz .Lend                          # (a float key: "is <bits>" says which is wrong)
    lea rcx, [rip + m_key_range2]
    call model_put_str
    mov rax, [rbx + MODEL_ERR_WANT]
    call model_put_i64
    jmp .Lend
.Lversion:
    lea rcx, [rip + m_version1]
    call model_put_str
    mov rax, [rbx + MODEL_ERR_GOT]
    call model_put_i64
    lea rcx, [rip + m_version2]
    jmp .Llast
.Lshape:                              # "' has shape [a, b], the model's dimensions need [c, d]"
    lea rcx, [rip + m_shape1]
    call model_put_str
    mov rax, [rbx + MODEL_ERR_GOT]
    call model_put_i64
    lea rcx, [rip + m_comma]
    call model_put_str
    mov rax, [rbx + MODEL_ERR_GOT2]
    call model_put_i64
    lea rcx, [rip + m_shape2]
    call model_put_str
    mov rax, [rbx + MODEL_ERR_WANT]
    call model_put_i64
    lea rcx, [rip + m_comma]
    call model_put_str
    mov rax, [rbx + MODEL_ERR_WANT2]
    call model_put_i64
    lea rcx, [rip + m_close]
    jmp .Llast
.Ltype:                               # "' has type NAME (supported: F32 F16 ...)"
    lea rcx, [rip + m_type1]
    call model_put_str
    mov rax, [rbx + MODEL_ERR_GOT]
    call mg_put_type
    lea rcx, [rip + m_type_f32]
    cmp dword ptr [rbx + MODEL_ERR_FIELD], 1
    je .Llast
    lea rcx, [rip + m_type_sup]
    call model_put_str
    xor r9d, r9d                      # every runnable type, in id order
.Lsup:
    cmp r9d, GGML_TYPE_COUNT
    jae .Lsup_end
    imul eax, r9d, GGML_TT_SIZE
    lea rcx, [rip + ggml_type_table]
    test dword ptr [rcx + rax + GGML_TT_FLAGS], GGML_TT_F_RUNNABLE
    jz .Lsup_next
    mov eax, r9d
    call mg_put_type
    lea rcx, [rip + m_space]
    call model_put_str
.Lsup_next:
    inc r9d
    jmp .Lsup
.Lsup_end:
    cmp byte ptr [rdi - 1], ' '       # no space before the parenthesis
    jne .Lparen
    dec rdi
.Lparen:
    lea rcx, [rip + m_paren]
.Llast:
    call model_put_str
.Lend:
    add rsp, 40
    ret

# mg_put_type(rax = ggml type id): its name from the type table, or "type N" when unknown.
# Clobbers rax, rcx, rdx, r10, r11 (r9 kept).
mg_put_type:
    cmp rax, GGML_TYPE_COUNT
    jae .Lnumber
    imul ecx, eax, GGML_TT_SIZE
    lea rdx, [rip + ggml_type_table]
    cmp byte ptr [rdx + rcx + GGML_TT_NAME], 0
    je .Lnumber
    lea rcx, [rdx + rcx + GGML_TT_NAME]
    jmp model_put_str
.Lnumber:
    push rax                          # (one push: model_put_str is entered aligned)
    lea rcx, [rip + m_type_n]
    call model_put_str
    pop rax
    jmp model_put_i64
