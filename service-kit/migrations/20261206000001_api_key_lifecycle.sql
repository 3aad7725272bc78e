-- The API key lifecycle: an expiry per key, when it was last used, the key a rotation replaced;
-- and a change feed through which every service instance's key cache hears of a revocation or a
-- new expiry within a fraction of a second (see service-kit/src/auth.rs).
ALTER TABLE api_keys
    ADD COLUMN expires_at   timestamptz,
    -- written at most once a minute per key and instance, never once per request
    ADD COLUMN last_used_at timestamptz,
    -- set on the key a rotation issued: the key it replaces
    ADD COLUMN rotated_from text REFERENCES api_keys (key_id);

-- One row: the number of the last change. Taking it locks the row until the changing
-- transaction ends, so changes commit in the order of their numbers and a reader that has seen
-- number n has seen every change before it (a plain sequence gives no such promise: a lower
-- number may commit after a higher one has been read).
CREATE TABLE api_key_change_counter (
    single boolean PRIMARY KEY DEFAULT true CHECK (single),
    seq    bigint NOT NULL
);
INSERT INTO api_key_change_counter (single, seq) VALUES (true, 0);

-- Which key changed (revoked, its expiry moved, deleted), numbered. Kept an hour: an instance
-- that has not read it for longer than a second empties its whole cache anyway.
CREATE TABLE api_key_changes (
    seq        bigint PRIMARY KEY,
    key_id     text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION api_key_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    next bigint;
BEGIN
    UPDATE api_key_change_counter SET seq = seq + 1 RETURNING seq INTO next;
    INSERT INTO api_key_changes (seq, key_id)
        VALUES (next, CASE WHEN TG_OP = 'DELETE' THEN OLD.key_id ELSE NEW.key_id END);
    DELETE FROM api_key_changes WHERE changed_at < now() - interval '1 hour';
    RETURN NULL;
END
$$;

-- Whatever revokes a key (rsvp-admin, the API, a hand-written UPDATE) is heard: the trigger, not
-- the code that revokes, records the change.
CREATE TRIGGER api_key_changed AFTER UPDATE ON api_keys FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
          OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
          OR OLD.secret_hash IS DISTINCT FROM NEW.secret_hash
          OR OLD.scopes IS DISTINCT FROM NEW.scopes
          OR OLD.inviter_id IS DISTINCT FROM NEW.inviter_id
          OR OLD.tenant_id IS DISTINCT FROM NEW.tenant_id)
    EXECUTE FUNCTION api_key_changed();
CREATE TRIGGER api_key_deleted AFTER DELETE ON api_keys FOR EACH ROW
    EXECUTE FUNCTION api_key_changed();
