# The weights' layout for the kernel path: the matrices read only through matrix products
# are repacked in place into their rows-interleaved form (the R8 types of peasm/ggml.py: 8
# rows' blocks interleaved, so that one AVX2 instruction meets 8 rows, as llama.cpp's CPU
# backend repacks Q4_0 at load) when the running path has that form's matvec body, and back
# into the file's form when it has not (another path chosen, or repacking not wanted).
# Pure core: no printing; the bytes move through kernels_asm/ggml_repack.s.
#
#   model_repack(rcx = Model*, edx = want) -> eax = weights in a rows-interleaved form now
#       want 1: every eligible weight whose type has an R8 form (ggml_r8_of) whose MATVEC
#       body exists on the path kernels_init chose (ggml_type_body != 0), whose rows are a
#       multiple of the form's GROUP_ROWS and whose group fits the scratch, is repacked and
#       its TENSOR_TYPE set to the R8 id; a weight already in an R8 form whose body the path
#       lacks is put back. want 0: every R8 weight is put back (TENSOR_TYPE its file type).
#       Eligible: each layer's attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up,
#       ffn_down, and the classifier (MODEL_OUTPUT). A classifier tied to the token
#       embedding (the same data) is repacked only into an R8 form of block size 1 (F32_R8,
#       whose rows forward.s's model_embed_row gathers: the embedding is read row by row), and then the
#       embedding's descriptor takes its type too; a tied Q4 classifier (R8 types have no
#       to_float) is never touched. Norms and biases are F32. Needs MODEL_F_READY (the weights bound
#       and the run state laid out), else returns 0 and changes nothing. Idempotent: a
#       second call with the same want and path moves nothing. Clobbers the volatile
#       registers.
#
# Scratch: the run state's S_BXQ (the batched prefill's converted inputs, rewritten by every
# batched product before it is read, so nothing in it outlives a call). It holds MODEL_BATCH
# (32) rows of round64(4 * max(dim, hidden)) bytes, at least 128 * max(dim, hidden) bytes; an
# eligible weight's rows have n = dim or hidden elements (the binders check every shape), and
# a 4-bit row takes n / 32 * block_bytes <= 20n/32 bytes, so a group of 8 rows is at most
# 5 * max(dim, hidden) bytes: it always fits. (Checked anyway, per weight: a group that did
# not fit would leave that weight as it is.)
.include "model.inc"

.section .text
.global model_repack
.extern ggml_repack_r8, ggml_unpack_r8, ggml_r8_of, ggml_type_body, ggml_type_table

.equ MR_LAYER_WEIGHTS, 7
.section .rdata
.balign 4
mr_layer_fields:                      # the LAYER fields of the eligible weights
    .long LAYER_ATTN_Q, LAYER_ATTN_K, LAYER_ATTN_V, LAYER_ATTN_OUTPUT
    .long LAYER_FFN_GATE, LAYER_FFN_UP, LAYER_FFN_DOWN

.section .text
# registers through model_repack and mr_one: rbx Model*, r12d want, r13d count, rsi the
# scratch, r14 its bytes; rdi the layer row, r15d layers left, rbp the weight index
model_repack:
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
    mov r12d, edx
    xor r13d, r13d
    mov eax, [rbx + MODEL_FLAGS]
    and eax, MODEL_F_READY
    cmp eax, MODEL_F_READY
    jne .Lout
    mov rsi, [rbx + MODEL_S_BXQ]
    mov eax, [rbx + MODEL_DIM]        # its bytes: MODEL_BATCH rows of round64(4 * max(dim, hidden))
    mov ecx, [rbx + MODEL_HIDDEN_DIM]
    cmp eax, ecx
    cmovb eax, ecx
    lea r14, [rax * 4 + 63]
    and r14, -64
    imul r14, r14, MODEL_BATCH
    mov rdi, [rbx + MODEL_LAYERS]
    mov r15d, [rbx + MODEL_N_LAYERS]
.Llayer:
    test r15d, r15d
    jz .Loutput
    xor ebp, ebp
.Lweight:
    lea rax, [rip + mr_layer_fields]
    mov ecx, [rax + rbp * 4]
    add rcx, rdi
    call mr_one
    add r13d, eax
    inc ebp
    cmp ebp, MR_LAYER_WEIGHTS
    jb .Lweight
    add rdi, LAYER_SIZE
    dec r15d
    jmp .Llayer
