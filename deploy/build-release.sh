#!/usr/bin/env bash
# Builds the vaultgate binary the way every release artifact is built: the container image's build
# stage runs this script, and CI runs it too (conformance/run, step "deploy artifacts"), so the
# image cannot drift from what is tested. The commit and build date are stamped into
# `vaultgate --version`.
# Usage: deploy/build-release.sh [--profile release|dev] [--out DIR]
#   --profile  cargo profile (default release; CI uses dev to stay inside its time budget:
#              same command, same flags, unoptimised)
#   --out DIR  copy the binary to DIR/vaultgate (default: leave it in the cargo target dir)
# Env: CARGO_TARGET_DIR is honoured; VAULTGATE_BUILD_COMMIT overrides the commit (e.g. a build
#      argument in the image, where there is no .git).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROFILE=release
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) PROFILE=${2:?--profile needs a value}; shift 2 ;;
    --out) OUT=${2:?--out needs a directory}; shift 2 ;;
    -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "build-release.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$PROFILE" in release|dev) ;; *) echo "build-release.sh: --profile is release or dev" >&2; exit 2 ;; esac

cd "$ROOT"
if [ -z "${VAULTGATE_BUILD_COMMIT:-}" ]; then
  VAULTGATE_BUILD_COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
  if [ "$VAULTGATE_BUILD_COMMIT" != unknown ] && ! git diff --quiet HEAD -- 2>/dev/null; then
    VAULTGATE_BUILD_COMMIT="$VAULTGATE_BUILD_COMMIT-dirty"
  fi
fi
VAULTGATE_BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
export VAULTGATE_BUILD_COMMIT VAULTGATE_BUILD_DATE

# --locked: exactly the dependency versions of Cargo.lock, as tested
cargo build --locked --profile "$PROFILE" -p vaultgate --bin vaultgate

dir=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
bin="${CARGO_TARGET_DIR:-$ROOT/target}/$dir/vaultgate"
"$bin" --version
if [ -n "$OUT" ]; then
  mkdir -p "$OUT"
  cp "$bin" "$OUT/vaultgate"
  echo "binary: $OUT/vaultgate"
else
  echo "binary: $bin"
fi
