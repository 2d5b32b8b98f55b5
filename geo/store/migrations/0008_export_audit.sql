-- hotspot311 PostGIS store, schema version 8: the export log.
--
-- Every export the app makes (a work list, a report download) is recorded: who, with
-- which role and department, when, what, with which filters, how many rows. The app's
-- read-only role (`hotspot311 db grant-readonly ROLE`) may insert here and nowhere else.

CREATE TABLE export_audit (
    audit_id     bigserial PRIMARY KEY,
    exported_at  timestamptz NOT NULL DEFAULT now(),
    user_name    text NOT NULL,
    role         text NOT NULL,
    department   text,
    what         text NOT NULL,
    filters      jsonb NOT NULL DEFAULT '{}'::jsonb,
    rows         bigint NOT NULL CHECK (rows >= 0)
);
CREATE INDEX export_audit_time ON export_audit (exported_at);
