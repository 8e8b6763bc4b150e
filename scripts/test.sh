#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, then runs every test
# of every crate (unit, integration, process and example tests, doc tests).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -x scripts/zk.sh ]; then
    # The ZooKeeper registry's tests start their own private servers from this install.
    scripts/zk.sh install
fi

cargo test --workspace --all-targets --no-fail-fast
cargo test --workspace --doc
