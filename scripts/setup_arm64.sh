#!/usr/bin/env bash
# Install the kit that runs .tflite artifacts on LiteRT's aarch64 kernels under user-mode emulation
# (runtime `litert-arm64`, egeunet/runtime/runners/litert_arm64_runner.py), skipping whatever is present:
#   - qemu-user 10 from Debian's <codename>-backports (qemu 7.2 mis-emulates the SME int8 instruction
#     SMOPA); if backports cannot be had, qemu-user-static 7.2, then only with -cpu cortex-a76
#   - gcc-aarch64-linux-gnu + libc6-dev-arm64-cross (cross compiler and the arm64 C library)
#   - the aarch64 ai-edge-litert wheel of the version installed here, unpacked (its libLiteRt.so)
#   - native_check/litert_run.c cross-compiled against it
#   - a qemu prefix folder (-L): links to the arm64 libraries and a fake proc/cpuinfo describing an
#     ARMv8.2 core (LiteRT otherwise reads the host's x86 /proc/cpuinfo and crashes)
#   - kit.json: what the runner needs (qemu binary, its version, cpu model, library version)
# Where executorch is installed too (runtime `executorch-arm64`, egeunet/runtime/runners/executorch_arm64_runner.py):
#   - g++-aarch64-linux-gnu; executorch/lib and executorch/include of the aarch64 executorch wheel of the installed
#     version (the C++ runtime, XNNPACK, kernels, ETDump: no torch); native_check/executorch_run.cpp cross-compiled
#     against them; its own kit.json naming the same qemu and prefix
# Kit folder: $EGEUNET_ARM64_KIT or ~/.cache/egeunet/arm64, one subfolder per ai-edge-litert (and executorch) version.
# apt's sources are read from $EGEUNET_APT_ETC or /etc (scripts/apt_sources.sh): an existing <codename>-backports
# source is used as it is, else one is added on the Debian mirror apt already uses; no mirror: qemu-user-static.
# Idempotent and quiet; exits non-zero with a one-line reason when the kit cannot be made (root is needed for apt).
source "$(dirname "${BASH_SOURCE[0]}")/on_error.sh"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/apt_sources.sh"
py="${PYTHON:-$root/.venv/bin/python}"  # the egeunet virtual environment (scripts/venv.sh)
[ -x "$py" ] || py=python3
etc="${EGEUNET_APT_ETC:-/etc}"
say() { echo "[setup_arm64] $*"; }

version="$("$py" -c 'import importlib.metadata as m; print(m.version("ai-edge-litert"))' 2>/dev/null)" ||
  fail "ai-edge-litert is not installed for $py (install egeunet[tflite] first)"
et_version="$("$py" -c 'import importlib.metadata as m; print(m.version("executorch"))' 2>/dev/null || true)"
kits="${EGEUNET_ARM64_KIT:-$HOME/.cache/egeunet/arm64}"
kit="$kits/litert-$version"
mkdir -p "$kit"

apt_install() {  # apt_install [-t SUITE] PKG...: quiet, waits for another apt; on failure apt's last line is in $apt_error
  local log status=0
  log="$(mktemp)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 "$@" \
    >"$log" 2>&1 || { status=$?; apt_error="$(grep -v '^debconf: ' "$log" | grep . | tail -n 1 || true)"; }
  rm -f "$log"
  return "$status"
}
qemu_major() { "$1" --version 2>/dev/null | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -n1; }
older_than_10() { local major; major="$(qemu_major "$1")"; [ -z "$major" ] || [ "$major" -lt 10 ]; }

