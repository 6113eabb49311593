-- A record holding a character PostgreSQL text cannot store (NUL) is rejected with
-- its own code, CARACTER_INVALIDO (README, "Data contract: edge cases decided here").
-- Only the list of codes changes. ALTER TABLE takes an ACCESS EXCLUSIVE lock on
-- `errores` (and its partitions, if any) while the new check scans the existing rows.
-- The check may carry another name once `errores` was rebuilt (migration 6), and each
-- partition made with LIKE holds its own copy: drop every check on tipo_error there.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT k.conrelid::regclass AS rel, k.conname
        FROM pg_constraint k
        WHERE k.contype = 'c' AND pg_get_constraintdef(k.oid) LIKE '%tipo_error%'
          AND (k.conrelid = 'errores'::regclass
               OR k.conrelid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'errores'::regclass))
        ORDER BY k.conrelid = 'errores'::regclass DESC
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', c.rel, c.conname);
    END LOOP;
END
$$;
ALTER TABLE errores ADD CONSTRAINT errores_tipo_error_check
    CHECK (tipo_error IN ('FIELD_COUNT', 'CARACTER_INVALIDO', 'EMAIL_INVALIDO', 'FECHA_ENVIO_INVALIDA',
                          'FECHA_OPEN_INVALIDA', 'FECHA_CLICK_INVALIDA', 'ENTERO_INVALIDO',
                          'TEXTO_DEMASIADO_LARGO'));
