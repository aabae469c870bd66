# The GGUF reader's error lines (gguf.s, gguf_get.s): one line of text per GGUF_E_* code.
#
#   gguf_error_text(ecx = code) -> rax = NUL-terminated UTF-8 line (no newline), the generic
#       one; any code, even an unknown one, gives a line.
#   gguf_format_error(rcx = GGUF*, edx = code, r8 = buffer, r9 = capacity) -> rax = bytes
#       written (NUL-terminated, cut to fit; capacity 0 writes nothing): the line with the
#       numbers and names from the struct's ERR_* fields, e.g.
#       "gguf: version 1 (supported: 2, 3)",
#       "gguf: metadata key 5 'general.name': a string of 18446744073709551615 bytes at
#        offset 1234 runs past the end of the file (12345 bytes)",
#       "gguf: tensor 12 'blk.0.attn_q.weight' has type IQ2_XS (ggml type 17), not supported
#        here (supported: F32 F16 Q4_0 ...)".
#       Names from the file (keys, tensor names) are quoted, cut to 48 bytes, and every byte
#       outside printable ASCII is shown as '?', so the line is one line of UTF-8 whatever
#       the file holds. Call it with the code the last call returned: the ERR_* fields are
#       those of that call. Leaf apart from private helpers; preserves what the ABI says.
.include "layouts.inc"
.include "ggml.inc"
.extern ggml_type_table

.equ NAME_SHOWN, 48                   # bytes of a name shown before "..."

.section .rdata
# one line per GGUF_E_* code, in code order (nth_string skips `code` NULs)
gguf_messages:
    .asciz "gguf: ok"
    .asciz "gguf: not a GGUF file (it does not start with \"GGUF\")"
    .asciz "gguf: unsupported GGUF version (supported: 2, 3)"
    .asciz "gguf: the file ends inside its header, metadata or tensor infos"
    .asciz "gguf: a count in the header is more than the file can hold"
    .asciz "gguf: a metadata value has an unknown type"
    .asciz "gguf: metadata arrays are nested too deep"
    .asciz "gguf: general.alignment is not a nonzero power of two"
    .asciz "gguf: general.alignment is not a uint32"
    .asciz "gguf: a tensor name is longer than ggml's limit of 63 bytes"
    .asciz "gguf: a tensor has a number of dimensions outside 1 to 4"
    .asciz "gguf: a tensor dimension is 0 or above 4294967295"
    .asciz "gguf: a tensor has more than 4294967295 rows"
    .asciz "gguf: a tensor has an unknown ggml type"
    .asciz "gguf: a tensor's rows are not a whole number of blocks of its type"
    .asciz "gguf: a tensor's data offset is not a multiple of the alignment"
    .asciz "gguf: a tensor's data runs past the end of the file"
    .asciz "gguf: a tensor's data overlaps the tensor before it"
    .asciz "gguf: a metadata key is missing"
    .asciz "gguf: a metadata key appears more than once"
    .asciz "gguf: a metadata key has another type than expected"
    .asciz "gguf: a metadata key is negative, expected a non-negative integer"
    .asciz "gguf: a tensor is missing"
    .asciz "gguf: a tensor name appears more than once"
    .asciz "gguf: a tensor has a type this program cannot run"
    .asciz "gguf: tensor index out of range"
    .asciz "gguf: no GGUF file is open (gguf_open did not succeed)"
msg_unknown:    .asciz "gguf: unknown error code"
# GGUF value type names (the format document's), in type order
type_names:
    .asciz "uint8"
    .asciz "int8"
    .asciz "uint16"
    .asciz "int16"
    .asciz "uint32"
    .asciz "int32"
    .asciz "float32"
    .asciz "bool"
    .asciz "string"
    .asciz "array"
    .asciz "uint64"
    .asciz "int64"
    .asciz "float64"
s_type_unknown: .asciz "?"
# per GGUF_PART_*: what ran past the end, then (when not empty) the unit after its number
part_text:
    .asciz "the header"
    .asciz "the key's length"
    .asciz "a key of "
    .asciz "the value type"
    .asciz "the value"
    .asciz "a string length"
    .asciz "a string of "
    .asciz "an array header"
    .asciz "an array of "
    .asciz "the name's length"
    .asciz "a name of "
    .asciz "n_dims"
    .asciz "the dims"
    .asciz "the type and offset"
