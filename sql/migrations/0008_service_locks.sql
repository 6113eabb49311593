-- The service's locks as rows only the service role can lock (issue 11).
--
-- Advisory locks were open to any role that can connect: the read-only role
-- `visitas_lectura` could take the dispatcher's or the visitors' key and stall every
-- night and every load. Here taking a lock is an UPDATE, an INSERT … ON CONFLICT DO
-- UPDATE or a SELECT … FOR UPDATE, all of which need UPDATE privilege. With SELECT
-- alone a role can take only ACCESS SHARE on these tables (a plain SELECT or
-- LOCK TABLE … IN ACCESS SHARE MODE), which conflicts with nothing but DDL.

-- Named locks. `dispatch` is a lease (holder and expiry, renewed by heartbeat) held by
-- `dispatcher run` and `dispatcher close`; `visitors` is row-locked FOR UPDATE inside a
-- load transaction around the visitor upsert. Readable, so operators see who holds what.
CREATE TABLE service_locks (
    name        text PRIMARY KEY,
    holder      text,
    -- Bumped at every acquisition: a holder that lost its lease cannot renew or release
    -- the next holder's.
    token       bigint NOT NULL DEFAULT 0,
    acquired_at timestamptz,
    expires_at  timestamptz,
    CONSTRAINT service_locks_lease CHECK ((holder IS NULL) = (expires_at IS NULL))
);
INSERT INTO service_locks (name) VALUES ('dispatch'), ('visitors');

-- Two loads of the same content serialise on its row (inserted, or updated when it
-- exists, in the load transaction): the second sees the first and ends DUPLICADO.
CREATE TABLE content_locks (
    sha256    text PRIMARY KEY,
    locked_at timestamptz NOT NULL DEFAULT now()
);

-- Guard: whatever default privileges say, the read-only role may only read these.
REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER
    ON service_locks, content_locks FROM PUBLIC, visitas_lectura;
GRANT SELECT ON service_locks, content_locks TO visitas_lectura;
