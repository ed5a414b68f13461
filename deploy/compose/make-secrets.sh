#!/usr/bin/env bash
# Makes what deploy/compose/compose.yaml mounts, in deploy/compose/secrets/: a private CA, the
# gateway's certificate (name "vaultgate"), the load balancer's (localhost), the master key, and
# the backend credentials shared with SeaweedFS. For a trial; in production use your CA and
# keep the master key in a secret store (docs/DEPLOYMENT.md). Refuses to overwrite.
# Secret files are mode 0440, group 65532 (the gateway's group in the image) when run as root;
# otherwise run `sudo chgrp -R 65532 deploy/compose/secrets` afterwards.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
S=secrets
[ -e "$S" ] && { echo "make-secrets.sh: $PWD/$S exists; remove it first" >&2; exit 1; }
umask 077
mkdir -p "$S/tls" "$S/lb"
ec() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "$@" 2>/dev/null; }
ec -x509 -days 3650 -subj "/CN=Vaultgate compose CA" -keyout "$S/ca.key" -out "$S/ca.crt"
issue() { # NAME CN DIR
  ec -subj "/CN=$2" -addext "subjectAltName=DNS:$2" -keyout "$3/tls.key" -out "$S/$1.csr"
  openssl x509 -req -in "$S/$1.csr" -CA "$S/ca.crt" -CAkey "$S/ca.key" -CAcreateserial -days 90 \
    -copy_extensions copy -out "$3/tls.crt" 2>/dev/null
}
issue vaultgate vaultgate "$S/tls"
issue lb localhost "$S/lb"
cat "$S/lb/tls.crt" "$S/lb/tls.key" >"$S/lb/lb.pem"
cp "$S/ca.crt" "$S/lb/ca.crt"
openssl rand -hex 32 | tr -d '\n' >"$S/master_key"
secret=$(openssl rand -hex 24)
printf '%s' "$secret" >"$S/backend_secret_key"
cat >"$S/seaweedfs-s3.json" <<JSON
{"identities":[{"name":"vaultgate","credentials":[{"accessKey":"vaultgate","secretKey":"$secret"}],
  "actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
chmod 0750 "$S" "$S/tls" "$S/lb"
chmod 0440 "$S"/master_key "$S"/backend_secret_key "$S"/seaweedfs-s3.json "$S"/tls/* "$S"/lb/*
chmod 0444 "$S/ca.crt" "$S/tls/tls.crt" "$S/lb/ca.crt"
if [ "$(id -u)" = 0 ]; then chgrp -R 65532 "$S"; else
  echo "note: run 'sudo chgrp -R 65532 $PWD/$S' so the containers (uid/gid 65532, haproxy 99) can read them" >&2
fi
echo "made $PWD/$S (CA: $S/ca.crt; the master key is in $S/master_key: back it up, it decrypts everything)"
