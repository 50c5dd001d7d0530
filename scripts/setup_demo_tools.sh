#!/usr/bin/env bash
# Install what the phone/browser demo tests need, skipping whatever is already present:
#   - a JDK (javac), Kotlin (kotlinc) and JUnit 4 + Hamcrest jars  -> tests/test_android_core.py
#   - Debian's Chromium                          -> tests/test_web_demo.py
#   - web_demo's npm packages (onnxruntime-web, playwright-core; `npm ci` from the committed lock file),
#     and onnxruntime-web's browser files copied into web_demo/vendor/ (14 MB of wasm: not committed)
# Idempotent and quiet. A failed install (or no root for apt-get) is reported in one line and the script goes on:
# the tests then skip, quoting the reason this script writes to web_demo/.demo-tools-missing.txt.
source "$(dirname "${BASH_SOURCE[0]}")/on_error.sh"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
missing_log="$root/web_demo/.demo-tools-missing.txt"
: > "$missing_log"
missing() { echo "$*" >> "$missing_log"; echo "[setup_demo_tools] $* (the tests that need it skip)" >&2; }

need=()
command -v javac >/dev/null || need+=(default-jdk-headless)
command -v kotlinc >/dev/null || need+=(kotlin)
[ -f /usr/share/java/junit4.jar ] || need+=(junit4)
[ -f /usr/share/java/hamcrest-core.jar ] || need+=(libhamcrest-java)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" != 0 ]; then
  missing "root is needed to apt-get install ${need[*]}"
elif [ ${#need[@]} -gt 0 ]; then
  echo "[setup_demo_tools] apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; } 2>"$missing_log.apt"; then
    missing "apt-get install ${need[*]} failed: $(tail -n 3 "$missing_log.apt" | tr '\n' ' ')"
  fi
  rm -f "$missing_log.apt"
fi

web="$root/web_demo"
stamp="$web/node_modules/.package-lock-installed"
if [ ! -f "$stamp" ] || ! cmp -s "$web/package-lock.json" "$stamp"; then
  echo "[setup_demo_tools] npm ci in web_demo"
  if (cd "$web" && npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>"$web/.npm-error.log"); then
    cp "$web/package-lock.json" "$stamp"
  else
    missing "npm ci in web_demo failed: $(tail -n 3 "$web/.npm-error.log" | tr '\n' ' ')"
  fi
  rm -f "$web/.npm-error.log"
fi
if [ -d "$web/node_modules/onnxruntime-web/dist" ]; then
  mkdir -p "$web/vendor"
  for f in ort.wasm.min.js ort-wasm-simd-threaded.mjs ort-wasm-simd-threaded.wasm; do
    cmp -s "$web/node_modules/onnxruntime-web/dist/$f" "$web/vendor/$f" ||
      cp "$web/node_modules/onnxruntime-web/dist/$f" "$web/vendor/$f"
  done
fi
[ -s "$missing_log" ] || rm -f "$missing_log"
exit 0
