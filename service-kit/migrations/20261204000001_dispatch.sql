-- The dispatcher's own tables: what it must send (emails, SMS, webhook messages), what it sent,
-- and its positions in the log. A schema of its own, apart from `read_model`: a rebuild of the
-- read models swaps `read_model` and never touches these, so a rebuild sends nothing.
CREATE SCHEMA dispatch;

-- Positions in the log, written in the same transaction as the jobs they produced.
CREATE TABLE dispatch.offsets (
    consumer    text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (consumer, topic, partition)
);

-- What rendering a delivery needs of its invite: its `InviteCreated` data. Whether the invite is
-- still open is the writer's to say, when the send begins.
CREATE TABLE dispatch.invites (
    invite_id     uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL,
    created       jsonb NOT NULL
);

-- The message templates of each definition, as its last event set them.
CREATE TABLE dispatch.definitions (
    definition_id uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL,
    templates     jsonb
);

-- One row per delivery (email or SMS) to send: the job, and where it stands.
--   queued:   waiting for its turn (or its next try, at next_attempt_at)
--   sending:  `sending` recorded through the writer; the send itself may or may not have happened
--   sent / bounced / failed: the outcome, reported through the writer once `reported` is true
--   cancelled: its outcome came from elsewhere (a provider's report through the API) before it began
--   external: shown in the product or handed to the inviter (in_app, link): nothing to send
CREATE TABLE dispatch.deliveries (
    delivery_id     uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL,
    invite_id       uuid NOT NULL,
    method          text NOT NULL,
    target          text NOT NULL,
    state           text NOT NULL,
    reported        boolean NOT NULL DEFAULT false,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error      text,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX deliveries_due ON dispatch.deliveries (next_attempt_at) WHERE state IN ('queued', 'sending') OR NOT reported;
CREATE INDEX deliveries_invite ON dispatch.deliveries (invite_id);

-- Webhook endpoints a tenant registered through the command API (admin scope). Operational
-- configuration, not history: it holds signing secrets, which never enter the event log.
CREATE TABLE dispatch.webhook_endpoints (
    endpoint_id                uuid PRIMARY KEY,
    tenant_id                  uuid NOT NULL,
    url                        text NOT NULL,
    description                text,
    -- 'standard' (Standard Webhooks) or 'vortex'
    format                     text NOT NULL,
    -- the event types it wants; empty: all
    event_types                text[] NOT NULL,
    secret                     text NOT NULL,
    -- after a rotation the old secret still signs, beside the new one, until it expires
    previous_secret            text,
    previous_secret_expires_at timestamptz,
    disabled                   boolean NOT NULL DEFAULT false,
    disabled_reason            text,
    -- consecutive failed attempts, and when the run of failures began
    failure_streak             integer NOT NULL DEFAULT 0,
    failing_since              timestamptz,
    created_at                 timestamptz NOT NULL,
    updated_at                 timestamptz NOT NULL
);
CREATE INDEX webhook_endpoints_tenant ON dispatch.webhook_endpoints (tenant_id);

-- One row per (endpoint, event): the message, its body as first rendered (a retry or a manual
-- resend sends the same bytes), and where it stands: pending (next try at next_attempt_at),
-- delivered, or failed (its retries ran out). Messages of one invite go out in version order.
CREATE TABLE dispatch.webhook_messages (
    endpoint_id     uuid NOT NULL REFERENCES dispatch.webhook_endpoints ON DELETE CASCADE,
    event_id        uuid NOT NULL,
    tenant_id       uuid NOT NULL,
    stream_id       uuid NOT NULL,
    stream_version  bigint NOT NULL,
    event_type      text NOT NULL,
    body            text NOT NULL,
    state           text NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    -- set by a resend through the API: the next attempt is recorded as 'manual'
    resend_requested boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (endpoint_id, event_id)
);
CREATE INDEX webhook_messages_due ON dispatch.webhook_messages (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_messages_stream ON dispatch.webhook_messages (endpoint_id, stream_id, stream_version);

-- Every attempt to deliver a message, as listed by the API.
CREATE TABLE dispatch.webhook_attempts (
    attempt_id      bigserial PRIMARY KEY,
    endpoint_id     uuid NOT NULL REFERENCES dispatch.webhook_endpoints ON DELETE CASCADE,
    event_id        uuid NOT NULL,
    attempted_at    timestamptz NOT NULL,
    -- the HTTP status the endpoint answered; null when no answer came (refused, timed out)
    response_status integer,
    latency_ms      integer NOT NULL,
    error           text,
    succeeded       boolean NOT NULL,
    -- 'scheduled' (first try or a retry) or 'manual' (a resend through the API)
    trigger         text NOT NULL
);
CREATE INDEX webhook_attempts_endpoint ON dispatch.webhook_attempts (endpoint_id, attempt_id DESC);