part_unit:
    .asciz ""
    .asciz ""
    .asciz " bytes"
    .asciz ""
    .asciz ""
    .asciz ""
    .asciz " bytes"
    .asciz ""
    .asciz " elements"
    .asciz ""
    .asciz " bytes"
    .asciz ""
    .asciz ""
    .asciz ""
s_gguf:         .asciz "gguf: "
s_key:          .asciz "metadata key "
s_tensor:       .asciz "tensor "
s_colon:        .asciz ": "
s_version:      .asciz "version "
s_supported23:  .asciz " (supported: 2, 3)"
s_file_is:      .asciz "the file is "
s_short_header: .asciz " bytes, shorter than the 24-byte header"
s_at_offset:    .asciz " at offset "
s_runs_past:    .asciz " runs past the end of the file ("
s_bytes_close:  .asciz " bytes)"
s_kv_count:     .asciz "kv_count "
s_tensor_count: .asciz "tensor_count "
s_more_than:    .asciz " is more than a "
s_file_holds:   .asciz "-byte file can hold"
s_value_type:   .asciz ": value type "
s_not_gguf:     .asciz " is not a GGUF type (0 to 12)"
s_nested:       .asciz ": arrays nested more than 4 deep"
s_alignment:    .asciz "general.alignment is "
s_power2:       .asciz ", must be a nonzero power of two"
s_alignment_t:  .asciz "general.alignment has type "
s_must_u32:     .asciz ", must be uint32"
s_has_name:     .asciz " has a name of "
s_name_limit:   .asciz " bytes (ggml's limit is 63)"
s_has:          .asciz " has "
s_n_dims:       .asciz " dimensions (must be 1 to 4)"
s_dimension:    .asciz " has dimension "
s_equals:       .asciz " = "
s_dim_range:    .asciz " (must be 1 to 4294967295)"
s_rows:         .asciz " rows (ne1*ne2*ne3 above 4294967295)"
s_unknown_type: .asciz " has unknown ggml type "
s_rows_of:      .asciz " has rows of "
s_not_multiple: .asciz " elements, not a multiple of the "
s_block_size:   .asciz " block size "
s_data_offset:  .asciz " has data offset "
s_not_aligned:  .asciz ", not a multiple of the alignment "
s_bytes_at:     .asciz " bytes at data offset "
s_past_data:    .asciz ", past the end of the file (its data section holds "
s_inside_prev:  .asciz ", inside the previous tensor (which ends at "
s_close:        .asciz ")"
s_no_key:       .asciz "no metadata key "
s_dup:          .asciz " appears more than once"
s_has_type:     .asciz " has type "
s_expected:     .asciz ", expected "
s_is_array_of:  .asciz " is an array of "
s_exp_array_of: .asciz ", expected an array of "
s_is:           .asciz " is "
s_non_negative: .asciz ", expected a non-negative integer"
s_no_tensor:    .asciz "no tensor "
s_has_type2:    .asciz " has type "
s_ggml_type:    .asciz " (ggml type "
s_not_here:     .asciz "), not supported here (supported:"
s_space:        .asciz " "
s_index:        .asciz "tensor index "
s_out_of_range: .asciz " is out of range ("
s_tensors:      .asciz " tensors)"
s_an_integer:   .asciz "an integer"
s_a_float:      .asciz "a float"
s_a_bool:       .asciz "a bool"
s_a_string:     .asciz "a string"
s_an_array:     .asciz "an array"
s_ellipsis:     .asciz "..."
s_quote:        .asciz "'"
minus:          .asciz "-"

.section .text
.global gguf_error_text, gguf_format_error

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

# gguf_error_text(ecx = code) -> rax
gguf_error_text:
    lea rax, [rip + msg_unknown]
    cmp ecx, GGUF_N_CODES
    jae .Ldone
    lea rax, [rip + gguf_messages]
    call nth_string
.Ldone:
    ret

# The text builder: rdi = next byte, rsi = last usable byte (kept for the NUL), rbx = GGUF*.
# Nothing is written at or past rsi.
# put_str(rcx = NUL-terminated string). Clobbers al, rcx.
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

# put_u64(rax = value) in decimal; put_i64(rax) signed. Clobbers rax, rcx, rdx, r10, r11.
put_i64:
    test rax, rax
    jns put_u64
    neg rax
    mov r11, rax
    lea rcx, [rip + minus]
    call put_str
    mov rax, r11