.Loutput:
    mov rax, [rbx + MODEL_OUTPUT + TENSOR_DATA]
    cmp rax, [rbx + MODEL_TOK_EMBD + TENSOR_DATA]
    je .Ltied
    lea rcx, [rbx + MODEL_OUTPUT]
    call mr_one
    add r13d, eax
    jmp .Lout
.Ltied:                               # tied to the embedding, read row by row as well:
    mov ecx, [rbx + MODEL_OUTPUT + TENSOR_TYPE]
    cmp ecx, GGML_TYPE_COUNT
    jae .Ltied_one                    # in an R8 form already (F32_R8): kept or put back
    call ggml_r8_of
    test eax, eax
    jz .Lout
    imul eax, eax, GGML_TT_SIZE
    lea rcx, [rip + ggml_type_table]
    cmp dword ptr [rcx + rax + GGML_TT_BLOCK_SIZE], 1
    jne .Lout                         # rows model_embed_row cannot gather: never touched
.Ltied_one:
    lea rcx, [rbx + MODEL_OUTPUT]
    call mr_one
    add r13d, eax
    mov eax, [rbx + MODEL_OUTPUT + TENSOR_TYPE]
    mov [rbx + MODEL_TOK_EMBD + TENSOR_TYPE], eax   # one layout, one type: both descriptors
.Lout:
    mov eax, r13d
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

# mr_one(rcx = TENSOR*; r12d want, rsi scratch, r14 its bytes) -> eax = 1 when the weight
#   is in an R8 form afterwards, else 0: repacks or puts it back as model_repack says.
#   Keeps rbx, rbp, rsi, rdi, r12-r15.
mr_one:
    push rdi
    push rbp
    sub rsp, 56
    mov rdi, rcx
    xor eax, eax
    cmp qword ptr [rdi + TENSOR_DATA], 0
    je .Lone_out                      # (absent: nothing to do)
    mov ecx, [rdi + TENSOR_TYPE]
    cmp ecx, GGML_TYPE_COUNT
    jae .Linternal
    test r12d, r12d
    jz .Lone_no
    call ggml_r8_of
    test eax, eax
    jz .Lone_no                       # no R8 form
    mov ebp, eax
    mov ecx, eax
    mov edx, GGML_TT_MATVEC
    call ggml_type_body
    test rax, rax
    jz .Lone_no                       # not on this path
    imul eax, ebp, GGML_TT_SIZE
    lea rcx, [rip + ggml_type_table]
    mov eax, [rcx + rax + GGML_TT_GROUP_ROWS]
    imul rax, [rdi + TENSOR_ROW_BYTES]
    cmp rax, r14
    ja .Lone_no                       # (a group larger than the scratch: see above)
    mov rcx, [rdi + TENSOR_DATA]
    mov edx, [rdi + TENSOR_TYPE]
    mov r8d, [rdi + TENSOR_ROWS]
    mov r9, [rdi + TENSOR_ROW_BYTES]
    mov [rsp + 32], rsi
    call ggml_repack_r8               # 0 when the rows are not whole groups
    test eax, eax
    jz .Lone_no
    mov [rdi + TENSOR_TYPE], eax
    jmp .Lone_yes
.Linternal:                           # in an R8 form: kept while wanted and runnable here
    test r12d, r12d
    jz .Lback
    mov edx, GGML_TT_MATVEC
    call ggml_type_body
    test rax, rax
    jnz .Lone_yes
.Lback:
    mov rcx, [rdi + TENSOR_DATA]
    mov edx, [rdi + TENSOR_TYPE]
    mov r8d, [rdi + TENSOR_ROWS]
    mov r9, [rdi + TENSOR_ROW_BYTES]
    mov [rsp + 32], rsi
    call ggml_unpack_r8               # (the shape it was packed with: never refused)
    cmp eax, GGML_TYPE_COUNT
    je .Lone_yes
    mov [rdi + TENSOR_TYPE], eax
.Lone_no:
    xor eax, eax
    jmp .Lone_out
.Lone_yes:
    mov eax, 1
.Lone_out:
    add rsp, 56
    pop rbp
    pop rdi
    ret
