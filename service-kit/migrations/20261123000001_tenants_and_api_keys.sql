-- Tenants and their API keys. Keys are stored as the SHA-256 of their secret only.
CREATE TABLE tenants (
    tenant_id  uuid PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    key_id      text PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (tenant_id),
    secret_hash bytea NOT NULL,
    scopes      text[] NOT NULL,
    -- set for inviter-scoped tokens: the holder acts as this inviter only
    inviter_id  text,
    label       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE INDEX api_keys_tenant ON api_keys (tenant_id);
