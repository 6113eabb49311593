-- Day 300 at day-one speed: nothing a night does may grow with all history loaded.
--
-- 1. Visitor counters. `visitantes.visitas_por_mes` holds the visitor's visits per month
--    of the calendar year of `contadores_al`; `visitas_por_anio` holds the visits per
--    month of every *other* year. A load adds its rows to these, so the year and month
--    counters of any as-of date come from at most two rows per visitor, never from
--    `estadisticas` (the first night of a month used to recount every returning
--    visitor's rows there, a cost that grew with all history).
-- 2. `estadisticas` and `errores` are partitioned by month of `creado_en` (the load
--    transaction's start, UTC months): a night writes into one partition, so the index
--    maintenance it pays is bounded by a month of data; every row of a file has the same
--    `creado_en` (one transaction), so a file lives in exactly one partition and
--    retention (`dispatcher partitions drop --before YYYY-MM`) drops whole files.
--
-- This migration rewrites both tables once (about the cost of a \copy of them): run it
-- in a maintenance window. It takes ACCESS EXCLUSIVE locks on both for its duration.

-- Adds two 12-month arrays (January first). Inlined by the planner.
CREATE FUNCTION visitas_sumar_meses(a integer[], b integer[]) RETURNS integer[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY[a[1] + b[1], a[2] + b[2], a[3] + b[3], a[4] + b[4], a[5] + b[5], a[6] + b[6],
                 a[7] + b[7], a[8] + b[8], a[9] + b[9], a[10] + b[10], a[11] + b[11], a[12] + b[12]]
$$;

-- The visits of a 12-month array.
CREATE FUNCTION visitas_total_meses(a integer[]) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7] + a[8] + a[9] + a[10] + a[11] + a[12]
$$;

-- ---------------------------------------------------------------------------------------
-- 1. Visitor counters
-- ---------------------------------------------------------------------------------------

-- Visits per (e-mail, year of fecha_envio, month), from the rows loaded so far.
CREATE TEMP TABLE meses_existentes AS
SELECT email, extract(year FROM fecha_envio)::int AS anio,
       ARRAY[count(*) FILTER (WHERE extract(month FROM fecha_envio) = 1),
             count(*) FILTER (WHERE extract(month FROM fecha_envio) = 2),
             count(*) FILTER (WHERE extract(month FROM fecha_envio) = 3),
             count(*) FILTER (WHERE extract(month FROM fecha_envio) = 4),
             count(*) FILTER (WHERE extract(month FROM fecha_envio) = 5),
             count(*) FILTER (WHERE extract(month FROM fecha_envio) = 6),
             count(*) FILTER (WHERE extract(month FROM fecha_envio) = 7),
             count(*) FILTER (WHERE extract(month FROM fecha_envio) = 8),
             count(*) FILTER (WHERE extract(month FROM fecha_envio) = 9),
             count(*) FILTER (WHERE extract(month FROM fecha_envio) = 10),
             count(*) FILTER (WHERE extract(month FROM fecha_envio) = 11),
             count(*) FILTER (WHERE extract(month FROM fecha_envio) = 12)]::int[] AS meses
FROM estadisticas
GROUP BY 1, 2;

ALTER TABLE visitantes ADD COLUMN visitas_por_mes integer[];
UPDATE visitantes v SET visitas_por_mes = coalesce(
    (SELECT m.meses FROM meses_existentes m
     WHERE m.email = v.email AND m.anio = extract(year FROM v.contadores_al)),
    '{0,0,0,0,0,0,0,0,0,0,0,0}');
-- Visitors are updated every night they visit: half of each page free lets one night
-- update every row of a page in place (HOT: no new index entry per update; the dead
-- versions are pruned when the page is next read). 300,000 updates: 1.4 s, against
-- 2.5 s at fillfactor 100.
ALTER TABLE visitantes
    SET (fillfactor = 50),
    ALTER COLUMN visitas_por_mes SET NOT NULL,
    ADD CONSTRAINT visitantes_twelve_months CHECK (cardinality(visitas_por_mes) = 12),
    ADD CONSTRAINT visitantes_month_counter_is_its_month
        CHECK (visitas_mes_actual = visitas_por_mes[extract(month FROM contadores_al)::int]);
COMMENT ON COLUMN visitantes.visitas_por_mes IS
    'Visits per month (January first) of the calendar year of contadores_al';

-- Visits per month of the years other than the visitor's contadores_al year; a year
-- with no visits has no row.
CREATE TABLE visitas_por_anio (
    email           text      NOT NULL,
    anio            integer   NOT NULL,
    visitas_por_mes integer[] NOT NULL,
    CONSTRAINT visitas_por_anio_pkey PRIMARY KEY (email, anio),
    CONSTRAINT visitas_por_anio_twelve_months CHECK (cardinality(visitas_por_mes) = 12)
);
INSERT INTO visitas_por_anio (email, anio, visitas_por_mes)
SELECT m.email, m.anio, m.meses
FROM meses_existentes m JOIN visitantes v ON v.email = m.email
WHERE m.anio <> extract(year FROM v.contadores_al);
DROP TABLE meses_existentes;

-- ---------------------------------------------------------------------------------------
-- 2. Monthly partitions of estadisticas and errores
-- ---------------------------------------------------------------------------------------

-- Files whose detail rows retention dropped (their bitacora_control row stays).
CREATE TABLE detalle_depurado (
    bitacora_id bigint      PRIMARY KEY REFERENCES bitacora_control (id),
    particion   text        NOT NULL,
    depurado_en timestamptz NOT NULL DEFAULT now()
);

-- The reference guard of migration 4, now also on partitions (a statement naming a
-- partition fires only that partition's statement triggers, so each partition gets
-- its own). TG_ARGV[0] names the partitioned table.
--
-- It also keeps "one row per line" across partitions: a unique constraint on a
-- partitioned table must hold the partition key, so (bitacora_id, creado_en, linea) is
-- unique per partition, and this check refuses rows for a file that already has rows
-- with another creado_en (a file's rows all come from one transaction). Both lookups
-- are bounded index range scans, once per statement.
CREATE OR REPLACE FUNCTION visitas_details_have_audit_row() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    missing bigint;
BEGIN
    SELECT n.bitacora_id INTO missing
    FROM (SELECT DISTINCT bitacora_id FROM written) n
    WHERE NOT EXISTS (SELECT 1 FROM bitacora_control b WHERE b.id = n.bitacora_id)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'insert or update on table "%" violates the reference to bitacora_control', TG_TABLE_NAME
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (bitacora_id)=(%s) is not present in table "bitacora_control".', missing);
    END IF;
    IF TG_ARGV[0] = 'estadisticas' THEN
        SELECT w.bitacora_id INTO missing
        FROM (SELECT DISTINCT bitacora_id, creado_en FROM written) w
        WHERE EXISTS (SELECT 1 FROM estadisticas d WHERE d.bitacora_id = w.bitacora_id AND d.creado_en < w.creado_en)
           OR EXISTS (SELECT 1 FROM estadisticas d WHERE d.bitacora_id = w.bitacora_id AND d.creado_en > w.creado_en)
        LIMIT 1;
    ELSE
        SELECT w.bitacora_id INTO missing
        FROM (SELECT DISTINCT bitacora_id, creado_en FROM written) w
        WHERE EXISTS (SELECT 1 FROM errores d WHERE d.bitacora_id = w.bitacora_id AND d.creado_en < w.creado_en)
           OR EXISTS (SELECT 1 FROM errores d WHERE d.bitacora_id = w.bitacora_id AND d.creado_en > w.creado_en)
        LIMIT 1;
    END IF;
    IF FOUND THEN
        RAISE EXCEPTION 'insert or update on table "%" violates one row per line: bitacora_id % already has rows of another load', TG_TABLE_NAME, missing
            USING ERRCODE = 'unique_violation';
    END IF;
    RETURN NULL;
END
$$;

-- The partition of `tabla` (estadisticas or errores) for the UTC month of `instante`,
-- created if missing; returns its name and whether it was created.
--
-- The loader COPYs into the partition of its transaction's now(), not into the parent:
-- PostgreSQL 15 gives up multi-row inserts for a COPY into a partitioned table that has
-- a statement trigger with a transition table (ours, the reference guard), which made
-- a 950,000-row COPY ~3 s slower. The partition's own statement triggers guard it.
--
-- Locks: CREATE TABLE … LIKE takes ACCESS SHARE on the parent and ATTACH PARTITION
-- SHARE UPDATE EXCLUSIVE, so neither waits for running loads nor blocks readers (a
-- CREATE TABLE … PARTITION OF would take ACCESS EXCLUSIVE on the parent). A
-- transaction advisory lock makes concurrent callers create it once.
CREATE FUNCTION visitas_particion_mensual(tabla text, instante timestamptz,
                                          OUT particion text, OUT creada boolean)
LANGUAGE plpgsql AS $$
DECLARE
    desde timestamp := date_trunc('month', instante AT TIME ZONE 'UTC');
BEGIN
    IF tabla NOT IN ('estadisticas', 'errores') THEN
        RAISE EXCEPTION 'not a partitioned detail table: %', tabla;
    END IF;
    particion := format('%s_%s', tabla, to_char(desde, 'YYYY_MM'));
    creada := false;
    IF to_regclass(particion) IS NOT NULL THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(1447646025, 2);  -- (0x56495349, 2): the "VISI" lock space
    IF to_regclass(particion) IS NOT NULL THEN
        RETURN;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)',
                   particion, tabla);
    -- The loader copies straight into the partition (see below): its ids come from the
    -- parent's identity sequence, so they stay unique across partitions.
    EXECUTE format('ALTER TABLE %I ALTER COLUMN id SET DEFAULT nextval(%L::regclass)',
                   particion, pg_get_serial_sequence(tabla, 'id'));
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS written
                    FOR EACH STATEMENT EXECUTE FUNCTION visitas_details_have_audit_row(%L)',
                   particion || '_reference_insert', particion, tabla);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %I REFERENCING NEW TABLE AS written
                    FOR EACH STATEMENT EXECUTE FUNCTION visitas_details_have_audit_row(%L)',
                   particion || '_reference_update', particion, tabla);
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   tabla, particion, desde AT TIME ZONE 'UTC', (desde + interval '1 month') AT TIME ZONE 'UTC');
    creada := true;
