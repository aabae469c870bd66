#!/usr/bin/env bash
# Prepares a fresh Debian machine: the system packages this project runs or tests with (only
# when missing), and a virtualenv at .venv with the project installed in editable mode.
# Sourced by demo.sh and test.sh; safe to run again.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

need_pkgs=()
command -v qemu-system-x86_64 >/dev/null || need_pkgs+=(qemu-system-x86)
[ -e /usr/share/OVMF/OVMF_CODE_4M.fd ] || [ -e /usr/share/OVMF/OVMF_CODE.fd ] || need_pkgs+=(ovmf)
if [ "${PEASM_TEST_JUDGES:-0}" = 1 ]; then
    command -v fsck.fat >/dev/null || need_pkgs+=(dosfstools)
    command -v mdir >/dev/null || need_pkgs+=(mtools)
    command -v sgdisk >/dev/null || need_pkgs+=(gdisk)
    command -v objdump >/dev/null && command -v as >/dev/null && command -v ld >/dev/null || need_pkgs+=(binutils)
fi
command -v python3 >/dev/null || need_pkgs+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_pkgs+=(python3-venv)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    echo "setup: installing ${need_pkgs[*]}" >&2
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if [ ! -x "$here/.venv/bin/python" ]; then
    python3 -m venv "$here/.venv"
fi
stamp="$here/.venv/.installed"
if [ ! -f "$stamp" ] || [ "$here/pyproject.toml" -nt "$stamp" ]; then
    "$here/.venv/bin/pip" install -q --disable-pip-version-check -e "$here[test]"
    touch "$stamp"
fi
if [ -z "${VIRTUAL_ENV:-}" ] && [ "${SETUP_QUIET:-}" != 1 ]; then
    echo "setup: peasm and imagetool are in $here/.venv/bin: 'source $here/.venv/bin/activate' puts them on PATH" >&2
fi
