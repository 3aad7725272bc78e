-- Crypto-shredding (service_kit::vault): one data key per data subject (an address's blind index,
-- or an invite with no address), wrapped under the key-encryption key derived from
-- RSVP_MASTER_KEY. Personal data in the log is sealed under these keys; deleting a row erases it
-- everywhere. Only the writer inserts and deletes; every reader opens what it serves.
CREATE SCHEMA vault;

CREATE TABLE vault.subject_keys (
    key_id     uuid PRIMARY KEY,
    tenant_id  uuid NOT NULL,
    -- `a:<blind index>` or `i:<invite id>`: never a clear value
    subject    text NOT NULL,
    wrapped    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, subject)
);

-- Link tokens are derived from a server secret and the invite id now, never recorded: the read
-- model keeps none (older invites' tokens, from their events, are dropped here too).
ALTER TABLE read_model.invites ALTER COLUMN link_token DROP NOT NULL;
UPDATE read_model.invites SET link_token = NULL;
