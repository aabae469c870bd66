# Lookups in a GGUF file opened by gguf_open (gguf.s): metadata keys, typed getters, tensors.
#
# Every routine needs a GGUF struct on which gguf_open succeeded (GGUF_F_OPEN), else it
# returns GGUF_E_NOT_OPEN. Lookups are linear scans of the (already checked) file: a key
# scan steps over every value, a tensor scan over every info, so nothing is allocated. Each
# scan goes to the end, and a name found twice is refused (DUP_KEY / DUP_TENSOR): a file
# cannot give two answers. Every routine stores its status in GGUF_ERROR and, on failure,
# the key or tensor name asked for in ERR_NAME / ERR_NAME_LEN (the caller's bytes: keep them
# until the message is formatted) and the details gguf_format_error prints.
#
#   gguf_find_key(rcx = GGUF*, rdx = key, r8 = key length) -> rax = pointer to the value
#       (just after its u32 type), edx = its GGUF_TYPE_*; or rax = 0 and edx = GGUF_E_NO_KEY
#       / GGUF_E_DUP_KEY / GGUF_E_NOT_OPEN. ERR_INDEX = the key's index when found.
#   The getters: (rcx = GGUF*, rdx = key, r8 = key length, r9 = out) -> eax = GGUF_OK,
#   NO_KEY, DUP_KEY, NOT_OPEN, KEY_TYPE (ERR_TYPE = the key's type, ERR_WANT = what was
#   wanted) or NEGATIVE; out is written only on success.
#   gguf_get_u64   any integer type (uint8..int64) -> u64 [r9]; a negative signed value is
#                  NEGATIVE (ERR_VALUE = it, as i64). ERR_WANT = GGUF_TYPE_UINT64.
#   gguf_get_f32   float32, or float64 rounded to float32 (cvtsd2ss) -> f32 [r9].
#                  ERR_WANT = GGUF_TYPE_FLOAT32.
#   gguf_get_bool  bool -> u32 [r9] = 0 or 1 (any nonzero byte is true).
#   gguf_get_str   string -> GGUF_VALUE [r9]: DATA = its bytes (not NUL-terminated), COUNT =
#                  its length, TYPE = GGUF_TYPE_STRING.
#   gguf_get_array array, [rsp+40] = the element type wanted, or GGUF_TYPE_ANY -> GGUF_VALUE
#                  [r9]: DATA = the first element, COUNT, TYPE = element type. Another
#                  element type is KEY_TYPE with ERR_PART = GGUF_PART_ARRAY, ERR_TYPE = the
#                  element type, ERR_WANT = the wanted one. Fixed-size elements are packed
#                  (DATA + i * size); strings and arrays are walked (u64 length + bytes).
#   gguf_find_tensor(rcx = GGUF*, rdx = name, r8 = name length, r9 = TENSOR* out)
#       -> eax = GGUF_OK (TENSOR filled, ERR_INDEX = its index), NO_TENSOR, DUP_TENSOR or
#       NOT_OPEN.
#   gguf_tensor_at(rcx = GGUF*, rdx = index, r8 = TENSOR* out, r9 = GGUF_VALUE* out for the
#       name, or 0) -> eax = GGUF_OK, INDEX (index >= TENSOR_COUNT, ERR_VALUE = it) or
#       NOT_OPEN. Walks from the first info: iterating all tensors is quadratic in their
#       count (a few hundred in a model: microseconds).
#   gguf_info_decode(rcx = GGUF*, rdx = offset of a tensor info checked by gguf_open,
#       r8 = TENSOR* out, r9 = GGUF_VALUE* out for the name, or 0) -> rax = offset of the next
#       info. Fills the TENSOR: DATA = file + DATA_START + offset, BYTES = ROW_BYTES * ROWS
#       (2^64-1 if that overflows, possible only before gguf_open's range check), ROW_BYTES
#       = ne0 / block size * block bytes, TYPE, N = ne0, ROWS, N_DIMS, NE (unused dims 1).
#       Leaf; clobbers rax, rdx, r8-r11. Used by gguf_open (its second pass) and here.
#   gguf_check_types(rcx = GGUF*) -> eax = GGUF_OK when every tensor's type can run here
#       (GGML_TT_F_RUNNABLE in ggml_type_table), else UNSUPPORTED for the first that cannot
#       (ERR_INDEX, ERR_NAME = its name, ERR_TYPE = its ggml type), or NOT_OPEN.
.include "layouts.inc"
.include "ggml.inc"
.extern ggml_type_table, gguf_skip_value

