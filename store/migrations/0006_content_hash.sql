-- 0006_content_hash: what the last import applied to a product or offer, as a hash, so that an
-- import can skip rows that would change nothing without staging and comparing them in SQL
-- (store/portal_store.cpp, "content hash"). NULL = unknown: the next import compares in full.

ALTER TABLE portal.products ADD COLUMN content_hash bigint;
ALTER TABLE portal.offers ADD COLUMN content_hash bigint;
COMMENT ON COLUMN portal.products.content_hash IS 'obmen''s own bookkeeping: a 64-bit hash of the row as the last import applied it (fields after mapping, image list); NULL when unknown. Anything else that changes the row must set it to NULL.';
COMMENT ON COLUMN portal.offers.content_hash IS 'obmen''s own bookkeeping: a 64-bit hash of the offer as the last import applied it, with its prices and stock; NULL when unknown (header-only packages, rows with warnings). Anything else that changes the row, its prices or its stock must set it to NULL.';