put_u64:
    sub rsp, 40                       # digits built backwards in [rsp+8 .. rsp+31]
    lea r10, [rsp + 31]
    mov byte ptr [r10], 0
    mov ecx, 10
.Ldigit:
    xor edx, edx
    div rcx
    add dl, '0'
    dec r10
    mov [r10], dl
    test rax, rax
    jnz .Ldigit
    mov rcx, r10
    call put_str
    add rsp, 40
    ret

# put_name(r10 = bytes, r11 = length): ' + the name (cut, sanitised) + '. Clobbers rax,
# rcx, rdx.
put_name:
    lea rcx, [rip + s_quote]
    call put_str
    xor edx, edx
.Lbyte:
    cmp rdx, r11
    jae .Lend
    cmp rdx, NAME_SHOWN
    jae .Lcut
    mov al, [r10 + rdx]
    cmp al, 0x20
    jb .Lodd
    cmp al, 0x7E
    jbe .Lput
.Lodd:
    mov al, '?'
.Lput:
    cmp rdi, rsi
    jae .Lnext
    mov [rdi], al
    inc rdi
.Lnext:
    inc rdx
    jmp .Lbyte
.Lcut:
    lea rcx, [rip + s_ellipsis]
    call put_str
.Lend:
    lea rcx, [rip + s_quote]
    jmp put_str

# put_where_key / put_where_tensor: "metadata key I 'NAME'" / "tensor I 'NAME'" (ERR_INDEX,
# and ERR_NAME when set). Clobbers rax, rcx, rdx, r10, r11.
put_where_key:
    lea rcx, [rip + s_key]
    jmp put_where
put_where_tensor:
    lea rcx, [rip + s_tensor]
put_where:
    call put_str
    mov rax, [rbx + GGUF_ERR_INDEX]
    call put_u64
    mov r10, [rbx + GGUF_ERR_NAME]
    test r10, r10
    jz .Ldone
    lea rcx, [rip + s_space]
    call put_str
    mov r10, [rbx + GGUF_ERR_NAME]
    mov r11, [rbx + GGUF_ERR_NAME_LEN]
    call put_name
.Ldone:
    ret

# put_quoted_name: the ERR_NAME in quotes (a key or tensor name asked for)
put_quoted_name:
    mov r10, [rbx + GGUF_ERR_NAME]
    mov r11, [rbx + GGUF_ERR_NAME_LEN]
    jmp put_name

# put_value_type(eax = GGUF value type): its name, or "?" for an unknown one
put_value_type:
    lea rcx, [rip + s_type_unknown]
    cmp eax, GGUF_TYPE_COUNT
    jae put_str
    mov ecx, eax
    lea rax, [rip + type_names]
    call nth_string
    mov rcx, rax
    jmp put_str

# put_ggml_name(eax = ggml type id < GGML_TYPE_COUNT): its name from the table
put_ggml_name:
    imul ecx, eax, GGML_TT_SIZE
    lea rax, [rip + ggml_type_table]
    add rcx, rax                      # GGML_TT_NAME is at 0, NUL-padded
    jmp put_str

