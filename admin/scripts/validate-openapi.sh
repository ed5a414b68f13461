#!/usr/bin/env bash
# Validates an OpenAPI document with openapi-spec-validator (PyPI), installed on
# first use into the repository's .cache/venv. Usage: validate-openapi.sh FILE
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/.cache/venv"
if [ ! -x "$venv/bin/openapi-spec-validator" ]; then
  python3 -m venv "$venv" >/dev/null
  "$venv/bin/pip" install --quiet 'openapi-spec-validator>=0.7,<0.9' >&2
fi
exec "$venv/bin/openapi-spec-validator" "$1"
