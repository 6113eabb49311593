#!/usr/bin/env bash
# Test bed, TLS part (called by ops/testbed.sh): a second, private PostgreSQL cluster
# `visitas_tls` on 127.0.0.1:5433 (and 127.0.0.2, for the host-name mismatch test)
# that accepts only TLS connections (`hostssl`), with a server certificate for
# `localhost` and 127.0.0.1 signed by the test CA (ops/testbed-ca.sh makes them), and a
# second CA that signed nothing. The main cluster on 5432 is made plain (ssl = off):
# the "server without TLS" of the tests. Idempotent. Files under $VISITAS_TESTBED/pgtls:
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

# The test CA and the certificates it signed (ca.crt ... client.key above).
"$(dirname "$0")/testbed-ca.sh"
chown postgres: "$DIR/server.key" "$DIR/server.crt"
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
    # Exit 2 is "already running" (still starting, say): then wait for it below.
    pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$NAME" start || [ $? = 2 ]
fi
for _ in $(seq 60); do pg_isready -q -h 127.0.0.1 -p "$PORT" && break; sleep 1; done
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
