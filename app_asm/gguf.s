# The GGUF reader: opens a GGUF file image in place, proves it well-formed, and answers
# lookups of metadata keys and tensors (gguf_get.s) and error lines (gguf_msg.s).
#
# Format (the GGUF specification, ggml's docs/gguf.md; little-endian): "GGUF", u32 version,
# u64 tensor_count, u64 kv_count; kv_count pairs (string key, u32 value type, value);
# tensor_count infos (string name, u32 n_dims, u64 ne[n_dims] with ne[0] fastest, u32 ggml
# type, u64 offset); padding to general.alignment (default 32); the data section, each
# tensor at DATA_START + offset. A string is a u64 length then its bytes (no NUL). Value
# types (GGUF_TYPE_*): 0 uint8, 1 int8, 2 uint16, 3 int16, 4 uint32, 5 int32, 6 float32,
# 7 bool (1 byte), 8 string, 9 array (u32 element type, u64 count, the elements, which may
# be strings or arrays), 10 uint64, 11 int64, 12 float64.
#
# Every routine follows the Microsoft x64 ABI, calls no firmware and prints nothing; the
# caller owns the file image and the GGUF struct (peasm/layouts.py: GGUF_*, GGUF_VALUE_*,
# TENSOR_*, and the codes GGUF_E_*, GGUF_PART_*, GGUF_TYPE_*, generated into layouts.inc).
# Nothing in the file is trusted: every length, count, offset and size is compared with what
# is left of the file before it is used, by subtraction (never `pos + length`, which a
# length near 2^64 would wrap), so no byte outside [file, file + size) is ever read.
#
#   gguf_open(rcx = GGUF*, rdx = file bytes, r8 = file size) -> eax = GGUF_OK or GGUF_E_*
#       Clears the struct (GGUF_SIZE bytes), then checks, in this order, stopping at the first
#       failure (the ERR_* fields say where; gguf_format_error turns them into a line):
#       - size >= 4 and the magic "GGUF" [MAGIC]; size >= 24 [TRUNCATED, part HEADER];
#         version 2 or 3 [VERSION, ERR_VALUE = version];
#       - kv_count <= (size - 24) / 13 and tensor_count <= (size - 24) / 32, the most the
#         file could hold [COUNT, ERR_PART = KEY or TENSOR_NAME_LEN, ERR_VALUE = the count];
#       - each key/value pair i (ERR_INDEX = i, ERR_NAME = its key once read): the key, the
#         value type, the value, skipped without being interpreted: a type >= 13, also an
#         array's element type even for 0 elements [VALUE_TYPE, ERR_VALUE = type]; an array
#         value nested inside GGUF_MAX_DEPTH arrays [NESTING]; anything running past the end
#         [TRUNCATED, ERR_PART = what, ERR_VALUE = its length / count / bytes, ERR_AUX = its
#         offset]. Arrays of fixed-size elements are checked in one division, so the work is
#         linear in the file size whatever the counts say;
#       - general.alignment (the first such key): type uint32 [ALIGNMENT_TYPE, ERR_TYPE],
#         a nonzero power of two [ALIGNMENT, ERR_VALUE];
#       - each tensor info i (ERR_INDEX = i, ERR_NAME = its name once read): name within the
#         file [TRUNCATED], at most GGUF_MAX_NAME (63) bytes as ggml requires [NAME_LEN];
#         n_dims 1..4 [N_DIMS]; each ne in 1..2^32-1 [DIM, ERR_VALUE = ne, ERR_AUX = dim];
#         rows = ne1*ne2*ne3 <= 2^32-1 [ROWS, ERR_VALUE = the product that passed it]; the
#         ggml type known to ggml_type_table (nonzero block size) [TENSOR_TYPE, ERR_TYPE];
#         ne0 a multiple of its block size [BLOCK, ERR_VALUE = ne0]; offset a multiple of the
#         alignment [OFFSET_ALIGN, ERR_VALUE = offset, ERR_AUX = alignment];
#       - DATA_START = end of the infos rounded up to the alignment; DATA_BYTES what follows it
#         (0 when the file ends sooner: a vocab-only file with no tensors needs no padding);
#       - each tensor i again, in file order: offset + bytes <= DATA_BYTES [DATA_RANGE,
#         ERR_VALUE = offset, ERR_AUX = bytes (2^64-1 if the product overflows)]; offset >=
#         the previous tensor's end, so no two tensors overlap (ggml writes them in order)
#         [OVERLAP, ERR_AUX = the previous end].
#       On success: VERSION, ALIGNMENT, the counts, KV_START, INFOS_START, DATA_START,
#       DATA_BYTES, N_ELEMENTS (the parameter count) and FLAGS = GGUF_F_OPEN. Duplicate keys
#       or tensor names are not refused here: a lookup of a duplicated one is (gguf_get.s).
#       ERR_NAME points into the file image: keep it until the error line is formatted.
#   gguf_info_decode (gguf_get.s) fills a TENSOR from a checked tensor info.
#   gguf_skip_value: internal to gguf*.s (not the ABI): ecx = value type, rdi = offset of the
#       value, rbx = GGUF*, rsi = file, r12 = file size, r15d = arrays around it (0 at the
#       top) -> eax = 0 and rdi = offset past the value, or eax = GGUF_E_* with the ERR_*
#       fields set. Preserves rbx, rsi, r12-r15; clobbers rax, rcx, rdx, r8-r10.
#
# Sizes come from ggml_type_table (peasm/ggml.py, generated as ggml_table.inc, linked by
# kernels_asm/ggml_types.s): GGML_TT_BLOCK_SIZE and GGML_TT_BLOCK_BYTES of each type id.
.include "layouts.inc"
.include "ggml.inc"
.extern ggml_type_table, gguf_info_decode

