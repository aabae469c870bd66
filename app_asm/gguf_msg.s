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
#       those of that call. Preserves what the ABI says.
#
# Each line is a template (fmt_lines) in which %X stands for a field, expanded by
# gguf_format_error: %I ERR_INDEX, %N " 'ERR_NAME'" when the struct has a name, %V
# ERR_VALUE, %A ERR_AUX, %S FILE_SIZE, %T the value type name of ERR_TYPE, %G the ggml type
# name of ERR_TYPE, %Y ERR_TYPE, %D DATA_BYTES, %R VERSION, %M ERR_VALUE signed, %B the
# block size of ERR_TYPE, %C TENSOR_COUNT, %W the value type name of ERR_WANT, %L the names
# of the types this program runs, %P what ran past the end (ERR_PART, with ERR_VALUE when
# it has a unit), %Q 'ERR_NAME' always, %K what ERR_WANT asks for ("an integer", ...).
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
s_ellipsis:     .asciz "..."
s_quote:        .asciz "'"
s_space:        .asciz " "
s_unknown:      .asciz "?"
minus:          .asciz "-"
want_words:                           # per GGUF_TYPE_*: what a getter of it asks for
    .asciz "an integer"
    .asciz "an integer"
    .asciz "an integer"
    .asciz "an integer"
    .asciz "an integer"
    .asciz "an integer"
    .asciz "a float"
    .asciz "a bool"
    .asciz "a string"
    .asciz "an array"
    .asciz "an integer"
    .asciz "an integer"
    .asciz "a float"
# gguf_format_error's templates, one per code, then the alternatives (FMT_ALT_*)
fmt_lines:
    .asciz "gguf: ok"
    .asciz "gguf: not a GGUF file (it does not start with \"GGUF\")"
    .asciz "gguf: version %R (supported: 2, 3)"
    .asciz "gguf: metadata key %I%N: %P at offset %A runs past the end of the file (%S bytes)"
    .asciz "gguf: kv_count %V is more than a %S-byte file can hold"
    .asciz "gguf: metadata key %I%N: value type %V is not a GGUF type (0 to 12)"
    .asciz "gguf: metadata key %I%N: arrays nested more than 4 deep"
    .asciz "gguf: general.alignment is %V, must be a nonzero power of two"
    .asciz "gguf: general.alignment has type %T, must be uint32"
    .asciz "gguf: tensor %I has a name of %V bytes (ggml's limit is 63)"
    .asciz "gguf: tensor %I%N has %V dimensions (must be 1 to 4)"
    .asciz "gguf: tensor %I%N has dimension %A = %V (must be 1 to 4294967295)"
    .asciz "gguf: tensor %I%N has %V rows (ne1*ne2*ne3 above 4294967295)"
    .asciz "gguf: tensor %I%N has unknown ggml type %Y"
    .asciz "gguf: tensor %I%N has rows of %V elements, not a multiple of the %G block size %B"
    .asciz "gguf: tensor %I%N has data offset %V, not a multiple of the alignment %A"
    .asciz "gguf: tensor %I%N has %A bytes at data offset %V, past the end of the file (its data section holds %D bytes)"
    .asciz "gguf: tensor %I%N has data offset %V, inside the previous tensor (which ends at %A)"
    .asciz "gguf: no metadata key %Q"
    .asciz "gguf: metadata key %Q appears more than once"
    .asciz "gguf: metadata key %Q has type %T, expected %K"
    .asciz "gguf: metadata key %Q is %M, expected a non-negative integer"
    .asciz "gguf: no tensor %Q"
    .asciz "gguf: tensor %Q appears more than once"
    .asciz "gguf: tensor %I%N has type %G (ggml type %Y), not supported here (supported:%L)"
    .asciz "gguf: tensor index %V is out of range (%C tensors)"
    .asciz "gguf: no GGUF file is open (gguf_open did not succeed)"
    .asciz "gguf: the file is %S bytes, shorter than the 24-byte header"
    .asciz "gguf: tensor %I%N: %P at offset %A runs past the end of the file (%S bytes)"
    .asciz "gguf: tensor_count %V is more than a %S-byte file can hold"
    .asciz "gguf: metadata key %Q is an array of %T, expected an array of %W"
