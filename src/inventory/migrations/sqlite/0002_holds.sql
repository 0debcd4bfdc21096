-- SQLite dialect of the PostgreSQL migration of the same name (read that one for the model).
-- SQLite cannot change a CHECK nor drop a column in place: the tables are rebuilt.
--
-- Upgrade: a reservation confirmed before holds existed becomes a hold that never expires
-- (`hold_expires_at_ms` NULL); its units stay taken, so `remaining` is what it was.
CREATE TABLE inventory_next (
    event TEXT   NOT NULL,
    sku   TEXT   NOT NULL,
    total BIGINT NOT NULL,
    held  BIGINT NOT NULL DEFAULT 0,
    sold  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (event, sku),
    CHECK (held >= 0 AND sold >= 0 AND held + sold <= total)
);

-- Items are stored as `sku:quantity,sku:quantity`: split on ',' then on ':'.
WITH RECURSIVE split (event, rest, part) AS (
    SELECT event, items || ',', '' FROM reservations WHERE state = 'confirmed'
    UNION ALL
    SELECT event, substr(rest, instr(rest, ',') + 1), substr(rest, 1, instr(rest, ',') - 1)
    FROM split WHERE rest <> ''
), units AS (
    SELECT event, substr(part, 1, instr(part, ':') - 1) AS sku,
           SUM(CAST(substr(part, instr(part, ':') + 1) AS INTEGER)) AS q
    FROM split WHERE part <> ''
    GROUP BY 1, 2
)
INSERT INTO inventory_next (event, sku, total, held, sold)
SELECT i.event, i.sku, i.remaining + COALESCE(u.q, 0), COALESCE(u.q, 0), 0
FROM inventory i LEFT JOIN units u ON u.event = i.event AND u.sku = i.sku;

DROP TABLE inventory;
ALTER TABLE inventory_next RENAME TO inventory;

CREATE TABLE reservations_next (
    id                 TEXT    PRIMARY KEY,
    event              TEXT    NOT NULL,
    person             TEXT    NOT NULL,
    items              TEXT    NOT NULL,
    state              TEXT    NOT NULL
        CHECK (state IN ('confirmed', 'completed', 'released', 'expired', 'rejected')),
    reason             TEXT,
    created_at_ms      BIGINT  NOT NULL,
    applied_at_ms      BIGINT  NOT NULL,
    hold_expires_at_ms BIGINT,
    ended_at_ms        BIGINT,
    synced             BOOLEAN NOT NULL DEFAULT TRUE
);

INSERT INTO reservations_next
    (id, event, person, items, state, reason, created_at_ms, applied_at_ms)
SELECT id, event, person, items, state, reason, created_at_ms, applied_at_ms FROM reservations;

DROP TABLE reservations;
ALTER TABLE reservations_next RENAME TO reservations;

CREATE INDEX reservations_by_event ON reservations (event, state);
CREATE INDEX reservations_holds ON reservations (event, hold_expires_at_ms)
    WHERE state = 'confirmed';
CREATE INDEX reservations_unsynced ON reservations (event) WHERE NOT synced;

CREATE TABLE inventory_audit (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    event     TEXT    NOT NULL,
    sku       TEXT    NOT NULL,
    at_ms     BIGINT  NOT NULL,
    actor     TEXT    NOT NULL,
    old_total BIGINT,
    new_total BIGINT  NOT NULL
);

CREATE INDEX inventory_audit_by_event ON inventory_audit (event, id);
