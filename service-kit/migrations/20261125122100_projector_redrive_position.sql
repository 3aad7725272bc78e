-- How far `projector redrive` re-drove the dead-letter topic: per projector and dead-letter
-- partition, the first record not yet resolved. Beside the read models, so a rebuild (which swaps
-- in fresh tables) starts it afresh; `verify` leaves it out of the comparison (it is bookkeeping,
-- not derived from the log). Re-driving is idempotent without it: it only saves work.
CREATE TABLE read_model.projector_redrive (
    consumer    text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (consumer, topic, partition)
);
