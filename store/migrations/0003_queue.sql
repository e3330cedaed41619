-- 0003_queue: what the durable retry queue needs (queue/queue.hpp, docs/queue.md): coalescing by
-- idempotency key (one *pending* item per key instead of one item per key for ever), and a claim
-- token so a worker whose lease ran out and whose item was claimed again cannot record an outcome.

-- ─── coalescing: unique among pending items only ───────────────────────────────────────────

-- 0001 made idempotency_key unique over the whole table, so an entity could be queued once in
-- its life. Now repeated updates of an entity merge into its one pending item, and an update
-- that arrives while the entity is in flight becomes a new pending item behind it.
ALTER TABLE obmen.queue DROP CONSTRAINT queue_idempotency_key_key;
CREATE UNIQUE INDEX queue_pending_key ON obmen.queue (idempotency_key) WHERE state = 'pending';
-- Finds an item's later siblings (same key, higher id): retry() and fail() ask for them.
CREATE INDEX queue_key ON obmen.queue (idempotency_key, id) WHERE idempotency_key IS NOT NULL;

COMMENT ON COLUMN obmen.queue.idempotency_key IS 'The entity the item delivers (e.g. moysklad:customerorder:<id>); NULL for none. At most one pending item per key: enqueueing the key again while one is pending replaces its payload (coalescing); while the key is in flight a new pending item is created behind it.';
COMMENT ON COLUMN obmen.queue.state IS 'pending (waiting for next_attempt_at), in_flight (claimed by claimed_by until lease_until), done (delivered), or dead (gave up: a permanent error or max attempts; an admin may retry or drop it).';
COMMENT ON COLUMN obmen.queue.attempts IS 'Delivery attempts so far: every claim counts one (also the claim of an item whose worker died). Reset to 0 by an admin retry.';
COMMENT ON COLUMN obmen.queue.last_error_class IS 'transient (network, 5xx, 429, lock timeout, lease ran out) or permanent (validation, 4xx) — how the last failure was classified; NULL when none.';

-- ─── claims ────────────────────────────────────────────────────────────────────────────────

ALTER TABLE obmen.queue
  ADD COLUMN claimed_by  text,
  ADD COLUMN claim_token uuid;
COMMENT ON COLUMN obmen.queue.claimed_by IS 'Worker that claimed the item last (host:pid/thread, as the worker names itself); kept after the item leaves in_flight; NULL if never claimed.';
COMMENT ON COLUMN obmen.queue.claim_token IS 'Random token of the latest claim. complete/fail are recorded only with the current token while the item is in_flight, so a worker whose lease ran out and whose item was claimed again cannot record an outcome. NULL if never claimed.';
