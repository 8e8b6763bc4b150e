#!/usr/bin/env bash
# Makes a CA and certificates for a test deployment of mprpc, with openssl:
#
#   scripts/make-certs.sh DIR [PROVIDER_NAME ...]
#
# DIR/ca.pem, DIR/ca.key         the CA (keep ca.key offline in anything but a test)
# DIR/provider.pem, .key         a provider certificate for localhost, 127.0.0.1 and each
#                                PROVIDER_NAME given (DNS names or IP addresses)
# DIR/client.pem, .key           a client certificate, CN=client (for mutual TLS)
#
# Certificates are valid for 365 days, keys are ECDSA P-256. Existing files are not
# overwritten: remove them first to make new ones.
set -euo pipefail

dir=${1:?usage: make-certs.sh DIR [PROVIDER_NAME ...]}
shift
mkdir -p "$dir"
cd "$dir"
for f in ca.pem ca.key provider.pem provider.key client.pem client.key; do
  if [[ -e $f ]]; then
    echo "make-certs: $dir/$f exists; remove the old files first" >&2
    exit 1
  fi
done

san="DNS:localhost,IP:127.0.0.1"
for name in "$@"; do
  if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then san="$san,IP:$name"; else san="$san,DNS:$name"; fi
done

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; chmod 600 "$1"; }

key ca.key
openssl req -x509 -new -key ca.key -sha256 -days 365 -subj "/CN=mprpc test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out ca.pem

issue() { # name subject extensions
  key "$1.key"
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 -days 365 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

issue provider "/CN=mprpc provider" \
  "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$san"
issue client "/CN=client" \
  "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
rm -f ca.srl

echo "made in $dir: ca.pem ca.key provider.pem provider.key client.pem client.key (names: $san)"
