-- The read models live in a schema of their own: `projector rebuild` builds a fresh copy beside
-- them (same tables, via CREATE TABLE ... LIKE) and swaps the two schemas in one transaction.
-- Services reach the tables through `search_path`, so their queries never name the schema
-- (migrations always do). The projector's positions live here too, so they swap together with
-- the rows they produced. Every value is derived from events (times are event times, never
-- now()), so a replay produces the same rows.

CREATE SCHEMA read_model;

-- Current state of every invite.
CREATE TABLE read_model.invites (
    invite_id         uuid PRIMARY KEY,
    tenant_id         uuid NOT NULL,
    -- canonical status as of the last event; `expired` by time is derived when read
    status            text NOT NULL,
    open              boolean NOT NULL,
    inviter_id        text NOT NULL,
    inviter_name      text,
    inviter_email     text,
    invitation_type   text NOT NULL,
    max_accepts       integer,
    message           text,
    definition_id     uuid,
    landing_url       text,
    widget_id         text,
    flow_id           text,
    template_id       text,
    link_token        text NOT NULL,
    expires_at        timestamptz,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    first_sent_at     timestamptz,
    last_sent_at      timestamptz,
    delivered_at      timestamptz,
    viewed_at         timestamptz,
    clicked_at        timestamptz,
    accepted_at       timestamptz,
    declined_at       timestamptz,
    revoked_at        timestamptz,
    expired_at        timestamptz,
    accepted_elsewhere_at timestamptz,
    send_count        integer NOT NULL DEFAULT 0,
    delivery_count    integer NOT NULL DEFAULT 0,
    view_count        integer NOT NULL DEFAULT 0,
    click_count       integer NOT NULL DEFAULT 0,
    share_count       integer NOT NULL DEFAULT 0,
    unfurl_count      integer NOT NULL DEFAULT 0,
    accept_count      integer NOT NULL DEFAULT 0,
    version           bigint NOT NULL,
    -- the creation facts as the event carried them (recipient names, metadata, variables, ...)
    created           jsonb NOT NULL
);

-- Keyset pagination, newest or oldest first, ties broken by id; and the common filters.
CREATE INDEX invites_tenant_created ON read_model.invites (tenant_id, created_at, invite_id);
CREATE INDEX invites_tenant_status ON read_model.invites (tenant_id, status, created_at, invite_id);
CREATE INDEX invites_tenant_inviter ON read_model.invites (tenant_id, inviter_id, created_at, invite_id);
CREATE INDEX invites_tenant_definition ON read_model.invites (tenant_id, definition_id, created_at, invite_id);
CREATE INDEX invites_tenant_expires ON read_model.invites (tenant_id, expires_at);

CREATE TABLE read_model.invite_targets (
    invite_id  uuid NOT NULL,
    position   integer NOT NULL,
    tenant_id  uuid NOT NULL,
    kind       text NOT NULL,
    value      text NOT NULL,
    -- emails lowercased, phone numbers as digits: what filters match on
    normalized text NOT NULL,
    name       text,
    PRIMARY KEY (invite_id, position)
);
CREATE INDEX invite_targets_lookup ON read_model.invite_targets (tenant_id, normalized);

CREATE TABLE read_model.invite_scopes (
    invite_id  uuid NOT NULL,
    position   integer NOT NULL,
    tenant_id  uuid NOT NULL,
    scope_type text NOT NULL,
    scope_id   text NOT NULL,
    name       text,
    PRIMARY KEY (invite_id, position)
);
CREATE INDEX invite_scopes_lookup ON read_model.invite_scopes (tenant_id, scope_type, scope_id);

CREATE TABLE read_model.invite_reply_to (
    invite_id uuid NOT NULL,
    position  integer NOT NULL,
    tenant_id uuid NOT NULL,
    address   text NOT NULL,
    PRIMARY KEY (invite_id, position)
);
CREATE INDEX invite_reply_to_lookup ON read_model.invite_reply_to (tenant_id, address);

CREATE TABLE read_model.deliveries (
    delivery_id uuid PRIMARY KEY,
    invite_id   uuid NOT NULL,
    tenant_id   uuid NOT NULL,
    method      text NOT NULL,
    target      text NOT NULL,
    resend      boolean NOT NULL,
    status      text NOT NULL,
    sent_at     timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX deliveries_invite ON read_model.deliveries (invite_id);

-- Every status a delivery went through, in order (its first row is `queued`).
CREATE TABLE read_model.delivery_status_history (
    delivery_id uuid NOT NULL,
    invite_version bigint NOT NULL,
    status      text NOT NULL,
    detail      text,
    at          timestamptz NOT NULL,
    PRIMARY KEY (delivery_id, invite_version)
);

CREATE TABLE read_model.invite_accepts (
    invite_id      uuid NOT NULL,
    invite_version bigint NOT NULL,
    tenant_id      uuid NOT NULL,
    accepted_by    text,
    target         text,
    at             timestamptz NOT NULL,
    PRIMARY KEY (invite_id, invite_version)
);

CREATE TABLE read_model.definitions (
    definition_id           uuid PRIMARY KEY,
    tenant_id               uuid NOT NULL,
    handle                  text NOT NULL,
    max_invites_per_inviter integer,
    starts_at               timestamptz,
    ends_at                 timestamptz,
    max_send_count          integer,
    default_expiry_days     integer,
    created_at              timestamptz NOT NULL,
    updated_at              timestamptz NOT NULL,
    version                 bigint NOT NULL,
    UNIQUE (tenant_id, handle)
);

-- Invites created per inviter and definition: quotas (`meta.remaining`) and dashboards.
-- `definition_id` is the nil uuid for invites without a definition.
CREATE TABLE read_model.inviter_counters (
    tenant_id       uuid NOT NULL,
    definition_id   uuid NOT NULL,
    inviter_id      text NOT NULL,
    invites_created integer NOT NULL,
    invites_accepted integer NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, definition_id, inviter_id)
);

-- The audit trail: every event's envelope and data, in log order per stream.
CREATE TABLE read_model.events (
    stream_id       uuid NOT NULL,
    version         bigint NOT NULL,
    stream_kind     text NOT NULL,
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
    PRIMARY KEY (stream_id, version)
);
CREATE INDEX events_tenant_time ON read_model.events (tenant_id, occurred_at);

-- Stored in the same transaction as the rows they produced: exactly-once effect.
CREATE TABLE read_model.projector_offsets (
    consumer    text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (consumer, topic, partition)
);
