-- Snapshots of the command API writer's state, one per shard (a partition of the events topic):
-- a writer taking over reads its shard's snapshot and the log after it, not the whole log. A
-- cache: deleting rows loses nothing (the next start reads the log whole). The state is what the
-- writer folds from the log, so it is as sensitive as the log (personal data sealed, as there).
CREATE SCHEMA writer;

CREATE TABLE writer.snapshots (
    topic       text NOT NULL,
    partition   int NOT NULL,
    -- the topic's partition count when it was taken: a tenant's shard depends on it
    partitions  int NOT NULL,
    -- the shape of the state (command_api::snapshot::FORMAT): another one is never read
    format      int NOT NULL,
    -- the last record of the partition the state holds, and its event id (checked when read)
    last_offset bigint NOT NULL,
    last_event  uuid NOT NULL,
    tenants     int NOT NULL,
    taken_at    timestamptz NOT NULL DEFAULT now(),
    -- MessagePack, zstd-compressed
    state       bytea NOT NULL,
    PRIMARY KEY (topic, partition)
);
