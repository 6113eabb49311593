-- Since migration 6 a night writes into its month's partition, whose e-mail index (random
-- inserts) then grows all month: measured, the 12th night of a month took 1.33 x the
-- same file into empty tables, and each night ~0.2 s more than the one before. From now
-- on a new month's partition is itself partitioned by UTC day of creado_en, and a load
-- COPYs into its day's leaf: a night maintains the indexes of its own day only. Months
-- stay the unit of retention (`dispatcher partitions`); a look-up by e-mail probes each
-- day's e-mail index. Months made before this migration keep their rows and stay whole.

-- Makes `nombre`, a partition of `padre` (a detail table or one of its months) for
-- [desde, hasta), unless it exists; returns whether it made it. It gets the defaults,
-- checks and indexes of `padre` and the reference guard of `tabla` (a statement naming
-- a partition fires only its own statement triggers); `por_dia` makes it partitioned by
-- day. Creating it takes ACCESS SHARE on `padre` and attaching it SHARE UPDATE
-- EXCLUSIVE: loads and readers go on; a transaction advisory lock makes concurrent
-- callers create it once.
CREATE FUNCTION visitas_asegurar_particion(tabla text, padre text, nombre text,
                                           desde timestamptz, hasta timestamptz, por_dia boolean)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    evento text;
BEGIN
    IF tabla NOT IN ('estadisticas', 'errores') THEN
        RAISE EXCEPTION 'not a partitioned detail table: %', tabla;
    END IF;
    IF to_regclass(nombre) IS NOT NULL THEN
        RETURN false;
    END IF;
    PERFORM pg_advisory_xact_lock(1447646025, 2);  -- (0x56495349, 2): the "VISI" lock space
    -- Asked of the catalog, not of to_regclass: taking an advisory lock does not refresh
    -- this session's catalog cache, which may still say "missing" for a partition that
    -- the holder we waited for has just made (CREATE would then fail with 42P07).
    IF EXISTS (SELECT 1 FROM pg_class c
               WHERE c.relname = nombre AND c.relnamespace = current_schema()::regnamespace) THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES) %s',
                   nombre, padre, CASE WHEN por_dia THEN 'PARTITION BY RANGE (creado_en)' ELSE '' END);
    -- Ids come from the detail table's identity sequence, unique across partitions.
    EXECUTE format('ALTER TABLE %I ALTER COLUMN id SET DEFAULT nextval(%L::regclass)',
                   nombre, pg_get_serial_sequence(tabla, 'id'));
    FOREACH evento IN ARRAY ARRAY['insert', 'update'] LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER %s ON %I REFERENCING NEW TABLE AS written FOR EACH STATEMENT
                        EXECUTE FUNCTION visitas_details_have_audit_row(%L)',
                       nombre || '_reference_' || evento, upper(evento), nombre, tabla);
    END LOOP;
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', padre, nombre, desde, hasta);
    RETURN true;
END
$$;

-- The month partition of `tabla` for `instante` (UTC months), as migration 6 made it,
-- but split by day when it is new.
CREATE OR REPLACE FUNCTION visitas_particion_mensual(tabla text, instante timestamptz,
                                                     OUT particion text, OUT creada boolean)
LANGUAGE sql AS $$
    SELECT m.nombre, visitas_asegurar_particion(tabla, tabla, m.nombre, m.desde AT TIME ZONE 'UTC',
                                                (m.desde + interval '1 month') AT TIME ZONE 'UTC', true)
    FROM (SELECT d.desde, format('%s_%s', tabla, to_char(d.desde, 'YYYY_MM')) AS nombre
          FROM (SELECT date_trunc('month', instante AT TIME ZONE 'UTC') AS desde) d) m
$$;

-- The table a load COPYs into for `instante`: its day's leaf, created if missing (and its
-- month), or the month itself when made before migration 10.
CREATE FUNCTION visitas_particion_de_carga(tabla text, instante timestamptz,
                                           OUT particion text, OUT creada boolean)
LANGUAGE plpgsql AS $$
DECLARE
    mes text;
    dia timestamp := date_trunc('day', instante AT TIME ZONE 'UTC');
BEGIN
    SELECT m.particion, m.creada INTO mes, creada FROM visitas_particion_mensual(tabla, instante) m;
    IF (SELECT c.relkind FROM pg_class c
        WHERE c.relname = mes AND c.relnamespace = current_schema()::regnamespace) <> 'p' THEN
        particion := mes;
        RETURN;
    END IF;
    particion := format('%s_%s', mes, to_char(dia, 'DD'));
    creada := visitas_asegurar_particion(tabla, mes, particion, dia AT TIME ZONE 'UTC',
                                         (dia + interval '1 day') AT TIME ZONE 'UTC', false);
END
$$;

-- Months made ahead by migration 6 that hold no row yet become months split by day.
DO $$
DECLARE
    vacios text[];
    vacio text;
    tiene_filas boolean;
BEGIN
    SELECT array_agg(c.relname::text) INTO vacios
    FROM pg_inherits i
    JOIN pg_class parent ON parent.oid = i.inhparent
    JOIN pg_class c ON c.oid = i.inhrelid
    WHERE parent.relname IN ('estadisticas', 'errores') AND c.relkind = 'r'
      AND parent.relnamespace = 'public'::regnamespace
      AND c.relname ~ '_\d{4}_\d{2}$';
    FOREACH vacio IN ARRAY coalesce(vacios, '{}') LOOP
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I)', vacio) INTO tiene_filas;
        IF NOT tiene_filas THEN
            EXECUTE format('DROP TABLE %I', vacio);
            PERFORM visitas_particion_mensual(left(vacio, -8),
                                              to_date(right(vacio, 7), 'YYYY_MM')::timestamp AT TIME ZONE 'UTC');
        END IF;
    END LOOP;
END
$$;