.section .rdata
s_alignment_key: .ascii "general.alignment"     # 17 bytes
.equ ALIGNMENT_KEY_LEN, 17
# bytes of a value of each GGUF type; 0 for string and array (variable)
value_bytes: .byte 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8

.section .text
.global gguf_open, gguf_skip_value

# Frame of gguf_open below its 8 pushes: shadow space, a TENSOR and a GGUF_VALUE scratch.
.equ GO_TENSOR, 32
.equ GO_NAME, GO_TENSOR + TENSOR_SIZE
.equ GO_FRAME, GO_NAME + GGUF_VALUE_SIZE + 8        # 136: rsp 16-aligned at calls

# gguf_open(rcx = GGUF*, rdx = file, r8 = size) -> eax = GGUF_E_*
# Registers: rbx GGUF*, rsi file, r12 size, rdi position, r13 index, r14 alignment key index,
# rbp offset of general.alignment's type field (-1: none), r15 array depth / previous end.
gguf_open:
    push rbx
    push rbp
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, GO_FRAME
    mov rbx, rcx
    mov rsi, rdx
    mov r12, r8
    mov rdi, rbx                      # a clean struct: flags 0, every field 0
    xor eax, eax
    mov ecx, GGUF_SIZE / 8
    rep stosq
    mov [rbx + GGUF_FILE], rsi
    mov [rbx + GGUF_FILE_SIZE], r12
    mov dword ptr [rbx + GGUF_ALIGNMENT], GGUF_DEFAULT_ALIGNMENT
    mov qword ptr [rbx + GGUF_KV_START], GGUF_HEADER_BYTES
    xor edi, edi
    mov eax, GGUF_E_MAGIC
    cmp r12, 4
    jb .Lfail                         # (rdx is not read at all)
    cmp dword ptr [rsi], GGUF_MAGIC
    jne .Lfail
    cmp r12, GGUF_HEADER_BYTES
    jae .Lheader
    mov ecx, GGUF_PART_HEADER
    mov edx, GGUF_HEADER_BYTES
    xor r8d, r8d
    call truncated
    jmp .Lfail