END
$$;

-- The partitions of both tables for the month of `instante`; returns those it created.
CREATE FUNCTION visitas_asegurar_particiones(instante timestamptz) RETURNS SETOF text
LANGUAGE sql AS $$
    SELECT p.particion
    FROM unnest(ARRAY['estadisticas', 'errores']) AS t(tabla),
         LATERAL visitas_particion_mensual(t.tabla, instante) p
    WHERE p.creada
$$;

-- estadisticas: the rows so far move, with the time their file was loaded, into
-- monthly partitions of a new table of the same name and shape (plus creado_en).
ALTER TABLE estadisticas RENAME TO estadisticas_0005;
ALTER INDEX estadisticas_pkey RENAME TO estadisticas_0005_pkey;
ALTER INDEX estadisticas_one_row_per_line RENAME TO estadisticas_0005_one_row_per_line;
ALTER INDEX estadisticas_email RENAME TO estadisticas_0005_email;
ALTER SEQUENCE estadisticas_id_seq RENAME TO estadisticas_0005_id_seq;

CREATE TABLE estadisticas (
    id             bigint GENERATED ALWAYS AS IDENTITY,
    bitacora_id    bigint    NOT NULL,
    archivo        text      NOT NULL,
    linea          integer   NOT NULL CHECK (linea >= 2),
    email          text      NOT NULL CHECK (email = lower(email) AND length(email) <= 254),
    jyv            text,
    badmail        text,
    baja           text,
    fecha_envio    timestamp NOT NULL,
    fecha_open     timestamp,
    opens          integer   CHECK (opens >= 0),
    opens_virales  integer   CHECK (opens_virales >= 0),
    fecha_click    timestamp,
    clicks         integer   CHECK (clicks >= 0),
    clicks_virales integer   CHECK (clicks_virales >= 0),
    links          text,
    ips            text,
    navegadores    text,
    plataformas    text,
    -- When the row's load began (the load transaction's now()): the partition key.
    creado_en      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT estadisticas_pkey PRIMARY KEY (id, creado_en),
    CONSTRAINT estadisticas_one_row_per_line UNIQUE (bitacora_id, creado_en, linea)
) PARTITION BY RANGE (creado_en);
-- Operators look rows up by e-mail: one index probe per partition, no heap scan.
CREATE INDEX estadisticas_email ON estadisticas (email);

