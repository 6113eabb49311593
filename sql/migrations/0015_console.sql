-- The operators' console (`dispatcher console`): the record of its actions, and the
-- indexes its lists need to stay fast on a long history.

-- Every action taken in the console: who, what, on what, when, and how it ended.
CREATE TABLE console_actions (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    -- The user, as the console knows them (credentials file or trusted proxy header).
    actor    text        NOT NULL,
    -- How they were authenticated: session, basic or proxy.
    via      text        NOT NULL CHECK (via IN ('session', 'basic', 'proxy')),
    action   text        NOT NULL,
    -- What it acted on: a bitacora_control id, a work item, a day.
    target   text        NOT NULL,
    outcome  text        NOT NULL CHECK (outcome IN ('done', 'refused', 'failed')),
    message  text        NOT NULL DEFAULT ''
);
CREATE INDEX console_actions_at ON console_actions (at);
GRANT SELECT ON console_actions TO visitas_lectura;

-- The files list pages by id (newest first) within a status or a day range: these
-- indexes give each page in id order without sorting every matching row.
CREATE INDEX bitacora_control_estatus_id ON bitacora_control (estatus, id);
CREATE INDEX bitacora_control_fecha_negocio_id ON bitacora_control (fecha_negocio, id);
-- Rows not yet dated by a claim are found by their creation time.
CREATE INDEX bitacora_control_sin_fecha ON bitacora_control (creado_en) WHERE fecha_negocio IS NULL;
-- A file's page lists the loads of the same content.
CREATE INDEX bitacora_control_sha256 ON bitacora_control (sha256) WHERE sha256 IS NOT NULL;

-- The text search (file name or message) uses trigram indexes when the pg_trgm extension
-- can be created here (PostgreSQL's contrib, a trusted extension: the database owner may
-- create it). Without it the search still works, by reading the rows the other filters
-- leave.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    -- On lower(…), as the search asks: an index on the column itself would also answer
    -- `archivo = …`, and the planner would take it over the btree (40 ms a probe, not 0.05).
    CREATE INDEX bitacora_control_archivo_trgm ON bitacora_control USING gin (lower(archivo) gin_trgm_ops);
    CREATE INDEX bitacora_control_mensaje_trgm ON bitacora_control USING gin (lower(mensaje_error) gin_trgm_ops);
EXCEPTION WHEN insufficient_privilege OR undefined_file OR feature_not_supported THEN
    RAISE NOTICE 'pg_trgm not available (%): the console''s text search reads without an index', SQLERRM;
END
$$;

-- The quarantine (the console's overview and `dispatcher quarantine list`) reads the
-- failures not discarded: a long history of discarded ones is not read again.
CREATE INDEX bitacora_control_fallos_abiertos ON bitacora_control (id)
    WHERE estatus IN ('FALLO_LAYOUT', 'FALLO_SISTEMA') AND descartado_en IS NULL;
-- ... and joins them to their failed items through this small index, not the items' heap.
CREATE INDEX work_items_fallidos ON work_items (id) WHERE state = 'failed';
-- ... and the loaded files whose backup is missing (no copy of what was loaded could be
-- had): few, found without reading the loaded history.
CREATE INDEX bitacora_control_sin_respaldo ON bitacora_control (id)
    WHERE ruta_backup IS NULL AND descartado_en IS NULL
      AND estatus IN ('COMPLETADO', 'COMPLETADO_CON_ERRORES', 'DUPLICADO', 'FALLO_LAYOUT');
