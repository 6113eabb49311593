-- The visits feed schema: the queue, the audit log and the domain tables.
-- Domain tables keep the seed's Spanish names (operators query them); the
-- queue is ours and speaks English. Invariants live here, not only in code.

-- One row per `dispatcher run` (or manual enqueue): what it listed and did.
CREATE TABLE dispatch_runs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    host            text        NOT NULL,
    source          text        NOT NULL,
    files_listed    integer     NOT NULL DEFAULT 0 CHECK (files_listed >= 0),
    files_enqueued  integer     NOT NULL DEFAULT 0 CHECK (files_enqueued >= 0),
    files_skipped   integer     NOT NULL DEFAULT 0 CHECK (files_skipped >= 0),
    outcome         text
);

-- The work queue: one row per file seen at the origin. Claimed with
-- FOR UPDATE SKIP LOCKED, then worked under a lease (locked_until).
CREATE TABLE work_items (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_path       text        NOT NULL,
    file_name         text        NOT NULL,
    size_bytes        bigint      NOT NULL CHECK (size_bytes >= 0),
    mtime             timestamptz NOT NULL,
    state             text        NOT NULL DEFAULT 'pending'
                      CHECK (state IN ('pending', 'running', 'done', 'failed')),
    attempts          integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts      integer     NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    run_at            timestamptz NOT NULL DEFAULT now(),
    locked_by         text,
    locked_until      timestamptz,
    last_error        text,
    dispatch_run_id   bigint      REFERENCES dispatch_runs (id),
    system_retry_days integer     NOT NULL DEFAULT 0 CHECK (system_retry_days >= 0),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    -- The listing identity: the same file seen twice is enqueued once.
    CONSTRAINT work_items_listing_key UNIQUE (source_path, size_bytes, mtime),
    CONSTRAINT work_items_lease CHECK (state <> 'running' OR (locked_by IS NOT NULL AND locked_until IS NOT NULL))
);
-- The claim query reads only this partial index.
CREATE INDEX work_items_claimable ON work_items (run_at, id) WHERE state = 'pending';
-- The rescuer looks for running items whose lease expired.
CREATE INDEX work_items_running ON work_items (locked_until) WHERE state = 'running';

-- One row per received file (work item): what happened to it.
CREATE TABLE bitacora_control (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    work_item_id            bigint      NOT NULL UNIQUE REFERENCES work_items (id),
    archivo                 text        NOT NULL,
    ruta_origen             text        NOT NULL,
    tamano_bytes            bigint      CHECK (tamano_bytes >= 0),
    sha256                  text        CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    encoding                text        CHECK (encoding IN ('utf-8', 'windows-1252')),
    estatus                 text        NOT NULL DEFAULT 'PENDIENTE'
                            CHECK (estatus IN ('PENDIENTE', 'EN_PROCESO', 'COMPLETADO',
                                   'COMPLETADO_CON_ERRORES', 'DUPLICADO', 'FALLO_LAYOUT', 'FALLO_SISTEMA')),
    intentos                integer     NOT NULL DEFAULT 0 CHECK (intentos >= 0),
    registros_totales       integer     CHECK (registros_totales >= 0),
    registros_validos       integer     CHECK (registros_validos >= 0),
    registros_error         integer     CHECK (registros_error >= 0),
    visitantes_nuevos       integer     CHECK (visitantes_nuevos >= 0),
    visitantes_actualizados integer     CHECK (visitantes_actualizados >= 0),
    inicio                  timestamptz,
    fin                     timestamptz,
    duracion_ms             bigint      CHECK (duracion_ms >= 0),
    worker                  text,
    mensaje_error           text,
    ruta_backup             text,
    fecha_negocio           date,
    -- A quarantined file re-enqueued by an operator points to its first attempt.
    reprocesa_de            bigint      REFERENCES bitacora_control (id),
    creado_en               timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT bitacora_counts_add_up
        CHECK (registros_totales = registros_validos + registros_error),
    CONSTRAINT bitacora_loaded_is_complete
        CHECK (estatus NOT IN ('COMPLETADO', 'COMPLETADO_CON_ERRORES', 'DUPLICADO')
               OR (sha256 IS NOT NULL AND registros_totales IS NOT NULL AND fecha_negocio IS NOT NULL)),
    CONSTRAINT bitacora_completado_has_no_errors
        CHECK (estatus <> 'COMPLETADO' OR registros_error = 0),
    CONSTRAINT bitacora_con_errores_has_errors
        CHECK (estatus <> 'COMPLETADO_CON_ERRORES' OR registros_error > 0)
);
-- Invariant 2 in the database itself: content (SHA-256) is loaded at most once.
CREATE UNIQUE INDEX bitacora_control_sha256_loaded ON bitacora_control (sha256)
    WHERE estatus IN ('COMPLETADO', 'COMPLETADO_CON_ERRORES');
