-- Alerts with a life (issue 23). Every alert is a row: opened once, repeated at most every
-- `alerts.repeat_every` while open, closed by the check that passes (or acknowledged by an
-- operator). What it tells people goes through an outbox, `alert_notices`, which any
-- process of the service sends from: a short-lived command or a mail server that is down
-- loses nothing. `file_checks` records each loaded file's volume and error rate as
-- compared with its feed's history, once per file.

CREATE TABLE alerts (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             text        NOT NULL,
    -- The feed it is about; NULL for the service as a whole (a night, a close).
    feed             text,
    business_day     date,
    -- What it is about within (kind, feed, day): '' or, for a file's alert,
    -- 'bitacora:<id>'. At most one open alert per (kind, feed, day, subject).
    subject          text        NOT NULL DEFAULT '',
    file             text,
    bitacora_id      bigint,
    work_item_id     bigint,
    message          text        NOT NULL,
    -- The evidence: files counted, or value, median, MAD and z of a file.
    figures          jsonb       NOT NULL DEFAULT '{}',
    host             text        NOT NULL,
    opened_at        timestamptz NOT NULL DEFAULT now(),
    last_notified_at timestamptz NOT NULL DEFAULT now(),
    resolved_at      timestamptz,
    -- What closed it: the check that passed, or an operator's acknowledgement.
    resolution       text,
    acknowledged_by  text,
    ack_note         text,
    CONSTRAINT alerts_kind_known CHECK (kind IN ('ARCHIVO_AUSENTE', 'ARCHIVOS_DE_MAS', 'VOLUMEN_ANOMALO', 'TASA_ERROR_ANOMALA', 'FALLO_LAYOUT', 'FALLO_SISTEMA', 'ARCHIVO_MODIFICADO', 'RESPALDO_FALTANTE', 'ORIGEN_SIN_PERFORMER', 'NOCHE_SIN_DRENAR', 'NOCHE_BLOQUEADA', 'ARCHIVO_ZIP_FALLIDO')),
    CONSTRAINT alerts_resolved_says_how CHECK ((resolved_at IS NULL) = (resolution IS NULL)),
    CONSTRAINT alerts_ack_has_note CHECK (acknowledged_by IS NULL OR (ack_note <> '' AND resolved_at IS NOT NULL))
);
-- Opened once: a second raise of the same open alert finds it (and only updates its figures).
CREATE UNIQUE INDEX alerts_open_once ON alerts
    (kind, coalesce(feed, ''), coalesce(business_day, 'infinity'::date), subject)
    WHERE resolved_at IS NULL;
-- The presence check asks whether a day already had its alert, open or not.
CREATE INDEX alerts_by_day ON alerts (feed, kind, business_day);
CREATE INDEX alerts_by_file ON alerts (bitacora_id) WHERE bitacora_id IS NOT NULL;

-- The outbox: one row per notice and channel, sent by whichever process runs next.
CREATE SEQUENCE alert_notices_claim_seq AS bigint;
CREATE TABLE alert_notices (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id     bigint      NOT NULL REFERENCES alerts (id),
    what         text        NOT NULL CHECK (what IN ('ALERTA', 'RECORDATORIO', 'RECUPERADO')),
    channel      text        NOT NULL CHECK (channel IN ('webhook', 'email')),
    -- E-mail: the recipients (the webhook's URL is configuration, a secret, never stored).
    recipients   text[]      NOT NULL DEFAULT '{}',
    subject      text        NOT NULL,
    -- Rendered once, so every try sends the same bytes: the webhook's JSON, or the
    -- e-mail's plain text.
    body         text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    tries        integer     NOT NULL DEFAULT 0 CHECK (tries >= 0),
    next_try_at  timestamptz NOT NULL DEFAULT now(),
    -- A sender holds a notice while it tries it (a lease, so one that dies frees it).
    claim        bigint,
    locked_until timestamptz,
    sent_at      timestamptz,
    given_up_at  timestamptz,
    last_error   text,
    CONSTRAINT alert_notices_one_end CHECK (sent_at IS NULL OR given_up_at IS NULL)
);
CREATE INDEX alert_notices_due ON alert_notices (next_try_at)
    WHERE sent_at IS NULL AND given_up_at IS NULL;
CREATE INDEX alert_notices_of_alert ON alert_notices (alert_id);

-- Each loaded file compared with its feed's history, once.
CREATE TABLE file_checks (
    bitacora_id bigint      PRIMARY KEY,
    feed        text        NOT NULL,
    checked_at  timestamptz NOT NULL DEFAULT now(),
    figures     jsonb       NOT NULL
);

GRANT SELECT ON alerts, alert_notices, file_checks TO visitas_lectura;
