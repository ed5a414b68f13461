# shellcheck shell=bash
# Azurite (the Azure Blob emulator) for the Azure backend tests: install, start on a free loopback
# port, stop. Source this file, then:
#   azurite_install DIR   npm-installs azurite@3.35.0 under DIR (npm --prefix DIR)
#   azurite_start DIR     starts azurite-blob with data and log in DIR, waits until it answers;
#                         exports VAULTGATE_TEST_AZURE_ENDPOINT (http://127.0.0.1:PORT/devstoreaccount1,
#                         the emulator's well-known account; its well-known key is used) and AZURITE_PID
#   azurite_stop          stops the server started by azurite_start (by its PID)
# The binary is run directly (not through npx, which would orphan the server).

AZURITE_VERSION=3.35.0

azurite_install() { # DIR
  local dir=${1:?usage: azurite_install DIR}
  mkdir -p "$dir" && dir=$(cd "$dir" && pwd) || return 1
  AZURITE_BIN="$dir/node_modules/.bin/azurite-blob"
  if [ -x "$AZURITE_BIN" ] && grep -q "\"version\": \"$AZURITE_VERSION\"" "$dir/node_modules/azurite/package.json" 2>/dev/null; then
    return 0
  fi
  npm install --silent --no-audit --no-fund --prefix "$dir" "azurite@$AZURITE_VERSION" >/dev/null || return 1
}

_azurite_free_port() {
  python3 - <<'PY'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

azurite_start() { # DIR
  local dir=${1:?usage: azurite_start DIR} bin=${AZURITE_BIN:-}
  [ -n "$bin" ] || bin=$(command -v azurite-blob || true)
  [ -x "$bin" ] || { echo "azurite_start: no azurite-blob (run azurite_install DIR first)" >&2; return 1; }
  mkdir -p "$dir/data" && dir=$(cd "$dir" && pwd) || return 1
  local port i=0 code
  port=$(_azurite_free_port) || return 1
  "$bin" --blobHost 127.0.0.1 --blobPort "$port" --location "$dir/data" --skipApiVersionCheck --loose \
    --disableTelemetry --silent >"$dir/azurite.log" 2>&1 &
  AZURITE_PID=$!
  export AZURITE_PID
  local endpoint="http://127.0.0.1:$port/devstoreaccount1"
  while :; do
    code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$endpoint?comp=list" || true)
    [ -n "$code" ] && [ "$code" != 000 ] && break
    if ! kill -0 "$AZURITE_PID" 2>/dev/null; then
      echo "azurite_start: azurite exited; log: $dir/azurite.log" >&2; tail -n 20 "$dir/azurite.log" >&2; return 1
    fi
    i=$((i + 1))
    if [ $i -ge 300 ]; then
      echo "azurite_start: no answer at $endpoint after 60 s; log: $dir/azurite.log" >&2
      azurite_stop; return 1
    fi
    sleep 0.2
  done
  export VAULTGATE_TEST_AZURE_ENDPOINT="$endpoint"
}

azurite_stop() {
  local pid=${AZURITE_PID:-}
  [ -n "$pid" ] || return 0
  if kill "$pid" 2>/dev/null; then
    local _
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null || true
  unset AZURITE_PID VAULTGATE_TEST_AZURE_ENDPOINT
  return 0
}
