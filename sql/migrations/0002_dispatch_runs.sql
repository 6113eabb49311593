-- The nightly dispatcher records what each run saw, did, and whether the night drained.
ALTER TABLE dispatch_runs
    ADD COLUMN fecha_negocio          date,
    ADD COLUMN files_ignored          integer NOT NULL DEFAULT 0 CHECK (files_ignored >= 0),
    ADD COLUMN files_incomplete       integer NOT NULL DEFAULT 0 CHECK (files_incomplete >= 0),
    ADD COLUMN files_known            integer NOT NULL DEFAULT 0 CHECK (files_known >= 0),
    ADD COLUMN files_retried          integer NOT NULL DEFAULT 0 CHECK (files_retried >= 0),
    ADD COLUMN files_waiting_operator integer NOT NULL DEFAULT 0 CHECK (files_waiting_operator >= 0),
    ADD COLUMN drained                boolean;

-- Tier 4 finds failed items by their listing identity.
CREATE INDEX work_items_failed ON work_items (source_path) WHERE state = 'failed';
