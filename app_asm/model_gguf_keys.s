# The GGUF binder's helpers (model_gguf.s) and model_gguf_probe (model.inc). The helpers
# are global only so the binder's two files can share them; they are not an ABI for others:
# they take rbx = Model*, r12 = GGUF*, r15 = the binder's locals (model_gguf.inc) and keep
# rbx, rbp, rsi, r12-r15 (and rdi where said).
.include "model.inc"
.include "model_gguf.inc"

.section .rdata
t_blk:            .asciz "blk."

.section .text
.global mg_cat, mg_err_name, mg_uint, mg_f32, mg_tensor, mg_id, mg_layer_name, mg_dim
.global model_gguf_probe
.extern gguf_get_u64, gguf_get_f32, gguf_find_tensor, ggml_type_table

# mg_cat(rdi = end of the text so far, rcx = NUL-terminated src; r11 = buffer limit) ->
# rdi = new end, a NUL written there. Private; clobbers al, rcx.
mg_cat:
    mov al, [rcx]
    cmp rdi, r11
    jae .Lend
    mov [rdi], al
    test al, al
    jz .Lret
    inc rdi
    inc rcx
    jmp mg_cat
.Lend:
    mov byte ptr [rdi], 0
.Lret:
    ret

# mg_key(rcx = suffix) -> rdx = MG_KEY = "{arch}" + suffix, r8 = its length. Private;
# clobbers rax, rcx, rdi, r11.
mg_key:
    sub rsp, 8                        # (mg_cat is entered with rsp 16-aligned)
    lea rdi, [r15 + MG_KEY]
    lea r11, [rdi + MG_NAME_MAX]
    add rdi, [r15 + MG_PREFIX_LEN]
    call mg_cat
    add rsp, 8
    lea rdx, [r15 + MG_KEY]
    mov r8, rdi
    sub r8, rdx
    ret

# mg_err_name(rdx = NUL-terminated name): copied into ERR_NAME (cut to 63 bytes).
# Private; clobbers rax, rcx.
mg_err_name:
    xor ecx, ecx
.Lcopy:
    mov al, [rdx + rcx]
    cmp ecx, 63
    jae .Lend
    mov [rbx + MODEL_ERR_NAME + rcx], al
    test al, al
    jz .Lret
    inc ecx
    jmp .Lcopy
.Lend:
    mov byte ptr [rbx + MODEL_ERR_NAME + rcx], 0
.Lret:
    ret

# mg_uint(rcx = key suffix, edx = default (0: the key is required), r8d = limit) -> CF
#   clear and eax = the value (1..limit, or the default when absent), or CF set and eax =
#   MODEL_E_KEY with ERR_FIELD (0 missing, 1 range, 2 type), ERR_NAME, ERR_GOT/ERR_WANT.
#   Private; clobbers the volatile registers.
mg_uint:
    push rsi
    push rdi
    push r13
    push r14
    sub rsp, 40
    mov r13d, edx
    mov r14d, r8d
    call mg_key
    mov rcx, r12
    lea r9, [r15 + MG_VAL]
    call gguf_get_u64
    test eax, eax
    jz .Lfound
    cmp eax, GGUF_E_NO_KEY
    jne .Ltype
    mov eax, r13d
    test eax, eax
    jz .Lmissing
    jmp .Lok
.Lfound:
    mov rax, [r15 + MG_VAL]
    test rax, rax
    jz .Lrange
    cmp rax, r14
    ja .Lrange
.Lok:
    add rsp, 40
    pop r14
    pop r13
    pop rdi
    pop rsi
    clc
    ret
.Lmissing:
    xor ecx, ecx
    jmp .Lfail
.Ltype:
    mov ecx, 2
    jmp .Lfail
.Lrange:
    mov [rbx + MODEL_ERR_GOT], rax
    mov [rbx + MODEL_ERR_WANT], r14
    mov ecx, 1
.Lfail:
    mov [rbx + MODEL_ERR_FIELD], ecx
    lea rdx, [r15 + MG_KEY]
    call mg_err_name
    add rsp, 40
    pop r14
    pop r13
    pop rdi
    pop rsi
    mov eax, MODEL_E_KEY
    stc
    ret

