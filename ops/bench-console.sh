#!/usr/bin/env bash
# The console's benchmark: the files list on a million-row bitacora_control. Makes a
# database of 1,000,000 finished files (their work_items too) over 1,000 business days
# (2% layout failures, ~1% system failures, 10% loaded with errors, the rest loaded;
# the failures older than 30 days discarded, as an operator would have), starts
# `dispatcher console` on it, logs in once (a session: the password hash is paid
# once, not per request) and times each page with curl: N requests each, median and
# slowest, server time to the last byte on the loopback. Prints one table.
#
#   ops/bench-console.sh [--debug] [--keep] [--requests N]
#
# --keep reuses the database of an earlier run when it holds its million rows (the
# generation takes about a minute and a half here).
# Release build by default (as ops/bench.sh); --debug times the debug build instead
# (the pages' time is PostgreSQL's: the figure differs little, and the build is minutes
# instead of a quarter of an hour).
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=release REQUESTS=20 KEEP=0
while [ $# -gt 0 ]; do
    case $1 in
        --debug) PROFILE=debug ;;
        --keep) KEEP=1 ;;
        --requests) REQUESTS=$2; shift ;;
        *) echo "usage: ops/bench-console.sh [--debug] [--keep] [--requests N]" >&2; exit 2 ;;
    esac
    shift
done
ops/check-toolchain.sh
[ -n "${VISITAS_BENCH_NO_TESTBED:-}" ] || ops/testbed.sh >/dev/null
if [ $PROFILE = release ]; then
    cargo build --release -p dispatcher --quiet
else
    cargo build -p dispatcher --quiet
fi
BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/$PROFILE
WORK=${VISITAS_BENCH:-/var/tmp/visitas-bench-console}
DB=visitas_bench_console
PORT=${VISITAS_BENCH_CONSOLE_PORT:-2290}
PSQL=(psql -h 127.0.0.1 -U postgres -X -q -v ON_ERROR_STOP=1)
export PGOPTIONS="-c client_min_messages=warning"
rm -rf "$WORK/etl" "$WORK/users"
mkdir -p "$WORK"
cat > "$WORK/visitas.toml" <<CFG
[source]
url = "file://$WORK/origin"
[database]
url = "postgres://postgres@127.0.0.1:5432/$DB"
[paths]
root = "$WORK/etl"
[console]
users_file = "$WORK/users"
CFG
export VISITAS_CONFIG=$WORK/visitas.toml RUST_LOG=warn

now() { date +%s.%N; }
since() { python3 -c "print(f'{$(now) - $1:.1f}')"; }
t0=$(now)
existing=$("${PSQL[@]}" -d $DB -At -c "SELECT count(*) FROM bitacora_control" 2>/dev/null || echo 0)
if [ $KEEP = 1 ] && [ "$existing" = 1000000 ]; then
    echo "== reusing $DB (1,000,000 files)"
    "$BIN/dispatcher" migrate >/dev/null
    "${PSQL[@]}" -d $DB -c "ANALYZE work_items, bitacora_control"
else
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
"$BIN/dispatcher" migrate >/dev/null
echo "== 1,000,000 files over 1,000 days"
"${PSQL[@]}" -d $DB <<'SQL'
INSERT INTO work_items (origin, source_name, source_path, file_name, size_bytes, mtime, state, claim_token,
                        business_date, attempts, created_at, updated_at)
SELECT 'file:///srv/in', 'report_' || g || '.txt', '/srv/in/report_' || g || '.txt', 'report_' || g || '.txt',
       100000, now(), CASE WHEN g % 50 = 0 OR g % 97 = 0 THEN 'failed' ELSE 'done' END, g,
       date '2024-03-01' + (g / 1000)::int, 1, now(), now()
FROM generate_series(1, 1000000) g;
INSERT INTO bitacora_control (work_item_id, archivo, ruta_origen, tamano_bytes, sha256, encoding, estatus, intentos,
                              registros_totales, registros_validos, registros_error, visitantes_nuevos,
                              visitantes_actualizados, inicio, fin, duracion_ms, worker, mensaje_error,
                              ruta_backup, fecha_negocio, creado_en)
SELECT w.id, w.file_name, w.source_path, 100000,
       CASE WHEN s.estatus LIKE 'COMPLETADO%' THEN lpad(to_hex(w.id), 64, '0') END, 'utf-8', s.estatus, 1,
       s.total, s.total - s.err, s.err, 10, 5,
       w.business_date + time '02:00', w.business_date + time '02:01', 60000, 'bench:1:1',
       CASE s.estatus WHEN 'FALLO_LAYOUT' THEN w.file_name || ': line 1, column 3: found `Bad mail`, expected `Badmail`'
                      WHEN 'FALLO_SISTEMA' THEN 'connecting to sftp.example.com:22: Connection refused' END,
       '/home/etl/backup/backup_' || to_char(w.business_date, 'YYYYMMDD') || '.zip#' || w.id || '-' || w.file_name,
       w.business_date, w.business_date + time '02:00'
