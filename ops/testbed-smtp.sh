#!/usr/bin/env bash
# Test bed, SMTP part (for the e-mail alerts' tests; not called by ops/testbed.sh yet): a
# real SMTP server on the loopback, ops/smtp_sink.py (aiosmtpd 1.4.6 in a venv), with a
# certificate for localhost and 127.0.0.1 signed by the test CA ($TB/pgtls/ca.crt, made
# by ops/testbed-ca.sh). Every port listens on 127.0.0.1 and on 127.0.0.2 (where the
# certificate's names do not match: the host-name mismatch test):
#   2525  STARTTLS offered, not required; AUTH PLAIN/LOGIN after STARTTLS only, optional
#   2587  submission: STARTTLS required, then AUTH required
#   2465  implicit TLS (SMTPS); AUTH optional
#   2526  plain: no TLS, no AUTH (the loopback-only tls = "none" case)
# Each message received is kept as $TB/smtp/mail/<port>/<name>.eml and <name>.json (the
# envelope, TLS and AUTH user), renamed into place, the .json last: docs/testbed.md.
#
# Usage: ops/testbed-smtp.sh [up|start|stop|restart|status|clear|check]
#   up       (default) install what is missing, make the files, start the server unless
#            it runs (restart it if ops/smtp_sink.py or its arguments changed), wait until
#            every port answers EHLO, print the facts
#   start    start it if it is not running and wait for EHLO (after stop: "server back")
#   stop     stop it and wait until no port answers (the "SMTP server is down" of a test)
#   restart  stop, then start
#   status   "running pid N ..." and exit 0, or "stopped" and exit 3
#   clear    remove every kept message (not while a test reads them)
#   check    up, then send through every port with smtplib and the test CA and see the
#            messages arrive as files, and the refusals (ops/smtp_check.py); then stop,
#            see connections refused, start, and all that again
# Files under $VISITAS_TESTBED/smtp:
#   env                     KEY=VALUE facts (ports, CA, user, password file, mail dir)
#   user, password          the one login AUTH accepts (visitas, random hex)
#   server.crt, server.key  the server's certificate (DNS:localhost, IP:127.0.0.1)
#   mail/<port>/            the messages; smtp.log, smtp.pid, ready.json; venv/
set -euo pipefail

TB=${VISITAS_TESTBED:-/var/tmp/visitas-testbed}
DIR=$TB/smtp
HERE=$(cd "$(dirname "$0")" && pwd)
PORT_STARTTLS=${VISITAS_SMTP_STARTTLS_PORT:-2525}
PORT_SUBMISSION=${VISITAS_SMTP_SUBMISSION_PORT:-2587}
PORT_TLS=${VISITAS_SMTP_TLS_PORT:-2465}
PORT_PLAIN=${VISITAS_SMTP_PLAIN_PORT:-2526}
HOSTS=(127.0.0.1 127.0.0.2)
SMTP_USER=visitas
CA=$TB/pgtls/ca.crt
VENV=$DIR/venv
PY=$VENV/bin/python
MAIL=$DIR/mail

now() { date +%s%N; }
since() { local ms=$((($(now) - $1) / 1000000)); printf '%d.%03d s' $((ms / 1000)) $((ms % 1000)); }