# gguf_format_error(rcx = GGUF*, edx = code, r8 = buffer, r9 = capacity) -> rax = length
gguf_format_error:
    push rbx
    push rsi
    push rdi
    push r12
    push r13
    xor eax, eax
    test r9, r9
    jz .Lempty
    mov rbx, rcx
    mov r12d, edx
    mov r13, r8
    mov rdi, r8
    lea rsi, [r8 + r9 - 1]
    cmp r12d, GGUF_E_VERSION
    je .Lversion
    cmp r12d, GGUF_E_TRUNCATED
    je .Ltruncated
    cmp r12d, GGUF_E_COUNT
    je .Lcount
    cmp r12d, GGUF_E_VALUE_TYPE
    je .Lvalue_type
    cmp r12d, GGUF_E_NESTING
    je .Lnesting
    cmp r12d, GGUF_E_ALIGNMENT
    je .Lalignment
    cmp r12d, GGUF_E_ALIGNMENT_TYPE
    je .Lalignment_type
    cmp r12d, GGUF_E_NAME_LEN
    je .Lname_len
    cmp r12d, GGUF_E_N_DIMS
    je .Ln_dims
    cmp r12d, GGUF_E_DIM
    je .Ldim
    cmp r12d, GGUF_E_ROWS
    je .Lrows
    cmp r12d, GGUF_E_TENSOR_TYPE
    je .Ltensor_type
    cmp r12d, GGUF_E_BLOCK
    je .Lblock
    cmp r12d, GGUF_E_OFFSET_ALIGN
    je .Loffset_align
    cmp r12d, GGUF_E_DATA_RANGE
    je .Ldata_range
    cmp r12d, GGUF_E_OVERLAP
    je .Loverlap
    cmp r12d, GGUF_E_NO_KEY
    je .Lno_key
    cmp r12d, GGUF_E_DUP_KEY
    je .Ldup_key
    cmp r12d, GGUF_E_KEY_TYPE
    je .Lkey_type
    cmp r12d, GGUF_E_NEGATIVE
    je .Lnegative
    cmp r12d, GGUF_E_NO_TENSOR
    je .Lno_tensor
    cmp r12d, GGUF_E_DUP_TENSOR
    je .Ldup_tensor
    cmp r12d, GGUF_E_UNSUPPORTED
    je .Lunsupported
    cmp r12d, GGUF_E_INDEX
    je .Lindex
.Lgeneric:
    mov ecx, r12d
    call gguf_error_text
    mov rcx, rax
    call put_str
    jmp .Lend
.Lversion:
    call .Lprefix
    lea rcx, [rip + s_version]
    call put_str
    mov eax, [rbx + GGUF_VERSION]
    call put_u64
    lea rcx, [rip + s_supported23]
    jmp .Lstr_end
.Ltruncated:
    mov r8d, [rbx + GGUF_ERR_PART]
    cmp r8d, GGUF_PART_TYPE_OFFSET
    ja .Lgeneric
    call .Lprefix
    test r8d, r8d
    jnz .Ltrunc_part
    lea rcx, [rip + s_file_is]
    call put_str
    mov rax, [rbx + GGUF_FILE_SIZE]
    call put_u64
    lea rcx, [rip + s_short_header]
    jmp .Lstr_end
.Ltrunc_part:
    cmp r8d, GGUF_PART_TENSOR_NAME_LEN
    jae .Ltrunc_tensor
    call put_where_key
    jmp .Ltrunc_what
.Ltrunc_tensor:
    call put_where_tensor
.Ltrunc_what:
    lea rcx, [rip + s_colon]
    call put_str
    mov ecx, [rbx + GGUF_ERR_PART]
    lea rax, [rip + part_text]
    call nth_string
    mov rcx, rax
    call put_str
    mov ecx, [rbx + GGUF_ERR_PART]
    lea rax, [rip + part_unit]
    call nth_string
    cmp byte ptr [rax], 0
    je .Ltrunc_at
    mov r12, rax
    mov rax, [rbx + GGUF_ERR_VALUE]
    call put_u64
    mov rcx, r12
    call put_str
.Ltrunc_at:
    lea rcx, [rip + s_at_offset]
    call put_str
    mov rax, [rbx + GGUF_ERR_AUX]
    call put_u64
    lea rcx, [rip + s_runs_past]
    call put_str
    mov rax, [rbx + GGUF_FILE_SIZE]
    call put_u64
    lea rcx, [rip + s_bytes_close]
    jmp .Lstr_end
.Lcount:
    call .Lprefix
    lea rcx, [rip + s_kv_count]
    cmp dword ptr [rbx + GGUF_ERR_PART], GGUF_PART_KEY
    je .Lcount_name
    lea rcx, [rip + s_tensor_count]
.Lcount_name:
    call put_str
    mov rax, [rbx + GGUF_ERR_VALUE]
    call put_u64
    lea rcx, [rip + s_more_than]
    call put_str
    mov rax, [rbx + GGUF_FILE_SIZE]
    call put_u64
    lea rcx, [rip + s_file_holds]
    jmp .Lstr_end
.Lvalue_type:
    call .Lprefix
    call put_where_key
    lea rcx, [rip + s_value_type]
    call put_str
    mov rax, [rbx + GGUF_ERR_VALUE]
    call put_u64
    lea rcx, [rip + s_not_gguf]
    jmp .Lstr_end
