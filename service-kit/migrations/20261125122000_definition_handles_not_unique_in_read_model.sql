-- A definition's handle is unique per tenant, but that uniqueness spans streams: definitions live
-- on different partitions, and the order in which a projector reads partitions is not the order
-- in which the writer decided. Create P with handle h, rename P to h-old, create Q with h: a
-- projection that reads Q's partition before P's meets P's first event while Q already holds h.
-- The writer enforces the rule (events/src/tenant.rs); the read model must accept every history
-- the writer accepted, in any interleaving of partitions, so it holds no such constraint.
-- Nothing queries definitions by handle; no index replaces it.
-- (By whatever name the constraint carries: a rebuild's CREATE TABLE ... LIKE may have renamed it.)
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT con.conname
        FROM pg_constraint con
        JOIN pg_class rel ON rel.oid = con.conrelid
        JOIN pg_namespace ns ON ns.oid = rel.relnamespace
        WHERE ns.nspname = 'read_model' AND rel.relname = 'definitions' AND con.contype = 'u'
    LOOP
        EXECUTE format('ALTER TABLE read_model.definitions DROP CONSTRAINT %I', c.conname);
    END LOOP;
END
$$;