.section .text
.global gguf_find_key, gguf_get_u64, gguf_get_f32, gguf_get_bool, gguf_get_str
.global gguf_get_array, gguf_find_tensor, gguf_tensor_at, gguf_check_types, gguf_info_decode

# names_equal(r10 = a, r11 = b, rdx = length) -> ZF set when equal. Private; clobbers
# rax, rdx.
names_equal:
    test rdx, rdx
    jz .Ldone                         # (ZF is set)
.Lbyte:
    mov al, [r10 + rdx - 1]
    cmp al, [r11 + rdx - 1]
    jne .Ldone
    dec rdx
    jnz .Lbyte
.Ldone:
    ret

# gguf_find_key(rcx = GGUF*, rdx = key, r8 = length) -> rax = value or 0, edx = type / code
# Registers: rbx GGUF*, rsi file, r12 size, rdi position, r13 index, r14 key, rbp length,
# r15 depth 0 for gguf_skip_value; the first match's value and type on the stack.
gguf_find_key:
    push rbx
    push rbp
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, 24                       # [rsp] value of the first match (0: none), [rsp+8] type
    mov rbx, rcx
    mov r14, rdx
    mov rbp, r8
    mov [rbx + GGUF_ERR_NAME], rdx
    mov [rbx + GGUF_ERR_NAME_LEN], r8
    mov dword ptr [rbx + GGUF_ERR_PART], 0     # (only an array getter's KEY_TYPE sets it)
    mov edx, GGUF_E_NOT_OPEN
    test dword ptr [rbx + GGUF_FLAGS], GGUF_F_OPEN
    jz .Lnone
    mov rsi, [rbx + GGUF_FILE]
    mov r12, [rbx + GGUF_FILE_SIZE]
    mov rdi, [rbx + GGUF_KV_START]
    xor r13d, r13d
    mov qword ptr [rsp], 0
.Lkey:
    cmp r13, [rbx + GGUF_KV_COUNT]
    jae .Lscanned
    mov rdx, [rsi + rdi]              # key length
    lea r10, [rsi + rdi + 8]
    lea rdi, [rdi + rdx + 12]         # past the key and the type: the value
    mov ecx, [rsi + rdi - 4]          # its type
    cmp rdx, rbp
    jne .Lskip
    mov r11, r14
    call names_equal
    jne .Lskip
    mov edx, GGUF_E_DUP_KEY
    cmp qword ptr [rsp], 0
    jne .Lnone
    lea rax, [rsi + rdi]
    mov [rsp], rax
    mov [rsp + 8], ecx
    mov [rbx + GGUF_ERR_INDEX], r13
.Lskip:
    xor r15d, r15d
    call gguf_skip_value              # cannot fail: gguf_open walked the same bytes
    inc r13
    jmp .Lkey
.Lscanned:
    mov rax, [rsp]
    mov edx, [rsp + 8]
    test rax, rax
    jz .Lmissing
    mov dword ptr [rbx + GGUF_ERROR], GGUF_OK
    jmp .Lret
.Lmissing:
    mov edx, GGUF_E_NO_KEY
.Lnone:
    mov [rbx + GGUF_ERROR], edx
    xor eax, eax
.Lret:
    add rsp, 24
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbp
    pop rbx
    ret

# lookup(rcx, rdx, r8 as gguf_find_key; r9 = out) for the getters: calls it, keeps r9 in
# r11 and rcx (GGUF*) in r10. Returns to the getter with rax = value or 0, edx = type/code.
# The getters below are leaves apart from this call, with the stack as they found it plus
# 40 bytes (shadow space and alignment).
.macro GET_PROLOGUE
    push rbx
    push rsi
    sub rsp, 40
    mov rbx, rcx
    mov rsi, r9
    call gguf_find_key
.endm
.macro GET_EPILOGUE
    add rsp, 40
    pop rsi
    pop rbx
    ret
.endm

# gguf_get_u64(rcx, rdx, r8, r9 = u64* out) -> eax
gguf_get_u64:
    GET_PROLOGUE
    test rax, rax
    jz .Lcode
    mov dword ptr [rbx + GGUF_ERR_WANT], GGUF_TYPE_UINT64
    mov [rbx + GGUF_ERR_TYPE], edx
    cmp edx, GGUF_TYPE_UINT8
    je .Lu8
    cmp edx, GGUF_TYPE_INT8
    je .Li8
    cmp edx, GGUF_TYPE_UINT16
    je .Lu16
    cmp edx, GGUF_TYPE_INT16
    je .Li16
    cmp edx, GGUF_TYPE_UINT32
    je .Lu32
    cmp edx, GGUF_TYPE_INT32
    je .Li32
    cmp edx, GGUF_TYPE_UINT64
    je .Lu64
    cmp edx, GGUF_TYPE_INT64
    je .Li64
    mov eax, GGUF_E_KEY_TYPE
    jmp .Lstatus
