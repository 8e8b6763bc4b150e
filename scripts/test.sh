#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need (ZooKeeper, from
# Debian's packages), then runs every test of every crate: unit, integration, process and
# example tests, and doc tests. Each ZooKeeper test starts and stops its own private server.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/zk.sh install

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --all-targets --no-fail-fast 2>&1 | tee "$log" || status=1
cargo test --workspace --doc 2>&1 | tee -a "$log" || status=1

# One closing line over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "mprpc: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