.Lheader:
    mov eax, [rsi + 4]
    mov [rbx + GGUF_VERSION], eax
    mov [rbx + GGUF_ERR_VALUE], rax
    lea ecx, [rax - 2]
    cmp ecx, 1
    mov eax, GGUF_E_VERSION
    ja .Lfail                         # not 2 or 3
    mov rax, [rsi + 8]
    mov [rbx + GGUF_TENSOR_COUNT], rax
    mov rax, [rsi + 16]
    mov [rbx + GGUF_KV_COUNT], rax
    mov rax, r12                      # counts: no more entries than the file could hold
    sub rax, GGUF_HEADER_BYTES
    xor edx, edx
    mov ecx, GGUF_MIN_KV_BYTES
    div rcx
    mov rcx, [rbx + GGUF_KV_COUNT]
    mov edx, GGUF_PART_KEY
    cmp rcx, rax
    ja .Lcount
    mov rax, r12
    sub rax, GGUF_HEADER_BYTES
    xor edx, edx
    mov ecx, GGUF_MIN_INFO_BYTES
    div rcx
    mov rcx, [rbx + GGUF_TENSOR_COUNT]
    mov edx, GGUF_PART_TENSOR_NAME_LEN
    cmp rcx, rax
    jbe .Lkvs
.Lcount:
    mov [rbx + GGUF_ERR_PART], edx
    mov [rbx + GGUF_ERR_VALUE], rcx
    mov eax, GGUF_E_COUNT
    jmp .Lfail

.Lkvs:                                # ---- the key/value pairs
    mov edi, GGUF_HEADER_BYTES
    xor r13d, r13d
    mov rbp, -1
.Lkv:
    cmp r13, [rbx + GGUF_KV_COUNT]
    jae .Lkv_done
    mov [rbx + GGUF_ERR_INDEX], r13
    xor eax, eax
    mov [rbx + GGUF_ERR_NAME], rax
    mov [rbx + GGUF_ERR_NAME_LEN], rax
    mov ecx, GGUF_PART_KEY_LEN
    mov edx, 8
    mov r8, rdi
    mov rax, r12
    sub rax, rdi                      # bytes left
    cmp rax, 8
    jb .Ltrunc
    mov rdx, [rsi + rdi]              # key length
    sub rax, 8
    mov ecx, GGUF_PART_KEY
    cmp rdx, rax
    ja .Ltrunc
    lea rcx, [rsi + rdi + 8]
    mov [rbx + GGUF_ERR_NAME], rcx
    mov [rbx + GGUF_ERR_NAME_LEN], rdx
    lea rdi, [rdi + rdx + 8]
    cmp rbp, -1                       # the first general.alignment: remember where it is
    jne .Lkv_type
    cmp rdx, ALIGNMENT_KEY_LEN
    jne .Lkv_type
    lea r8, [rip + s_alignment_key]
    mov rax, [rcx]
    cmp rax, [r8]
    jne .Lkv_type
    mov rax, [rcx + 8]
    cmp rax, [r8 + 8]
    jne .Lkv_type
    mov al, [rcx + 16]
    cmp al, [r8 + 16]
    jne .Lkv_type
    mov rbp, rdi
    mov r14, r13
.Lkv_type:
    mov ecx, GGUF_PART_TYPE
    mov edx, 4
    mov r8, rdi
    mov rax, r12
    sub rax, rdi
    cmp rax, 4
    jb .Ltrunc
    mov ecx, [rsi + rdi]
    add rdi, 4
    xor r15d, r15d
    call gguf_skip_value
    test eax, eax
    jnz .Lfail
    inc r13
    jmp .Lkv
.Lkv_done:
    mov [rbx + GGUF_INFOS_START], rdi
    cmp rbp, -1
    je .Linfos
    mov [rbx + GGUF_ERR_INDEX], r14   # general.alignment: uint32, a nonzero power of two
    lea rax, [rsi + rbp]
    sub rax, ALIGNMENT_KEY_LEN
    mov [rbx + GGUF_ERR_NAME], rax
    mov qword ptr [rbx + GGUF_ERR_NAME_LEN], ALIGNMENT_KEY_LEN
    mov eax, [rsi + rbp]
    mov [rbx + GGUF_ERR_TYPE], eax
    cmp eax, GGUF_TYPE_UINT32
    mov eax, GGUF_E_ALIGNMENT_TYPE
    jne .Lfail
    mov eax, [rsi + rbp + 4]
    mov [rbx + GGUF_ERR_VALUE], rax
    lea ecx, [rax - 1]
    test eax, eax
    jz .Lbad_alignment
    test ecx, eax
    jnz .Lbad_alignment
    mov [rbx + GGUF_ALIGNMENT], eax

