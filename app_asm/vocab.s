# The tokenizer from GGUF metadata: build (validation, token texts, the token hash, special
# tokens). Finding a token by text, messages (vocab_set_error): vocab_find.s; encoding,
# decoding: vocab_encode.s.
# SentencePiece (`llama`) goes through the tok_*.s core (spm.s's tok_build); byte-level
# BPE (`gpt2`) through bpe.s. Pure core: no UEFI, no printing. Contracts: vocab.inc.
.include "tokenizer_layouts.inc"
.include "tokenizer.inc"
.include "vocab_tables.inc"

.equ SLOTS, VOCAB_SLOTS
.equ MAX_SPECIALS, 65536

.section .text
.global vocab_workspace_bytes, vocab_build

# sizes(rcx = VOCAB_SOURCE*) -> r8 = n tokens (0: none usable), r9 = bytes of token text
#   plus one per token, r10 = merges (kind BPE only), r11d = kind (0 unknown).
#   Clobbers rax, rdx. Trusts the reader's bounds checks of the string array.
sizes:
    call model_kind
    mov r11d, eax
    xor r8d, r8d
    xor r9d, r9d
    xor r10d, r10d
    mov rdx, [rcx + VOCAB_SOURCE_TOKENS]
    test rdx, rdx
    jz .Lout
    cmp dword ptr [rcx + VOCAB_SOURCE_TOKENS_TYPE], GGUF_TYPE_STRING
    jne .Lout
    mov rax, [rcx + VOCAB_SOURCE_N_TOKENS]
    cmp rax, VOCAB_MAX_TOKENS
    ja .Lout
.Lsum:
    cmp r8, rax
    jae .Lsummed
    add r9, [rdx]
    inc r9
    mov r10, [rdx]
    lea rdx, [rdx + r10 + 8]
    inc r8
    jmp .Lsum
.Lsummed:
    xor r10d, r10d
    cmp r11d, VOCAB_KIND_BPE
    jne .Lout
    cmp qword ptr [rcx + VOCAB_SOURCE_MERGES], 0
    je .Lout
    mov r10, [rcx + VOCAB_SOURCE_N_MERGES]
    mov rax, VOCAB_MAX_MERGES
    cmp r10, rax
    cmova r10, rax
.Lout:
    ret

# model_kind(rcx = VOCAB_SOURCE*) -> eax = VOCAB_KIND_BPE for "gpt2", VOCAB_KIND_SPM for
#   "llama", else 0. Clobbers rax, rdx.
model_kind:
    xor eax, eax
    mov rdx, [rcx + VOCAB_SOURCE_MODEL]
    test rdx, rdx
    jz .Lout
    cmp qword ptr [rcx + VOCAB_SOURCE_MODEL_LEN], 4
    jne .Lllama
    cmp dword ptr [rdx], 0x32747067   # "gpt2"
    jne .Lout
    mov eax, VOCAB_KIND_BPE
    ret
.Lllama:
    cmp qword ptr [rcx + VOCAB_SOURCE_MODEL_LEN], 5
    jne .Lout
    cmp dword ptr [rdx], 0x6D616C6C   # "llam"
    jne .Lout
    cmp byte ptr [rdx + 4], 0x61      # "a"
    jne .Lout
    mov eax, VOCAB_KIND_SPM
.Lout:
    ret

# pow2(rax = minimum) -> rax = the smallest power of two >= max(rax, 16). Clobbers rcx.
pow2:
    mov rcx, 16
.Lgrow:
    cmp rcx, rax
    jae .Ldone
    shl rcx, 1
    jmp .Lgrow
.Ldone:
    mov rax, rcx
    ret

# carve(rbx = VOCAB*, rax = base, r8 = n, r9 = text bytes, r10 = merges, r11d = kind; the
#   stack 16-aligned minus 8 at the call, as at a function's entry) -> rax = end. Sets every
#   region pointer (16-aligned) and the hash masks in the struct only. The one place the
#   workspace layout is decided. Clobbers rax, rcx, rdx.
.macro VOC_REGION field, bytes
    add rax, 15
    and rax, -16
    mov [rbx + \field], rax
    add rax, \bytes
