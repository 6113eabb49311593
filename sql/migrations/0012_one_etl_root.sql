-- One ETL root for the whole service (issue 20; docs/operations.md, "Several hosts").
--
-- Zips, their verification, retention, staging sweeps, `reload` and `quarantine retry`
-- all read `paths.root`. A performer whose root is not the dispatcher's leaves its
-- backups where no close zips, verifies or prunes them and no reload finds them. So the
-- service has one root, shared by every host that runs a performer or the dispatcher:
-- the first process to start registers its root here (and writes the root's id into
-- `<root>/visitas-root`); every later one must find the same path holding the same id,
-- or refuses to start, saying what to change.
CREATE TABLE etl_root (
    -- One row at most.
    only_one      boolean PRIMARY KEY DEFAULT true CHECK (only_one),
    -- The id written in the root's `visitas-root` file.
    root_id       text NOT NULL CHECK (root_id ~ '^[0-9a-f]{32}$'),
    -- Where every host mounts it: audit rows name copies by absolute path.
    path          text NOT NULL CHECK (path LIKE '/%'),
    registered_by text NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now()
);

-- Guard: whatever default privileges say, the read-only role may only read it.
REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON etl_root FROM PUBLIC, visitas_lectura;
GRANT SELECT ON etl_root TO visitas_lectura;
