-- Ownership by shard (RSVP_WRITER_OWNERSHIP=shards): which command-api instance owns each shard
-- (a partition of the events topic) now. Written by the owner once the shard is ready, deleted
-- by it when it stops; any instance hands a request for a shard it does not own to the URL here.
-- A row left by a crashed owner only sends requests to an instance that refuses them (503) until
-- the next owner replaces it: the fencing of Kafka's transactions, not this table, keeps a shard
-- to one writer.
CREATE TABLE writer.shard_owners (
    topic     text NOT NULL,
    partition int NOT NULL,
    owner_url text NOT NULL,
    since     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);

-- How a topic's events are placed: by tenant (every event in its tenant's shard), or by stream
-- (written before shards). Ownership by shard needs the first; it is found once per topic.
CREATE TABLE writer.topic_placements (
    topic      text PRIMARY KEY,
    partitions int NOT NULL,
    by_tenant  boolean NOT NULL,
    checked_at timestamptz NOT NULL DEFAULT now()
);