.endm
carve:
    VOC_REGION VOCAB_TEXT, 0
    lea rax, [rax + r8 * 8]
    VOC_REGION VOCAB_TEXT_LEN, 0
    lea rax, [rax + r8 * 4]
    VOC_REGION VOCAB_TYPES, r8
    VOC_REGION VOCAB_SPECIALS, 0
    lea rax, [rax + r8 * 4]
    VOC_REGION VOCAB_TEXT_COPIES, r9
    mov rdx, rax
    lea rax, [r8 + r8]
    call pow2
    lea rcx, [rax - 1]
    mov [rbx + VOCAB_TOK_HASH_MASK], ecx
    lea rcx, [rax * 4]
    mov rax, rdx
    VOC_REGION VOCAB_TOK_HASH, rcx
    VOC_REGION VOCAB_CPS, SLOTS*4
    VOC_REGION VOCAB_CPF, SLOTS
    VOC_REGION VOCAB_OFFS, SLOTS*4+4
    VOC_REGION VOCAB_BND_A, SLOTS*4+4
    VOC_REGION VOCAB_BND_B, SLOTS*4+4
    VOC_REGION VOCAB_SYM, SLOTS*4
    VOC_REGION VOCAB_NEXT, SLOTS*4
    VOC_REGION VOCAB_PREV, SLOTS*4
    VOC_REGION VOCAB_STAMP, SLOTS*4
    VOC_REGION VOCAB_HEAP, SLOTS*48
    VOC_REGION VOCAB_MAPBUF, SLOTS*2+8
    VOC_REGION VOCAB_FRAG_A, SLOTS*24+24
    VOC_REGION VOCAB_FRAG_B, SLOTS*24+24
    cmp r11d, VOCAB_KIND_BPE
    jne .Lspm
    VOC_REGION VOCAB_DEC, 0
    lea rax, [rax + r8 * 8]
    VOC_REGION VOCAB_DEC_LEN, 0
    lea rax, [rax + r8 * 4]
    VOC_REGION VOCAB_DEC_COPIES, r9
    VOC_REGION VOCAB_BYTE_TOKEN, 1024
    mov rdx, rax
    mov rax, r10
    shr rax, 1
    add rax, r10
    inc rax
    call pow2
    lea rcx, [rax - 1]
    mov [rbx + VOCAB_MERGE_HASH_MASK], ecx
    shl rax, 4
    mov rcx, rax
    mov rax, rdx
    VOC_REGION VOCAB_MERGE_HASH, rcx
    ret
.Lspm:                                # the SentencePiece core's own workspace (tok_build)
    cmp r11d, VOCAB_KIND_SPM
    jne .Lend
    add rax, 15
    and rax, -16
    mov [rbx + VOCAB_SPM_WS], rax
    push rax
    push r8
    push r9
    push r10
    push r11
    sub rsp, 32
    mov rcx, r9
    mov edx, r8d
    call tok_workspace_bytes
    add rsp, 32
    pop r11
    pop r10
    pop r9
    pop r8
    mov [rbx + VOCAB_SPM_WS_SIZE], rax
    pop rcx
    add rax, rcx
.Lend:
    ret

# vocab_workspace_bytes(rcx = VOCAB_SOURCE*) -> rax (contract in vocab.inc)
vocab_workspace_bytes:
    push rbx
    sub rsp, VOCAB_FRAME               # a throwaway VOCAB to carve from base 0 (aligned)
    lea rbx, [rsp + 8]
    call sizes
    xor eax, eax
    test r8, r8
    jz .Lout
    call carve
    add rax, 16                       # room to align the caller's base
.Lout:
    add rsp, VOCAB_FRAME
    pop rbx
    ret

# vocab_build(rcx = VOCAB*, rdx = VOCAB_SOURCE*, r8 = workspace, r9 = workspace size)
#   -> eax = VOCAB_OK or a VOCAB_E_* code (contract in vocab.inc)
.equ B_SRC, 32                        # frame slots
.equ B_WS, 40
.equ B_WS_SIZE, 48
.equ B_KIND, 56
vocab_build:
    push rbx
    push rbp
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, 72
    mov rbx, rcx
    mov r15, rdx
    mov [rsp + B_WS], r8
    mov [rsp + B_WS_SIZE], r9
    mov dword ptr [rbx + VOCAB_MAGIC], 0
    mov dword ptr [rbx + VOCAB_N_MERGES], 0
    xor esi, esi                      # no value in the message unless said
    # the model
    mov rcx, r15
    call model_kind
    mov [rsp + B_KIND], eax
    mov [rbx + VOCAB_KIND], eax
    test eax, eax
    jnz .Lpre
    mov eax, VOCAB_E_MODEL
    mov rsi, [r15 + VOCAB_SOURCE_MODEL]
    mov rdi, [r15 + VOCAB_SOURCE_MODEL_LEN]
    test rsi, rsi
    jnz .Lfail_value
    lea rsi, [rip + vocab_messages]   # absent: say '' (an empty value)
    xor edi, edi
    jmp .Lfail_value