.Linfos:                              # ---- the tensor infos: structure, shape, type
    xor r13d, r13d
.Linfo:
    cmp r13, [rbx + GGUF_TENSOR_COUNT]
    jae .Linfos_done
    mov [rbx + GGUF_ERR_INDEX], r13
    xor eax, eax
    mov [rbx + GGUF_ERR_NAME], rax
    mov [rbx + GGUF_ERR_NAME_LEN], rax
    mov ecx, GGUF_PART_TENSOR_NAME_LEN
    mov edx, 8
    mov r8, rdi
    mov rax, r12
    sub rax, rdi
    cmp rax, 8
    jb .Ltrunc
    mov rdx, [rsi + rdi]              # name length
    sub rax, 8
    mov ecx, GGUF_PART_TENSOR_NAME
    cmp rdx, rax
    ja .Ltrunc
    lea rcx, [rsi + rdi + 8]
    mov [rbx + GGUF_ERR_NAME], rcx
    mov [rbx + GGUF_ERR_NAME_LEN], rdx
    lea rdi, [rdi + rdx + 8]
    mov [rbx + GGUF_ERR_VALUE], rdx
    cmp rdx, GGUF_MAX_NAME
    mov eax, GGUF_E_NAME_LEN
    ja .Lfail
    mov ecx, GGUF_PART_N_DIMS
    mov edx, 4
    mov r8, rdi
    mov rax, r12
    sub rax, rdi
    cmp rax, 4
    jb .Ltrunc
    mov ecx, [rsi + rdi]              # n_dims
    add rdi, 4
    mov [rbx + GGUF_ERR_VALUE], rcx
    lea edx, [rcx - 1]
    cmp edx, GGUF_MAX_DIMS - 1
    mov eax, GGUF_E_N_DIMS
    ja .Lfail
    lea rdx, [rcx * 8]
    mov r8, rdi
    mov rax, r12
    sub rax, rdi
    mov r9d, ecx
    mov ecx, GGUF_PART_DIMS
    cmp rax, rdx
    jb .Ltrunc
    xor ecx, ecx                      # dim k; r10 = rows so far
    mov r10d, 1
.Ldim:
    mov rax, [rsi + rdi]
    mov [rbx + GGUF_ERR_VALUE], rax
    mov [rbx + GGUF_ERR_AUX], rcx
    mov rdx, rax
    shr rdx, 32
    jnz .Lbad_dim                     # above 2^32-1
    test rax, rax
    jz .Lbad_dim
    test ecx, ecx
    jz .Lne0
    imul r10, rax                     # both < 2^32: no overflow
    mov [rbx + GGUF_ERR_VALUE], r10
    mov rdx, r10
    shr rdx, 32
    mov eax, GGUF_E_ROWS
    jnz .Lfail
    jmp .Ldim_next
.Lne0:
    mov r11, rax                      # ne0
.Ldim_next:
    add rdi, 8
    inc ecx
    cmp ecx, r9d
    jb .Ldim
    mov ecx, GGUF_PART_TYPE_OFFSET
    mov edx, 12
    mov r8, rdi
    mov rax, r12
    sub rax, rdi
    cmp rax, 12
    jb .Ltrunc
    mov eax, [rsi + rdi]              # ggml type
    mov r9, [rsi + rdi + 4]           # offset
    add rdi, 12
    mov [rbx + GGUF_ERR_TYPE], eax
    mov [rbx + GGUF_ERR_VALUE], rax
    cmp eax, GGML_TYPE_COUNT
    jae .Lbad_type
    imul ecx, eax, GGML_TT_SIZE
    lea rdx, [rip + ggml_type_table]
    mov ecx, [rdx + rcx + GGML_TT_BLOCK_SIZE]
    test ecx, ecx
    jz .Lbad_type                     # a retired id: no row
    mov [rbx + GGUF_ERR_VALUE], r11
    mov rax, r11
    xor edx, edx
    div rcx
    test rdx, rdx
    mov eax, GGUF_E_BLOCK
    jnz .Lfail
    mov [rbx + GGUF_ERR_VALUE], r9
    mov eax, [rbx + GGUF_ALIGNMENT]
    mov [rbx + GGUF_ERR_AUX], rax
    dec eax
    test r9, rax
    mov eax, GGUF_E_OFFSET_ALIGN
    jnz .Lfail
    inc r13
    jmp .Linfo

