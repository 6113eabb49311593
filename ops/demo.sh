#!/usr/bin/env bash
# The demo: the main job end to end on generated sample files, over real SFTP,
# into a fresh database `visitas_demo`; prints what was loaded.
set -euo pipefail
cd "$(dirname "$0")/.."
ops/check-toolchain.sh
ops/testbed.sh
cargo build --workspace --bins --quiet --features dispatcher/fixtures
BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug

TB=${VISITAS_TESTBED:-/var/tmp/visitas-testbed}
DEMO=${VISITAS_DEMO:-/var/tmp/visitas-demo}
# VISITAS_DEMO_NAME: the origin directory and database of this demo (two demos at once
# must not share them).
ORIGIN=$TB/sftp/${VISITAS_DEMO_NAME:-demo}
DB=visitas_${VISITAS_DEMO_NAME:-demo}
# The console of an earlier demo (started at the end, left running) stops first.
if [ -f "$DEMO/console.pid" ]; then
    kill -TERM "$(cat "$DEMO/console.pid")" 2>/dev/null || true
fi
rm -rf "$DEMO" "$ORIGIN"
mkdir -p "$DEMO" "$ORIGIN"
chown visitas-sftp: "$ORIGIN"
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"

ops/testbed-config.sh "$ORIGIN" "$DB" "$DEMO/etl" 1 > "$DEMO/visitas.toml"
export VISITAS_CONFIG=$DEMO/visitas.toml RUST_LOG=${RUST_LOG:-warn}

echo "== Generating sample files at the SFTP origin"
"$BIN/dispatcher" generate --dir "$ORIGIN" --files 12 --rows 5000 --emails 3000 --mixed
# The cases operators meet: a renamed column, an empty file, a re-sent file, a stray file.
sed '1s/Badmail/Bad mail/' "$ORIGIN/report_1.txt" > "$ORIGIN/report_13.txt"
: > "$ORIGIN/report_14.txt"
cp "$ORIGIN/report_2.txt" "$ORIGIN/report_15.txt"
echo "not a visits file" > "$ORIGIN/LEEME.txt"
touch -d '-10 minutes' "$ORIGIN"/*.txt

echo "== The night: performer serving, dispatcher run (enqueue, wait, close the day, summary)"
"$BIN/dispatcher" migrate
"$BIN/performer" run --workers 2 > "$DEMO/performer.log" 2>&1 &
PERFORMER=$!
trap 'kill -TERM $PERFORMER 2>/dev/null || true' EXIT
time "$BIN/dispatcher" run
kill -TERM $PERFORMER && wait $PERFORMER && echo "performer stopped cleanly (exit 0)"
trap - EXIT

echo "== bitacora_control"
psql -h 127.0.0.1 -U postgres -d $DB -c "
  SELECT id, archivo, estatus, encoding, registros_totales AS total, registros_validos AS validos,
         registros_error AS errores, visitantes_nuevos AS nuevos, visitantes_actualizados AS actualizados,
         duracion_ms, left(coalesce(mensaje_error, ''), 60) AS mensaje
  FROM bitacora_control ORDER BY archivo"
echo "== Monthly report (view reporte_mensual)"
psql -h 127.0.0.1 -U postgres -d $DB -c "SELECT * FROM reporte_mensual ORDER BY mes, estatus"
echo "== Top error types"
psql -h 127.0.0.1 -U postgres -d $DB -c "SELECT tipo_error, count(*) FROM errores GROUP BY 1 ORDER BY 2 DESC"
echo "== Tables"
psql -h 127.0.0.1 -U postgres -d $DB -Atc "
  SELECT 'estadisticas: ' || (SELECT count(*) FROM estadisticas) || ' rows, errores: ' ||
         (SELECT count(*) FROM errores) || ' rows, visitantes: ' || (SELECT count(*) FROM visitantes) || ' rows'"
echo "== Files: origin now holds $(ls "$ORIGIN" | wc -l) file(s); backups and quarantine under $DEMO/etl"
find "$DEMO/etl" -type f | sort | sed "s|$DEMO/etl/||"
echo "== In the day's zip"
unzip -l "$DEMO/etl/backup/backup_$(TZ=America/Mexico_City date +%Y%m%d).zip" 2>/dev/null | tail -n +1 | head -20 || true

echo "== The operators' console"
cat >> "$DEMO/visitas.toml" <<CFG
[console]
listen = "127.0.0.1:${VISITAS_DEMO_CONSOLE_PORT:-8480}"
users_file = "$DEMO/console-users"
CFG
OPERATOR_PASSWORD=$(head -c 12 /dev/urandom | base64 | tr -d '/+=')
VIEWER_PASSWORD=$(head -c 12 /dev/urandom | base64 | tr -d '/+=')
echo "$OPERATOR_PASSWORD" | "$BIN/dispatcher" console user add operador --role operator
echo "$VIEWER_PASSWORD" | "$BIN/dispatcher" console user add lector --role viewer
setsid "$BIN/dispatcher" console > "$DEMO/console.log" 2>&1 < /dev/null &
echo $! > "$DEMO/console.pid"
for _ in $(seq 100); do grep -q "console: listening on" "$DEMO/console.log" && break; sleep 0.1; done
ADDRESS=$(sed -n 's/^console: listening on \([^ ]*\).*/\1/p' "$DEMO/console.log")
[ -n "$ADDRESS" ] || { echo "the console did not start: $(cat "$DEMO/console.log")" >&2; exit 1; }
echo "console: $ADDRESS/ (left running; stop it with: kill $(cat "$DEMO/console.pid"))"
echo "  operator: operador / $OPERATOR_PASSWORD"
echo "  viewer:   lector / $VIEWER_PASSWORD"