CREATE TRIGGER estadisticas_reference_insert AFTER INSERT ON estadisticas
    REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION visitas_details_have_audit_row('estadisticas');
CREATE TRIGGER estadisticas_reference_update AFTER UPDATE ON estadisticas
    REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION visitas_details_have_audit_row('estadisticas');

-- errores: the same, its creado_en kept.
ALTER TABLE errores RENAME TO errores_0005;
ALTER INDEX errores_pkey RENAME TO errores_0005_pkey;
ALTER INDEX errores_one_row_per_line RENAME TO errores_0005_one_row_per_line;
ALTER INDEX errores_tipo_error RENAME TO errores_0005_tipo_error;
ALTER SEQUENCE errores_id_seq RENAME TO errores_0005_id_seq;

CREATE TABLE errores (
    id            bigint GENERATED ALWAYS AS IDENTITY,
    bitacora_id   bigint      NOT NULL,
    archivo       text        NOT NULL,
    linea         integer     NOT NULL CHECK (linea >= 2),
    tipo_error    text        NOT NULL
                  CHECK (tipo_error IN ('FIELD_COUNT', 'EMAIL_INVALIDO', 'FECHA_ENVIO_INVALIDA',
                         'FECHA_OPEN_INVALIDA', 'FECHA_CLICK_INVALIDA', 'ENTERO_INVALIDO',
                         'TEXTO_DEMASIADO_LARGO')),
    detalle       text        NOT NULL,
    fila_original text        NOT NULL,
    creado_en     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT errores_pkey PRIMARY KEY (id, creado_en),
    CONSTRAINT errores_one_row_per_line UNIQUE (bitacora_id, creado_en, linea)
) PARTITION BY RANGE (creado_en);
CREATE INDEX errores_tipo_error ON errores (tipo_error);
-- Operators read a file's rejected records by its name (README): an index probe per
-- partition instead of reading every partition (5 % of the rows: cheap to maintain).
CREATE INDEX errores_archivo ON errores (archivo);

