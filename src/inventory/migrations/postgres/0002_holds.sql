-- Holds (DESIGN §19). Stock is `total`, of which units are `held` (confirmed, not yet completed)
-- or `sold`; `remaining = total - held - sold` is derived, never stored, so an operator's change
-- of `total` and the worker's moves between `held` and `sold` never overwrite each other.
--
-- Upgrade: a reservation confirmed before holds existed becomes a hold that never expires
-- (`hold_expires_at_ms` NULL, as with `hold_ttl_secs` 0). Its units stay taken, so `remaining`
-- is what it was, and the sale backend can still complete or cancel it.
ALTER TABLE inventory
    ADD COLUMN total BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN held  BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN sold  BIGINT NOT NULL DEFAULT 0;

-- Items are stored as `sku:quantity,sku:quantity`.
WITH units AS (
    SELECT r.event, split_part(part, ':', 1) AS sku, SUM(split_part(part, ':', 2)::BIGINT) AS q
    FROM reservations r, regexp_split_to_table(r.items, ',') AS part
    WHERE r.state = 'confirmed'
    GROUP BY r.event, split_part(part, ':', 1)
)
UPDATE inventory i SET held = u.q FROM units u WHERE i.event = u.event AND i.sku = u.sku;

UPDATE inventory SET total = remaining + held;

ALTER TABLE inventory DROP COLUMN remaining, ALTER COLUMN total DROP DEFAULT;
ALTER TABLE inventory ADD CONSTRAINT inventory_units
    CHECK (held >= 0 AND sold >= 0 AND held + sold <= total);

-- A hold ends `completed` (the backend), `released` (cancelled) or `expired` (past
-- `hold_expires_at_ms`). `synced` is false from the moment a hold ends in the database until
-- its end is written back to the store, so a crash between the two is finished later.
ALTER TABLE reservations DROP CONSTRAINT reservations_state_check;
ALTER TABLE reservations ADD CONSTRAINT reservations_state_check
    CHECK (state IN ('confirmed', 'completed', 'released', 'expired', 'rejected'));
ALTER TABLE reservations
    ADD COLUMN hold_expires_at_ms BIGINT,
    ADD COLUMN ended_at_ms        BIGINT,
    ADD COLUMN synced             BOOLEAN NOT NULL DEFAULT TRUE;

CREATE INDEX reservations_holds ON reservations (event, hold_expires_at_ms)
    WHERE state = 'confirmed';
CREATE INDEX reservations_unsynced ON reservations (event) WHERE NOT synced;

-- Every change an operator makes to the inventory, with who made it.
CREATE TABLE inventory_audit (
    id        BIGSERIAL PRIMARY KEY,
    event     TEXT   NOT NULL,
    sku       TEXT   NOT NULL,
    at_ms     BIGINT NOT NULL,
    actor     TEXT   NOT NULL,
    old_total BIGINT,
    new_total BIGINT NOT NULL
);

CREATE INDEX inventory_audit_by_event ON inventory_audit (event, id);
