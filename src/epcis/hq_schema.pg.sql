-- HQ on PostgreSQL: every store writer's EPCIS events (see `hq_schema.sql`).
CREATE TABLE hq_epcis_event (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    TEXT NOT NULL UNIQUE,
    store       TEXT NOT NULL,
    writer      TEXT NOT NULL,
    event_time  TEXT NOT NULL,
    event       TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE INDEX hq_epcis_event_by_store ON hq_epcis_event(store, id);

CREATE TABLE hq_epcis_mark (
    store  TEXT NOT NULL,
    writer TEXT NOT NULL,
    seq    BIGINT NOT NULL,
    PRIMARY KEY (store, writer)
);