.Lpre:                                # BPE: tokenizer.ggml.pre names the pre-tokenizer
    mov dword ptr [rbx + VOCAB_PRE], 0
    mov dword ptr [rbx + VOCAB_IGNORE_MERGES], 0
    cmp eax, VOCAB_KIND_BPE
    jne .Ltokens
    mov rsi, [r15 + VOCAB_SOURCE_PRE]
    mov rdi, [r15 + VOCAB_SOURCE_PRE_LEN]
    mov eax, PRE_DEFAULT
    test rsi, rsi
    jz .Lhave_pre
    test rdi, rdi                     # an empty name: "default" too (llama.cpp)
    jz .Lhave_pre
    lea rdx, [rip + vocab_pre_names]
.Lname:
    movzx ecx, byte ptr [rdx]
    test ecx, ecx
    jz .Lunknown_pre
    cmp rcx, rdi
    jne .Lskip_name
    xor r8d, r8d
.Lname_byte:
    cmp r8, rcx
    jae .Lname_found
    movzx eax, byte ptr [rdx + r8 + 1]
    cmp al, [rsi + r8]
    jne .Lskip_name
    inc r8
    jmp .Lname_byte
.Lname_found:
    movzx eax, byte ptr [rdx + rcx + 1]
    jmp .Lhave_pre
.Lskip_name:
    lea rdx, [rdx + rcx + 2]
    jmp .Lname
.Lunknown_pre:
    mov eax, VOCAB_E_PRE
    jmp .Lfail_value
.Lhave_pre:
    mov [rbx + VOCAB_PRE], eax
    cmp eax, PRE_LLAMA3
    sete al
    movzx eax, al
    mov [rbx + VOCAB_IGNORE_MERGES], eax
    xor esi, esi

.Ltokens:                             # the arrays and their lengths
    mov rcx, r15
    call sizes
    mov eax, VOCAB_E_TOKENS
    test r8, r8
    jz .Lfail
    mov r12, r8                       # n
    mov [rbx + VOCAB_N_VOCAB], r12d
    mov rax, [r15 + VOCAB_SOURCE_SCORES]
    test rax, rax
    jnz .Lcheck_scores
    mov eax, VOCAB_E_SCORES
    cmp dword ptr [rsp + B_KIND], VOCAB_KIND_SPM
    je .Lfail
    jmp .Ltypes
.Lcheck_scores:
    mov eax, VOCAB_E_SCORES
    cmp dword ptr [r15 + VOCAB_SOURCE_SCORES_TYPE], GGUF_TYPE_FLOAT32
    jne .Lfail
    cmp [r15 + VOCAB_SOURCE_N_SCORES], r12
    jne .Lfail
.Ltypes:
    cmp qword ptr [r15 + VOCAB_SOURCE_TOKEN_TYPE], 0
    je .Lmerges
    mov eax, VOCAB_E_TYPES
    cmp [r15 + VOCAB_SOURCE_N_TOKEN_TYPE], r12
    jne .Lfail
    mov ecx, [r15 + VOCAB_SOURCE_TOKEN_TYPE_TYPE]
    cmp ecx, GGUF_TYPE_INT32
    je .Lmerges
    cmp ecx, GGUF_TYPE_UINT32
    jne .Lfail
.Lmerges:
    cmp dword ptr [rsp + B_KIND], VOCAB_KIND_BPE
    jne .Lids
    mov eax, VOCAB_E_MERGES
    cmp qword ptr [r15 + VOCAB_SOURCE_MERGES], 0
    je .Lfail
    cmp dword ptr [r15 + VOCAB_SOURCE_MERGES_TYPE], GGUF_TYPE_STRING
    jne .Lfail
    mov rcx, VOCAB_MAX_MERGES
    cmp [r15 + VOCAB_SOURCE_N_MERGES], rcx
    ja .Lfail
