-- The reference guard of migrations 4 and 6 reads the statement's rows once instead of
-- twice: one GROUP BY over the transition table gives its (file, load time) pairs,
-- usually one, and each is checked against bitacora_control and against rows of the
-- same file from another load. Same guarantees, same errors (a missing reference still
-- wins); a 25,000-row COPY batch pays for one pass over its rows instead of two.
--
-- A file's rows are written by a load, after its audit row was made: the guard now
-- refuses rows older than their audit row (`creado_en`), so the search for rows of
-- another load of the file can start there and still see them all. Planned for its own
-- values (force_custom_plan), that search prunes to the partitions since then, usually
-- the day's own; a generic plan, or a search from the beginning, would open and lock
-- every partition of the table's history (with daily partitions, ~1,600 relations a
-- year per table) at every statement of every load. Rows loaded before this migration
-- are never older than their audit row (migration 6 dated them by the load's end).
CREATE OR REPLACE FUNCTION visitas_details_have_audit_row() RETURNS trigger
LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    escrito record;
    desde timestamptz;
    otra_carga boolean;
BEGIN
    -- Pairs with a missing audit row first: as before, a statement breaking both rules
    -- is refused for its reference.
    FOR escrito IN
        SELECT w.bitacora_id, w.creado_en FROM written w GROUP BY 1, 2
        ORDER BY EXISTS (SELECT 1 FROM bitacora_control b WHERE b.id = w.bitacora_id)
    LOOP
        SELECT b.creado_en INTO desde FROM bitacora_control b WHERE b.id = escrito.bitacora_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'insert or update on table "%" violates the reference to bitacora_control', TG_TABLE_NAME
                USING ERRCODE = 'foreign_key_violation',
                      DETAIL = format('Key (bitacora_id)=(%s) is not present in table "bitacora_control".',
                                      escrito.bitacora_id);
        END IF;
        IF escrito.creado_en < desde THEN
            RAISE EXCEPTION 'insert or update on table "%" violates the load order: rows of bitacora_id % dated % are older than their audit row (%)',
                            TG_TABLE_NAME, escrito.bitacora_id, escrito.creado_en, desde
                USING ERRCODE = 'check_violation';
        END IF;
        -- Bounded index range scans of (bitacora_id, creado_en, linea) in the partitions
        -- left, on either side of this load's rows, which they never read.
        IF TG_ARGV[0] = 'estadisticas' THEN
            otra_carga := EXISTS (SELECT 1 FROM estadisticas d
                                  WHERE d.bitacora_id = escrito.bitacora_id
                                    AND d.creado_en >= desde AND d.creado_en < escrito.creado_en)
                       OR EXISTS (SELECT 1 FROM estadisticas d
                                  WHERE d.bitacora_id = escrito.bitacora_id AND d.creado_en > escrito.creado_en);
        ELSE
            otra_carga := EXISTS (SELECT 1 FROM errores d
                                  WHERE d.bitacora_id = escrito.bitacora_id
                                    AND d.creado_en >= desde AND d.creado_en < escrito.creado_en)
                       OR EXISTS (SELECT 1 FROM errores d
                                  WHERE d.bitacora_id = escrito.bitacora_id AND d.creado_en > escrito.creado_en);
        END IF;
        IF otra_carga THEN
            RAISE EXCEPTION 'insert or update on table "%" violates one row per line: bitacora_id % already has rows of another load',
                            TG_TABLE_NAME, escrito.bitacora_id
                USING ERRCODE = 'unique_violation';
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;
