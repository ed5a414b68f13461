# shellcheck shell=bash
# Shell helpers for conformance/run: banners, timed steps, free ports, waiting for and stopping
# the test services it starts (by PID only).

banner() { # TEXT
  printf '\n\033[1m==== %s ==== (%s)\033[0m\n' "$1" "$(date -u +%H:%M:%S)"
}

# Loopback TCP port that is free right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_http() { # URL TIMEOUT_S [EXPECTED_CODE]
  local i=0 c
  while :; do
    c=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" || true)
    if [ -n "${3:-}" ]; then [ "$c" = "$3" ] && return 0; elif [ "$c" != 000 ]; then return 0; fi
    i=$((i + 1))
    [ $i -ge $((${2:-60} * 5)) ] && { echo "timeout waiting for $1 (last code $c)" >&2; return 1; }
    sleep 0.2
  done
}

stop_pid() { # PID: SIGTERM, then SIGKILL after 10 s
  [ -n "${1:-}" ] || return 0
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.2; done
  kill -9 "$1" 2>/dev/null || true
}

# Step bookkeeping: run_step NAME CMD... runs CMD with errexit in a subshell, times it, records it.
STEP_NAMES=()
STEP_RESULTS=()
STEP_SECS=()
FAILED=0

record_step() { # NAME RESULT SECONDS
  STEP_NAMES+=("$1"); STEP_RESULTS+=("$2"); STEP_SECS+=("$3")
  [ "$2" = FAIL ] && FAILED=1
  return 0
}

run_step() { # NAME CMD...
  local name=$1 t0=$SECONDS rc=0
  shift
  banner "$name"
  set +e
  (set -e; "$@")
  rc=$?
  set -e
  end_step "$name" "$rc" "$t0"
}

end_step() { # NAME EXIT_CODE START_SECONDS: records and reports a step that ended
  local name=$1 rc=$2 t0=$3
  if [ "$rc" -eq 0 ]; then
    record_step "$name" ok $((SECONDS - t0))
    echo "---- $name: ok ($((SECONDS - t0)) s)"
  else
    record_step "$name" FAIL $((SECONDS - t0))
    echo "---- $name: FAILED with exit code $rc ($((SECONDS - t0)) s)" >&2
  fi
  return 0
}

skip_step() { # NAME REASON
  banner "$1"
  echo "skipped: $2"
  record_step "$1" skipped 0
  FAILED=1
}

print_summary() {
  local i
  banner "summary"
  printf '%-44s %-8s %8s\n' step result seconds
  for i in "${!STEP_NAMES[@]}"; do
    printf '%-44s %-8s %8s\n' "${STEP_NAMES[$i]}" "${STEP_RESULTS[$i]}" "${STEP_SECS[$i]}"
  done
  printf '%-44s %-8s %8s\n' total "$([ "$FAILED" = 0 ] && echo ok || echo FAIL)" "$SECONDS"
}
