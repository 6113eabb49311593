#!/usr/bin/env bash
# Test bed, high-availability part: a real two-node PostgreSQL cluster run by Patroni
# for the failover tests. One etcd (the DCS) on 127.0.0.1:2389 (peers 2390), two Patroni
# nodes visitas-ha-1 and visitas-ha-2 (PostgreSQL on 127.0.0.1:5441 and 5442, Patroni's
# REST API on 8441 and 8442) with synchronous replication, and HAProxy on 127.0.0.1:5440
# sending every connection to the current primary only (health check `OPTIONS /primary`
# on the REST ports; sessions cut when the primary is marked down). Trust authentication
# on loopback, as the main cluster on 5432: connect as postgres, no password.
# Installs what is missing (Debian's etcd-server, haproxy, python3-venv, PostgreSQL;
# Patroni from PyPI in a venv); no systemd: etcd, Patroni and HAProxy run as background
# daemons with pid files and logs under $VISITAS_TESTBED/ha. See docs/testbed-ha.md.
#   ops/testbed-ha.sh [up]               start (or restart) everything; idempotent
#   ops/testbed-ha.sh status             which node leads, replication, HAProxy's view
#   ops/testbed-ha.sh kill-primary       SIGKILL the primary's Patroni, postmaster, backends
#   ops/testbed-ha.sh kill-node NAME     the same for any node (e.g. the synchronous standby)
#   ops/testbed-ha.sh restart-node NAME  start a killed node again (it rejoins as a replica)
#   ops/testbed-ha.sh switchover         planned switchover to the synchronous standby
#   ops/testbed-ha.sh wait-leader [SECS] until HAProxy serves a writable primary (default 90)
#   ops/testbed-ha.sh wait-healthy [SECS] until a primary and every running node in sync (120)
#   ops/testbed-ha.sh down | reset       stop everything (data kept) | stop and remove the data
# Files under $VISITAS_TESTBED/ha: port (5440), url, NAME/{patroni.yml,patroni.log,data},
# etcd.log, haproxy.{cfg,log,err}, last-kill ("NAME EPOCH" of the last kill-primary).
set -euo pipefail

TB=${VISITAS_TESTBED:-/var/tmp/visitas-testbed}
HA=$TB/ha
VENV=${VISITAS_PATRONI_VENV:-/opt/visitas-patroni}
PATRONI_VERSION=4.1.5
SCOPE=visitas-ha
HAPROXY_PORT=5440
STATS_PORT=8440
ETCD_PORT=2389
ETCD_PEER_PORT=2390
NODES=(visitas-ha-1 visitas-ha-2)
declare -A PG_PORT=([visitas-ha-1]=5441 [visitas-ha-2]=5442)
declare -A REST_PORT=([visitas-ha-1]=8441 [visitas-ha-2]=8442)
PY=$VENV/bin/python

