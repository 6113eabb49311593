-- A record holding a character PostgreSQL text cannot store (NUL) is rejected with
-- its own code, CARACTER_INVALIDO (README, "Data contract: edge cases decided here").
-- Only the list of codes changes. ALTER TABLE takes an ACCESS EXCLUSIVE lock on
-- `errores` (and its partitions, if any) while the new check scans the existing rows.
ALTER TABLE errores DROP CONSTRAINT IF EXISTS errores_tipo_error_check;
ALTER TABLE errores ADD CONSTRAINT errores_tipo_error_check
    CHECK (tipo_error IN ('FIELD_COUNT', 'CARACTER_INVALIDO', 'EMAIL_INVALIDO', 'FECHA_ENVIO_INVALIDA',
                          'FECHA_OPEN_INVALIDA', 'FECHA_CLICK_INVALIDA', 'ENTERO_INVALIDO',
                          'TEXTO_DEMASIADO_LARGO'));
