#!/usr/bin/env bash
# Runs the whole test suite (unit -> kernel -> hosted app -> QEMU boots).
# Extra arguments go to pytest, e.g.  bash scripts/test.sh -m "not slow"  to skip the QEMU boots.
# -rs: the summary says why each skipped test was skipped (a missing QEMU, OVMF or model).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEASM_TEST_JUDGES=1 bash "$here/scripts/setup.sh"
cd "$here"
exec "$here/.venv/bin/python" -m pytest -n 2 -q -rs "$@"
