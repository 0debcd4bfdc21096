-- Inventory per event and SKU, and every reservation a worker applied. The CHECK is a last line
-- of defence: the worker's conditional decrement never lets `remaining` go below zero anyway.
CREATE TABLE inventory (
    event     TEXT   NOT NULL,
    sku       TEXT   NOT NULL,
    remaining BIGINT NOT NULL CHECK (remaining >= 0),
    PRIMARY KEY (event, sku)
);

-- One row per applied reservation; the primary key makes a redelivered entry change nothing.
CREATE TABLE reservations (
    id            TEXT   PRIMARY KEY,
    event         TEXT   NOT NULL,
    person        TEXT   NOT NULL,
    items         TEXT   NOT NULL,
    state         TEXT   NOT NULL CHECK (state IN ('confirmed', 'rejected')),
    reason        TEXT,
    created_at_ms BIGINT NOT NULL,
    applied_at_ms BIGINT NOT NULL
);

CREATE INDEX reservations_by_event ON reservations (event, state);
