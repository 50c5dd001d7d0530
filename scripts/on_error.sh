# Sourced first by every script that scripts/test.sh and scripts/demo.sh run: stop at the first failing command
# with one line on stderr naming the script, the line and the command (a failure inside $(...) is reported once,
# as the command that holds it).
set -Eeuo pipefail
shopt -s inherit_errexit
trap '[ "$BASH_SUBSHELL" -gt 0 ] || echo "[${BASH_SOURCE[0]##*/}] FAILED at line $LINENO: $BASH_COMMAND" >&2' ERR

fail() {  # fail REASON: stop with one line naming the calling script and the reason
  echo "[${BASH_SOURCE[1]##*/}] FAILED: $*" >&2
  exit 1
}

keep_going() {  # keep_going SCRIPT CONSEQUENCE: run `bash SCRIPT`; if it fails, repeat its last stderr line and go on
  local err status=0
  err="$(mktemp)"
  { bash "$1" 2>&1 1>&3 3>&- | tee "$err" >&2; } 3>&1 || status=$?  # its stderr shown and kept, stdout shown
  if [ "$status" -ne 0 ]; then
    echo "[${0##*/}] going on without ${1##*/} ($2): $(tail -n 1 "$err" | grep . || echo "it exited $status without a message")" >&2
  fi
  rm -f "$err"
}
