#!/usr/bin/env bash
# The test command: create/reuse .venv, install egeunet with every extra and the demo tools, run the whole suite.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/venv.sh"
bash "$root/scripts/setup_demo_tools.sh"  # JDK/Kotlin/JUnit, Chromium, web_demo npm packages for the phone/browser tests
bash "$root/scripts/setup_arm64.sh" || echo "[egeunet] ARM64 emulation kit not installed: tests/test_arm64.py will fail"  # qemu + aarch64 LiteRT
cd "$root"
exec python -m pytest "$@"
