#!/usr/bin/env bash
# Test bed, TLS part (called by ops/testbed.sh): a second, private PostgreSQL cluster
# `visitas_tls` on 127.0.0.1:5433 (and 127.0.0.2, for the host-name mismatch test)
# that accepts only TLS connections (`hostssl`), with a server certificate for
# `localhost` and 127.0.0.1 signed by a test CA made here, and a second CA that signed
# nothing. The main cluster on 5432 is made plain (ssl = off): the "server without
# TLS" of the tests. Idempotent. Files under $VISITAS_TESTBED/pgtls:
#   ca.crt, other-ca.crt    the CA that signed the server's certificate, and one that did not
#   client.crt, client.key  a client certificate (CN visitas_tls_cert) for `cert` logins
#   password                the password of the role visitas_tls (scram-sha-256)
#   port                    the cluster's port
set -euo pipefail

TB=${VISITAS_TESTBED:-/var/tmp/visitas-testbed}
PORT=${VISITAS_PGTLS_PORT:-5433}
DIR=$TB/pgtls
NAME=visitas_tls
VERSION=$(ls /etc/postgresql | sort -V | tail -n 1)
ETC=/etc/postgresql/$VERSION

command -v openssl >/dev/null || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
}
mkdir -p "$DIR"
chmod 755 "$DIR"

# Certificates: EC P-256, ten years. Made once; all again if any is missing.
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
chown postgres: "$DIR/server.key" "$DIR/server.crt"
chmod 600 "$DIR/server.key" "$DIR/ca.key" "$DIR/other-ca.key"
chmod 600 "$DIR/client.key"
[ -s "$DIR/password" ] || openssl rand -hex 16 > "$DIR/password"
chmod 644 "$DIR/password"
echo "$PORT" > "$DIR/port"

# The cluster, TLS only.
if ! pg_lsclusters -h | awk -v v="$VERSION" -v n="$NAME" '$1 == v && $2 == n { found = 1 } END { exit !found }'; then
    echo "testbed: creating PostgreSQL cluster $VERSION/$NAME on port $PORT"
    pg_createcluster "$VERSION" "$NAME" -p "$PORT" >/dev/null
fi
conf=$ETC/$NAME/conf.d/visitas-tls.conf
want_conf="# Written by ops/testbed-pgtls.sh.
port = $PORT
listen_addresses = '127.0.0.1,127.0.0.2'
ssl = on
ssl_cert_file = '$DIR/server.crt'
ssl_key_file = '$DIR/server.key'
ssl_ca_file = '$DIR/ca.crt'
password_encryption = 'scram-sha-256'
log_connections = on"
want_hba="# Written by ops/testbed-pgtls.sh: TLS only (hostssl), nothing in clear over TCP.
local   all  postgres                         peer
hostssl all  visitas_tls_cert  127.0.0.1/32   cert
hostssl all  all               127.0.0.1/32   scram-sha-256
hostssl all  all               127.0.0.2/32   scram-sha-256"
changed=0
[ "$(cat "$conf" 2>/dev/null)" = "$want_conf" ] || { printf '%s\n' "$want_conf" > "$conf"; changed=1; }
[ "$(cat "$ETC/$NAME/pg_hba.conf")" = "$want_hba" ] || { printf '%s\n' "$want_hba" > "$ETC/$NAME/pg_hba.conf"; changed=1; }
chown postgres: "$conf" "$ETC/$NAME/pg_hba.conf"
if pg_isready -q -h 127.0.0.1 -p "$PORT"; then
    [ $changed = 0 ] || pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$NAME" restart
else
    pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$NAME" start
fi
for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p "$PORT" && break; sleep 1; done
pg_isready -q -h 127.0.0.1 -p "$PORT" || { echo "testbed: the TLS cluster is not reachable on 127.0.0.1:$PORT" >&2; exit 1; }

tls_psql() { runuser -u postgres -- psql -h /var/run/postgresql -p "$PORT" -d postgres -v ON_ERROR_STOP=1 -Atq "$@"; }
tls_psql -v pw="$(cat "$DIR/password")" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN SUPERUSER', r) FROM unnest(ARRAY['visitas_tls', 'visitas_tls_cert']) r
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) \gexec
ALTER ROLE visitas_tls PASSWORD :'pw';
SQL
# Test databases left by earlier runs.
tls_psql -c "SELECT datname FROM pg_database WHERE datname LIKE 'visitas_test_%'" |
    while read -r db; do tls_psql -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true; done

# The main cluster is the plain one: no TLS (Debian turns it on with a snakeoil certificate).
main_conf=$ETC/main/conf.d/visitas-plain.conf
if [ -d "$ETC/main/conf.d" ] && [ "$(cat "$main_conf" 2>/dev/null)" != "ssl = off" ]; then
    echo "ssl = off" > "$main_conf"
    chown postgres: "$main_conf"
    pg_ctlcluster --skip-systemctl-redirect "$VERSION" main reload
fi
# Prove the chain: the CA verifies the server, and a plain connection is refused.
PGSSLMODE=verify-full PGSSLROOTCERT=$DIR/ca.crt PGPASSWORD=$(cat "$DIR/password") \
    psql -h 127.0.0.1 -p "$PORT" -U visitas_tls -d postgres -Atqc 'SELECT 1' >/dev/null
if PGSSLMODE=disable PGPASSWORD=$(cat "$DIR/password") \
    psql -h 127.0.0.1 -p "$PORT" -U visitas_tls -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1; then
    echo "testbed: the TLS cluster accepted a connection without TLS" >&2
    exit 1
fi
echo "testbed: PostgreSQL over TLS only on 127.0.0.1:$PORT (CA $DIR/ca.crt)"