.Lids:                                # BOS/EOS/UNK: given ones in range; SPM defaults 1, 2, 0
    mov eax, [r15 + VOCAB_SOURCE_BOS_ID]
    mov ecx, 1
    call default_id
    jc .Lbad_id
    mov [rbx + VOCAB_BOS_ID], eax
    mov eax, [r15 + VOCAB_SOURCE_EOS_ID]
    mov ecx, 2
    call default_id
    jc .Lbad_id
    mov [rbx + VOCAB_EOS_ID], eax
    mov eax, [r15 + VOCAB_SOURCE_UNK_ID]
    xor ecx, ecx
    call default_id
    jc .Lbad_id
    mov [rbx + VOCAB_UNK_ID], eax
    mov eax, [r15 + VOCAB_SOURCE_ADD_BOS]   # flags: given, else SPM 1 / BPE 0
    call default_flag
    mov [rbx + VOCAB_ADD_BOS], eax
    mov eax, [r15 + VOCAB_SOURCE_ADD_SPACE_PREFIX]
    call default_flag
    mov [rbx + VOCAB_ADD_SPACE_PREFIX], eax

    # the workspace
    mov rcx, r15
    call sizes
    mov rax, [rsp + B_WS]
    mov r13, rax
    test rax, rax
    jz .Lno_ws
    add rax, 15
    and rax, -16
    call carve
    sub rax, r13
    cmp rax, [rsp + B_WS_SIZE]
    jbe .Lcopy
.Lno_ws:
    mov eax, VOCAB_E_WORKSPACE
    jmp .Lfail

.Lcopy:                               # token texts (NUL-terminated), lengths, types
    mov rsi, [r15 + VOCAB_SOURCE_TOKENS]
    mov rdi, [rbx + VOCAB_TEXT_COPIES]
    mov r14d, TOK_MAX_TOKEN_LEN
    cmp dword ptr [rsp + B_KIND], VOCAB_KIND_SPM
    je .Lhave_limit
    mov r14d, VOCAB_MAX_PIECE
.Lhave_limit:
    xor ebp, ebp
.Ltoken:
    cmp rbp, r12
    jae .Lhash
    mov rcx, [rsi]
    add rsi, 8
    mov eax, VOCAB_E_EMPTY_TOKEN
    test rcx, rcx
    jz .Lfail
    mov eax, VOCAB_E_LONG_TOKEN
    cmp rcx, r14
    ja .Lfail
    mov rax, [rbx + VOCAB_TEXT]
    mov [rax + rbp * 8], rdi
    mov rax, [rbx + VOCAB_TEXT_LEN]
    mov [rax + rbp * 4], ecx
.Lcopy_byte:
    movzx eax, byte ptr [rsi]
    mov [rdi], al
    inc rsi
    inc rdi
    dec rcx
    jnz .Lcopy_byte
    mov byte ptr [rdi], 0
    inc rdi
    mov eax, TT_NORMAL
    mov rcx, [r15 + VOCAB_SOURCE_TOKEN_TYPE]
    test rcx, rcx
    jz .Lstore_type
    mov eax, [rcx + rbp * 4]
    cmp eax, 255
    jbe .Lstore_type
    xor eax, eax                      # outside 0..255: undefined (0)
.Lstore_type:
    mov rcx, [rbx + VOCAB_TYPES]
    mov [rcx + rbp], al
    inc rbp
    jmp .Ltoken

.Lhash:                               # every token into the hash; a text twice is refused
    mov rdi, [rbx + VOCAB_TOK_HASH]
    mov ecx, [rbx + VOCAB_TOK_HASH_MASK]
    inc rcx
.Lzero:
    dec rcx
    mov dword ptr [rdi + rcx * 4], 0
    jnz .Lzero
    mov dword ptr [rbx + VOCAB_MAGIC], VOCAB_MAGIC_BUILDING   # vocab_find works from here
    xor ebp, ebp
.Linsert:
    cmp rbp, r12
    jae .Lspecials
    mov rcx, rbx
    mov rax, [rbx + VOCAB_TEXT]
    mov rdx, [rax + rbp * 8]
    mov rax, [rbx + VOCAB_TEXT_LEN]
    mov r8d, [rax + rbp * 4]
    call vocab_find
    test eax, eax
    mov eax, VOCAB_E_DUP_TOKEN
    jns .Lfail
    mov rax, [rbx + VOCAB_TEXT]       # the slot the failed probe ended on: probe again
    mov rdx, [rax + rbp * 8]
    mov rax, [rbx + VOCAB_TEXT_LEN]
    mov r8d, [rax + rbp * 4]
    mov eax, VOCAB_FNV_BASIS
    call vocab_fnv
    mov r9d, [rbx + VOCAB_TOK_HASH_MASK]