.Lnesting:
    call .Lprefix
    call put_where_key
    lea rcx, [rip + s_nested]
    jmp .Lstr_end
.Lalignment:
    call .Lprefix
    lea rcx, [rip + s_alignment]
    call put_str
    mov rax, [rbx + GGUF_ERR_VALUE]
    call put_u64
    lea rcx, [rip + s_power2]
    jmp .Lstr_end
.Lalignment_type:
    call .Lprefix
    lea rcx, [rip + s_alignment_t]
    call put_str
    mov eax, [rbx + GGUF_ERR_TYPE]
    call put_value_type
    lea rcx, [rip + s_must_u32]
    jmp .Lstr_end
.Lname_len:
    call .Lprefix
    lea rcx, [rip + s_tensor]
    call put_str
    mov rax, [rbx + GGUF_ERR_INDEX]
    call put_u64
    lea rcx, [rip + s_has_name]
    call put_str
    mov rax, [rbx + GGUF_ERR_VALUE]
    call put_u64
    lea rcx, [rip + s_name_limit]
    jmp .Lstr_end
.Ln_dims:
    call .Ltensor_has
    mov rax, [rbx + GGUF_ERR_VALUE]
    call put_u64
    lea rcx, [rip + s_n_dims]
    jmp .Lstr_end
.Ldim:
    call .Lprefix
    call put_where_tensor
    lea rcx, [rip + s_dimension]
    call put_str
    mov rax, [rbx + GGUF_ERR_AUX]
    call put_u64
    lea rcx, [rip + s_equals]
    call put_str
    mov rax, [rbx + GGUF_ERR_VALUE]
    call put_u64
    lea rcx, [rip + s_dim_range]
    jmp .Lstr_end
.Lrows:
    call .Ltensor_has
    mov rax, [rbx + GGUF_ERR_VALUE]
    call put_u64
    lea rcx, [rip + s_rows]
    jmp .Lstr_end
.Ltensor_type:
    call .Lprefix
    call put_where_tensor
    lea rcx, [rip + s_unknown_type]
    call put_str
    mov eax, [rbx + GGUF_ERR_TYPE]
    call put_u64
    jmp .Lend
.Lblock:
    call .Lprefix
    call put_where_tensor
    lea rcx, [rip + s_rows_of]
    call put_str
    mov rax, [rbx + GGUF_ERR_VALUE]
    call put_u64
    lea rcx, [rip + s_not_multiple]
    call put_str
    mov eax, [rbx + GGUF_ERR_TYPE]
    call put_ggml_name
    lea rcx, [rip + s_block_size]
    call put_str
    imul ecx, [rbx + GGUF_ERR_TYPE], GGML_TT_SIZE
    lea rax, [rip + ggml_type_table]
    mov eax, [rax + rcx + GGML_TT_BLOCK_SIZE]
    call put_u64
    jmp .Lend
.Loffset_align:
    call .Lprefix
    call put_where_tensor
    lea rcx, [rip + s_data_offset]
    call put_str
    mov rax, [rbx + GGUF_ERR_VALUE]
    call put_u64
    lea rcx, [rip + s_not_aligned]
    call put_str
    mov rax, [rbx + GGUF_ERR_AUX]
    call put_u64
    jmp .Lend
.Ldata_range:
    call .Ltensor_has
    mov rax, [rbx + GGUF_ERR_AUX]
    call put_u64
    lea rcx, [rip + s_bytes_at]
    call put_str
    mov rax, [rbx + GGUF_ERR_VALUE]
    call put_u64
    lea rcx, [rip + s_past_data]
    call put_str
    mov rax, [rbx + GGUF_DATA_BYTES]
    call put_u64
    lea rcx, [rip + s_bytes_close]
    jmp .Lstr_end
.Loverlap:
    call .Lprefix
    call put_where_tensor
    lea rcx, [rip + s_data_offset]
    call put_str
    mov rax, [rbx + GGUF_ERR_VALUE]
    call put_u64
    lea rcx, [rip + s_inside_prev]
    call put_str
    mov rax, [rbx + GGUF_ERR_AUX]
    call put_u64
    lea rcx, [rip + s_close]
    jmp .Lstr_end
.Lno_key:
    call .Lprefix
    lea rcx, [rip + s_no_key]
    call put_str
    call put_quoted_name
    jmp .Lend