.Lu8:
    movzx eax, byte ptr [rax]
    jmp .Lstore
.Li8:
    movsx rax, byte ptr [rax]
    jmp .Lsigned
.Lu16:
    movzx eax, word ptr [rax]
    jmp .Lstore
.Li16:
    movsx rax, word ptr [rax]
    jmp .Lsigned
.Lu32:
    mov eax, [rax]
    jmp .Lstore
.Li32:
    movsxd rax, dword ptr [rax]
    jmp .Lsigned
.Lu64:
    mov rax, [rax]
    jmp .Lstore
.Li64:
    mov rax, [rax]
.Lsigned:
    mov [rbx + GGUF_ERR_VALUE], rax
    test rax, rax
    mov edx, GGUF_E_NEGATIVE
    js .Lcode
.Lstore:
    mov [rsi], rax
    xor eax, eax
    jmp .Lstatus
.Lcode:
    mov eax, edx
.Lstatus:
    mov [rbx + GGUF_ERROR], eax
    GET_EPILOGUE

# gguf_get_f32(rcx, rdx, r8, r9 = f32* out) -> eax
gguf_get_f32:
    GET_PROLOGUE
    test rax, rax
    jz .Lcode
    mov dword ptr [rbx + GGUF_ERR_WANT], GGUF_TYPE_FLOAT32
    mov [rbx + GGUF_ERR_TYPE], edx
    cmp edx, GGUF_TYPE_FLOAT32
    je .Lf32
    cmp edx, GGUF_TYPE_FLOAT64
    mov edx, GGUF_E_KEY_TYPE
    jne .Lcode
    movsd xmm0, qword ptr [rax]
    cvtsd2ss xmm0, xmm0
    movd eax, xmm0
    jmp .Lstore
.Lf32:
    mov eax, [rax]
.Lstore:
    mov [rsi], eax
    xor eax, eax
    jmp .Lstatus
.Lcode:
    mov eax, edx
.Lstatus:
    mov [rbx + GGUF_ERROR], eax
    GET_EPILOGUE

# gguf_get_bool(rcx, rdx, r8, r9 = u32* out) -> eax
gguf_get_bool:
    GET_PROLOGUE
    test rax, rax
    jz .Lcode
    mov dword ptr [rbx + GGUF_ERR_WANT], GGUF_TYPE_BOOL
    mov [rbx + GGUF_ERR_TYPE], edx
    cmp edx, GGUF_TYPE_BOOL
    mov edx, GGUF_E_KEY_TYPE
    jne .Lcode
    xor edx, edx
    cmp byte ptr [rax], 0
    setne dl
    mov [rsi], edx
    xor eax, eax
    jmp .Lstatus
.Lcode:
    mov eax, edx
.Lstatus:
    mov [rbx + GGUF_ERROR], eax
    GET_EPILOGUE

# gguf_get_str(rcx, rdx, r8, r9 = GGUF_VALUE* out) -> eax
gguf_get_str:
    GET_PROLOGUE
    test rax, rax
    jz .Lcode
    mov dword ptr [rbx + GGUF_ERR_WANT], GGUF_TYPE_STRING
    mov [rbx + GGUF_ERR_TYPE], edx
    cmp edx, GGUF_TYPE_STRING
    mov edx, GGUF_E_KEY_TYPE
    jne .Lcode
    mov rdx, [rax]
    add rax, 8
    mov [rsi + GGUF_VALUE_DATA], rax
    mov [rsi + GGUF_VALUE_COUNT], rdx
    mov dword ptr [rsi + GGUF_VALUE_TYPE], GGUF_TYPE_STRING
    xor eax, eax
    jmp .Lstatus
.Lcode:
    mov eax, edx
.Lstatus:
    mov [rbx + GGUF_ERROR], eax
    GET_EPILOGUE