CREATE TRIGGER errores_reference_insert AFTER INSERT ON errores
    REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION visitas_details_have_audit_row('errores');
CREATE TRIGGER errores_reference_update AFTER UPDATE ON errores
    REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION visitas_details_have_audit_row('errores');

-- Partitions for every month holding rows, this month and the next two.
CREATE TEMP TABLE cargados_en AS
SELECT b.id AS bitacora_id, coalesce(b.fin, b.inicio, b.creado_en) AS creado_en
FROM bitacora_control b
WHERE EXISTS (SELECT 1 FROM estadisticas_0005 e WHERE e.bitacora_id = b.id);
SELECT visitas_particion_mensual('estadisticas', m.instante), visitas_particion_mensual('errores', m.instante)
FROM (SELECT creado_en FROM cargados_en
      UNION SELECT creado_en FROM errores_0005
      UNION SELECT now() + make_interval(months => n) FROM generate_series(0, 2) n) AS m(instante);

INSERT INTO estadisticas (id, bitacora_id, archivo, linea, email, jyv, badmail, baja, fecha_envio, fecha_open,
                          opens, opens_virales, fecha_click, clicks, clicks_virales, links, ips, navegadores,
                          plataformas, creado_en)
OVERRIDING SYSTEM VALUE
SELECT e.id, e.bitacora_id, e.archivo, e.linea, e.email, e.jyv, e.badmail, e.baja, e.fecha_envio, e.fecha_open,
       e.opens, e.opens_virales, e.fecha_click, e.clicks, e.clicks_virales, e.links, e.ips, e.navegadores,
       e.plataformas, c.creado_en
FROM estadisticas_0005 e JOIN cargados_en c USING (bitacora_id);
INSERT INTO errores (id, bitacora_id, archivo, linea, tipo_error, detalle, fila_original, creado_en)
OVERRIDING SYSTEM VALUE
SELECT id, bitacora_id, archivo, linea, tipo_error, detalle, fila_original, creado_en FROM errores_0005;
SELECT setval(pg_get_serial_sequence('estadisticas', 'id'), coalesce(max(id), 0) + 1, false) FROM estadisticas;
SELECT setval(pg_get_serial_sequence('errores', 'id'), coalesce(max(id), 0) + 1, false) FROM errores;
DROP TABLE cargados_en;
DROP TABLE estadisticas_0005, errores_0005;

-- Migration 3's default privileges cover new tables of the migrating role; say it anyway.
GRANT SELECT ON estadisticas, errores, visitas_por_anio, detalle_depurado TO visitas_lectura;
