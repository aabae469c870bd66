#!/usr/bin/env bash
# The main job, from a fresh Debian machine: build BOOTX64.EFI with peasm, build a bootable
# image around a model with imagetool, boot it in QEMU + OVMF and chat on this terminal.
#
#   bash scripts/demo.sh [MODEL.bin [TOKENIZER.bin]]
#
# Defaults to ../shared/models/stories260K.bin and its tok512.bin. Output goes to out/.
# In the chat: type a prompt and Enter; /help lists the commands; /shutdown powers off.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$here/scripts/setup.sh"
models=${LLM_UEFI_MODELS:-$here/../shared/models}
model=${1:-$models/stories260K.bin}
tokenizer=${2:-$models/tok512.bin}
for f in "$model" "$tokenizer"; do
    [ -f "$f" ] || { echo "demo: $f not found (give MODEL.bin TOKENIZER.bin)" >&2; exit 1; }
done
out="$here/out"
mkdir -p "$out"
bin="$here/.venv/bin"
"$bin/peasm" link -o "$out/BOOTX64.EFI" --map "$out/BOOTX64.map"
"$bin/imagetool" build -o "$out/llm.img" --efi "$out/BOOTX64.EFI" --model "$model" --tokenizer "$tokenizer"
echo "booting $out/llm.img in QEMU (TCG, -cpu max); /shutdown powers off, Ctrl-C stops QEMU"
exec "$bin/imagetool" boot "$out/llm.img"