# gguf_get_array(rcx, rdx, r8, r9 = GGUF_VALUE* out, [rsp+40] = element type or ANY) -> eax
gguf_get_array:
    GET_PROLOGUE
    test rax, rax
    jz .Lcode
    mov dword ptr [rbx + GGUF_ERR_WANT], GGUF_TYPE_ARRAY
    mov [rbx + GGUF_ERR_TYPE], edx
    cmp edx, GGUF_TYPE_ARRAY
    mov edx, GGUF_E_KEY_TYPE
    jne .Lcode
    mov ecx, [rax]                    # element type
    mov edx, [rsp + 40 + 16 + 40]     # the 5th argument (above the frame and 2 pushes)
    cmp edx, GGUF_TYPE_ANY
    je .Lfill
    cmp ecx, edx
    je .Lfill
    mov [rbx + GGUF_ERR_WANT], edx
    mov [rbx + GGUF_ERR_TYPE], ecx
    mov dword ptr [rbx + GGUF_ERR_PART], GGUF_PART_ARRAY
    mov edx, GGUF_E_KEY_TYPE
    jmp .Lcode
.Lfill:
    mov [rsi + GGUF_VALUE_TYPE], ecx
    mov rdx, [rax + 4]
    mov [rsi + GGUF_VALUE_COUNT], rdx
    add rax, 12
    mov [rsi + GGUF_VALUE_DATA], rax
    xor eax, eax
    jmp .Lstatus
.Lcode:
    mov eax, edx
.Lstatus:
    mov [rbx + GGUF_ERROR], eax
    GET_EPILOGUE

# next_info(rsi = file, rdi = offset of a checked tensor info) -> rdi = the next one.
# Private; clobbers rax, rdx.
next_info:
    mov rax, [rsi + rdi]              # name length
    lea rdi, [rdi + rax + 8]
    mov eax, [rsi + rdi]              # n_dims
    lea rdi, [rdi + rax * 8 + 16]     # n_dims 4, dims, type 4, offset 8
    ret

# gguf_find_tensor(rcx = GGUF*, rdx = name, r8 = length, r9 = TENSOR*) -> eax
# Registers: rbx GGUF*, rsi file, rdi position, r12 index, r13 name, r14 length, r15 out,
# rbp offset of the first match's info (-1: none).
gguf_find_tensor:
    push rbx
    push rbp
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, 40
    mov rbx, rcx
    mov r13, rdx
    mov r14, r8
    mov r15, r9
    mov [rbx + GGUF_ERR_NAME], rdx
    mov [rbx + GGUF_ERR_NAME_LEN], r8
    mov eax, GGUF_E_NOT_OPEN
    test dword ptr [rbx + GGUF_FLAGS], GGUF_F_OPEN
    jz .Lout
    mov rsi, [rbx + GGUF_FILE]
    mov rdi, [rbx + GGUF_INFOS_START]
    xor r12d, r12d
    mov rbp, -1
.Linfo:
    cmp r12, [rbx + GGUF_TENSOR_COUNT]
    jae .Lscanned
    cmp [rsi + rdi], r14
    jne .Lnext
    lea r10, [rsi + rdi + 8]
    mov r11, r13
    mov rdx, r14
    call names_equal
    jne .Lnext
    mov eax, GGUF_E_DUP_TENSOR
    cmp rbp, -1
    jne .Lout
    mov rbp, rdi
    mov [rbx + GGUF_ERR_INDEX], r12
.Lnext:
    call next_info
    inc r12
    jmp .Linfo
.Lscanned:
    mov eax, GGUF_E_NO_TENSOR
    cmp rbp, -1
    je .Lout
    mov rcx, rbx
    mov rdx, rbp
    mov r8, r15
    xor r9d, r9d
    call gguf_info_decode
    xor eax, eax
.Lout:
    mov [rbx + GGUF_ERROR], eax
    add rsp, 40
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbp
    pop rbx
    ret

# gguf_tensor_at(rcx = GGUF*, rdx = index, r8 = TENSOR*, r9 = GGUF_VALUE* or 0) -> eax
gguf_tensor_at:
    push rbx
    push rsi
    push rdi
    sub rsp, 32
    mov rbx, rcx
    mov eax, GGUF_E_NOT_OPEN
    test dword ptr [rbx + GGUF_FLAGS], GGUF_F_OPEN
    jz .Lout
    mov [rbx + GGUF_ERR_VALUE], rdx
    mov eax, GGUF_E_INDEX
    cmp rdx, [rbx + GGUF_TENSOR_COUNT]
    jae .Lout
    mov [rbx + GGUF_ERR_INDEX], rdx
    mov rsi, [rbx + GGUF_FILE]
    mov rdi, [rbx + GGUF_INFOS_START]
    mov rcx, rdx                      # (next_info keeps rcx, r8, r9)
.Lwalk:
    test rcx, rcx
    jz .Lfound
    call next_info
    dec rcx
    jmp .Lwalk
.Lfound:
    mov rcx, rbx
    mov rdx, rdi
    call gguf_info_decode
    xor eax, eax