# --- Debian packages -------------------------------------------------------------------------------
qemu="$(command -v qemu-aarch64 || true)"
if [ -n "$qemu" ] && older_than_10 "$qemu"; then qemu=""; fi
need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
[ -f /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || need+=(libc6-dev-arm64-cross)
[ -f /usr/aarch64-linux-gnu/lib/libstdc++.so.6 ] || need+=(libstdc++6-arm64-cross)
[ -z "$et_version" ] || command -v aarch64-linux-gnu-g++ >/dev/null || need+=(g++-aarch64-linux-gnu)
missing=("${need[@]}")
[ -n "$qemu" ] || missing=(qemu-user "${need[@]}")
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" != 0 ]; then
  fail "root is needed to apt-get install ${missing[*]} (run this as root, or install them first)"
fi
if [ -z "$qemu" ]; then
  codename="$(debian_codename "$etc")"
  if [ -z "$codename" ]; then
    say "no VERSION_CODENAME in $etc/os-release: no backports"
  elif ! has_backports "$etc" "$codename"; then
    mirror="$(debian_mirror "$etc")"
    if [ -n "$mirror" ]; then
      say "adding $codename-backports ($mirror) for qemu-user 10"
      mkdir -p "$etc/apt/sources.list.d"
      printf 'Types: deb\nURIs: %s\nSuites: %s-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$mirror" "$codename" > "$etc/apt/sources.list.d/egeunet-backports.sources"
    else
      say "no Debian mirror in $etc/apt's sources: cannot add $codename-backports"
    fi
  fi
  apt-get update -qq -o DPkg::Lock::Timeout=600 >/dev/null || say "apt-get update reported errors; trying anyway"
  if [ -n "$codename" ] && has_backports "$etc" "$codename"; then
    say "apt-get install qemu-user ($codename-backports)"
    apt_install -t "$codename-backports" qemu-user || say "qemu-user from $codename-backports not installable: $apt_error"
    qemu="$(command -v qemu-aarch64 || true)"
    if [ -n "$qemu" ] && older_than_10 "$qemu"; then qemu=""; fi
  fi
  if [ -z "$qemu" ]; then
    say "falling back to qemu-user-static (7.2: -cpu cortex-a76 only)"
    command -v qemu-aarch64-static >/dev/null || apt_install qemu-user-static ||
      fail "cannot apt-get install qemu-user-static: $apt_error"
    qemu="$(command -v qemu-aarch64-static)"
  fi
fi
if [ ${#need[@]} -gt 0 ]; then
  say "apt-get install ${need[*]}"
  apt_install "${need[@]}" || { apt-get update -qq >/dev/null; apt_install "${need[@]}"; } ||
    fail "cannot apt-get install ${need[*]}: $apt_error"
fi

# --- the aarch64 LiteRT library ---------------------------------------------------------------------
wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
unpack_wheel() {  # unpack_wheel PACKAGE VERSION PLATFORM DEST PATH...: move PATHs of the aarch64 wheel into DEST
  local package="$1" version="$2" platform="$3" dest="$4" path
  shift 4
  say "downloading the aarch64 $package $version wheel"
  rm -rf "${wheels:?}"/*
  "$py" -m pip download --quiet --no-deps --only-binary=:all: --platform "$platform" \
    --python-version 3.11 --dest "$wheels" "$package==$version" 2>"$wheels/pip.log" ||
    fail "pip cannot download the aarch64 $package==$version wheel: $(grep -i error "$wheels/pip.log" | tail -n 1)"
  "$py" -m zipfile -e "$wheels"/*.whl "$wheels/unpack"
  for path; do
    [ -e "$wheels/unpack/$path" ] || fail "the aarch64 $package wheel has no $path"
    rm -rf "${dest:?}/$path"
    mkdir -p "$(dirname "$dest/$path")"
    mv "$wheels/unpack/$path" "$dest/$path"
  done
}
lib="$kit/ai_edge_litert/libLiteRt.so"
if [ ! -f "$lib" ]; then
  unpack_wheel ai-edge-litert "$version" manylinux_2_27_aarch64 "$kit" ai_edge_litert
  [ -f "$lib" ] || fail "the aarch64 wheel has no ai_edge_litert/libLiteRt.so"
fi

# --- the C runner, cross-compiled (rebuilt when its source changes) ---------------------------------
src="$root/native_check/litert_run.c"
sum="$(cat "$src" "$root/native_check/litert_c_api.h" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$kit/litert_run" ] || [ "$(cat "$kit/litert_run.sha256" 2>/dev/null)" != "$sum" ]; then
  say "cross-compiling native_check/litert_run.c for aarch64"
  aarch64-linux-gnu-gcc -std=c11 -O2 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=199309L -o "$kit/litert_run.tmp" "$src" \
    -L"$kit/ai_edge_litert" -l:libLiteRt.so -Wl,-rpath,"$kit/ai_edge_litert" || fail "aarch64-linux-gnu-gcc failed"
  mv "$kit/litert_run.tmp" "$kit/litert_run"
  echo "$sum" > "$kit/litert_run.sha256"
fi

# --- the qemu prefix: arm64 libraries and an ARMv8.2 /proc/cpuinfo ----------------------------------
prefix="$kit/prefix"
mkdir -p "$prefix/proc"
ln -sfn /usr/aarch64-linux-gnu/lib "$prefix/lib"
cpuinfo="processor	: 0
BogoMIPS	: 50.00
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x4
CPU part	: 0xd0b
CPU revision	: 1
"
[ "$(cat "$prefix/proc/cpuinfo" 2>/dev/null)" = "$(printf '%s' "$cpuinfo")" ] || printf '%s' "$cpuinfo" > "$prefix/proc/cpuinfo"

# --- kit.json ---------------------------------------------------------------------------------------
qemu_version="$("$qemu" --version | sed -n 's/.*version \([0-9][0-9.]*\).*/\1/p' | head -n1)"
# The emulated core: a Cortex-A76 (ARMv8.2 + dot product: most phones' kernels), 2-10x faster to emulate than
# `max`. EGEUNET_ARM64_CPU=max (SVE2 + SME: the newest phones' kernels) is allowed with qemu >= 10 only:
# qemu 7.2 gets the SME instruction SMOPA wrong.
cpu=cortex-a76
write_kit() {  # write_kit FOLDER NAME VERSION: FOLDER/kit.json for the runner program FOLDER/NAME_run
  "$py" - "$1/kit.json" "$qemu" "$qemu_version" "$cpu" "$2" "$3" "$prefix" "$1/$2_run" <<'EOF'
import json, sys
from egeunet.atomic import write_bytes_atomic
path, qemu, qemu_version, cpu, name, version, prefix, exe = sys.argv[1:]
kit = {"qemu": qemu, "qemu_version": qemu_version, "cpu": cpu, f"{name}_version": version, "prefix": prefix,
       f"{name}_run": exe}
text = json.dumps(kit, indent=1) + "\n"
try:
    same = open(path).read() == text
except OSError:
    same = False
if not same:
    write_bytes_atomic(path, text.encode())
EOF
}
write_kit "$kit" litert "$version"

# --- ExecuTorch's aarch64 C++ runtime and its runner (only where executorch is installed) -----------
[ -n "$et_version" ] || exit 0
et_kit="$kits/executorch-$et_version"
et="$et_kit/executorch"
if [ ! -f "$et/lib/libexecutorch.so" ] || [ ! -d "$et/include" ]; then
  unpack_wheel executorch "$et_version" manylinux_2_28_aarch64 "$et_kit" executorch/lib executorch/include
fi
src="$root/native_check/executorch_run.cpp"
sum="$(sha256sum "$src" | cut -d' ' -f1)"
if [ ! -x "$et_kit/executorch_run" ] || [ "$(cat "$et_kit/executorch_run.sha256" 2>/dev/null)" != "$sum" ]; then
  say "cross-compiling native_check/executorch_run.cpp for aarch64"
  # the definitions executorch's own CMake package gives its consumers (lib/cmake/executorch/executorch-config.cmake)
  aarch64-linux-gnu-g++ -std=c++17 -O2 -Wall -Wextra -Werror -DC10_USING_CUSTOM_GENERATED_MACROS \
    -DET_EVENT_TRACER_ENABLED -isystem "$et/include" -isystem "$et/include/executorch/runtime/core/portable_type/c10" \
    -o "$et_kit/executorch_run.tmp" "$src" -L"$et/lib" -Wl,--no-as-needed -lexecutorch -lexecutorch_backend_xnnpack \
    -lexecutorch_kernels_optimized -lexecutorch_kernels_quantized -lexecutorch_etdump -Wl,-rpath,"$et/lib" ||
    fail "aarch64-linux-gnu-g++ failed on native_check/executorch_run.cpp"
  mv "$et_kit/executorch_run.tmp" "$et_kit/executorch_run"
  echo "$sum" > "$et_kit/executorch_run.sha256"
fi
write_kit "$et_kit" executorch "$et_version"
