-- docs/data-contract.md §5 invariants, checked from the outside: one row per invariant with its number
-- of violations (0 when it holds). Used by the e2e tests and by ops/bench.sh.
--
-- Retention (`dispatcher partitions drop`) drops the detail rows of old files on
-- purpose: invariant 1 then holds for the files whose detail is kept, and visitantes
-- (which keeps every visit) is compared with estadisticas only while no detail was dropped.
SELECT 'counts add up and match the tables' AS invariant, count(*) AS violations
FROM bitacora_control b
WHERE b.registros_totales IS DISTINCT FROM b.registros_validos + b.registros_error
   OR (NOT EXISTS (SELECT 1 FROM detalle_depurado d WHERE d.bitacora_id = b.id)
       AND (coalesce(b.registros_validos, 0) <> (SELECT count(*) FROM estadisticas e WHERE e.bitacora_id = b.id)
            OR coalesce(b.registros_error, 0) <> (SELECT count(*) FROM errores e WHERE e.bitacora_id = b.id)))
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
) wrong
WHERE NOT EXISTS (SELECT 1 FROM detalle_depurado)
UNION ALL
-- The per-month counts the counters come from (visitantes.visitas_por_mes for the year of
-- contadores_al, visitas_por_anio for every other year, no year twice) agree with
-- estadisticas, and the counters with them.
SELECT 'visitor months agree with estadisticas and the counters', count(*)
FROM (
    SELECT coalesce(kept.email, loaded.email) AS email
    FROM (SELECT email, extract(year FROM contadores_al)::int AS anio, visitas_por_mes AS meses
          FROM visitantes WHERE visitas_total_meses(visitas_por_mes) > 0
          UNION ALL
          SELECT email, anio, visitas_por_mes FROM visitas_por_anio) kept
    FULL JOIN (
        -- Counted another way than migration 6's backfill (visits per e-mail, year and
        -- month, then laid out over the twelve months): an independent measurement.
        WITH por_mes AS (
            SELECT email, extract(year FROM fecha_envio)::int AS anio,
                   extract(month FROM fecha_envio)::int AS mes, count(*)::int AS n
            FROM estadisticas GROUP BY 1, 2, 3)
        SELECT y.email, y.anio, array_agg(coalesce(p.n, 0) ORDER BY m.mes) AS meses
        FROM (SELECT DISTINCT email, anio FROM por_mes) y
        CROSS JOIN generate_series(1, 12) AS m(mes)
        LEFT JOIN por_mes p ON p.email = y.email AND p.anio = y.anio AND p.mes = m.mes
        GROUP BY 1, 2) loaded
        ON loaded.email = kept.email AND loaded.anio = kept.anio
    WHERE kept.meses IS DISTINCT FROM loaded.meses AND NOT EXISTS (SELECT 1 FROM detalle_depurado)
    UNION ALL
    SELECT a.email FROM visitas_por_anio a
    WHERE visitas_total_meses(a.visitas_por_mes) = 0
       OR NOT EXISTS (SELECT 1 FROM visitantes v
                      WHERE v.email = a.email AND extract(year FROM v.contadores_al) <> a.anio)
    UNION ALL
    SELECT v.email FROM visitantes v
    WHERE v.visitas_anio_actual <> visitas_total_meses(v.visitas_por_mes)
       OR v.visitas_totales <> visitas_total_meses(v.visitas_por_mes)
              + (SELECT coalesce(sum(visitas_total_meses(a.visitas_por_mes)), 0)
                 FROM visitas_por_anio a WHERE a.email = v.email)
) wrong;
