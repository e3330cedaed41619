-- 0002_order_exchange: what the order exchange with the ERP needs (store/orders_store.hpp,
-- docs/orders.md): the ERP's facts about an order that 0001 had no column for, the order lines
-- the ERP wrote, per-node export bookkeeping, and a trigger that moves orders.changed_at whenever
-- the portal (not obmen) changes an order or its lines.

-- ─── portal.orders: more of what travels ───────────────────────────────────────────────────

ALTER TABLE portal.orders
  ADD COLUMN erp_status       text,
  ADD COLUMN payment_method   text,
  ADD COLUMN payment_number   text,
  ADD COLUMN shipment_number  text,
  ADD COLUMN delivery_allowed boolean NOT NULL DEFAULT false,
  ADD COLUMN delivery_price   numeric;
COMMENT ON COLUMN portal.orders.erp_status IS 'The order status exactly as the ERP last reported it ("Статус заказа", or "Статуса заказа ИД" when no name), before mapping; NULL until the ERP reports one. orders.status holds the mapped code.';
COMMENT ON COLUMN portal.orders.payment_method IS 'How the customer pays, as the portal shows it (e.g. "Безналичный расчет"); sent to the ERP as "Метод оплаты". NULL: not sent.';
COMMENT ON COLUMN portal.orders.payment_number IS 'The ERP''s payment document number ("Номер оплаты по 1С" / "Номер платежного документа"); NULL until paid.';
COMMENT ON COLUMN portal.orders.shipment_number IS 'The ERP''s shipment document number ("Номер отгрузки по 1С"); NULL until shipped.';
COMMENT ON COLUMN portal.orders.delivery_allowed IS 'The portal allows delivery (e.g. after prepayment); sent to the ERP as "Доставка разрешена".';
COMMENT ON COLUMN portal.orders.delivery_price IS 'Delivery charge included in total, exact decimal; sent to the ERP as the service line ORDER_DELIVERY when > 0. NULL or 0: no delivery line.';

-- Was "the ERP connection the order was exported to"; an order created on the portal keeps
-- source NULL for good (several ERP nodes may receive it), see obmen.order_exports.
COMMENT ON COLUMN portal.orders.source IS 'NULL for orders created on the portal (they are exported to every ERP node; obmen.order_exports tracks delivery). For orders obmen created from an ERP document (unknown_orders: create): the ERP connection they came from.';
COMMENT ON COLUMN portal.orders.external_id IS 'The order''s identifier in the ERP for orders created from an ERP document (together with source); NULL for orders created on the portal.';
COMMENT ON COLUMN portal.orders.exported_at IS 'When an ERP node last acknowledged (sale/success) the order; NULL = never. Per-node state: obmen.order_exports.';
COMMENT ON COLUMN portal.orders.changed_at IS 'When the portal last created or changed the order or its lines; obmen exports it again to each ERP node whose acknowledged version is older. Moved by trigger orders_changed_at on every UPDATE of the order and every change of its order_items not made by obmen.';

CREATE INDEX orders_portal_changed ON portal.orders (changed_at, id) WHERE source IS NULL;
CREATE INDEX orders_number ON portal.orders (number);

-- ─── portal.order_items: lines the ERP wrote ───────────────────────────────────────────────

ALTER TABLE portal.order_items
  ADD COLUMN offer_external_id text;
COMMENT ON COLUMN portal.order_items.offer_external_id IS 'For lines written by obmen from an ERP document: the item''s Ид as the ERP sent it (kept also when offer_id is NULL because the offer is not in the portal). NULL for lines the portal created.';

-- ─── obmen.order_exports ───────────────────────────────────────────────────────────────────

CREATE TABLE obmen.order_exports (
  source                  text NOT NULL,
  order_id                bigint NOT NULL REFERENCES portal.orders (id) ON DELETE CASCADE,
  session_id              bigint,
  changed_at_sent         timestamptz,
  sent_at                 timestamptz,
  acknowledged_changed_at timestamptz,
  acknowledged_session_id bigint,
  acknowledged_at         timestamptz,
  PRIMARY KEY (source, order_id),
  CHECK ((session_id IS NULL) = (changed_at_sent IS NULL))
);
CREATE INDEX order_exports_pending ON obmen.order_exports (source, session_id) WHERE session_id IS NOT NULL;
COMMENT ON TABLE obmen.order_exports IS 'Per ERP node and portal order: which version of the order a sale/query sent and which version the node acknowledged with sale/success. An order is exported again while orders.changed_at > acknowledged_changed_at.';
COMMENT ON COLUMN obmen.order_exports.source IS 'The ERP node (source name from the config).';
COMMENT ON COLUMN obmen.order_exports.order_id IS 'The portal order.';
COMMENT ON COLUMN obmen.order_exports.session_id IS 'The exchange session (obmen.exchange_sessions.id; not a foreign key, sessions are cleaned up on their own) whose sale/query last sent the order and is not yet acknowledged; NULL when nothing is pending.';
COMMENT ON COLUMN obmen.order_exports.changed_at_sent IS 'orders.changed_at of the version that pending session sent; NULL when nothing is pending.';
COMMENT ON COLUMN obmen.order_exports.sent_at IS 'When the order was last sent to the node.';
COMMENT ON COLUMN obmen.order_exports.acknowledged_changed_at IS 'orders.changed_at of the latest version the node acknowledged; NULL = never acknowledged.';
COMMENT ON COLUMN obmen.order_exports.acknowledged_session_id IS 'The session whose sale/success acknowledged that version.';
COMMENT ON COLUMN obmen.order_exports.acknowledged_at IS 'When that sale/success arrived.';

-- ─── changed_at follows the portal's changes ───────────────────────────────────────────────
-- obmen marks its own writes with SET LOCAL obmen.writer = '<source>' (set_config(…, true)):
-- they must not make an order "changed" and send it back to the ERP it came from.
-- clock_timestamp(), not now(): changes are serialized by the row lock on the order, so each
-- version is later than the one before even when a long transaction started earlier; and never
-- below the old value + 1 µs.

CREATE FUNCTION portal.orders_bump_changed_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF coalesce(current_setting('obmen.writer', true), '') = '' THEN
    NEW.changed_at := greatest(clock_timestamp(), OLD.changed_at + interval '1 microsecond');
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION portal.orders_bump_changed_at() IS 'BEFORE UPDATE on portal.orders: moves changed_at when anyone but obmen (setting obmen.writer) updates an order.';
CREATE TRIGGER orders_changed_at BEFORE UPDATE ON portal.orders
  FOR EACH ROW EXECUTE FUNCTION portal.orders_bump_changed_at();

CREATE FUNCTION portal.order_items_bump_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF coalesce(current_setting('obmen.writer', true), '') = '' THEN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
      UPDATE portal.orders SET changed_at = changed_at WHERE id = OLD.order_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND (TG_OP = 'INSERT' OR NEW.order_id IS DISTINCT FROM OLD.order_id) THEN
      UPDATE portal.orders SET changed_at = changed_at WHERE id = NEW.order_id;
    END IF;
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION portal.order_items_bump_order() IS 'AFTER INSERT/UPDATE/DELETE on portal.order_items: a line changed by anyone but obmen moves its order''s changed_at (through orders_changed_at).';
CREATE TRIGGER order_items_changed_at AFTER INSERT OR UPDATE OR DELETE ON portal.order_items
  FOR EACH ROW EXECUTE FUNCTION portal.order_items_bump_order();