FROM work_items w,
     LATERAL (SELECT CASE WHEN w.id % 50 = 0 THEN 'FALLO_LAYOUT' WHEN w.id % 97 = 0 THEN 'FALLO_SISTEMA'
                          WHEN w.id % 10 = 1 THEN 'COMPLETADO_CON_ERRORES' ELSE 'COMPLETADO' END AS estatus,
                     CASE WHEN w.id % 50 = 0 OR w.id % 97 = 0 THEN NULL ELSE 1000 END AS total,
                     CASE WHEN w.id % 50 = 0 OR w.id % 97 = 0 THEN NULL WHEN w.id % 10 = 1 THEN 50 ELSE 0 END AS err) s
ORDER BY w.id;
-- An operator's work: failures older than 30 days were discarded (or retried); the
-- last 30 days' wait in the quarantine.
UPDATE bitacora_control SET descartado_en = fecha_negocio + time '09:00', motivo_descarte = 'sender resent it'
WHERE estatus IN ('FALLO_LAYOUT', 'FALLO_SISTEMA') AND fecha_negocio < date '2024-03-01' + 1000 - 30;
VACUUM (ANALYZE) work_items, bitacora_control;
SQL
fi
ROWS=$("${PSQL[@]}" -d $DB -At -c "SELECT count(*) FROM bitacora_control")
SIZE=$("${PSQL[@]}" -d $DB -At -c "SELECT pg_size_pretty(pg_total_relation_size('bitacora_control'))")
echo "   $ROWS rows in bitacora_control ($SIZE with its indexes) in $(since "$t0") s"

PASSWORD=$(head -c 12 /dev/urandom | base64)
echo "$PASSWORD" | "$BIN/dispatcher" console user add bench --role viewer >/dev/null
"$BIN/dispatcher" console --listen "127.0.0.1:$PORT" > "$WORK/console.log" 2>&1 &
CONSOLE=$!
trap 'kill -TERM $CONSOLE 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "console: listening" "$WORK/console.log" && break; sleep 0.1; done
BASE=http://127.0.0.1:$PORT
COOKIE=$(curl -s -o /dev/null -D - -H "Origin: $BASE" --data-urlencode "user=bench" --data-urlencode "password=$PASSWORD" \
    "$BASE/login" | sed -n 's/^set-cookie: \([^;]*\).*/\1/Ip' | tr -d '\r')
[ -n "$COOKIE" ] || { echo "could not log in: $(cat "$WORK/console.log")" >&2; exit 1; }
MIDDLE=$("${PSQL[@]}" -d $DB -At -c "SELECT id FROM bitacora_control ORDER BY id OFFSET 500000 LIMIT 1")

# Times one page: N requests after one warm-up; prints the row of the table.
time_page() { # label, path
    local out status times=()
    status=$(curl -s -o "$WORK/page.html" -w '%{http_code}' -H "Cookie: $COOKIE" "$BASE$2")
    [ "$status" = 200 ] || { echo "$2 answered $status: $(head -c 300 "$WORK/page.html")" >&2; exit 1; }
    local rows; rows=$( (grep -o 'href="/files/[0-9]*">[0-9]*</a></td><td>' "$WORK/page.html" || true) | wc -l)
    for _ in $(seq "$REQUESTS"); do
        out=$(curl -s -o /dev/null -w '%{time_total}' -H "Cookie: $COOKIE" "$BASE$2")
        times+=("$(python3 -c "print(round($out * 1000, 1))")")
    done
    printf '%-58s %6s %9s %9s\n' "$1" "$rows" \
        "$(printf '%s\n' "${times[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')" \
        "$(printf '%s\n' "${times[@]}" | sort -n | tail -n 1)"
}
echo
echo "== $REQUESTS requests per page, $PROFILE build, milliseconds (curl time_total on the loopback)"
printf '%-58s %6s %9s %9s\n' "page" "rows" "median" "slowest"
time_page "files: status + 7-day range (COMPLETADO)" "/files?status=COMPLETADO&from=2025-06-01&to=2025-06-07"
time_page "files: status + 7-day range (FALLO_LAYOUT)" "/files?status=FALLO_LAYOUT&from=2025-06-01&to=2025-06-07"
time_page "files: status + 7-day range, next page" "/files?status=COMPLETADO&from=2025-06-01&to=2025-06-07&before=$((MIDDLE + 3000))"
time_page "files: first page, no filter" "/files"
time_page "files: a page in the middle (before=ID)" "/files?before=$MIDDLE"
time_page "files: a rare status, all history (FALLO_SISTEMA)" "/files?status=FALLO_SISTEMA"
time_page "files: unresolved failures, all history" "/files?unresolved=1"
time_page "files: name search (q=report_12345)" "/files?q=report_12345"
time_page "files: message search (q=Connection refused)" "/files?q=Connection%20refused"
time_page "a file" "/files/$MIDDLE"
time_page "overview" "/"
echo
echo "database: $ROWS rows in bitacora_control, $SIZE; console log: $WORK/console.log"
