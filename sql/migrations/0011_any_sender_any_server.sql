-- Any sender, any server (issue 21), and the loaded content always backed up (issue 20,
-- point 2): origins that report no modification time, files read in place, done
-- markers, files the service leaves at the origin kept in sight, origins compared in
-- one spelling, and performers that say which origins they serve.

-- An origin that shows no modification time: unknown, never 1970 (size alone then
-- identifies a listed file).
ALTER TABLE work_items ALTER COLUMN mtime DROP NOT NULL;

ALTER TABLE work_items
    -- The done marker the listing required (`source.done_marker`): removed with the file.
    ADD COLUMN done_marker          text,
    -- An attempt read the file under its listed name: the origin refused the rename to
    -- the in-flight name. After a crash past the commit, the file is looked for there.
    ADD COLUMN read_in_place        boolean NOT NULL DEFAULT false,
    -- The beginning of the file an earlier item loaded (a file appended to after its
    -- load, loaded again by an operator): only the lines after it are loaded.
    ADD COLUMN loaded_prefix_bytes  bigint CHECK (loaded_prefix_bytes > 0),
    ADD COLUMN loaded_prefix_sha256 text CHECK (loaded_prefix_sha256 ~ '^[0-9a-f]{64}$'),
    ADD COLUMN loaded_prefix_of     bigint REFERENCES bitacora_control (id),
    ADD CONSTRAINT work_items_loaded_prefix_whole CHECK (
        (loaded_prefix_bytes IS NULL) = (loaded_prefix_sha256 IS NULL)
        AND (loaded_prefix_bytes IS NULL) = (loaded_prefix_of IS NULL));

-- One spelling per origin directory, as the code writes it (`shared::types::origin`):
-- sftp://user@host:port/dir with the host in lower case, the port written, the user and
-- the directory %-decoded, repeated slashes collapsed, no final slash; file:///dir the
-- same (its path was never %-encoded). `sftp://h/dir` and `sftp://h:22/dir/` are one.
CREATE FUNCTION visitas_decodificar_por_ciento(texto text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    salida bytea := ''::bytea;
    i      integer := 1;
    c      text;
BEGIN
    WHILE i <= length(texto) LOOP
        c := substr(texto, i, 1);
        IF c = '%' AND substr(texto, i + 1, 2) ~ '^[0-9A-Fa-f]{2}$' THEN
            salida := salida || decode(substr(texto, i + 1, 2), 'hex');
            i := i + 3;
        ELSE
            salida := salida || convert_to(c, 'UTF8');
            i := i + 1;
        END IF;
    END LOOP;
    RETURN convert_from(salida, 'UTF8');
EXCEPTION WHEN character_not_in_repertoire OR untranslatable_character THEN
    -- Not UTF-8 once decoded: such an origin could never be listed; left as written.
    RETURN texto;
END $$;

CREATE FUNCTION visitas_origen_normalizado(origen text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    partes    text[];
    autoridad text[];
    ruta      text;
BEGIN
    partes := regexp_match(origen, '^(sftp|file)://([^/]*)(.*)$', 'i');
    IF partes IS NULL THEN
        RETURN origen;
    END IF;
    ruta := CASE WHEN lower(partes[1]) = 'sftp' THEN visitas_decodificar_por_ciento(partes[3])
                 ELSE partes[3] END;
    ruta := regexp_replace(ruta, '/{2,}', '/', 'g');
    IF length(ruta) > 1 THEN
        ruta := regexp_replace(ruta, '/+$', '');
    END IF;
    IF lower(partes[1]) = 'file' THEN
        RETURN 'file://' || ruta;
    END IF;
    autoridad := regexp_match(partes[2], '^(.+)@([^@:]+|\[[^]]*\])(?::([0-9]+))?$');
    IF autoridad IS NULL THEN
        RETURN origen;
    END IF;
    RETURN 'sftp://' || visitas_decodificar_por_ciento(autoridad[1]) || '@' || lower(autoridad[2])
        || ':' || coalesce(autoridad[3], '22')::integer::text || ruta;
END $$;

UPDATE work_items SET origin = visitas_origen_normalizado(origin)
WHERE origin IS DISTINCT FROM visitas_origen_normalizado(origin);

-- The performers alive, and the origins each serves: a performer writes its row at start,
-- renews `alive_until` every third of its lease and removes the row when it stops. An
-- open item no live performer reaches is shown by `dispatcher status` and alerted by the
-- night instead of waited for.
CREATE TABLE performers (
    name        text PRIMARY KEY,            -- host:pid
    host        text        NOT NULL,
    origins     text[]      NOT NULL,        -- normalised, as work_items.origin
    started_at  timestamptz NOT NULL DEFAULT now(),
    alive_until timestamptz NOT NULL
);

-- Every file the service leaves at the origin under a name of its own, or leaves under
-- its listed name after loading it, until an operator resolves it (or it is gone):
--   changed        written to after it was read, and it still begins with what was
--                  loaded: renamed .visitas-changed-<item>-<token> (or, read in place,
--                  left under its listed name, which the night then leaves alone);
--   delete_refused the origin refuses deletes: loaded and backed up, the file stays.
-- `dispatcher quarantine list` and `status` show the open ones; `quarantine retry`
-- loads one as new content (never what was loaded before), `quarantine discard` moves
-- it to quarantine/discarded/.
CREATE TABLE set_aside_files (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The item that left it (no foreign key: restoring an older copy of the queue must
    -- not need this table truncated with it).
    work_item_id bigint      NOT NULL UNIQUE,
    origin       text        NOT NULL,
    origin_host  text,
    name         text        NOT NULL,       -- its name at the origin now
    path         text        NOT NULL,       -- its full path there
    done_marker  text,                       -- its done marker, left beside it
    reason       text        NOT NULL CHECK (reason IN ('changed', 'delete_refused')),
    size_bytes   bigint      CHECK (size_bytes >= 0),
    mtime        timestamptz,
    set_aside_at timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz,
    resolution   text        CHECK (resolution IN ('loaded', 'discarded', 'gone')),
    resolved_as  text,                       -- the new audit row, or where the copy went
    CONSTRAINT set_aside_files_resolved CHECK ((resolved_at IS NULL) = (resolution IS NULL))
);
-- One open record per name: the night leaves that name alone while it waits.
CREATE UNIQUE INDEX set_aside_files_open ON set_aside_files (origin, name) WHERE resolved_at IS NULL;

-- Files set aside before this migration were named only in a note on their audit row
-- ("… left there as NAME for an operator"): brought into sight. The night marks those
-- no longer at the origin as gone.
INSERT INTO set_aside_files (work_item_id, origin, origin_host, name, path, reason, size_bytes)
SELECT DISTINCT ON (w.origin, n.name) w.id, w.origin, w.origin_host, n.name,
       regexp_replace(w.source_path, '[^/]*$', '') || n.name, 'changed', NULL::bigint
FROM bitacora_control b
JOIN work_items w ON w.id = b.work_item_id
CROSS JOIN LATERAL (SELECT (regexp_match(b.mensaje_error,
        'changed at the origin after it was loaded .* left there as (\S+) for an operator'))[1] AS name) n
WHERE n.name IS NOT NULL
ORDER BY w.origin, n.name, w.id DESC;

-- What a run found set aside at the origin (waiting for an operator), not enqueued.
ALTER TABLE dispatch_runs
    ADD COLUMN files_set_aside integer NOT NULL DEFAULT 0 CHECK (files_set_aside >= 0);

REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER
    ON performers, set_aside_files FROM PUBLIC, visitas_lectura;
GRANT SELECT ON performers, set_aside_files TO visitas_lectura;
