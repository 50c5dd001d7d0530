#!/usr/bin/env bash
# The test command: create/reuse .venv, install egeunet with every extra, run the whole suite.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/venv.sh"
cd "$root"
exec python -m pytest "$@"
