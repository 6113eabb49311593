#!/usr/bin/env bash
# Test bed, certificates (called by ops/testbed-pgtls.sh and ops/testbed-smtp.sh): the
# test CA and what it signed for PostgreSQL, made once under $VISITAS_TESTBED/pgtls (all
# again if any is missing; a script that signs with the CA must check that its
# certificate still verifies: ops/testbed-smtp.sh does). Idempotent. Files:
#   ca.crt, ca.key          the test CA (EC P-256, ten years)
#   other-ca.crt            a second CA, that signed nothing (the "wrong CA" of the tests)
#   server.crt, server.key  PostgreSQL's certificate, for localhost and 127.0.0.1
#   client.crt, client.key  a client certificate (CN visitas_tls_cert) for `cert` logins
set -euo pipefail

TB=${VISITAS_TESTBED:-/var/tmp/visitas-testbed}
DIR=$TB/pgtls

command -v openssl >/dev/null || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
}
mkdir -p "$DIR"
chmod 755 "$TB" "$DIR"

sign() { # NAME SUBJECT EXTENSIONS CA: a key and a certificate signed by CA
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout "$DIR/$1.key" -out "$DIR/$1.csr" -subj "$2" 2>/dev/null
    openssl x509 -req -in "$DIR/$1.csr" -CA "$DIR/$4.crt" -CAkey "$DIR/$4.key" -CAcreateserial \
        -days 3650 -out "$DIR/$1.crt" -extfile <(printf '%s\n' "$3") 2>/dev/null
    rm -f "$DIR/$1.csr"
}
ca() { # NAME SUBJECT: a self-signed CA
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout "$DIR/$1.key" -out "$DIR/$1.crt" -subj "$2" -days 3650 \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}
files=(ca.crt ca.key other-ca.crt server.crt server.key client.crt client.key)
missing=0
for f in "${files[@]}"; do [ -f "$DIR/$f" ] || missing=1; done
if [ $missing = 1 ]; then
    echo "testbed: making the TLS test certificates in $DIR"
    ca ca "/CN=visitas test CA"
    ca other-ca "/CN=visitas other CA (signed nothing)"
    sign server "/CN=localhost" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1" ca
    sign client "/CN=visitas_tls_cert" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth" ca
fi
chmod 600 "$DIR/ca.key" "$DIR/other-ca.key" "$DIR/client.key" "$DIR/server.key"