# mg_f32(rcx = key suffix, edx = default f32 bits) -> CF clear, eax = f32 bits (finite and
#   > 0), or CF set, eax = MODEL_E_KEY (as mg_uint; a value <= 0 or not finite is "range").
#   Private; clobbers the volatile registers.
mg_f32:
    push r13
    sub rsp, 32
    mov r13d, edx
    call mg_key
    mov rcx, r12
    lea r9, [r15 + MG_VAL]
    call gguf_get_f32
    test eax, eax
    jz .Lfound
    mov ecx, 2
    cmp eax, GGUF_E_NO_KEY
    jne .Lfail
    mov eax, r13d
    jmp .Lok
.Lfound:
    mov eax, [r15 + MG_VAL]
    mov ecx, eax                      # finite and > 0: sign clear, exponent not all ones,
    test ecx, ecx                     # not zero
    jle .Lrange
    cmp ecx, 0x7F800000
    jae .Lrange
.Lok:
    add rsp, 32
    pop r13
    clc
    ret
.Lrange:
    mov [rbx + MODEL_ERR_GOT], rax
    mov qword ptr [rbx + MODEL_ERR_WANT], 0
    mov ecx, 1
.Lfail:
    mov [rbx + MODEL_ERR_FIELD], ecx
    lea rdx, [r15 + MG_KEY]
    call mg_err_name
    add rsp, 32
    pop r13
    mov eax, MODEL_E_KEY
    stc
    ret

# mg_tensor(rcx = NUL-terminated name, rdx = TENSOR* out, r8d = kind (bit 0: an F32 vector,
#   else a weight; bit 1: optional), r9d = ne0 wanted, dword [rsp+40] = rows wanted) -> CF
#   clear (found and right; or optional, absent and DATA = 0), or CF set with eax =
#   MODEL_E_TENSOR / MODEL_E_SHAPE / MODEL_E_TYPE and the ERR_* fields. Private; clobbers
#   the volatile registers.
mg_tensor:
    push rsi
    push rdi
    push r13
    push r14
    push rbp
    sub rsp, 32
    mov rsi, rcx
    mov rdi, rdx
    mov r13d, r8d
    mov r14d, r9d
    mov ebp, [rsp + 32 + 40 + 40]     # rows wanted
    xor eax, eax                      # the length of the name
.Llen:
    cmp byte ptr [rsi + rax], 0
    je .Lhave_len
    inc eax
    jmp .Llen
.Lhave_len:
    mov rcx, r12
    mov rdx, rsi
    mov r8, rax
    mov r9, rdi
    call gguf_find_tensor
    test eax, eax
    jz .Lfound
    test r13d, 2
    jz .Lmissing
    mov qword ptr [rdi + TENSOR_DATA], 0
    jmp .Lok
.Lfound:
    mov eax, [rdi + TENSOR_N]
    cmp eax, r14d
    jne .Lshape
    mov eax, [rdi + TENSOR_ROWS]
    cmp eax, ebp
    jne .Lshape
    mov eax, [rdi + TENSOR_TYPE]
    test r13d, 1
    jz .Lweight
    cmp eax, GGML_TYPE_F32
    jne .Lnot_f32
    jmp .Lok
.Lweight:
    cmp eax, GGML_TYPE_COUNT
    jae .Lbad_type
    imul ecx, eax, GGML_TT_SIZE
    lea rdx, [rip + ggml_type_table]
    test dword ptr [rdx + rcx + GGML_TT_FLAGS], GGML_TT_F_RUNNABLE
    jz .Lbad_type
.Lok:
    add rsp, 32
    pop rbp
    pop r14
    pop r13
    pop rdi
    pop rsi
    clc
    ret
.Lmissing:
    mov eax, MODEL_E_TENSOR
    jmp .Lfail
.Lshape:
    mov eax, [rdi + TENSOR_N]
    mov [rbx + MODEL_ERR_GOT], rax
    mov eax, [rdi + TENSOR_ROWS]
    mov [rbx + MODEL_ERR_GOT2], rax
    mov [rbx + MODEL_ERR_WANT], r14
    mov [rbx + MODEL_ERR_WANT2], rbp
    mov eax, MODEL_E_SHAPE
    jmp .Lfail
