-- SPEC §5 invariants, checked from the outside: one row per invariant with its number
-- of violations (0 when it holds). Used by the e2e tests and by ops/bench.sh.
SELECT 'counts add up and match the tables' AS invariant, count(*) AS violations
FROM bitacora_control b
WHERE b.registros_totales IS DISTINCT FROM b.registros_validos + b.registros_error
   OR coalesce(b.registros_validos, 0) <> (SELECT count(*) FROM estadisticas e WHERE e.bitacora_id = b.id)
   OR coalesce(b.registros_error, 0) <> (SELECT count(*) FROM errores e WHERE e.bitacora_id = b.id)
UNION ALL
SELECT 'no content loaded twice', count(*)
FROM (SELECT sha256 FROM bitacora_control WHERE estatus IN ('COMPLETADO', 'COMPLETADO_CON_ERRORES')
      GROUP BY sha256 HAVING count(*) > 1) twice
UNION ALL
SELECT 'visitantes equals the aggregate of estadisticas', count(*)
FROM (
    SELECT v.email FROM visitantes v
    LEFT JOIN LATERAL (
        SELECT min(fecha_envio) mn, max(fecha_envio) mx, count(*) n,
               count(*) FILTER (WHERE date_trunc('year', fecha_envio) = date_trunc('year', v.contadores_al)) y,
               count(*) FILTER (WHERE date_trunc('month', fecha_envio) = date_trunc('month', v.contadores_al)) m
        FROM estadisticas e WHERE e.email = v.email) a ON true
    WHERE (v.fecha_primera_visita, v.fecha_ultima_visita, v.visitas_totales::bigint,
           v.visitas_anio_actual::bigint, v.visitas_mes_actual::bigint)
          IS DISTINCT FROM (a.mn, a.mx, a.n, a.y, a.m)
    UNION ALL
    SELECT DISTINCT e.email FROM estadisticas e
    WHERE NOT EXISTS (SELECT 1 FROM visitantes v WHERE v.email = e.email)
) wrong;