install() {
    local need_apt=()
    [ -x /usr/bin/python3 ] || need_apt+=(python3)
    dpkg-query -W -f='${Status}' python3-venv 2>/dev/null | grep -q 'ok installed' || need_apt+=(python3-venv)
    command -v openssl >/dev/null || need_apt+=(openssl)
    if [ ${#need_apt[@]} -gt 0 ]; then
        echo "testbed: installing ${need_apt[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
    fi
    mkdir -p "$DIR"
    chmod 755 "$DIR"
    # The venv, made again if its interpreter is gone (Python upgraded, say); the
    # packages, pinned with their hashes, installed again when the pins change.
    if ! "$PY" -c '' 2>/dev/null; then
        rm -rf "$VENV"
        /usr/bin/python3 -m venv "$VENV"
    fi
    if ! cmp -s "$HERE/smtp-requirements.txt" "$VENV/installed-requirements.txt"; then
        echo "testbed: installing aiosmtpd into $VENV"
        "$PY" -m pip install -q --disable-pip-version-check --require-hashes --only-binary :all: \
            -r "$HERE/smtp-requirements.txt"
        cp "$HERE/smtp-requirements.txt" "$VENV/installed-requirements.txt"
    fi
}

certs() {
    "$HERE/testbed-ca.sh"
    # The server's certificate, signed again when it is missing or no longer verifies
    # against the CA (ops/testbed-ca.sh makes a new CA when any of its files is missing).
    if [ ! -f "$DIR/server.key" ] || ! openssl verify -CAfile "$CA" "$DIR/server.crt" >/dev/null 2>&1; then
        echo "testbed: signing the SMTP server's certificate with $CA"
        openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
            -keyout "$DIR/server.key" -out "$DIR/server.csr" -subj "/CN=localhost" 2>/dev/null
        openssl x509 -req -in "$DIR/server.csr" -CA "$CA" -CAkey "$TB/pgtls/ca.key" -CAcreateserial \
            -days 3650 -out "$DIR/server.crt" -extfile <(printf '%s\n' \
            "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
            "extendedKeyUsage=serverAuth" "subjectAltName=DNS:localhost,IP:127.0.0.1") 2>/dev/null
        rm -f "$DIR/server.csr"
    fi
    chmod 600 "$DIR/server.key"
    [ -s "$DIR/password" ] || openssl rand -hex 16 > "$DIR/password"
    chmod 644 "$DIR/password"
    echo "$SMTP_USER" > "$DIR/user"
}

args() { # the server's arguments, one a line
    local h
    for h in "${HOSTS[@]}"; do
        printf '%s\n' --listen "starttls:$h:$PORT_STARTTLS" --listen "submission:$h:$PORT_SUBMISSION" \
            --listen "tls:$h:$PORT_TLS" --listen "plain:$h:$PORT_PLAIN"
    done
    printf '%s\n' --mail-dir "$MAIL" --cert "$DIR/server.crt" --key "$DIR/server.key" \
        --user "$SMTP_USER" --password-file "$DIR/password" --ready-file "$DIR/ready.json"
}

files() {
    cp "$HERE/smtp_sink.py" "$DIR/smtp_sink.py.new"
    mv "$DIR/smtp_sink.py.new" "$DIR/smtp_sink.py"
    args > "$DIR/args.new"
    mv "$DIR/args.new" "$DIR/args"
    mkdir -p "$MAIL"
    for p in "$PORT_STARTTLS" "$PORT_SUBMISSION" "$PORT_TLS" "$PORT_PLAIN"; do mkdir -p "$MAIL/$p"; done
    cat > "$DIR/env" <<ENV
SMTP_HOST=localhost
SMTP_STARTTLS_PORT=$PORT_STARTTLS
SMTP_SUBMISSION_PORT=$PORT_SUBMISSION
SMTP_TLS_PORT=$PORT_TLS
SMTP_PLAIN_PORT=$PORT_PLAIN
SMTP_MISMATCH_HOST=127.0.0.2
SMTP_CA_FILE=$CA
SMTP_OTHER_CA_FILE=$TB/pgtls/other-ca.crt
SMTP_USER=$SMTP_USER
SMTP_PASSWORD_FILE=$DIR/password
SMTP_MAIL_DIR=$MAIL
ENV
}

pid() { cat "$DIR/smtp.pid" 2>/dev/null || true; }
# A process that has exited but is not reaped yet (a zombie: the server's parent is PID
# 1 once this script is gone, and it may reap late) does not count.
alive() { [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]; }
running() { # the recorded process lives and is the server (not a recycled pid)
    local p
    p=$(pid)
    [ -n "$p" ] && alive "$p" && tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q 'smtp_sink\.py'
}
# What the running server was started with, to restart it when that changed.
fingerprint() { cat "$DIR/smtp_sink.py" "$DIR/args" "$DIR/server.crt" "$DIR/password" | sha256sum | cut -d' ' -f1; }

ehlo_all() { # every port answers EHLO (over TLS on the implicit one, verified with the CA)
    "$PY" - "$CA" "$PORT_STARTTLS" "$PORT_SUBMISSION" "$PORT_TLS" "$PORT_PLAIN" "${HOSTS[@]}" <<'PY'
import smtplib, ssl, sys
ca, starttls, submission, tls, plain, *hosts = sys.argv[1:]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False  # 127.0.0.2 is not in the certificate: the mismatch host
for host in hosts:
    for port in (starttls, submission, plain):
        with smtplib.SMTP(host, int(port), timeout=5) as s:
            code, _ = s.ehlo()
            assert code == 250, (host, port, code)
    with smtplib.SMTP_SSL(host, int(tls), timeout=5, context=ctx) as s:
        code, _ = s.ehlo()
        assert code == 250, (host, tls, code)
PY
}

start() {
    if running; then
        return 0
    fi
    rm -f "$DIR/ready.json"
    local -a a
    mapfile -t a < "$DIR/args"
    # Its own session, its output to the log and nothing inherited (not the lock, fd 9):
    # a test that runs `start` and waits for the script's output is not held by it.
    # Its pid is the one it writes in ready.json (setsid --fork: $! would be setsid's).
    local before
    touch "$DIR/smtp.log"
    before=$(wc -c < "$DIR/smtp.log")
    setsid --fork "$PY" "$DIR/smtp_sink.py" "${a[@]}" >> "$DIR/smtp.log" 2>&1 < /dev/null 9>&-
    fingerprint > "$DIR/started-with"
    for _ in $(seq 200); do
        [ -f "$DIR/ready.json" ] && break
        # It failed (a port taken, say): its traceback is in the log already.
        tail -c +"$((before + 1))" "$DIR/smtp.log" | grep -q '^Traceback' && break
        sleep 0.05
    done
    [ -f "$DIR/ready.json" ] || { echo "testbed: the SMTP server did not start; see $DIR/smtp.log:" >&2; tail -c +"$((before + 1))" "$DIR/smtp.log" | tail -n 20 >&2; exit 1; }
    sed -n 's/^{"pid": \([0-9]*\),.*/\1/p' "$DIR/ready.json" > "$DIR/smtp.pid"
    running || { echo "testbed: the SMTP server's pid is not in $DIR/ready.json" >&2; exit 1; }
    ehlo_all || { echo "testbed: the SMTP server does not answer EHLO; see $DIR/smtp.log" >&2; exit 1; }
}

stop() {
    local p
    if running; then
        p=$(pid)
        kill -TERM "$p"
        for _ in $(seq 200); do alive "$p" || break; sleep 0.02; done
        if alive "$p"; then kill -KILL "$p"; sleep 0.1; fi
    fi
    rm -f "$DIR/smtp.pid" "$DIR/ready.json"
    # Down means down: no port may still accept a connection.
    /usr/bin/python3 - "$PORT_STARTTLS" "$PORT_SUBMISSION" "$PORT_TLS" "$PORT_PLAIN" <<'PY' 2>/dev/null || { echo "testbed: an SMTP port still answers after stop" >&2; exit 1; }
import socket, sys
for port in sys.argv[1:]:
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", int(port)))
    except ConnectionRefusedError:
        continue
    finally:
        s.close()
    sys.exit(1)
PY
}

status() {
    if running; then
        echo "testbed: SMTP server running, pid $(pid), ports $PORT_STARTTLS (STARTTLS)" \
            "$PORT_SUBMISSION (submission) $PORT_TLS (TLS) $PORT_PLAIN (plain)," \
            "$(find "$MAIL" -name '*.json' -not -path '*/.tmp/*' | wc -l) messages in $MAIL"
    else
        echo "testbed: SMTP server stopped"
        return 3
    fi
}

clear_mail() {
    [ -d "$MAIL" ] || return 0
    find "$MAIL" -mindepth 2 -type f \( -name '*.eml' -o -name '*.json' -o -path '*/.tmp/*' \) -delete
    echo "testbed: SMTP mail directories emptied ($MAIL)"
}

facts() {
    echo "testbed: SMTP on localhost (127.0.0.1; 127.0.0.2 for the name mismatch):" \
        "$PORT_STARTTLS STARTTLS (AUTH optional), $PORT_SUBMISSION STARTTLS+AUTH required," \
        "$PORT_TLS implicit TLS, $PORT_PLAIN plain; CA $CA; user $SMTP_USER, password in" \
        "$DIR/password; mail in $MAIL/<port>/; facts in $DIR/env"
}

up() {
    local t0 fp
    t0=$(now)
    install
    certs
    files
    fp=$(fingerprint)
    if running && [ "$(cat "$DIR/started-with" 2>/dev/null)" != "$fp" ]; then
        echo "testbed: ops/smtp_sink.py, its arguments, certificate or password changed: restarting the SMTP server"
        stop
    fi
    start
    echo "testbed: SMTP server up in $(since "$t0") (pid $(pid))"
    facts
}

# One at a time: two tests calling start (or stop) together must not race.
mkdir -p "$DIR"
exec 9> "$DIR/lock"
flock 9

case "${1:-up}" in
up) up ;;
start)
    if [ -x "$PY" ] && [ -f "$DIR/args" ] && [ -f "$DIR/server.crt" ]; then
        t0=$(now); start; echo "testbed: SMTP server started in $(since "$t0") (pid $(pid))"
    else
        up
    fi
    ;;
stop) t0=$(now); stop; echo "testbed: SMTP server stopped in $(since "$t0")" ;;
restart) stop; up ;;
status) status ;;
clear) clear_mail ;;
check)
    up
    t0=$(now)
    "$PY" "$HERE/smtp_check.py" "$DIR/env"
    # The server down, as a test makes it: refused at once, then back with the same files.
    t1=$(now)
    stop
    if "$PY" -c 'import smtplib, sys; smtplib.SMTP("localhost", int(sys.argv[1]), timeout=5)' "$PORT_STARTTLS" 2>/dev/null; then
        echo "testbed: port $PORT_STARTTLS answered while the SMTP server was stopped" >&2
        exit 1
    fi
    start
    echo "testbed: SMTP server stopped (connections refused) and started again in $(since "$t1") (pid $(pid))"
    "$PY" "$HERE/smtp_check.py" "$DIR/env" | tail -n 1
    echo "testbed: SMTP check passed in $(since "$t0")"
    ;;
*) echo "usage: $0 [up|start|stop|restart|status|clear|check]" >&2; exit 2 ;;
esac