.Linfos_done:                         # ---- the data section, then each tensor's bytes
    mov eax, [rbx + GGUF_ALIGNMENT]
    dec rax
    lea rdx, [rdi + rax]
    not rax
    and rdx, rax
    mov [rbx + GGUF_DATA_START], rdx
    xor eax, eax
    mov rcx, r12
    sub rcx, rdx
    cmovb rcx, rax                    # the file ends before the data section: no data
    mov [rbx + GGUF_DATA_BYTES], rcx
    mov rdi, [rbx + GGUF_INFOS_START]
    xor r13d, r13d
    xor r15d, r15d                    # end of the previous tensor's data
.Lrange:
    cmp r13, [rbx + GGUF_TENSOR_COUNT]
    jae .Lopen
    mov rcx, rbx
    mov rdx, rdi
    lea r8, [rsp + GO_TENSOR]
    lea r9, [rsp + GO_NAME]
    call gguf_info_decode
    mov rdi, rax
    mov [rbx + GGUF_ERR_INDEX], r13
    mov rax, [rsp + GO_NAME + GGUF_VALUE_DATA]
    mov [rbx + GGUF_ERR_NAME], rax
    mov rax, [rsp + GO_NAME + GGUF_VALUE_COUNT]
    mov [rbx + GGUF_ERR_NAME_LEN], rax
    mov rax, [rsp + GO_TENSOR + TENSOR_DATA]   # back to the offset (mod 2^64)
    sub rax, rsi
    sub rax, [rbx + GGUF_DATA_START]
    mov rdx, [rsp + GO_TENSOR + TENSOR_BYTES]
    mov [rbx + GGUF_ERR_VALUE], rax
    mov [rbx + GGUF_ERR_AUX], rdx
    mov rcx, [rbx + GGUF_DATA_BYTES]
    cmp rax, rcx
    ja .Lbad_range
    sub rcx, rax
    cmp rdx, rcx
    ja .Lbad_range
    mov [rbx + GGUF_ERR_AUX], r15
    cmp rax, r15
    mov ecx, GGUF_E_OVERLAP
    jb .Lfail_ecx
    lea r15, [rax + rdx]
    mov eax, [rsp + GO_TENSOR + TENSOR_N]
    mov ecx, [rsp + GO_TENSOR + TENSOR_ROWS]
    imul rax, rcx
    add [rbx + GGUF_N_ELEMENTS], rax
    inc r13
    jmp .Lrange
.Lopen:
    mov dword ptr [rbx + GGUF_FLAGS], GGUF_F_OPEN
    xor eax, eax
    jmp .Lfail
.Lbad_range:
    mov eax, GGUF_E_DATA_RANGE
    jmp .Lfail
.Lfail_ecx:
    mov eax, ecx
    jmp .Lfail
.Lbad_alignment:
    mov eax, GGUF_E_ALIGNMENT
    jmp .Lfail
.Lbad_dim:
    mov eax, GGUF_E_DIM
    jmp .Lfail
.Lbad_type:
    mov eax, GGUF_E_TENSOR_TYPE
    jmp .Lfail
.Ltrunc:                              # ecx = part, rdx = value, r8 = offset
    call truncated
.Lfail:                               # also the success exit, eax = 0
    mov [rbx + GGUF_ERROR], eax
    add rsp, GO_FRAME
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbp
    pop rbx
    ret

