#!/usr/bin/env bash
# The test command: create/reuse .venv, install egeunet with every extra and the demo tools, run the whole suite.
source "$(dirname "${BASH_SOURCE[0]}")/on_error.sh"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/venv.sh"
# a setup step that fails prints its reason, repeated here, and the suite still runs (those tests then skip or fail)
keep_going "$root/scripts/setup_demo_tools.sh" "the phone/browser tests skip"  # JDK/Kotlin/JUnit, Chromium, web_demo npm
keep_going "$root/scripts/setup_arm64.sh" "tests/test_arm64.py will fail"  # qemu + aarch64 LiteRT
cd "$root"
exec python -m pytest "$@"
