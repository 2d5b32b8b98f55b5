-- hotspot311 PostGIS store, schema version 5: the contact log of a 311 center.
-- One row per contact (call, email, web form, walk-in, …), keyed on contact_id; a contact
-- that made or asked about a service request names it (no foreign key: the request may
-- arrive in a later batch, or never). Rows that cannot be used go to contact_quarantine
-- with the raw row and a reason, as requests do. (Version 4 is another branch's.)

CREATE TABLE contacts (
    contact_id          text PRIMARY KEY,
    received_datetime   timestamptz NOT NULL,
    channel             text NOT NULL
        CHECK (channel IN ('phone', 'email', 'web', 'walk_in', 'social', 'app', 'text')),
    outcome             text NOT NULL
        CHECK (outcome IN ('information', 'referral', 'service_request', 'transfer_911',
                           'other')),
    department          text,
    service_request_id  text,
    answered            boolean,
    wait_seconds        double precision CHECK (wait_seconds >= 0),
    handle_seconds      double precision CHECK (handle_seconds >= 0),
    team                text,
    synthetic           boolean NOT NULL DEFAULT false,
    extra               text,
    batch_id            text,
    row_hash            bigint NOT NULL
);
CREATE INDEX contacts_received ON contacts (received_datetime);
CREATE INDEX contacts_request ON contacts (service_request_id)
    WHERE service_request_id IS NOT NULL;

CREATE TABLE contact_quarantine (
    seq                 bigserial,
    quarantine_id       text PRIMARY KEY,
    batch_id            text,
    source_file         text,
    source_row          bigint,
    reason              text NOT NULL,
    detail              text,
    contact_id          text,
    raw                 text,
    quarantined_at      timestamptz
);
CREATE INDEX contact_quarantine_reason ON contact_quarantine (reason);