CREATE INDEX bitacora_control_fecha_negocio ON bitacora_control (fecha_negocio);
CREATE INDEX bitacora_control_estatus ON bitacora_control (estatus);
CREATE INDEX bitacora_control_archivo ON bitacora_control (archivo);

-- One row per valid record.
CREATE TABLE estadisticas (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bitacora_id    bigint    NOT NULL REFERENCES bitacora_control (id),
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
    CONSTRAINT estadisticas_one_row_per_line UNIQUE (bitacora_id, linea)
);
-- The visitor recount and operators look rows up by email.
CREATE INDEX estadisticas_email ON estadisticas (email);

-- One row per invalid record.
CREATE TABLE errores (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bitacora_id   bigint      NOT NULL REFERENCES bitacora_control (id),
    archivo       text        NOT NULL,
    linea         integer     NOT NULL CHECK (linea >= 2),
    tipo_error    text        NOT NULL
                  CHECK (tipo_error IN ('FIELD_COUNT', 'EMAIL_INVALIDO', 'FECHA_ENVIO_INVALIDA',
                         'FECHA_OPEN_INVALIDA', 'FECHA_CLICK_INVALIDA', 'ENTERO_INVALIDO',
                         'TEXTO_DEMASIADO_LARGO')),
    detalle       text        NOT NULL,
    fila_original text        NOT NULL,
    creado_en     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT errores_one_row_per_line UNIQUE (bitacora_id, linea)
);
CREATE INDEX errores_tipo_error ON errores (tipo_error);

-- One row per visitor: the aggregate of all its valid rows (SPEC §5).
CREATE TABLE visitantes (
    email                text      PRIMARY KEY CHECK (email = lower(email)),
    fecha_primera_visita timestamp NOT NULL,
    fecha_ultima_visita  timestamp NOT NULL,
    visitas_totales      integer   NOT NULL CHECK (visitas_totales > 0),
    visitas_anio_actual  integer   NOT NULL CHECK (visitas_anio_actual >= 0),
    visitas_mes_actual   integer   NOT NULL CHECK (visitas_mes_actual >= 0),
    contadores_al        date      NOT NULL,
    actualizado_en       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT visitantes_dates_ordered CHECK (fecha_primera_visita <= fecha_ultima_visita),
    CONSTRAINT visitantes_counts_nested
        CHECK (visitas_mes_actual <= visitas_anio_actual AND visitas_anio_actual <= visitas_totales)
);

-- Monthly report for operators: per business month and status, files and records.
CREATE VIEW reporte_mensual AS
SELECT date_trunc('month', coalesce(fecha_negocio, creado_en::date))::date AS mes,
       estatus,
       count(*)                             AS archivos,
       coalesce(sum(registros_totales), 0)  AS registros_totales,
       coalesce(sum(registros_validos), 0)  AS registros_validos,
       coalesce(sum(registros_error), 0)    AS registros_error
FROM bitacora_control
GROUP BY 1, 2;

-- Daily summary for operators and the nightly close.
CREATE VIEW resumen_diario AS
SELECT coalesce(fecha_negocio, creado_en::date) AS dia,
       estatus,
       count(*)                             AS archivos,
       coalesce(sum(registros_totales), 0)  AS registros_totales,
       coalesce(sum(registros_validos), 0)  AS registros_validos,
       coalesce(sum(registros_error), 0)    AS registros_error
FROM bitacora_control
GROUP BY 1, 2;
