#!/usr/bin/env bash
# The test command: create/reuse .venv, install egeunet with every extra and the demo tools, run the whole suite
# (pytest arguments pass through to both runs below).
source "$(dirname "${BASH_SOURCE[0]}")/on_error.sh"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/venv.sh"
# a setup step that fails prints its reason, repeated here, and the suite still runs (those tests then skip or fail)
keep_going "$root/scripts/setup_demo_tools.sh" "the phone/browser tests skip"  # JDK/Kotlin/JUnit, Chromium, web_demo npm
keep_going "$root/scripts/setup_arm64.sh" "tests/test_arm64.py will fail"  # qemu + aarch64 LiteRT
cd "$root"
# two runs: the whole suite on this machine's kernels, then the tests marked `numeric` (exports, clients, compaction,
# QAT, integer-only, ARM) again on another CPU family's PyTorch kernels, so no verdict rests on one CPU's rounding
status=0
python -m pytest "$@" || status=$?
other="$(grep -v '^#' scripts/other_kernels.env | xargs)"
echo "[test.sh] second run: tests marked numeric (not plumbing), with scripts/other_kernels.env ($other)"
second=0
env $other python -m pytest -m "numeric and not plumbing" "$@" || second=$?
[ "$second" -eq 5 ] || [ "$second" -eq 0 ] || status=$second  # 5: the arguments selected no numeric test
exit "$status"
