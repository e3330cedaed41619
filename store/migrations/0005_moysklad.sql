-- 0005_moysklad: the МойСклад adapter (adapters/moysklad, docs/moysklad.md): webhook deliveries
-- received, for de-duplication by requestId (МойСклад retries a delivery up to 3 times with the
-- same requestId). Each new delivery is queued (obmen.queue, target '<source>/in') in the same
-- transaction, before the 200 answer goes out.

CREATE TABLE obmen.webhook_events (
  source        text NOT NULL,
  request_id    text NOT NULL,
  received_at   timestamptz NOT NULL DEFAULT now(),
  deliveries    int NOT NULL DEFAULT 1,
  queue_item_id bigint,
  PRIMARY KEY (source, request_id)
);
CREATE INDEX webhook_events_received ON obmen.webhook_events (received_at);
COMMENT ON TABLE obmen.webhook_events IS 'МойСклад webhook deliveries received, one row per (source, requestId); repeats are counted, not queued again. Rows older than 7 days are removed by obmend.';
COMMENT ON COLUMN obmen.webhook_events.source IS 'Source name from the config.';
COMMENT ON COLUMN obmen.webhook_events.request_id IS 'The requestId query parameter of the delivery (the same on МойСклад''s retries).';
COMMENT ON COLUMN obmen.webhook_events.received_at IS 'When the first delivery arrived.';
COMMENT ON COLUMN obmen.webhook_events.deliveries IS 'How many times it was delivered (retries included).';
COMMENT ON COLUMN obmen.webhook_events.queue_item_id IS 'The obmen.queue item that applies it (not a foreign key: done items are cleaned up on their own).';

COMMENT ON COLUMN obmen.order_exports.session_id IS 'The exchange session (obmen.exchange_sessions.id; not a foreign key, sessions are cleaned up on their own) whose sale/query last sent the order and is not yet acknowledged — for a МойСклад source the obmen.queue item that delivers it; NULL when nothing is pending.';
