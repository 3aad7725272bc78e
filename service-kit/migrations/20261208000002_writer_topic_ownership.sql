-- A topic that instances own by shard: a writer of the whole topic (ownership by lease) refuses
-- it, since the two kinds of writer do not fence each other. Written by an instance in shards
-- mode before it fences the lease's writer; deleted by the operator to go back to a lease.
CREATE TABLE writer.topic_ownership (
    topic text PRIMARY KEY,
    mode  text NOT NULL CHECK (mode IN ('shards')),
    since timestamptz NOT NULL DEFAULT now()
);
