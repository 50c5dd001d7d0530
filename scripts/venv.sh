#!/usr/bin/env bash
# Create or reuse .venv at the repository root and install egeunet with every extra.
# Sourced by scripts/demo.sh and scripts/test.sh; re-installs only when setup.cfg or
# constraints.txt changed since the last install.
source "$(dirname "${BASH_SOURCE[0]}")/on_error.sh"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
py="${PYTHON:-python3.11}"
command -v "$py" >/dev/null || py=python3
if [ ! -x "$venv/bin/python" ]; then
  echo "[egeunet] creating virtual environment at $venv"
  "$py" -m venv "$venv"
fi
stamp="$venv/.egeunet-installed"
want="$(cat "$root/setup.cfg" "$root/constraints.txt" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[egeunet] installing egeunet[all] into $venv (first run: a few minutes, about 2.5 GB)"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -c "$root/constraints.txt" -e "$root[all]"
  echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
