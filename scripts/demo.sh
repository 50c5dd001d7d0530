#!/usr/bin/env bash
# The main job: create/reuse .venv, install egeunet, then run `egeunet demo` on the bundled
# synthetic sample (sample data -> CPU training -> export -> benchmark -> report).
source "$(dirname "${BASH_SOURCE[0]}")/on_error.sh"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/venv.sh"
cd "$root"
exec egeunet demo "$@"