# gguf_skip_value (internal; see the contract above). Recursion for arrays of strings or
# arrays, at most GGUF_MAX_DEPTH deep, 32 bytes of stack per level.
gguf_skip_value:
    cmp ecx, GGUF_TYPE_COUNT
    jae .Lbad_type
    mov r8, r12
    sub r8, rdi                       # bytes left
    cmp ecx, GGUF_TYPE_STRING
    je .Lstring
    cmp ecx, GGUF_TYPE_ARRAY
    je .Larray
    lea rax, [rip + value_bytes]
    movzx edx, byte ptr [rax + rcx]
    mov ecx, GGUF_PART_VALUE
    cmp r8, rdx
    jb .Ltrunc_here
    add rdi, rdx
    xor eax, eax
    ret
.Lstring:
    mov ecx, GGUF_PART_STRING_LEN
    mov edx, 8
    cmp r8, 8
    jb .Ltrunc_here
    mov rdx, [rsi + rdi]
    sub r8, 8
    mov ecx, GGUF_PART_STRING
    cmp rdx, r8
    ja .Ltrunc_here
    lea rdi, [rdi + rdx + 8]
    xor eax, eax
    ret
.Larray:
    mov [rbx + GGUF_ERR_VALUE], r15
    mov eax, GGUF_E_NESTING
    cmp r15d, GGUF_MAX_DEPTH
    jae .Lret
    mov ecx, GGUF_PART_ARRAY_HEAD
    mov edx, 12
    cmp r8, 12
    jb .Ltrunc_here
    mov ecx, [rsi + rdi]              # element type
    mov r10, [rsi + rdi + 4]          # count
    cmp ecx, GGUF_TYPE_COUNT
    jae .Lbad_type
    sub r8, 12
    cmp ecx, GGUF_TYPE_STRING
    je .Lstrings
    cmp ecx, GGUF_TYPE_ARRAY
    je .Lelements
    lea rax, [rip + value_bytes]      # fixed-size elements: count <= left / size
    movzx r9d, byte ptr [rax + rcx]
    mov rax, r8
    xor edx, edx
    div r9
    mov rdx, r10
    mov ecx, GGUF_PART_ARRAY
    cmp r10, rax
    ja .Ltrunc_here
    imul r10, r9
    lea rdi, [rdi + r10 + 12]
    xor eax, eax
    ret
.Lstrings:                            # strings: one by one, here (vocabularies hold 10^5)
    add rdi, 12
.Lstring_element:
    xor eax, eax
    test r10, r10
    jz .Lret
    mov r8, r12
    sub r8, rdi
    mov ecx, GGUF_PART_STRING_LEN
    mov edx, 8
    cmp r8, 8
    jb .Ltrunc_here
    mov rdx, [rsi + rdi]
    sub r8, 8
    mov ecx, GGUF_PART_STRING
    cmp rdx, r8
    ja .Ltrunc_here
    lea rdi, [rdi + rdx + 8]
    dec r10
    jmp .Lstring_element
.Lelements:                           # arrays: one by one, through this routine
    add rdi, 12
    push r13
    push r14
    push r15
    mov r13d, ecx
    mov r14, r10
    inc r15d
.Lelement:
    xor eax, eax
    test r14, r14
    jz .Lelements_done
    mov ecx, r13d
    call gguf_skip_value
    test eax, eax
    jnz .Lelements_done
    dec r14
    jmp .Lelement
.Lelements_done:
    pop r15
    pop r14
    pop r13
    ret
.Lbad_type:
    mov [rbx + GGUF_ERR_VALUE], rcx
    mov eax, GGUF_E_VALUE_TYPE
.Lret:
    ret
.Ltrunc_here:
    mov r8, rdi
    jmp truncated                     # (tail call: its ret returns to our caller)

# truncated(ecx = GGUF_PART_*, rdx = length / count / bytes, r8 = offset, rbx = GGUF*)
#   -> eax = GGUF_E_TRUNCATED, the ERR_* fields set. Private; clobbers nothing else.
truncated:
    mov [rbx + GGUF_ERR_PART], ecx
    mov [rbx + GGUF_ERR_VALUE], rdx
    mov [rbx + GGUF_ERR_AUX], r8
    mov eax, GGUF_E_TRUNCATED
    ret