say() { echo "testbed-ha: $*"; }
die() { echo "testbed-ha: $*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# ---------------------------------------------------------------- installation
install() {
    local need_apt=()
    [ -x /usr/bin/etcd ] || need_apt+=(etcd-server)
    [ -x /usr/sbin/haproxy ] || need_apt+=(haproxy)
    /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
    ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need_apt+=(postgresql)
    command -v psql >/dev/null || need_apt+=(postgresql-client)
    command -v setpriv >/dev/null || need_apt+=(util-linux)
    command -v ps >/dev/null || need_apt+=(procps)
    if [ ${#need_apt[@]} -gt 0 ]; then
        say "installing ${need_apt[*]}"
        mkdir -p "$TB"
        apt-get update -qq
        # policy-rc.d keeps the packages' own services from starting: this script runs them.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >"$TB/ha-apt.log" 2>&1 ||
            { cat "$TB/ha-apt.log" >&2; die "apt-get could not install ${need_apt[*]}"; }
    fi
    if ! [ -x "$VENV/bin/patroni" ] || ! compgen -G "$VENV/lib/python3*/site-packages/patroni-$PATRONI_VERSION.dist-info" >/dev/null; then
        say "installing Patroni $PATRONI_VERSION in $VENV"
        rm -rf "$VENV"
        /usr/bin/python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q --disable-pip-version-check \
            "patroni[etcd3,psycopg2-binary]==$PATRONI_VERSION" >"$TB/ha-pip.log" 2>&1 ||
            { cat "$TB/ha-pip.log" >&2; rm -rf "$VENV"; die "pip could not install Patroni"; }
        chmod -R a+rX "$VENV" # Patroni runs as postgres
    fi
}
pg_bin() { ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1; }

# ---------------------------------------------------------------- helpers
# Patroni's REST API, HAProxy's stats: small Python on the venv's interpreter.
HELPER=$(cat <<'PY'
import json, os, socket, sys, urllib.request
nodes = [n.split(":") for n in os.environ["HA_NODES"].split()]
def call(port, path, method="GET", body=None, timeout=2):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)
def cluster():
    for name, port in nodes:
        status, text = call(port, "/cluster")
        if status == 200:
            return json.loads(text)
    return None
def leader(c):
    for m in (c or {}).get("members", []):
        if m.get("role") in ("leader", "primary") and m.get("state") == "running":
            return m
    return None
mode = sys.argv[1]
if mode == "leader":
    m = leader(cluster())
    if not m:
        sys.exit(1)
    print(m["name"])
elif mode == "sync":  # the synchronous standbys that stream
    for m in (cluster() or {}).get("members", []):
        if m.get("role") == "sync_standby" and m.get("state") == "streaming":
            print(m["name"])
elif mode == "members":
    c = cluster()
    if c is None:
        print("  (no Patroni REST API answers)")
        sys.exit(1)
    for m in c.get("members", []):
        lag = m.get("lag", m.get("receive_lag", ""))
        print(f"  {m['name']:<13} {m.get('host', '')}:{m.get('port', '')}  {m.get('role', ''):<13}"
              f" {m.get('state', ''):<10} timeline {m.get('timeline', '-')}"
              + (f"  lag {lag}" if lag != "" else ""))
elif mode == "switchover":
    old, new = sys.argv[2], sys.argv[3]
    port = dict(nodes)[old]
    status, text = call(port, "/switchover", "POST", {"leader": old, "candidate": new}, timeout=120)
    print(text.strip())
    sys.exit(0 if status == 200 else 1)
elif mode == "config":  # make the dynamic configuration say what argv[2] says
    want = json.loads(sys.argv[2])
    port = dict(nodes)[sys.argv[3]]
    status, text = call(port, "/config")
    have = json.loads(text) if status == 200 else {}
    diff = {k: v for k, v in want.items() if have.get(k) != v}
    if diff:
        status, text = call(port, "/config", "PATCH", diff)
        if status != 200:
            print(text, file=sys.stderr)
            sys.exit(1)
        print(" ".join(sorted(diff)))
elif mode == "haproxy":  # each server: name status (UP, DOWN, ...)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[2]}/;csv", timeout=2) as r:
            rows = r.read().decode().splitlines()
    except OSError as e:
        print(f"  haproxy: no stats ({e})")
        sys.exit(1)
    head = rows[0].lstrip("# ").split(",")
    for row in rows[1:]:
        f = dict(zip(head, row.split(",")))
        if f.get("svname") not in ("FRONTEND", "BACKEND", None):
            print(f"  haproxy -> {f['svname']:<13} {f['status']:<5} sessions {f['scur']}")
PY
)
helper() { HA_NODES="$(for n in "${NODES[@]}"; do printf '%s:%s ' "$n" "${REST_PORT[$n]}"; done)" "$PY" -c "$HELPER" "$@"; }

alive() { # PIDFILE MARK: the process in PIDFILE runs and its command line holds MARK
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1")
    kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2"
}
node_alive() { alive "$HA/$1/patroni.pid" "$HA/$1/patroni.yml"; }
etcd_alive() { alive "$HA/etcd.pid" "--data-dir $HA/etcd"; }
haproxy_alive() { alive "$HA/haproxy.pid" "$HA/haproxy.cfg"; }
running_nodes() { local n; for n in "${NODES[@]}"; do node_alive "$n" && echo "$n"; done; return 0; }
valid_node() { local n; for n in "${NODES[@]}"; do [ "$n" = "$1" ] && return 0; done; return 1; }
postmaster_pid() { # NAME: the live postmaster of NAME's data directory, if any
    local f=$HA/$1/data/postmaster.pid pid
    [ -s "$f" ] || return 1
    pid=$(head -n 1 "$f")
    kill -0 "$pid" 2>/dev/null && [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$HA/$1/data" ] && echo "$pid"
}
tree() { # PID...: these processes and all their descendants
    ps -e -o pid=,ppid= | awk -v roots="$*" '
        BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) keep[r[i]] = 1 }
        { parent[$1] = $2 }
        END {
            do { more = 0; for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; more = 1 } } while (more)
            for (p in keep) print p
        }'
}
sql() { # PORT SQL: one query, tuples only
    PGCONNECT_TIMEOUT=2 psql -h 127.0.0.1 -p "$1" -U postgres -d postgres -X -Atqc "$2" 2>/dev/null
}
# The primary behind HAProxy, writable: prints its node name.
writable_primary() {
    local r port n
    r=$(sql "$HAPROXY_PORT" "SELECT NOT pg_is_in_recovery(), inet_server_port()") || return 1
    [ "${r%%|*}" = t ] || return 1
    port=${r#*|}
    for n in "${NODES[@]}"; do [ "${PG_PORT[$n]}" != "$port" ] || { echo "$n"; return 0; }; done
    return 1
}
primary_is() { [ "$(writable_primary)" = "$1" ]; }
# A primary through HAProxy, every other running node streaming and a synchronous standby
# (as PostgreSQL's pg_stat_replication and Patroni's /sync both say).
healthy() {
    local leader want r sync
    leader=$(writable_primary) || return 1
    want=$(($(running_nodes | grep -vcxF "$leader" || true)))
    r=$(sql "$HAPROXY_PORT" "SELECT count(*) FILTER (WHERE state = 'streaming'),
        count(*) FILTER (WHERE state = 'streaming' AND sync_state = 'sync') FROM pg_stat_replication") || return 1
    [ "${r%%|*}" -ge "$want" ] || return 1
    [ "$want" = 0 ] && return 0
    [ "${r#*|}" -ge 1 ] || return 1
    sync=$(helper sync) && [ -n "$sync" ]
}

# ---------------------------------------------------------------- configuration
DYNAMIC='{"ttl": 20, "loop_wait": 1, "retry_timeout": 4, "maximum_lag_on_failover": 1048576,
 "synchronous_mode": true, "synchronous_mode_strict": false, "synchronous_node_count": 1}'
patroni_yml() { # NAME
    local n=$1
    cat <<YML
# Written by ops/testbed-ha.sh.
scope: $SCOPE
namespace: /visitas-testbed/
name: $n
log:
  level: INFO
restapi:
  listen: 127.0.0.1:${REST_PORT[$n]}
  connect_address: 127.0.0.1:${REST_PORT[$n]}
etcd3:
  hosts: 127.0.0.1:$ETCD_PORT
bootstrap:
  # Taken when the cluster is made; ops/testbed-ha.sh up sets the first seven again.
  dcs:
    ttl: 20                # Patroni's least: a dead primary's leader key lives this long
    loop_wait: 1           # not 2: with the checks below, a switchover ~1 s shorter (measured)
    retry_timeout: 4       # loop_wait + 2 * retry_timeout <= ttl
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    synchronous_mode_strict: false   # alone, a primary writes without a standby
    synchronous_node_count: 1
    postgresql:
      use_pg_rewind: true
      use_slots: true
      remove_data_directory_on_rewind_failure: true
      remove_data_directory_on_diverged_timelines: true
      parameters:
        max_connections: 100
        shared_buffers: 32MB
        wal_level: replica
        wal_log_hints: 'on'
        max_wal_senders: 5
        max_replication_slots: 5
        wal_keep_size: 64MB
        max_wal_size: 256MB
        synchronous_commit: 'on'
  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
postgresql:
  listen: 127.0.0.1:${PG_PORT[$n]}
  connect_address: 127.0.0.1:${PG_PORT[$n]}
  data_dir: $HA/$n/data
  bin_dir: $(pg_bin)
  pgpass: $HA/$n/pgpass
  authentication:
    superuser:
      username: postgres
    replication:
      username: replicator
  basebackup:
    checkpoint: fast
  parameters:
    unix_socket_directories: $HA/$n
    logging_collector: 'on'
    log_directory: log
    log_filename: postgresql.log
    log_line_prefix: '%m [%p] %q%u@%d '
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication replicator 127.0.0.1/32 trust
YML
}
haproxy_cfg() {
    cat <<CFG
# Written by ops/testbed-ha.sh: every connection to the current primary.
global
    maxconn 256
    nbthread 1
    stats socket $HA/haproxy.sock mode 600 level admin
    log stdout format iso local0 info
defaults
    mode tcp
    log global
    option tcplog
    option dontlog-normal  # connections that end in an error only, and the servers' state changes
    timeout connect 2s
    timeout check 1s
    timeout client 1h
    timeout server 1h
    retries 2
    option redispatch 1    # a connection refused (the old primary) is tried on another server
listen stats
    mode http
    bind 127.0.0.1:$STATS_PORT
    stats enable
    stats uri /
listen visitas-ha-primary
    bind 127.0.0.1:$HAPROXY_PORT
    option httpchk OPTIONS /primary
    http-check expect status 200
    default-server inter 500ms fastinter 250ms downinter 500ms fall 2 rise 1 on-marked-down shutdown-sessions
$(for n in "${NODES[@]}"; do echo "    server $n 127.0.0.1:${PG_PORT[$n]} maxconn 100 check port ${REST_PORT[$n]}"; done)
CFG
}
configs_current() { # the files written by an earlier run say what this script says
    local n
    for n in "${NODES[@]}"; do [ "$(cat "$HA/$n/patroni.yml" 2>/dev/null)" = "$(patroni_yml "$n")" ] || return 1; done
    [ "$(cat "$HA/haproxy.cfg" 2>/dev/null)" = "$(haproxy_cfg)" ]
}
write_if_changed() { # FILE CONTENT: returns 0 when the file changed
    [ "$(cat "$1" 2>/dev/null)" = "$2" ] && return 1
    printf '%s\n' "$2" >"$1"
}

# ---------------------------------------------------------------- processes
start_etcd() {
    etcd_alive && return 0
    mkdir -p "$HA/etcd"
    chmod 700 "$HA/etcd"
    # In the background of a script (no job control), setsid execs in place: $! is etcd.
    setsid /usr/bin/etcd --name visitas-ha-etcd --data-dir "$HA/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "visitas-ha-etcd=http://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state new \
        --initial-cluster-token visitas-testbed --logger zap --log-outputs stderr \
        >>"$HA/etcd.log" 2>&1 </dev/null 9>&- &
    echo $! >"$HA/etcd.pid"
    for _ in $(seq 100); do
        "$PY" -c "import urllib.request, sys; sys.exit(b'\"true\"' not in urllib.request.urlopen('http://127.0.0.1:$ETCD_PORT/health', timeout=1).read())" 2>/dev/null && return 0
        etcd_alive || break
        sleep 0.1
    done
    tail -n 20 "$HA/etcd.log" >&2
    die "etcd did not start on 127.0.0.1:$ETCD_PORT; see $HA/etcd.log"
}
start_node() { # NAME
    local n=$1
    node_alive "$n" && return 0
    # A postmaster left without its Patroni (Patroni alone was killed) is taken over by the new one.
    setsid setpriv --reuid=postgres --regid=postgres --init-groups -- \
        env -i PATH=/usr/bin:/bin HOME="$HA/$n" LANG=C.UTF-8 "$VENV/bin/patroni" "$HA/$n/patroni.yml" \
        >>"$HA/$n/patroni.log" 2>&1 </dev/null 9>&- &
    echo $! >"$HA/$n/patroni.pid"
    sleep 0.2
    node_alive "$n" || { tail -n 20 "$HA/$n/patroni.log" >&2; die "Patroni $n did not start; see $HA/$n/patroni.log"; }
}
start_haproxy() {
    haproxy_alive && return 0
    # Its log (with time stamps) on stdout; stderr has the same messages without.
    setsid /usr/sbin/haproxy -db -f "$HA/haproxy.cfg" >>"$HA/haproxy.log" 2>>"$HA/haproxy.err" </dev/null 9>&- &
    echo $! >"$HA/haproxy.pid"
    sleep 0.2
    haproxy_alive || { tail -n 20 "$HA/haproxy.err" >&2; die "HAProxy did not start; see $HA/haproxy.log"; }
}
stop_pid() { # PIDFILE MARK WHAT: SIGTERM, then SIGKILL after 60 s
    local pid
    alive "$1" "$2" || { rm -f "$1"; return 0; }
    pid=$(cat "$1")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        say "$3 did not stop in 60 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$1"
}
stop_node() { # NAME: Patroni stops its PostgreSQL; a postmaster left without Patroni is stopped too
    local n=$1 pm
    stop_pid "$HA/$n/patroni.pid" "$HA/$n/patroni.yml" "Patroni $n"
    if pm=$(postmaster_pid "$n"); then
        runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$HA/$n/data" stop -m fast -w -t 60 >/dev/null 2>&1 ||
            kill -KILL "$pm" 2>/dev/null || true
    fi
}

wait_for() { # SECS WHAT COMMAND...: polls COMMAND every 0.2 s
    local secs=$1 what=$2 start
    shift 2
    start=$(now)
    while ! "$@" >/dev/null 2>&1; do
        if awk -v a="$start" -v b="$(now)" -v s="$secs" 'BEGIN { exit !(b - a > s) }'; then
            echo "testbed-ha: no $what after $secs s" >&2
            return 1
        fi
        sleep 0.2
    done
}

# ---------------------------------------------------------------- commands
facts() {
    say "primary via haproxy 127.0.0.1:$HAPROXY_PORT (nodes ${PG_PORT[visitas-ha-1]}, ${PG_PORT[visitas-ha-2]}), patroni REST ${REST_PORT[visitas-ha-1]}/${REST_PORT[visitas-ha-2]}, etcd $ETCD_PORT, haproxy stats http://127.0.0.1:$STATS_PORT/; leader $(helper leader 2>/dev/null || echo none)"
}
set_dynamic() { # the dynamic configuration (in etcd) as DYNAMIC says, through the primary's Patroni
    local changed
    changed=$(helper config "$DYNAMIC" "$(writable_primary)") || return 1
    [ -z "$changed" ] || say "dynamic configuration set again: $changed" >&2
}
cmd_up() {
    local n fresh=0 started
    # Everything already running and healthy: nothing to do.
    if [ -x "$PY" ] && etcd_alive && haproxy_alive && [ "$(running_nodes | wc -l)" = ${#NODES[@]} ] &&
        configs_current && healthy && set_dynamic; then
        facts
        return 0
    fi
    install
    mkdir -p "$HA"
    chmod 755 "$TB" "$HA"
    echo "$HAPROXY_PORT" >"$HA/port"
    echo "postgres://postgres@127.0.0.1:$HAPROXY_PORT/postgres" >"$HA/url"
    for n in "${NODES[@]}"; do
        mkdir -p "$HA/$n"
        chown postgres: "$HA/$n"
        chmod 750 "$HA/$n"
        if write_if_changed "$HA/$n/patroni.yml" "$(patroni_yml "$n")" && node_alive "$n"; then
            kill -HUP "$(cat "$HA/$n/patroni.pid")" # Patroni reads its file again
        fi
        chmod 644 "$HA/$n/patroni.yml"
    done
    if write_if_changed "$HA/haproxy.cfg" "$(haproxy_cfg)"; then
        /usr/sbin/haproxy -c -q -f "$HA/haproxy.cfg" || die "HAProxy refuses $HA/haproxy.cfg"
        stop_pid "$HA/haproxy.pid" "$HA/haproxy.cfg" HAProxy
    fi
    started=$(now)
    start_etcd
    [ -s "$HA/${NODES[0]}/data/PG_VERSION" ] || [ -s "$HA/${NODES[1]}/data/PG_VERSION" ] || fresh=1
    if [ $fresh = 1 ]; then
        # A new cluster: the first node makes it (initdb, once it holds the initialize key),
        # the others copy it from that leader (they start meanwhile, and wait for it).
        say "making a new cluster ($SCOPE) in $HA"
        start_node "${NODES[0]}"
        wait_for 120 "initdb by ${NODES[0]}" test -s "$HA/${NODES[0]}/data/PG_VERSION" ||
            die "no initdb; see $HA/${NODES[0]}/patroni.log"
    fi
    for n in "${NODES[@]}"; do start_node "$n"; done
    start_haproxy
    wait_for 120 "writable primary through HAProxy" writable_primary || die "no primary; see $HA/*/patroni.log"
    wait_for 30 "answer from Patroni's REST API to the dynamic configuration" set_dynamic ||
        die "could not set Patroni's dynamic configuration"
    wait_for 180 "primary through HAProxy with its synchronous standby" healthy ||
        { cmd_status >&2 || true; die "the cluster is not healthy; see $HA/*/patroni.log"; }
    [ "$(sql "$HAPROXY_PORT" "SELECT 1")" = 1 ] || die "psql through 127.0.0.1:$HAPROXY_PORT failed"
    say "up in $(since "$started") s"
    facts
}
cmd_status() {
    local n leader
    leader=$(helper leader 2>/dev/null) || leader=none
    say "leader $leader; synchronous standby $(helper sync 2>/dev/null | paste -sd, | grep . || echo none)"
    helper members || true
    for n in "${NODES[@]}"; do
        if node_alive "$n"; then echo "  $n: patroni pid $(cat "$HA/$n/patroni.pid"), postgres pid $(postmaster_pid "$n" || echo -)"
        else echo "  $n: patroni not running"; fi
    done
    helper haproxy "$STATS_PORT" || true
    local r
    if r=$(sql "$HAPROXY_PORT" "SELECT coalesce(string_agg(application_name || ' ' || state || ' ' || sync_state, ', '), 'no standby')
            || ' (synchronous_standby_names ' || quote_literal(current_setting('synchronous_standby_names')) || ')'
            FROM pg_stat_replication"); then
        echo "  through 127.0.0.1:$HAPROXY_PORT: writable=$(sql "$HAPROXY_PORT" "SELECT NOT pg_is_in_recovery()"), replication: $r"
    else
        echo "  through 127.0.0.1:$HAPROXY_PORT: no connection"
    fi
    echo "  etcd 127.0.0.1:$ETCD_PORT: $(etcd_alive && echo running || echo 'not running')"
}
kill_tree() { # PID...: SIGKILL these processes and their descendants at once, as a crash would
    local pids p left
    # Frozen first, so that none forks a child (a postmaster a backend) meanwhile.
    kill -STOP "$@" 2>/dev/null || true
    pids=$(tree "$@" | xargs)
    kill -KILL $pids 2>/dev/null || true
    for _ in $(seq 100); do # gone, or zombies left for init to reap
        left=0
        for p in $pids; do [ "$(awk '/^State:/ { print $2 }' "/proc/$p/status" 2>/dev/null)" = Z ] || ! kill -0 "$p" 2>/dev/null || left=1; done
        [ $left = 0 ] && break
        sleep 0.05
    done
    wc -w <<<"$pids"
}
cmd_kill_node() { # NAME ROLE
    local n=$1 pp pm count t
    node_alive "$n" && pp=$(cat "$HA/$n/patroni.pid") || pp=
    pm=$(postmaster_pid "$n") || pm=
    [ -n "$pp$pm" ] || die "$n has no process here"
    t=$(now)
    count=$(kill_tree $pp $pm)
    rm -f "$HA/$n/patroni.pid"
    echo "$n $t" >"$HA/last-kill"
    say "killed $n (the $2: $count processes, Patroni, postmaster and backends, SIGKILL) at $(date -u -d "@$t" +%FT%T.%3NZ) (epoch $t)"
}
cmd_kill_primary() {
    local leader
    leader=$(helper leader) || die "no leader to kill"
    cmd_kill_node "$leader" primary
}
cmd_restart_node() {
    local n=${1:-} start
    [ -n "$n" ] && valid_node "$n" || die "usage: $0 restart-node {${NODES[*]}}"
    node_alive "$n" && { say "$n already runs"; return 0; }
    etcd_alive || die "etcd is not running: use $0 up"
    start=$(now)
    start_node "$n"
    wait_for 180 "$n back in the cluster in sync" healthy || die "$n did not rejoin; see $HA/$n/patroni.log"
    say "$n rejoined after $(since "$start") s; leader $(helper leader)"
}
cmd_switchover() {
    local old new start out
    wait_for 60 "synchronous standby to switch over to" healthy || die "the cluster is not healthy: no switchover"
    old=$(helper leader) || die "no leader"
    new=$(helper sync | head -n 1)
    [ -n "$new" ] || die "no synchronous standby"
    start=$(now)
    out=$(helper switchover "$old" "$new") || die "switchover refused: $out"
    wait_for 60 "writable primary $new through HAProxy" primary_is "$new" ||
        die "no writable primary after the switchover"
    say "switchover $old -> $new at $(date -u -d "@$start" +%FT%T.%3NZ) (epoch $start): $out; new primary writable through 127.0.0.1:$HAPROXY_PORT after $(since "$start") s"
}
cmd_wait_leader() {
    local secs=${1:-90} start n
    start=$(now)
    wait_for "$secs" "writable primary through 127.0.0.1:$HAPROXY_PORT" writable_primary || exit 1
    n=$(writable_primary || true)
    say "writable primary ${n:-?} through 127.0.0.1:$HAPROXY_PORT after $(since "$start") s"
}
cmd_wait_healthy() {
    local secs=${1:-120} start
    start=$(now)
    wait_for "$secs" "primary with every running node in sync" healthy || exit 1
    say "healthy after $(since "$start") s: leader $(helper leader), synchronous standby $(helper sync | paste -sd, | grep . || echo none)"
}
cmd_down() {
    local n leader
    [ -d "$HA" ] || return 0
    stop_pid "$HA/haproxy.pid" "$HA/haproxy.cfg" HAProxy
    # The replicas first: a leader stopped first would hand over to them.
    leader=$( [ -x "$PY" ] && helper leader 2>/dev/null || true)
    for n in "${NODES[@]}"; do [ "$n" = "$leader" ] || stop_node "$n"; done
    [ -z "$leader" ] || stop_node "$leader"
    stop_pid "$HA/etcd.pid" "--data-dir $HA/etcd" etcd
    say "stopped (data kept in $HA)"
}
cmd_reset() { # no clean stop for data about to go: everything SIGKILLed
    local roots=() n pm
    [ -d "$HA" ] || { say "nothing to remove ($HA)"; return 0; }
    etcd_alive && roots+=("$(cat "$HA/etcd.pid")")
    haproxy_alive && roots+=("$(cat "$HA/haproxy.pid")")
    for n in "${NODES[@]}"; do
        node_alive "$n" && roots+=("$(cat "$HA/$n/patroni.pid")")
        pm=$(postmaster_pid "$n") && roots+=("$pm")
    done
    [ ${#roots[@]} = 0 ] || kill_tree "${roots[@]}" >/dev/null
    rm -rf "$HA"
    say "removed $HA"
}

[ "$(id -u)" = 0 ] || die "run as root"
case ${1:-up} in
    status | wait-leader | wait-healthy) ;;
    *) # one changing command at a time (tests may call it in parallel)
        mkdir -p "$TB"
        exec 9>"$TB/ha.lock" # closed for the daemons started here (9>&-): they would hold it

        flock -w 600 9 || die "another ops/testbed-ha.sh held $TB/ha.lock for 10 minutes"
        ;;
esac
cmd=${1:-up}
[ $# -gt 0 ] && shift
case $cmd in
    up) cmd_up ;;
    status) cmd_status ;;
    kill-primary) cmd_kill_primary ;;
    kill-node)
        valid_node "${1:-}" || die "usage: $0 kill-node {${NODES[*]}}"
        [ "$(helper leader 2>/dev/null)" = "$1" ] && role=primary || role=standby
        cmd_kill_node "$1" "$role"
        ;;
    restart-node) cmd_restart_node "$@" ;;
    switchover) cmd_switchover ;;
    wait-leader) cmd_wait_leader "$@" ;;
    wait-healthy) cmd_wait_healthy "$@" ;;
    down) cmd_down ;;
    reset) cmd_reset ;;
    *) die "usage: $0 [up|status|kill-primary|kill-node NAME|restart-node NAME|switchover|wait-leader [SECS]|wait-healthy [SECS]|down|reset]" ;;
esac