.Lnot_f32:
    mov dword ptr [rbx + MODEL_ERR_FIELD], 1
    jmp .Ltype
.Lbad_type:
    mov dword ptr [rbx + MODEL_ERR_FIELD], 0
.Ltype:
    mov eax, [rdi + TENSOR_TYPE]
    mov [rbx + MODEL_ERR_GOT], rax
    mov eax, MODEL_E_TYPE
.Lfail:
    push rax
    push rax
    mov rdx, rsi
    call mg_err_name
    pop rax
    pop rax
    add rsp, 32
    pop rbp
    pop r14
    pop r13
    pop rdi
    pop rsi
    stc
    ret

# model_gguf_probe(rcx = Model*, rdx = header bytes, r8 = file size) -> eax (model.inc)
model_gguf_probe:
    push rdi
    mov r9, rcx
    mov rdi, rcx
    xor eax, eax
    mov ecx, MODEL_SIZE / 8
    rep stosq
    mov [r9 + MODEL_FILE_SIZE], r8
    mov dword ptr [r9 + MODEL_FORMAT], MODEL_FORMAT_GGUF
    mov eax, MODEL_E_SHORT
    cmp r8, 24                        # magic, version, two counts
    jb .Lout
    cmp dword ptr [rdx], 0x46554747   # "GGUF"
    jne .Lout
    mov ecx, [rdx + 4]
    mov [r9 + MODEL_ERR_GOT], rcx
    mov eax, MODEL_E_GGUF_VERSION
    cmp ecx, 2
    jb .Lout
    cmp ecx, 3
    ja .Lout
    xor eax, eax
.Lout:
    mov [r9 + MODEL_ERROR], eax
    pop rdi
    ret

# mg_id(rcx = key) -> eax = the id (a u32), or MODEL_NO_ID when absent or unusable.
# Private; clobbers the volatile registers.
mg_id:
    sub rsp, 40
    mov rdx, rcx
    xor r8d, r8d
.Llen:
    cmp byte ptr [rdx + r8], 0
    je .Lhave
    inc r8d
    jmp .Llen
.Lhave:
    mov rcx, r12
    lea r9, [r15 + MG_VAL]
    call gguf_get_u64
    test eax, eax
    mov eax, MODEL_NO_ID
    jnz .Lout
    mov rcx, [r15 + MG_VAL]
    cmp rcx, rax
    jae .Lout
    mov eax, ecx
.Lout:
    add rsp, 40
    ret

# mg_layer_name(r13d = layer, rcx = suffix) -> MG_KEY = "blk.<layer><suffix>", rcx = MG_KEY.
# Private; clobbers rax, rcx, rdx, rdi, r8-r11.
mg_layer_name:
    sub rsp, 24                       # digits (reversed) at [rsp+8..rsp+16]; rsp 16-aligned
    mov r10, rcx
    lea rdi, [r15 + MG_KEY]
    lea r11, [rdi + MG_NAME_MAX]
    lea rcx, [rip + t_blk]
    call mg_cat
    mov eax, r13d                     # decimal
    lea r9, [rsp + 16]
    mov byte ptr [r9], 0
    mov r8d, 10
.Ldigit:
    xor edx, edx
    div r8d
    add dl, '0'
    dec r9
    mov [r9], dl
    test eax, eax
    jnz .Ldigit
    mov rcx, r9
    call mg_cat
    mov rcx, r10
    call mg_cat
    add rsp, 24
    lea rcx, [r15 + MG_KEY]
    ret

# mg_dim(ecx = 0 dim, 1 kv_dim, 2 hidden) -> eax. Private; clobbers nothing else.
mg_dim:
    mov eax, [rbx + MODEL_DIM]
    cmp ecx, 1
    jb .Lret
    mov eax, [rbx + MODEL_KV_DIM]
    je .Lret
    mov eax, [rbx + MODEL_HIDDEN_DIM]
.Lret:
    ret
