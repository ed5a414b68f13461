# shellcheck shell=bash
# HAProxy (Debian's haproxy 2.6) as the load balancer in front of several gateway instances, for
# the multi-instance test (conformance/clients/test_scaleout.py): plain HTTP on loopback, balance
# roundrobin (consecutive requests go to different instances), health checks on each instance's
# admin listener `/ready`. Source this file, then:
#   haproxy_install             apt-get installs haproxy when it is not on PATH
#   haproxy_config PORT S3PORT:ADMINPORT...
#                               prints the config haproxy_start writes (the client test runs
#                               haproxy itself as its child process with it)
#   haproxy_start DIR S3PORT:ADMINPORT...
#                               writes DIR/haproxy.cfg (one server per instance, checked on
#                               127.0.0.1:ADMINPORT/ready every HAPROXY_CHECK_INTER, default
#                               500ms, down after 2 failures, up after 2 successes), checks it,
#                               starts `haproxy -f DIR/haproxy.cfg -db` in the background on a free
#                               loopback port and waits until it answers; exports HAPROXY_PID,
#                               HAPROXY_PORT and HAPROXY_ENDPOINT (http://127.0.0.1:PORT)
#   haproxy_stop                stops the haproxy started by haproxy_start (by its PID)
# Needs python3 (free ports) and curl (common.sh's wait_http).

haproxy_install() {
  if command -v haproxy >/dev/null; then
    haproxy -v | sed -n 1p
    return 0
  fi
  apt-get update -qq && apt-get install -y -qq --no-install-recommends haproxy >/dev/null || return 1
  haproxy -v | sed -n 1p
}

# The config: the shipped deploy/haproxy/haproxy.cfg's settings, without TLS, with short
# health-check intervals so a killed instance leaves the pool within about a second.
haproxy_config() { # PORT S3PORT:ADMINPORT...
  local port=$1 inter=${HAPROXY_CHECK_INTER:-500ms} i=0 b
  shift
  cat <<CFG
global
    log stdout format raw local0
    maxconn 4000

defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout http-request 15s
    timeout client 5m
    timeout server 5m
    timeout client-fin 30s
    timeout http-keep-alive 30s
    timeout queue 30s
    # a refused connection (an instance just killed, not yet marked down by the checks) is
    # retried, each time on another instance; a request already sent is not (no retry-on:
    # its body is not buffered, and the S3 clients retry what failed)
    retries 3
    option redispatch 1

frontend s3
    bind 127.0.0.1:$port
    default_backend vaultgate_s3

backend vaultgate_s3
    balance roundrobin
    option httpchk
    http-check send meth GET uri /ready
    http-check expect status 200
    # A check may take longer than its interval: /ready probes the database, the backend (a write,
    # read and delete) and the key provider, each for up to 3 s. Without "timeout check" HAProxy
    # gives a check only "inter" (500 ms) to answer, and on a loaded 2-core CI machine all three
    # healthy instances were marked down at once (38 requests answered 503 <NOSRV>). A killed
    # instance still leaves the pool within about a second: its port refuses at once.
    timeout check 4s
    default-server check inter $inter fall 2 rise 2
CFG
  for b in "$@"; do
    i=$((i + 1))
    echo "    server vaultgate$i 127.0.0.1:${b%%:*} port ${b##*:}"
  done
}

haproxy_start() { # DIR S3PORT:ADMINPORT...
  local dir=${1:?usage: haproxy_start DIR S3PORT:ADMINPORT...} port
  shift
  [ $# -ge 1 ] || { echo "haproxy_start: no backend given" >&2; return 1; }
  command -v haproxy >/dev/null || { echo "haproxy_start: haproxy not installed (haproxy_install)" >&2; return 1; }
  mkdir -p "$dir" && dir=$(cd "$dir" && pwd) || return 1
  port=$(free_port) || return 1
  haproxy_config "$port" "$@" >"$dir/haproxy.cfg" || return 1
  haproxy -c -q -f "$dir/haproxy.cfg" || return 1
  haproxy -f "$dir/haproxy.cfg" -db >"$dir/haproxy.log" 2>&1 &
  HAPROXY_PID=$!
  HAPROXY_PORT=$port
  HAPROXY_ENDPOINT="http://127.0.0.1:$port"
  export HAPROXY_PID HAPROXY_PORT HAPROXY_ENDPOINT
  # any HTTP answer (an unsigned request is refused by the gateway, or 503 while no instance is up)
  if ! wait_http "$HAPROXY_ENDPOINT/" 30; then
    tail -20 "$dir/haproxy.log" >&2
    haproxy_stop
    return 1
  fi
  echo "HAProxy on $HAPROXY_ENDPOINT in front of $# instance(s), pid $HAPROXY_PID (config $dir/haproxy.cfg)"
}

haproxy_stop() {
  local pid=${HAPROXY_PID:-}
  [ -n "$pid" ] || return 0
  stop_pid "$pid"
  wait "$pid" 2>/dev/null || true
  unset HAPROXY_PID HAPROXY_PORT HAPROXY_ENDPOINT
  return 0
}
