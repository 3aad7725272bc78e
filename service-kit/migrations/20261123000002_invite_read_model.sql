-- The read models live in a schema of their own: `projector rebuild` builds a fresh copy beside
-- them (same tables, via CREATE TABLE ... LIKE) and swaps the two schemas in one transaction.
-- Services reach the tables through `search_path`, so their queries never name the schema
-- (migrations always do).
-- The projector's positions live here too, so they swap together with the rows they produced.

CREATE SCHEMA read_model;

CREATE TABLE read_model.invites (
    invite_id       uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL,
    status          text NOT NULL,
    inviter_id      text NOT NULL,
    inviter_name    text,
    inviter_email   text,
    invitation_type text NOT NULL,
    max_accepts     integer,
    message         text,
    definition_id   uuid,
    landing_url     text,
    expires_at      timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    version         bigint NOT NULL,
    -- the creation facts as the event carried them (targets, scopes, metadata, ...)
    created         jsonb NOT NULL
);

-- Keyset pagination: newest first within a tenant, ties broken by id.
CREATE INDEX invites_tenant_created ON read_model.invites (tenant_id, created_at DESC, invite_id DESC);

CREATE TABLE read_model.invite_events (
    invite_id       uuid NOT NULL,
    version         bigint NOT NULL,
    tenant_id       uuid NOT NULL,
    event_id        uuid NOT NULL UNIQUE,
    event_type      text NOT NULL,
    schema_version  integer NOT NULL,
    occurred_at     timestamptz NOT NULL,
    actor_kind      text NOT NULL,
    actor_id        text NOT NULL,
    correlation_id  uuid,
    causation_id    uuid,
    idempotency_key text,
    data            jsonb NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset    bigint NOT NULL,
    PRIMARY KEY (invite_id, version)
);

-- Stored in the same transaction as the rows they produced: exactly-once effect.
CREATE TABLE read_model.projector_offsets (
    consumer    text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (consumer, topic, partition)
);