.Lout:
    mov [rbx + GGUF_ERROR], eax
    add rsp, 32
    pop rdi
    pop rsi
    pop rbx
    ret

# gguf_check_types(rcx = GGUF*) -> eax
gguf_check_types:
    push rbx
    push rsi
    push rdi
    mov rbx, rcx
    mov eax, GGUF_E_NOT_OPEN
    test dword ptr [rbx + GGUF_FLAGS], GGUF_F_OPEN
    jz .Lout
    mov rsi, [rbx + GGUF_FILE]
    mov rdi, [rbx + GGUF_INFOS_START]
    xor ecx, ecx
    lea r8, [rip + ggml_type_table]
.Ltensor:
    xor eax, eax
    cmp rcx, [rbx + GGUF_TENSOR_COUNT]
    jae .Lout
    mov r9, rdi                       # this info
    call next_info
    mov eax, [rsi + rdi - 12]         # its type (just before the offset)
    imul edx, eax, GGML_TT_SIZE
    test dword ptr [r8 + rdx + GGML_TT_FLAGS], GGML_TT_F_RUNNABLE
    jz .Lunsupported
    inc rcx
    jmp .Ltensor
.Lunsupported:
    mov [rbx + GGUF_ERR_TYPE], eax
    mov [rbx + GGUF_ERR_INDEX], rcx
    lea rax, [rsi + r9 + 8]
    mov [rbx + GGUF_ERR_NAME], rax
    mov rax, [rsi + r9]
    mov [rbx + GGUF_ERR_NAME_LEN], rax
    mov eax, GGUF_E_UNSUPPORTED
.Lout:
    mov [rbx + GGUF_ERROR], eax
    pop rdi
    pop rsi
    pop rbx
    ret

# gguf_info_decode(rcx = GGUF*, rdx = info offset, r8 = TENSOR*, r9 = GGUF_VALUE* or 0)
#   -> rax = offset of the next info. The info was checked by gguf_open's first pass.
gguf_info_decode:
    push rsi
    push rdi
    mov rsi, [rcx + GGUF_FILE]
    add rsi, rdx                      # the info
    mov rax, [rsi]                    # name length
    test r9, r9
    jz .Lno_name
    lea r10, [rsi + 8]
    mov [r9 + GGUF_VALUE_DATA], r10
    mov [r9 + GGUF_VALUE_COUNT], rax
    mov dword ptr [r9 + GGUF_VALUE_TYPE], GGUF_TYPE_STRING
.Lno_name:
    lea rsi, [rsi + rax + 8]
    mov r10d, [rsi]                   # n_dims
    add rsi, 4
    mov [r8 + TENSOR_N_DIMS], r10d
    mov eax, 1
    xor edx, edx
.Lones:                               # unused dims are 1
    mov [r8 + rdx * 8 + TENSOR_NE], rax
    inc edx
    cmp edx, GGUF_MAX_DIMS
    jb .Lones
    mov r11d, 1                       # rows
    xor edx, edx
.Lne:
    mov rax, [rsi + rdx * 8]
    mov [r8 + rdx * 8 + TENSOR_NE], rax
    test edx, edx
    jz .Lne_next
    imul r11, rax
.Lne_next:
    inc edx
    cmp edx, r10d
    jb .Lne
    lea rsi, [rsi + r10 * 8]
    mov [r8 + TENSOR_ROWS], r11d
    mov rdi, [r8 + TENSOR_NE]         # ne0
    mov [r8 + TENSOR_N], edi
    mov eax, [rsi]                    # type
    mov [r8 + TENSOR_TYPE], eax
    imul eax, eax, GGML_TT_SIZE
    lea r10, [rip + ggml_type_table]
    add r10, rax
    mov rax, rdi
    xor edx, edx
    mov edi, [r10 + GGML_TT_BLOCK_SIZE]
    div rdi                           # blocks per row
    mov edi, [r10 + GGML_TT_BLOCK_BYTES]
    imul rax, rdi                     # < 2^32 * 2^9: no overflow
    mov [r8 + TENSOR_ROW_BYTES], rax
    mul r11
    jno .Lbytes
    mov rax, -1                       # cannot be: the range check refuses it
.Lbytes:
    mov [r8 + TENSOR_BYTES], rax
    mov rax, [rsi + 4]                # offset
    add rax, [rcx + GGUF_FILE]
    add rax, [rcx + GGUF_DATA_START]
    mov [r8 + TENSOR_DATA], rax
    lea rax, [rsi + 12]
    sub rax, [rcx + GGUF_FILE]
    pop rdi
    pop rsi
    ret
