-- Whole or nothing: fenced attempts, items bound to their origin, the business date
-- fixed at claim, and a listing identity that cannot hide new content.

-- Every claim takes a new token from this sequence; every later write of that attempt
-- names it, and the database refuses it once the item was taken back (a newer token).
CREATE SEQUENCE work_items_claim_token_seq AS bigint;

ALTER TABLE work_items
    ADD COLUMN claim_token   bigint,
    -- Where the file lives: the origin directory as a URL without credentials
    -- (sftp://user@host:port/dir or file:///dir) ...
    ADD COLUMN origin        text,
    -- ... and, for a file:// origin, the host that holds it (NULL: reachable by any
    -- performer configured with that origin).
    ADD COLUMN origin_host   text,
    -- The file's name at the origin when listed (the logical name is file_name).
    ADD COLUMN source_name   text,
    -- The business date of the item: fixed at its first claim, used for fecha_negocio,
    -- the visitor counters and the backup day.
    ADD COLUMN business_date date;

-- Items enqueued before this migration: bound to the origin of their dispatch run,
-- operators' local retries to their directory.
UPDATE work_items w SET
    origin = CASE
        WHEN w.local_path IS NOT NULL THEN 'file://' || regexp_replace(w.local_path, '/[^/]*$', '')
        -- As the performer writes its configured origin: sftp://user@host:port/dir.
        ELSE coalesce((SELECT regexp_replace(r.source, '^sftp://([^/@]+@[^/:]+)(/.*)?$', 'sftp://\1:22\2')
                       FROM dispatch_runs r WHERE r.id = w.dispatch_run_id),
                      'file://' || regexp_replace(w.source_path, '/[^/]*$', ''))
    END,
    origin_host = CASE WHEN w.local_path IS NOT NULL
                       THEN (SELECT r.host FROM dispatch_runs r ORDER BY r.id DESC LIMIT 1) END,
    source_name = CASE WHEN w.local_path IS NOT NULL
                       THEN regexp_replace(w.local_path, '^.*/', '') ELSE w.file_name END,
    claim_token = CASE WHEN w.state <> 'pending' THEN nextval('work_items_claim_token_seq') END;

ALTER TABLE work_items
    ALTER COLUMN origin SET NOT NULL,
    ALTER COLUMN source_name SET NOT NULL,
    DROP COLUMN local_path,
    ADD CONSTRAINT work_items_claimed_has_token CHECK (state = 'pending' OR claim_token IS NOT NULL);

-- At most one open item per listed path: a finished item's file was taken off the
-- origin under a private name before it was read, so whatever the origin holds under
-- the listed name afterwards is new content, enqueued once the item is no longer open.
DROP INDEX work_items_listing_key;
-- Open items that already shared a path (the old key allowed it): the oldest stays open,
-- the others wait for an operator (quarantine list) with why.
WITH extra AS (
    SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY source_path ORDER BY id) AS n
                    FROM work_items WHERE state IN ('pending', 'running')) o
    WHERE n > 1
), failed AS (
    UPDATE work_items w SET state = 'failed', locked_by = NULL, locked_until = NULL,
        claim_token = coalesce(w.claim_token, nextval('work_items_claim_token_seq')),
        last_error = 'upgrade: another open item holds the same path', system_retry_days = 999
    FROM extra WHERE w.id = extra.id RETURNING w.id
)
UPDATE bitacora_control b SET estatus = 'FALLO_SISTEMA',
    mensaje_error = 'upgrade: another open item holds the same path; retry it with quarantine retry'
FROM failed WHERE b.work_item_id = failed.id;
CREATE UNIQUE INDEX work_items_listing_key ON work_items (source_path)
    WHERE state IN ('pending', 'running');
CREATE INDEX work_items_listed ON work_items (source_path, size_bytes, mtime);

-- Claims look up due items by origin.
DROP INDEX work_items_claimable;
CREATE INDEX work_items_claimable ON work_items (run_at, id) INCLUDE (origin, origin_host)
    WHERE state = 'pending';
