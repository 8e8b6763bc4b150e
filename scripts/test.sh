#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need from Debian's
# packages (ZooKeeper; Chromium and tesseract for the admin page test) and PyPI (grpcio, for
# the gRPC test), then runs every test
# of every crate: unit, integration, process and example tests, and doc tests. Each ZooKeeper
# test starts and stops its own private server.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/zk.sh install

# The admin page test (tests/tests/admin.rs) renders /status in headless Chromium and reads
# the screenshot back with OCR: it needs chromium, tesseract and a font, from Debian. The TLS
# tests run scripts/make-certs.sh (openssl) and read the admin port over HTTPS with curl.
install_tools() {
    local missing=()
    command -v openssl >/dev/null || missing+=(openssl)
    command -v curl >/dev/null || missing+=(curl ca-certificates)
    [[ -x /usr/bin/chromium ]] || missing+=(chromium)
    [[ -x /usr/bin/tesseract ]] || missing+=(tesseract-ocr tesseract-ocr-eng)
    [[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || missing+=(fonts-dejavu-core)
    ((${#missing[@]} == 0)) && return 0
    if [[ $(id -u) -ne 0 ]]; then
        echo "test.sh: ${missing[*]} missing and not root: the tests that need them will fail" >&2
        return 0
    fi
    echo "test.sh: installing ${missing[*]}" >&2
    local install=(apt-get install -y -q --no-install-recommends "${missing[@]}")
    export DEBIAN_FRONTEND=noninteractive
    if ! "${install[@]}" >&2; then
        apt-get update -q >&2 || true
        "${install[@]}" >&2 || echo "test.sh: could not install ${missing[*]}: the tests that need them will fail" >&2
    fi
}
install_tools

# The gRPC tests (tests/tests/grpc.rs, all_protocols.rs) call a provider with Python's grpcio
# and grpcio-reflection, from PyPI.
if ! python3 -c 'import grpc, grpc_reflection' 2>/dev/null; then
    echo "test.sh: installing grpcio and grpcio-reflection from PyPI" >&2
    python3 -m pip install --quiet --disable-pip-version-check grpcio grpcio-reflection >&2 ||
        echo "test.sh: could not install grpcio: the gRPC tests will fail" >&2
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --all-targets --no-fail-fast 2>&1 | tee "$log" || status=1
cargo test --workspace --doc 2>&1 | tee -a "$log" || status=1

# One closing line over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "mprpc: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