.Ldup_key:
    call .Lprefix
    lea rcx, [rip + s_key]
    call put_str
    call put_quoted_name
    lea rcx, [rip + s_dup]
    jmp .Lstr_end
.Lkey_type:
    call .Lprefix
    lea rcx, [rip + s_key]
    call put_str
    call put_quoted_name
    cmp dword ptr [rbx + GGUF_ERR_PART], GGUF_PART_ARRAY
    je .Larray_type
    lea rcx, [rip + s_has_type]
    call put_str
    mov eax, [rbx + GGUF_ERR_TYPE]
    call put_value_type
    lea rcx, [rip + s_expected]
    call put_str
    mov eax, [rbx + GGUF_ERR_WANT]
    lea rcx, [rip + s_an_integer]
    cmp eax, GGUF_TYPE_UINT64
    je .Lstr_end
    lea rcx, [rip + s_a_float]
    cmp eax, GGUF_TYPE_FLOAT32
    je .Lstr_end
    lea rcx, [rip + s_a_bool]
    cmp eax, GGUF_TYPE_BOOL
    je .Lstr_end
    lea rcx, [rip + s_a_string]
    cmp eax, GGUF_TYPE_STRING
    je .Lstr_end
    lea rcx, [rip + s_an_array]
    jmp .Lstr_end
.Larray_type:
    lea rcx, [rip + s_is_array_of]
    call put_str
    mov eax, [rbx + GGUF_ERR_TYPE]
    call put_value_type
    lea rcx, [rip + s_exp_array_of]
    call put_str
    mov eax, [rbx + GGUF_ERR_WANT]
    call put_value_type
    jmp .Lend
.Lnegative:
    call .Lprefix
    lea rcx, [rip + s_key]
    call put_str
    call put_quoted_name
    lea rcx, [rip + s_is]
    call put_str
    mov rax, [rbx + GGUF_ERR_VALUE]
    call put_i64
    lea rcx, [rip + s_non_negative]
    jmp .Lstr_end
.Lno_tensor:
    call .Lprefix
    lea rcx, [rip + s_no_tensor]
    call put_str
    call put_quoted_name
    jmp .Lend
.Ldup_tensor:
    call .Lprefix
    lea rcx, [rip + s_tensor]
    call put_str
    call put_quoted_name
    lea rcx, [rip + s_dup]
    jmp .Lstr_end
.Lunsupported:
    call .Lprefix
    call put_where_tensor
    lea rcx, [rip + s_has_type2]
    call put_str
    mov eax, [rbx + GGUF_ERR_TYPE]
    cmp eax, GGML_TYPE_COUNT
    jae .Lgeneric
    call put_ggml_name
    lea rcx, [rip + s_ggml_type]
    call put_str
    mov eax, [rbx + GGUF_ERR_TYPE]
    call put_u64
    lea rcx, [rip + s_not_here]
    call put_str
    xor r12d, r12d                    # every runnable type's name
.Lsupported:
    imul ecx, r12d, GGML_TT_SIZE
    lea rax, [rip + ggml_type_table]
    test dword ptr [rax + rcx + GGML_TT_FLAGS], GGML_TT_F_RUNNABLE
    jz .Lsupported_next
    lea rcx, [rip + s_space]
    call put_str
    mov eax, r12d
    call put_ggml_name
.Lsupported_next:
    inc r12d
    cmp r12d, GGML_TYPE_COUNT
    jb .Lsupported
    lea rcx, [rip + s_close]
    jmp .Lstr_end
.Lindex:
    call .Lprefix
    lea rcx, [rip + s_index]
    call put_str
    mov rax, [rbx + GGUF_ERR_VALUE]
    call put_u64
    lea rcx, [rip + s_out_of_range]
    call put_str
    mov rax, [rbx + GGUF_TENSOR_COUNT]
    call put_u64
    lea rcx, [rip + s_tensors]
.Lstr_end:
    call put_str
.Lend:
    mov byte ptr [rdi], 0
    mov rax, rdi
    sub rax, r13
.Lempty:
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret
.Lprefix:                             # "gguf: "
    lea rcx, [rip + s_gguf]
    jmp put_str
.Ltensor_has:                         # "gguf: tensor I 'NAME' has "
    call .Lprefix
    call put_where_tensor
    lea rcx, [rip + s_has]
    jmp put_str