.equ FMT_ALT_HEADER, GGUF_N_CODES         # TRUNCATED in the header
.equ FMT_ALT_TENSOR_PART, GGUF_N_CODES + 1  # TRUNCATED in a tensor info
.equ FMT_ALT_TENSOR_COUNT, GGUF_N_CODES + 2 # COUNT of tensors
.equ FMT_ALT_ARRAY, GGUF_N_CODES + 3      # KEY_TYPE of an array's elements

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
    neg rax                           # INT64_MIN stays negative: as unsigned it is right
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

# put_name: 'ERR_NAME' (cut to NAME_SHOWN bytes, bytes outside printable ASCII as '?').
# Clobbers rax, rcx, rdx, r10, r11.
put_name:
    lea rcx, [rip + s_quote]
    call put_str
    mov r10, [rbx + GGUF_ERR_NAME]
    mov r11, [rbx + GGUF_ERR_NAME_LEN]
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

# put_nth(rax = a string table, ecx = index, r8d = entries): its index-th string, "?" past
# the table. Clobbers rax, rcx, rdx.
put_nth:
    cmp ecx, r8d
    jae .Lunknown
    call nth_string
    mov rcx, rax
    jmp put_str
.Lunknown:
    lea rcx, [rip + s_unknown]
    jmp put_str

# put_ggml(eax = ggml type id, ecx = 0 name / 1 block size): from ggml_type_table, "?" for
# an id past it. Clobbers rax, rcx, rdx, r10, r11.
put_ggml:
    cmp eax, GGML_TYPE_COUNT
    jae .Lunknown
    imul eax, eax, GGML_TT_SIZE
    lea rdx, [rip + ggml_type_table]
    add rdx, rax
    test ecx, ecx
    jnz .Lblock
    mov rcx, rdx                      # GGML_TT_NAME: at 0, NUL-padded
    jmp put_str
.Lblock:
    mov eax, [rdx + GGML_TT_BLOCK_SIZE]
    jmp put_u64
.Lunknown:
    lea rcx, [rip + s_unknown]
    jmp put_str

# gguf_format_error(rcx = GGUF*, edx = code, r8 = buffer, r9 = capacity) -> rax = length
# Registers: rbx GGUF*, rdi/rsi the builder, r12 template, r13 buffer, r14 scratch.
gguf_format_error:
    push rbx
    push rsi
    push rdi
    push r12
    push r13
    push r14
    sub rsp, 8
    xor eax, eax
    test r9, r9
    jz .Lempty
    mov rbx, rcx
    mov r13, r8
    mov rdi, r8
    lea rsi, [r8 + r9 - 1]
    mov ecx, edx                      # the template: by code, or an alternative
    mov eax, [rbx + GGUF_ERR_PART]
    cmp edx, GGUF_E_TRUNCATED
    jne .Lcount
    cmp eax, GGUF_PART_TYPE_OFFSET
    ja .Lgeneric                      # (a struct the caller scribbled on)
    mov ecx, FMT_ALT_HEADER
    test eax, eax
    jz .Lchosen
    mov ecx, FMT_ALT_TENSOR_PART
    cmp eax, GGUF_PART_TENSOR_NAME_LEN
    jae .Lchosen
    mov ecx, edx
    jmp .Lchosen
.Lcount:
    cmp edx, GGUF_E_COUNT
    jne .Lkey_type
    cmp eax, GGUF_PART_KEY
    je .Lchosen
    mov ecx, FMT_ALT_TENSOR_COUNT
    jmp .Lchosen
.Lkey_type:
    cmp edx, GGUF_E_KEY_TYPE
    jne .Lknown
    cmp eax, GGUF_PART_ARRAY
    jne .Lchosen
    mov ecx, FMT_ALT_ARRAY
    jmp .Lchosen
.Lknown:
    cmp edx, GGUF_N_CODES
    jb .Lchosen
.Lgeneric:
    call gguf_error_text
    mov rcx, rax
    call put_str
    jmp .Lend
.Lchosen:
    lea rax, [rip + fmt_lines]
    call nth_string
    mov r12, rax
.Lnext:
    movzx eax, byte ptr [r12]
    inc r12
    test eax, eax
    jz .Lend
    cmp eax, '%'
    je .Lfield
    cmp rdi, rsi
    jae .Lnext
    mov [rdi], al
    inc rdi
    jmp .Lnext
.Lfield:
    movzx eax, byte ptr [r12]
    inc r12
    call expand
    jmp .Lnext
.Lend:
    mov byte ptr [rdi], 0
    mov rax, rdi
    sub rax, r13
.Lempty:
    add rsp, 8
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret

# expand(eax = the letter after a template's %): writes the field (see atop this file).
# Clobbers rax, rcx, rdx, r8, r10, r11.
expand:
    cmp eax, 'I'
    je .Lindex
    cmp eax, 'N'
    je .Lopt_name
    cmp eax, 'V'
    je .Lvalue
    cmp eax, 'A'
    je .Laux
    cmp eax, 'S'
    je .Lsize
    cmp eax, 'T'
    je .Ltype_name
    cmp eax, 'G'
    je .Lggml_name
    cmp eax, 'Y'
    je .Ltype
    cmp eax, 'D'
    je .Ldata_bytes
    cmp eax, 'R'
    je .Lversion
    cmp eax, 'M'
    je .Lsigned
    cmp eax, 'B'
    je .Lblock
    cmp eax, 'C'
    je .Lcount
    cmp eax, 'W'
    je .Lwant_name
    cmp eax, 'L'
    je .Lsupported
    cmp eax, 'P'
    je .Lpart
    cmp eax, 'Q'
    je put_name
    cmp eax, 'K'
    je .Lwant_word
    ret
.Lindex:
    mov rax, [rbx + GGUF_ERR_INDEX]
    jmp put_u64
.Lopt_name:
    cmp qword ptr [rbx + GGUF_ERR_NAME], 0
    je .Lret
    lea rcx, [rip + s_space]
    call put_str
    jmp put_name
.Lvalue:
    mov rax, [rbx + GGUF_ERR_VALUE]
    jmp put_u64
.Laux:
    mov rax, [rbx + GGUF_ERR_AUX]
    jmp put_u64
.Lsize:
    mov rax, [rbx + GGUF_FILE_SIZE]
    jmp put_u64
.Ltype_name:
    mov ecx, [rbx + GGUF_ERR_TYPE]
    jmp .Lvalue_type_name
.Lwant_name:
    mov ecx, [rbx + GGUF_ERR_WANT]
.Lvalue_type_name:
    lea rax, [rip + type_names]
    mov r8d, GGUF_TYPE_COUNT
    jmp put_nth
.Lwant_word:
    mov ecx, [rbx + GGUF_ERR_WANT]
    lea rax, [rip + want_words]
    mov r8d, GGUF_TYPE_COUNT
    jmp put_nth
.Lggml_name:
    mov eax, [rbx + GGUF_ERR_TYPE]
    xor ecx, ecx
    jmp put_ggml
.Lblock:
    mov eax, [rbx + GGUF_ERR_TYPE]
    mov ecx, 1
    jmp put_ggml
.Ltype:
    mov eax, [rbx + GGUF_ERR_TYPE]
    jmp put_u64
.Ldata_bytes:
    mov rax, [rbx + GGUF_DATA_BYTES]
    jmp put_u64
.Lversion:
    mov eax, [rbx + GGUF_VERSION]
    jmp put_u64
.Lsigned:
    mov rax, [rbx + GGUF_ERR_VALUE]
    jmp put_i64
.Lcount:
    mov rax, [rbx + GGUF_TENSOR_COUNT]
    jmp put_u64
.Lpart:                               # the part's text, then its number and unit if any
    mov ecx, [rbx + GGUF_ERR_PART]
    lea rax, [rip + part_text]
    mov r8d, GGUF_PART_TYPE_OFFSET + 1
    call put_nth
    mov ecx, [rbx + GGUF_ERR_PART]
    cmp ecx, GGUF_PART_TYPE_OFFSET
    ja .Lret
    lea rax, [rip + part_unit]
    call nth_string
    cmp byte ptr [rax], 0
    je .Lret
    mov r14, rax
    mov rax, [rbx + GGUF_ERR_VALUE]
    call put_u64
    mov rcx, r14
    jmp put_str
.Lsupported:                          # " NAME" for every type the program runs
    push r12
    xor r12d, r12d
.Lrow:
    imul ecx, r12d, GGML_TT_SIZE
    lea rax, [rip + ggml_type_table]
    test dword ptr [rax + rcx + GGML_TT_FLAGS], GGML_TT_F_RUNNABLE
    jz .Lrow_next
    lea rcx, [rip + s_space]
    call put_str
    mov eax, r12d
    xor ecx, ecx
    call put_ggml
.Lrow_next:
    inc r12d
    cmp r12d, GGML_TYPE_COUNT
    jb .Lrow
    pop r12
.Lret:
    ret
