-- Operators: re-enqueue or discard quarantined files; a read-only role for queries.

-- A file an operator re-enqueued: its local copy (e.g. a fixed quarantined file) is the
-- source, and it points to the audit row it retries.
ALTER TABLE work_items
    ADD COLUMN local_path text,
    ADD COLUMN retry_of   bigint REFERENCES bitacora_control (id);

-- The listing identity stays unique for what the dispatcher enqueues; operator retries
-- of the same file are separate items.
ALTER TABLE work_items DROP CONSTRAINT work_items_listing_key;
CREATE UNIQUE INDEX work_items_listing_key ON work_items (source_path, size_bytes, mtime)
    WHERE retry_of IS NULL;
-- At most one retry of a quarantined file (a second `quarantine retry` finds it).
CREATE UNIQUE INDEX work_items_one_retry ON work_items (retry_of) WHERE retry_of IS NOT NULL;

ALTER TABLE bitacora_control
    ADD COLUMN descartado_en   timestamptz,
    ADD COLUMN motivo_descarte text,
    ADD CONSTRAINT bitacora_discard_has_reason CHECK (descartado_en IS NULL OR motivo_descarte <> '');

-- Read-only role for operators and the dashboard: SELECT on every table and view,
-- nothing else. Roles are cluster-wide: created once, granted per database.
DO $$
BEGIN
    CREATE ROLE visitas_lectura NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;
GRANT USAGE ON SCHEMA public TO visitas_lectura;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO visitas_lectura;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO visitas_lectura;