.Lslot:
    and eax, r9d
    cmp dword ptr [rdi + rax * 4], 0
    je .Lfree
    inc eax
    jmp .Lslot
.Lfree:
    lea ecx, [rbp + 1]
    mov [rdi + rax * 4], ecx
    inc rbp
    jmp .Linsert

.Lspecials:                           # control and user-defined ids, longest text first
    mov rdi, [rbx + VOCAB_SPECIALS]
    mov r8, [rbx + VOCAB_TYPES]
    mov r9, [rbx + VOCAB_TEXT_LEN]
    xor ebp, ebp
    xor r13d, r13d                    # count
.Lspecial:
    cmp rbp, r12
    jae .Lspecials_done
    movzx eax, byte ptr [r8 + rbp]
    cmp eax, TT_CONTROL
    je .Lis_special
    cmp eax, TT_USER_DEFINED
    jne .Lnot_special
.Lis_special:
    cmp r13, MAX_SPECIALS
    jae .Lnot_special                 # (beyond that many they stay plain tokens)
    mov r10d, [r9 + rbp * 4]          # insertion: after every longer or equal text
    mov rcx, r13
.Lshift:
    test rcx, rcx
    jz .Lplace
    mov edx, [rdi + rcx * 4 - 4]
    cmp [r9 + rdx * 4], r10d
    jae .Lplace
    mov [rdi + rcx * 4], edx
    dec rcx
    jmp .Lshift
.Lplace:
    mov [rdi + rcx * 4], ebp
    inc r13
.Lnot_special:
    inc rbp
    jmp .Lspecial
.Lspecials_done:
    mov [rbx + VOCAB_N_SPECIALS], r13d

    cmp dword ptr [rsp + B_KIND], VOCAB_KIND_BPE
    jne .Lspm
    mov rcx, rbx
    mov rdx, r15
    call bpe_build
    test eax, eax
    jnz .Lfail
    jmp .Lbuilt
.Lspm:
    lea rcx, [rbx + VOCAB_SPM]
    mov rdx, rbx
    mov r8, r15
    mov r9, [rbx + VOCAB_SPM_WS]
    mov rax, [rbx + VOCAB_SPM_WS_SIZE]
    mov [rsp + 32], rax
    call tok_build
    test eax, eax
    jnz .Lfail
.Lbuilt:
    mov dword ptr [rbx + VOCAB_MAGIC], VOCAB_MAGIC_VALUE
    xor eax, eax
    xor esi, esi
    jmp .Lfail                        # (sets ERROR_TEXT to the "ok" line)
.Lbad_id:
    mov eax, VOCAB_E_SPECIAL_ID
.Lfail:
    xor esi, esi
.Lfail_value:
    test eax, eax
    jz .Lmessage
    mov dword ptr [rbx + VOCAB_MAGIC], 0
.Lmessage:
    call vocab_set_error
    add rsp, 72
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbp
    pop rbx
    ret

# default_id(eax = the given id or NO_ID, ecx = SPM's default; rbx = VOCAB*, r12 = n,
#   [the caller's B_KIND]) -> eax = the id (NO_ID: none), CF set when a given id is >= n.
#   A default that is out of range (a tiny vocab) means none. Clobbers rcx.
default_id:
    cmp eax, NO_ID
    je .Ldefault
    cmp rax, r12
    cmc
    ret                               # CF = (id >= n)
.Ldefault:
    cmp dword ptr [rbx + VOCAB_KIND], VOCAB_KIND_SPM
    jne .Lnone
    cmp rcx, r12
    jae .Lnone
    mov eax, ecx
    clc
    ret
.Lnone:
    mov eax, NO_ID
    clc
    ret

# default_flag(eax = 0, 1 or NO_ID) -> eax: given (non-zero = 1), else 1 for SPM, 0 for BPE.
default_flag:
    cmp eax, NO_ID
    je .Ldefault
    test eax, eax
    setnz al
    movzx eax, al
    ret
.Ldefault:
    xor eax, eax
    cmp dword ptr [rbx + VOCAB_KIND], VOCAB_KIND_SPM
    sete al
    ret

