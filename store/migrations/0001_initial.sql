-- 0001_initial: schema `portal` (the contract the portal application reads, documented in
-- docs/schema.md) and schema `obmen` (obmen's own bookkeeping).
--
-- Conventions for every table synced from an ERP: (source, external_id) is the natural key,
-- `active` replaces deletion (nothing is hard-deleted by an import), `updated_at` moves only
-- when the row's content really changed. Text that the source did not send is NULL, not ''.

CREATE SCHEMA portal;
COMMENT ON SCHEMA portal IS 'The contract between obmen and the B2B portal: catalog, prices, stock, counterparties, orders, documents. Documented in docs/schema.md.';
CREATE SCHEMA IF NOT EXISTS obmen;
COMMENT ON SCHEMA obmen IS 'obmen''s internal bookkeeping: migrations, exchange sessions, the outbound queue, jobs, bookmarks. Not for the portal.';

-- ─── obmen.schema_migrations ────────────────────────────────────────────────────────────────

CREATE TABLE obmen.schema_migrations (
  version    int PRIMARY KEY,
  name       text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE obmen.schema_migrations IS 'One row per applied migration (store/migrations/NNNN_name.sql); the highest version is the schema version.';
COMMENT ON COLUMN obmen.schema_migrations.version IS 'Migration number NNNN.';
COMMENT ON COLUMN obmen.schema_migrations.name IS 'Migration file name without .sql, e.g. 0001_initial.';
COMMENT ON COLUMN obmen.schema_migrations.applied_at IS 'When `obmenctl migrate` applied it.';

-- ─── portal: catalog ────────────────────────────────────────────────────────────────────────

CREATE TABLE portal.categories (
  id          bigserial PRIMARY KEY,
  source      text NOT NULL,
  external_id text NOT NULL,
  parent_id   bigint REFERENCES portal.categories (id) ON DELETE SET NULL,
  name        text NOT NULL,
  description text,
  active      boolean NOT NULL DEFAULT true,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (source, external_id)
);
CREATE INDEX categories_parent_id ON portal.categories (parent_id);
COMMENT ON TABLE portal.categories IS 'Tree of catalog groups (1C Классификатор/Группы, МойСклад productfolder).';
COMMENT ON COLUMN portal.categories.id IS 'Portal-side identifier; stable for the life of the row.';
COMMENT ON COLUMN portal.categories.source IS 'Which ERP connection the row came from (source name in obmen''s config, e.g. onec, moysklad).';
COMMENT ON COLUMN portal.categories.external_id IS 'The group''s identifier in the source (1C Ид, МойСклад id).';
COMMENT ON COLUMN portal.categories.parent_id IS 'Parent group; NULL for a root group or when the parent is not known.';
COMMENT ON COLUMN portal.categories.name IS 'Group name as shown to customers.';
COMMENT ON COLUMN portal.categories.description IS 'Group description; NULL when not sent.';
COMMENT ON COLUMN portal.categories.active IS 'false when the source deleted or marked the group for deletion, or a full package no longer carries it. Hide inactive groups.';
COMMENT ON COLUMN portal.categories.created_at IS 'When obmen first stored the row.';
COMMENT ON COLUMN portal.categories.updated_at IS 'When the row''s content last changed (not touched by imports that change nothing).';

CREATE TABLE portal.attributes (
  id          bigserial PRIMARY KEY,
  source      text NOT NULL,
  external_id text NOT NULL,
  name        text NOT NULL,
  value_type  text,
  options     jsonb NOT NULL DEFAULT '[]',
  active      boolean NOT NULL DEFAULT true,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (source, external_id)
);
COMMENT ON TABLE portal.attributes IS 'Property definitions (1C Классификатор/Свойства): the names used as keys in products.attributes.';
COMMENT ON COLUMN portal.attributes.id IS 'Portal-side identifier.';
COMMENT ON COLUMN portal.attributes.source IS 'Which ERP connection the row came from.';
COMMENT ON COLUMN portal.attributes.external_id IS 'The property''s identifier in the source.';
COMMENT ON COLUMN portal.attributes.name IS 'Property name after mapping; the key under which products.attributes holds its value.';
COMMENT ON COLUMN portal.attributes.value_type IS 'Type as the source declared it: Строка, Число, Время, Справочник; NULL when not sent.';
COMMENT ON COLUMN portal.attributes.options IS 'For Справочник properties, the allowed values: [{"id": "...", "value": "..."}]; [] otherwise.';
COMMENT ON COLUMN portal.attributes.active IS 'false when the source deleted the property.';
COMMENT ON COLUMN portal.attributes.created_at IS 'When obmen first stored the row.';
COMMENT ON COLUMN portal.attributes.updated_at IS 'When the row''s content last changed.';

CREATE TABLE portal.products (
  id          bigserial PRIMARY KEY,
  source      text NOT NULL,
  external_id text NOT NULL,
  sku         text,
  name        text NOT NULL,
  full_name   text,
  description text,
  category_id bigint REFERENCES portal.categories (id) ON DELETE SET NULL,
  unit        text,
  unit_code   text,
  barcode     text,
  code        text,
  manufacturer text,
  vat_rate    text,
  attributes  jsonb NOT NULL DEFAULT '{}',
  requisites  jsonb NOT NULL DEFAULT '{}',
  version     text,
  active      boolean NOT NULL DEFAULT true,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (source, external_id)
);
CREATE INDEX products_category_id ON portal.products (category_id);
CREATE INDEX products_sku ON portal.products (sku);
COMMENT ON TABLE portal.products IS 'Catalog items (1C Каталог/Товары/Товар, МойСклад product). What is sold is an offer (portal.offers).';
COMMENT ON COLUMN portal.products.id IS 'Portal-side identifier.';
COMMENT ON COLUMN portal.products.source IS 'Which ERP connection the row came from.';
COMMENT ON COLUMN portal.products.external_id IS 'The product''s identifier in the source (1C Ид, МойСклад id).';
COMMENT ON COLUMN portal.products.sku IS 'Артикул; NULL when not sent.';
COMMENT ON COLUMN portal.products.name IS 'Short name (Наименование).';
COMMENT ON COLUMN portal.products.full_name IS 'Full name (ПолноеНаименование or the requisite "Полное наименование"); NULL when not sent.';
COMMENT ON COLUMN portal.products.description IS 'Description text (Описание); NULL when not sent.';
COMMENT ON COLUMN portal.products.category_id IS 'The product''s group (its first group in the source); NULL when none or not known.';
COMMENT ON COLUMN portal.products.unit IS 'Base unit short name, e.g. шт.';
COMMENT ON COLUMN portal.products.unit_code IS 'Base unit code from ОКЕИ, e.g. 796.';
COMMENT ON COLUMN portal.products.barcode IS 'Штрихкод; NULL when not sent.';
COMMENT ON COLUMN portal.products.code IS 'The ERP''s own item code (Код); NULL when not sent.';
COMMENT ON COLUMN portal.products.manufacturer IS 'Manufacturer name (Изготовитель); NULL when not sent.';
COMMENT ON COLUMN portal.products.vat_rate IS 'VAT rate as sent: "20", "10", "Без налога", "10/110"; NULL when not sent.';
COMMENT ON COLUMN portal.products.attributes IS 'Property values by mapped property name: {"Цвет": "красный", "Размер": ["S", "M"]}; a value is a string or an array of strings.';
COMMENT ON COLUMN portal.products.requisites IS 'Other requisites (ЗначенияРеквизитов) by name: {"Вес": "0.5"}.';
COMMENT ON COLUMN portal.products.version IS 'The source''s version of the item (НомерВерсии); NULL when not sent.';
COMMENT ON COLUMN portal.products.active IS 'false when deleted or marked for deletion in the source, or no longer carried by a full package. Hide inactive products.';
COMMENT ON COLUMN portal.products.created_at IS 'When obmen first stored the row.';
COMMENT ON COLUMN portal.products.updated_at IS 'When the row''s content (including its image list) last changed.';

CREATE TABLE portal.images (
  sha256     text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  content    bytea NOT NULL,
  mime       text NOT NULL,
  size       bigint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE portal.images IS 'Image files, stored once per content (content-addressed by SHA-256).';
COMMENT ON COLUMN portal.images.sha256 IS 'SHA-256 of content, lowercase hex; the image''s identity (same bytes = same image).';
COMMENT ON COLUMN portal.images.content IS 'The file''s bytes.';
COMMENT ON COLUMN portal.images.mime IS 'Media type, e.g. image/jpeg.';
COMMENT ON COLUMN portal.images.size IS 'Size of content in bytes.';
COMMENT ON COLUMN portal.images.created_at IS 'When obmen first stored the image.';

CREATE TABLE portal.product_images (
  product_id bigint NOT NULL REFERENCES portal.products (id) ON DELETE CASCADE,
  position   int NOT NULL,
  sha256     text NOT NULL REFERENCES portal.images (sha256),
  PRIMARY KEY (product_id, position)
);
CREATE INDEX product_images_sha256 ON portal.product_images (sha256);
COMMENT ON TABLE portal.product_images IS 'The ordered list of a product''s images; replaced as a whole when the source sends a new list.';
COMMENT ON COLUMN portal.product_images.product_id IS 'The product.';
COMMENT ON COLUMN portal.product_images.position IS 'Order of the image, 1 = main image; consecutive from 1.';
COMMENT ON COLUMN portal.product_images.sha256 IS 'The image (portal.images.sha256).';

CREATE TABLE portal.offers (
  id                  bigserial PRIMARY KEY,
  source              text NOT NULL,
  external_id         text NOT NULL,
  product_id          bigint REFERENCES portal.products (id) ON DELETE SET NULL,
  product_external_id text,
  characteristic_id   text,
  name                text NOT NULL,
  sku                 text,
  barcode             text,
  characteristics     jsonb NOT NULL DEFAULT '[]',
  quantity            numeric,
  version             text,
  active              boolean NOT NULL DEFAULT true,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  UNIQUE (source, external_id)
);
CREATE INDEX offers_product_id ON portal.offers (product_id);
CREATE INDEX offers_product_external_id ON portal.offers (source, product_external_id);
COMMENT ON TABLE portal.offers IS 'The sellable unit: one per product without variants, one per variant (характеристика; 1C offer id "product#variant"). Prices and stock hang off offers.';
COMMENT ON COLUMN portal.offers.id IS 'Portal-side identifier; order_items refer to it.';
COMMENT ON COLUMN portal.offers.source IS 'Which ERP connection the row came from.';
COMMENT ON COLUMN portal.offers.external_id IS 'The offer''s identifier in the source as sent: "product", "product#variant" or an own id.';
COMMENT ON COLUMN portal.offers.product_id IS 'The product this offer sells; NULL while that product is not known to the portal.';
COMMENT ON COLUMN portal.offers.product_external_id IS 'The product''s identifier in the source (left of "#"), kept so the link can be made when the product arrives.';
COMMENT ON COLUMN portal.offers.characteristic_id IS 'The variant''s identifier in the source (right of "#"); NULL for an offer without variants.';
COMMENT ON COLUMN portal.offers.name IS 'Offer name, e.g. "Футболка (красная, XL)"; the product''s name when the source sent none.';
COMMENT ON COLUMN portal.offers.sku IS 'Артикул of the offer; NULL when not sent.';
COMMENT ON COLUMN portal.offers.barcode IS 'Штрихкод of the offer; NULL when not sent.';
COMMENT ON COLUMN portal.offers.characteristics IS 'Variant characteristics in order: [{"name": "Цвет", "value": "красный"}]; [] for none.';
COMMENT ON COLUMN portal.offers.quantity IS 'Total quantity as the source sent it (Количество); NULL when never sent. Per-warehouse figures are in portal.stock.';
COMMENT ON COLUMN portal.offers.version IS 'The source''s version of the offer (НомерВерсии); NULL when not sent.';
COMMENT ON COLUMN portal.offers.active IS 'false when deleted in the source or no longer carried by a full package. Do not sell inactive offers.';
COMMENT ON COLUMN portal.offers.created_at IS 'When obmen first stored the row.';
COMMENT ON COLUMN portal.offers.updated_at IS 'When the row''s content last changed.';

-- ─── portal: prices and stock ───────────────────────────────────────────────────────────────

CREATE TABLE portal.price_types (
  id          bigserial PRIMARY KEY,
  source      text NOT NULL,
  external_id text NOT NULL,
  code        text NOT NULL,
  name        text NOT NULL,
  currency    text,
  active      boolean NOT NULL DEFAULT true,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (source, external_id),
  UNIQUE (source, code)
);
COMMENT ON TABLE portal.price_types IS 'Price types (розничная, мелкий опт, дилерская …): 1C ТипыЦен, МойСклад price types.';
COMMENT ON COLUMN portal.price_types.id IS 'Portal-side identifier.';
COMMENT ON COLUMN portal.price_types.source IS 'Which ERP connection the row came from.';
COMMENT ON COLUMN portal.price_types.external_id IS 'The price type''s identifier in the source.';
COMMENT ON COLUMN portal.price_types.code IS 'The portal''s code for the price type, from obmen''s mapping (e.g. retail, dealer); unique per source.';
COMMENT ON COLUMN portal.price_types.name IS 'Name as the source calls it.';
COMMENT ON COLUMN portal.price_types.currency IS 'Currency the source declared for the type; NULL when not sent.';
COMMENT ON COLUMN portal.price_types.active IS 'false when the source no longer has the type.';
COMMENT ON COLUMN portal.price_types.created_at IS 'When obmen first stored the row.';
COMMENT ON COLUMN portal.price_types.updated_at IS 'When the row''s content last changed.';

CREATE TABLE portal.prices (
  id            bigserial PRIMARY KEY,
  offer_id      bigint NOT NULL REFERENCES portal.offers (id) ON DELETE CASCADE,
  price_type_id bigint NOT NULL REFERENCES portal.price_types (id) ON DELETE CASCADE,
  value         numeric(18,4) NOT NULL,
  currency      text,
  unit          text,
  coefficient   numeric NOT NULL DEFAULT 1,
  active        boolean NOT NULL DEFAULT true,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  UNIQUE (offer_id, price_type_id)
);
CREATE INDEX prices_price_type_id ON portal.prices (price_type_id);
COMMENT ON TABLE portal.prices IS 'Price of an offer for a price type. Keyed by (offer, price type); the source is the offer''s.';
COMMENT ON COLUMN portal.prices.id IS 'Portal-side identifier.';
COMMENT ON COLUMN portal.prices.offer_id IS 'The offer.';
COMMENT ON COLUMN portal.prices.price_type_id IS 'The price type.';
COMMENT ON COLUMN portal.prices.value IS 'Price per unit, exact decimal (never rounded through floating point), 4 decimal places.';
COMMENT ON COLUMN portal.prices.currency IS 'Currency as sent (RUB, руб …); NULL when not sent.';
COMMENT ON COLUMN portal.prices.unit IS 'Unit the price is for, e.g. шт, упак; NULL when not sent (the product''s base unit).';
COMMENT ON COLUMN portal.prices.coefficient IS 'How many base units the price unit holds (1 when not sent).';
COMMENT ON COLUMN portal.prices.active IS 'false when the source no longer sends this price type for the offer. Do not show inactive prices.';
COMMENT ON COLUMN portal.prices.created_at IS 'When obmen first stored the row.';
COMMENT ON COLUMN portal.prices.updated_at IS 'When the row''s content last changed.';

CREATE TABLE portal.warehouses (
  id          bigserial PRIMARY KEY,
  source      text NOT NULL,
  external_id text NOT NULL,
  code        text NOT NULL,
  name        text NOT NULL,
  active      boolean NOT NULL DEFAULT true,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (source, external_id)
);
COMMENT ON TABLE portal.warehouses IS 'Warehouses stock is held in (1C Склады, МойСклад store).';
COMMENT ON COLUMN portal.warehouses.id IS 'Portal-side identifier.';
COMMENT ON COLUMN portal.warehouses.source IS 'Which ERP connection the row came from.';
COMMENT ON COLUMN portal.warehouses.external_id IS 'The warehouse''s identifier in the source.';
COMMENT ON COLUMN portal.warehouses.code IS 'The portal''s code for the warehouse, from obmen''s mapping (e.g. msk, spb).';
COMMENT ON COLUMN portal.warehouses.name IS 'Name as the source calls it.';
COMMENT ON COLUMN portal.warehouses.active IS 'false when the source deleted the warehouse.';
COMMENT ON COLUMN portal.warehouses.created_at IS 'When obmen first stored the row.';
COMMENT ON COLUMN portal.warehouses.updated_at IS 'When the row''s content last changed.';

CREATE TABLE portal.stock (
  id           bigserial PRIMARY KEY,
  offer_id     bigint NOT NULL REFERENCES portal.offers (id) ON DELETE CASCADE,
  warehouse_id bigint NOT NULL REFERENCES portal.warehouses (id) ON DELETE CASCADE,
  quantity     numeric NOT NULL,
  reserved     numeric,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (offer_id, warehouse_id)
);
CREATE INDEX stock_warehouse_id ON portal.stock (warehouse_id);
COMMENT ON TABLE portal.stock IS 'Quantity of an offer at a warehouse. A warehouse the source stops listing for an offer drops to 0, never keeps a stale figure.';
COMMENT ON COLUMN portal.stock.id IS 'Portal-side identifier.';
COMMENT ON COLUMN portal.stock.offer_id IS 'The offer.';
COMMENT ON COLUMN portal.stock.warehouse_id IS 'The warehouse.';
COMMENT ON COLUMN portal.stock.quantity IS 'Quantity on hand, exact decimal, in the product''s base unit; may be negative when the ERP allows it.';
COMMENT ON COLUMN portal.stock.reserved IS 'Quantity reserved for other orders, where the source reports it; NULL when not known.';
COMMENT ON COLUMN portal.stock.created_at IS 'When obmen first stored the row.';
COMMENT ON COLUMN portal.stock.updated_at IS 'When the quantity last changed.';

-- ─── portal: counterparties and accounts ───────────────────────────────────────────────────

CREATE TABLE portal.counterparties (
  id            bigserial PRIMARY KEY,
  source        text,
  external_id   text,
  guid          uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  name          text NOT NULL,
  legal_name    text,
  inn           text,
  kpp           text,
  price_type_id bigint REFERENCES portal.price_types (id) ON DELETE SET NULL,
  manager       text,
  credit_limit  numeric,
  balance       numeric,
  active        boolean NOT NULL DEFAULT true,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  changed_at    timestamptz NOT NULL DEFAULT now(),
  exported_at   timestamptz,
  UNIQUE (source, external_id),
  CHECK ((source IS NULL) = (external_id IS NULL))
);
CREATE INDEX counterparties_inn ON portal.counterparties (inn, kpp);
COMMENT ON TABLE portal.counterparties IS 'Legal entities (контрагенты) that buy on the portal. Synced from the ERP, or created on the portal and exported by obmen.';
COMMENT ON COLUMN portal.counterparties.id IS 'Portal-side identifier.';
COMMENT ON COLUMN portal.counterparties.source IS 'Which ERP connection the row belongs to; NULL while a counterparty created on the portal is not yet known to the ERP.';
COMMENT ON COLUMN portal.counterparties.external_id IS 'The counterparty''s identifier in the ERP; NULL until the ERP has it (together with source).';
COMMENT ON COLUMN portal.counterparties.guid IS 'Identifier obmen sends to the ERP for a counterparty created on the portal (1C Ид); generated on insert.';
COMMENT ON COLUMN portal.counterparties.name IS 'Short name (Наименование).';
COMMENT ON COLUMN portal.counterparties.legal_name IS 'Full legal name (ПолноеНаименование / ОфициальноеНаименование).';
COMMENT ON COLUMN portal.counterparties.inn IS 'ИНН (10 digits for a company, 12 for a sole trader).';
COMMENT ON COLUMN portal.counterparties.kpp IS 'КПП; NULL for sole traders.';
COMMENT ON COLUMN portal.counterparties.price_type_id IS 'The price type (segment) this counterparty buys at; NULL = the portal''s default.';
COMMENT ON COLUMN portal.counterparties.manager IS 'Name of the assigned sales manager.';
COMMENT ON COLUMN portal.counterparties.credit_limit IS 'Credit limit in the base currency; NULL when none is set.';
COMMENT ON COLUMN portal.counterparties.balance IS 'Current receivables (positive: the customer owes); NULL when not known.';
COMMENT ON COLUMN portal.counterparties.active IS 'false when the ERP deleted the counterparty.';
COMMENT ON COLUMN portal.counterparties.created_at IS 'When the row was created.';
COMMENT ON COLUMN portal.counterparties.updated_at IS 'When obmen last changed the row''s content.';
COMMENT ON COLUMN portal.counterparties.changed_at IS 'Set by the portal when it creates or edits the counterparty; obmen exports it again when changed_at > exported_at.';
COMMENT ON COLUMN portal.counterparties.exported_at IS 'When obmen last delivered the counterparty to the ERP; NULL = never.';

CREATE TABLE portal.accounts (
  id         bigserial PRIMARY KEY,
  email      text NOT NULL,
  name       text,
  active     boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX accounts_email ON portal.accounts (lower(email));
COMMENT ON TABLE portal.accounts IS 'Portal logins. Owned by the portal; one account may act for several counterparties.';
COMMENT ON COLUMN portal.accounts.id IS 'Portal-side identifier.';
COMMENT ON COLUMN portal.accounts.email IS 'Login e-mail; unique regardless of case.';
COMMENT ON COLUMN portal.accounts.name IS 'Person''s name.';
COMMENT ON COLUMN portal.accounts.active IS 'false when the login is disabled.';
COMMENT ON COLUMN portal.accounts.created_at IS 'When the account was created.';
COMMENT ON COLUMN portal.accounts.updated_at IS 'When the account last changed.';

CREATE TABLE portal.account_counterparties (
  account_id      bigint NOT NULL REFERENCES portal.accounts (id) ON DELETE CASCADE,
  counterparty_id bigint NOT NULL REFERENCES portal.counterparties (id) ON DELETE CASCADE,
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (account_id, counterparty_id)
);
CREATE INDEX account_counterparties_counterparty_id ON portal.account_counterparties (counterparty_id);
COMMENT ON TABLE portal.account_counterparties IS 'Which legal entities a portal account may order for (many to many).';
COMMENT ON COLUMN portal.account_counterparties.account_id IS 'The account.';
COMMENT ON COLUMN portal.account_counterparties.counterparty_id IS 'A counterparty the account acts for.';
COMMENT ON COLUMN portal.account_counterparties.created_at IS 'When the link was made.';

-- ─── portal: orders ─────────────────────────────────────────────────────────────────────────

CREATE TABLE portal.orders (
  id              bigserial PRIMARY KEY,
  guid            uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  source          text,
  external_id     text,
  number          text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  account_id      bigint REFERENCES portal.accounts (id) ON DELETE SET NULL,
  counterparty_id bigint REFERENCES portal.counterparties (id) ON DELETE RESTRICT,
  status          text NOT NULL DEFAULT 'new',
  currency        text NOT NULL DEFAULT 'RUB',
  total           numeric NOT NULL DEFAULT 0,
  comment         text,
  erp_number      text,
  erp_date        timestamptz,
  paid_at         timestamptz,
  shipped_at      timestamptz,
  tracking_number text,
  cancelled       boolean NOT NULL DEFAULT false,
  changed_at      timestamptz NOT NULL DEFAULT now(),
  exported_at     timestamptz,
  updated_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (source, external_id),
  CHECK ((source IS NULL) = (external_id IS NULL))
);
CREATE INDEX orders_counterparty_id ON portal.orders (counterparty_id);
CREATE INDEX orders_account_id ON portal.orders (account_id);
CREATE INDEX orders_to_export ON portal.orders (changed_at) WHERE exported_at IS NULL OR changed_at > exported_at;
COMMENT ON TABLE portal.orders IS 'Orders created on the portal. obmen exports them to the ERP and writes back the ERP''s number, status, payment, shipment and tracking.';
COMMENT ON COLUMN portal.orders.id IS 'Portal-side identifier.';
COMMENT ON COLUMN portal.orders.guid IS 'The order''s identifier in exchanges with the ERP (1C Ид); generated on insert.';
COMMENT ON COLUMN portal.orders.source IS 'The ERP connection the order was exported to; NULL until the ERP acknowledged it.';
COMMENT ON COLUMN portal.orders.external_id IS 'The order''s identifier in the ERP; NULL until exported (together with source).';
COMMENT ON COLUMN portal.orders.number IS 'The portal''s order number shown to the customer.';
COMMENT ON COLUMN portal.orders.created_at IS 'When the customer placed the order.';
COMMENT ON COLUMN portal.orders.account_id IS 'The portal account that placed the order.';
COMMENT ON COLUMN portal.orders.counterparty_id IS 'The legal entity that buys.';
COMMENT ON COLUMN portal.orders.status IS 'Current status code after mapping (new, accepted, awaiting_payment, paid, partially_shipped, shipped, cancelled …); every change is also in order_status_history.';
COMMENT ON COLUMN portal.orders.currency IS 'Currency of the amounts.';
COMMENT ON COLUMN portal.orders.total IS 'Order total including discounts, exact decimal.';
COMMENT ON COLUMN portal.orders.comment IS 'Customer''s comment.';
COMMENT ON COLUMN portal.orders.erp_number IS 'The ERP document''s number (Номер), once the ERP has the order.';
COMMENT ON COLUMN portal.orders.erp_date IS 'The ERP document''s date, once the ERP has the order.';
COMMENT ON COLUMN portal.orders.paid_at IS 'When the ERP recorded payment; NULL = not paid.';
COMMENT ON COLUMN portal.orders.shipped_at IS 'When the ERP recorded shipment; NULL = not shipped.';
COMMENT ON COLUMN portal.orders.tracking_number IS 'Carrier tracking number, when the ERP sends one.';
COMMENT ON COLUMN portal.orders.cancelled IS 'true when the order is cancelled (by the customer on the portal or in the ERP).';
COMMENT ON COLUMN portal.orders.changed_at IS 'Set by the portal whenever the customer creates or edits the order; obmen exports it again when changed_at > exported_at.';
COMMENT ON COLUMN portal.orders.exported_at IS 'When obmen last delivered the order to the ERP; NULL = never.';
COMMENT ON COLUMN portal.orders.updated_at IS 'When the row last changed (by the portal or by obmen).';

CREATE TABLE portal.order_items (
  id         bigserial PRIMARY KEY,
  order_id   bigint NOT NULL REFERENCES portal.orders (id) ON DELETE CASCADE,
  offer_id   bigint REFERENCES portal.offers (id) ON DELETE RESTRICT,
  name       text NOT NULL,
  quantity   numeric NOT NULL,
  price      numeric NOT NULL,
  amount     numeric NOT NULL,
  discount   numeric NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_items_order_id ON portal.order_items (order_id);
COMMENT ON TABLE portal.order_items IS 'Lines of an order.';
COMMENT ON COLUMN portal.order_items.id IS 'Portal-side identifier; lines are exported in id order.';
COMMENT ON COLUMN portal.order_items.order_id IS 'The order.';
COMMENT ON COLUMN portal.order_items.offer_id IS 'The offer ordered (its external_id is what the ERP receives).';
COMMENT ON COLUMN portal.order_items.name IS 'Name at the time of ordering.';
COMMENT ON COLUMN portal.order_items.quantity IS 'Quantity in the product''s base unit, exact decimal.';
COMMENT ON COLUMN portal.order_items.price IS 'Price per unit before discount.';
COMMENT ON COLUMN portal.order_items.amount IS 'Line amount after discount (quantity × price − discount).';
COMMENT ON COLUMN portal.order_items.discount IS 'Discount amount on the line; 0 when none.';
COMMENT ON COLUMN portal.order_items.created_at IS 'When the line was added.';

CREATE TABLE portal.order_status_history (
  id       bigserial PRIMARY KEY,
  order_id bigint NOT NULL REFERENCES portal.orders (id) ON DELETE CASCADE,
  status   text NOT NULL,
  at       timestamptz NOT NULL DEFAULT now(),
  comment  text,
  origin   text NOT NULL
);
CREATE INDEX order_status_history_order_id ON portal.order_status_history (order_id, at);
COMMENT ON TABLE portal.order_status_history IS 'Every status change of an order, oldest first. Each insert sends NOTIFY portal_order_status with the order id as payload.';
COMMENT ON COLUMN portal.order_status_history.id IS 'Identifier; increases with every change.';
COMMENT ON COLUMN portal.order_status_history.order_id IS 'The order.';
COMMENT ON COLUMN portal.order_status_history.status IS 'The status the order moved to (same codes as orders.status).';
COMMENT ON COLUMN portal.order_status_history.at IS 'When the change happened (as the ERP reports it, or when it was recorded).';
COMMENT ON COLUMN portal.order_status_history.comment IS 'Free text about the change, e.g. the ERP''s comment.';
COMMENT ON COLUMN portal.order_status_history.origin IS 'Who made the change: portal, or the ERP source name (onec, moysklad).';

CREATE FUNCTION portal.notify_order_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('portal_order_status', NEW.order_id::text);
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION portal.notify_order_status() IS 'Sends NOTIFY portal_order_status, ''<order id>'' for each new order_status_history row.';
CREATE TRIGGER order_status_history_notify AFTER INSERT ON portal.order_status_history
  FOR EACH ROW EXECUTE FUNCTION portal.notify_order_status();

-- ─── portal: documents ──────────────────────────────────────────────────────────────────────

CREATE TABLE portal.documents (
  id              bigserial PRIMARY KEY,
  source          text NOT NULL,
  external_id     text NOT NULL,
  kind            text NOT NULL CHECK (kind IN ('invoice', 'vat_invoice', 'upd', 'act', 'waybill')),
  number          text,
  date            timestamptz,
  order_id        bigint REFERENCES portal.orders (id) ON DELETE SET NULL,
  counterparty_id bigint REFERENCES portal.counterparties (id) ON DELETE SET NULL,
  amount          numeric,
  payload         jsonb NOT NULL DEFAULT '{}',
  active          boolean NOT NULL DEFAULT true,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (source, external_id)
);
CREATE INDEX documents_order_id ON portal.documents (order_id);
CREATE INDEX documents_counterparty_id ON portal.documents (counterparty_id, date);
COMMENT ON TABLE portal.documents IS 'Documents the ERP produced for customers: invoices, VAT invoices, УПД, acts, waybills.';
COMMENT ON COLUMN portal.documents.id IS 'Portal-side identifier.';
COMMENT ON COLUMN portal.documents.source IS 'Which ERP connection the document came from.';
COMMENT ON COLUMN portal.documents.external_id IS 'The document''s identifier in the source.';
COMMENT ON COLUMN portal.documents.kind IS 'invoice (счёт на оплату), vat_invoice (счёт-фактура), upd (УПД), act (акт), waybill (товарная накладная).';
COMMENT ON COLUMN portal.documents.number IS 'Document number as printed.';
COMMENT ON COLUMN portal.documents.date IS 'Document date.';
COMMENT ON COLUMN portal.documents.order_id IS 'The portal order the document belongs to; NULL when not linked.';
COMMENT ON COLUMN portal.documents.counterparty_id IS 'The counterparty the document is addressed to.';
COMMENT ON COLUMN portal.documents.amount IS 'Document total including VAT, exact decimal.';
COMMENT ON COLUMN portal.documents.payload IS 'Everything else the source sent (lines, VAT, signer …) as JSON, for rendering the document.';
COMMENT ON COLUMN portal.documents.active IS 'false when the ERP deleted or unposted the document.';
COMMENT ON COLUMN portal.documents.created_at IS 'When obmen first stored the row.';
COMMENT ON COLUMN portal.documents.updated_at IS 'When the row''s content last changed.';

-- ─── obmen: exchange sessions (1C protocol) ────────────────────────────────────────────────

CREATE TABLE obmen.exchange_sessions (
  id              bigserial PRIMARY KEY,
  source          text NOT NULL,
  type            text NOT NULL,
  cookie_hash     text NOT NULL UNIQUE,
  remote_addr     text,
  started_at      timestamptz NOT NULL DEFAULT now(),
  last_request_at timestamptz,
  expires_at      timestamptz NOT NULL,
  finished_at     timestamptz,
  status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'complete', 'failed', 'expired')),
  bytes_received  bigint NOT NULL DEFAULT 0,
  counts          jsonb NOT NULL DEFAULT '{}',
  error           text,
  spool_dir       text,
  spool_removed_at timestamptz
);
CREATE INDEX exchange_sessions_open ON obmen.exchange_sessions (expires_at) WHERE status = 'open';
CREATE INDEX exchange_sessions_started ON obmen.exchange_sessions (source, started_at);
COMMENT ON TABLE obmen.exchange_sessions IS 'One row per 1C exchange session (checkauth … success/failure).';
COMMENT ON COLUMN obmen.exchange_sessions.id IS 'Session id, shown in logs.';
COMMENT ON COLUMN obmen.exchange_sessions.source IS 'Source name from the config.';
COMMENT ON COLUMN obmen.exchange_sessions.type IS 'Exchange type from the request (catalog, sale).';
COMMENT ON COLUMN obmen.exchange_sessions.cookie_hash IS 'SHA-256 of the session cookie (the cookie itself is never stored).';
COMMENT ON COLUMN obmen.exchange_sessions.remote_addr IS 'Client address of checkauth.';
COMMENT ON COLUMN obmen.exchange_sessions.started_at IS 'When checkauth succeeded.';
COMMENT ON COLUMN obmen.exchange_sessions.last_request_at IS 'When the last request of the session arrived.';
COMMENT ON COLUMN obmen.exchange_sessions.expires_at IS 'After this moment the cookie is no longer accepted.';
COMMENT ON COLUMN obmen.exchange_sessions.finished_at IS 'When the session reached complete, failed or expired.';
COMMENT ON COLUMN obmen.exchange_sessions.status IS 'open, complete, failed or expired.';
COMMENT ON COLUMN obmen.exchange_sessions.bytes_received IS 'Total bytes uploaded in the session.';
COMMENT ON COLUMN obmen.exchange_sessions.counts IS 'Summed import counts of the session''s files (import_counts JSON).';
COMMENT ON COLUMN obmen.exchange_sessions.error IS 'Why the session failed.';
COMMENT ON COLUMN obmen.exchange_sessions.spool_dir IS 'Directory holding the uploaded files.';
COMMENT ON COLUMN obmen.exchange_sessions.spool_removed_at IS 'When the spool directory was cleaned up.';

CREATE TABLE obmen.exchange_requests (
  id          bigserial PRIMARY KEY,
  session_id  bigint REFERENCES obmen.exchange_sessions (id) ON DELETE CASCADE,
  at          timestamptz NOT NULL DEFAULT now(),
  method      text,
  mode        text,
  filename    text,
  bytes       bigint,
  answer      text,
  duration_ms int
);
CREATE INDEX exchange_requests_session_id ON obmen.exchange_requests (session_id, at);
COMMENT ON TABLE obmen.exchange_requests IS 'Log of requests of the 1C exchange protocol, for troubleshooting.';
COMMENT ON COLUMN obmen.exchange_requests.id IS 'Identifier.';
COMMENT ON COLUMN obmen.exchange_requests.session_id IS 'The session; NULL for requests before a session exists (failed checkauth).';
COMMENT ON COLUMN obmen.exchange_requests.at IS 'When the request arrived.';
COMMENT ON COLUMN obmen.exchange_requests.method IS 'HTTP method.';
COMMENT ON COLUMN obmen.exchange_requests.mode IS 'Protocol mode: checkauth, init, file, import, deactivate, complete, query, success.';
COMMENT ON COLUMN obmen.exchange_requests.filename IS 'filename parameter, when given.';
COMMENT ON COLUMN obmen.exchange_requests.bytes IS 'Request body size.';
COMMENT ON COLUMN obmen.exchange_requests.answer IS 'First line of obmen''s answer (success, progress, failure …).';
COMMENT ON COLUMN obmen.exchange_requests.duration_ms IS 'Time to answer.';

CREATE TABLE obmen.exchange_files (
  id                 bigserial PRIMARY KEY,
  session_id         bigint NOT NULL REFERENCES obmen.exchange_sessions (id) ON DELETE CASCADE,
  filename           text NOT NULL,
  bytes              bigint NOT NULL DEFAULT 0,
  chunks             int NOT NULL DEFAULT 0,
  status             text NOT NULL DEFAULT 'uploading' CHECK (status IN ('uploading', 'queued', 'importing', 'imported', 'failed')),
  import_started_at  timestamptz,
  import_finished_at timestamptz,
  counts             jsonb,
  error              text,
  progress           text,
  UNIQUE (session_id, filename)
);
COMMENT ON TABLE obmen.exchange_files IS 'Files uploaded in an exchange session and the state of their import.';
COMMENT ON COLUMN obmen.exchange_files.id IS 'Identifier.';
COMMENT ON COLUMN obmen.exchange_files.session_id IS 'The session.';
COMMENT ON COLUMN obmen.exchange_files.filename IS 'Name as 1C sent it (relative path inside the spool).';
COMMENT ON COLUMN obmen.exchange_files.bytes IS 'Bytes received so far.';
COMMENT ON COLUMN obmen.exchange_files.chunks IS 'Number of mode=file requests for the file.';
COMMENT ON COLUMN obmen.exchange_files.status IS 'uploading, queued, importing, imported or failed.';
COMMENT ON COLUMN obmen.exchange_files.import_started_at IS 'When the import began.';
COMMENT ON COLUMN obmen.exchange_files.import_finished_at IS 'When the import ended (either way).';
COMMENT ON COLUMN obmen.exchange_files.counts IS 'The import''s counts (import_counts JSON).';
COMMENT ON COLUMN obmen.exchange_files.error IS 'Why the import failed.';
COMMENT ON COLUMN obmen.exchange_files.progress IS 'Human-readable progress of a running import, answered to 1C''s polling.';

CREATE TABLE obmen.exchange_seen (
  session_id  bigint NOT NULL REFERENCES obmen.exchange_sessions (id) ON DELETE CASCADE,
  entity      text NOT NULL CHECK (entity IN ('categories', 'products', 'offers')),
  external_id text NOT NULL,
  PRIMARY KEY (session_id, entity, external_id)
);
COMMENT ON TABLE obmen.exchange_seen IS 'External ids an exchange session carried, so mode=deactivate can deactivate everything else.';
COMMENT ON COLUMN obmen.exchange_seen.session_id IS 'The session.';
COMMENT ON COLUMN obmen.exchange_seen.entity IS 'categories, products or offers.';
COMMENT ON COLUMN obmen.exchange_seen.external_id IS 'The carried row''s external id.';

-- ─── obmen: outbound queue, jobs, bookmarks ────────────────────────────────────────────────

CREATE TABLE obmen.queue (
  id               bigserial PRIMARY KEY,
  kind             text NOT NULL,
  target           text NOT NULL,
  payload          jsonb NOT NULL DEFAULT '{}',
  idempotency_key  text UNIQUE,
  attempts         int NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  lease_until      timestamptz,
  state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'in_flight', 'done', 'dead')),
  last_error_class text,
  last_error       text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);
-- Claiming: WHERE state = 'pending' AND next_attempt_at <= now() (or an in_flight lease that
-- ran out) ORDER BY next_attempt_at FOR UPDATE SKIP LOCKED.
CREATE INDEX queue_claim ON obmen.queue (target, next_attempt_at) WHERE state IN ('pending', 'in_flight');
CREATE INDEX queue_state ON obmen.queue (state, updated_at);
COMMENT ON TABLE obmen.queue IS 'Durable outbound work (orders, counterparties, cancellations to deliver to an ERP), claimed with FOR UPDATE SKIP LOCKED.';
COMMENT ON COLUMN obmen.queue.id IS 'Identifier.';
COMMENT ON COLUMN obmen.queue.kind IS 'What to do, e.g. export_order, export_counterparty, cancel_order.';
COMMENT ON COLUMN obmen.queue.target IS 'Source name the item goes to.';
COMMENT ON COLUMN obmen.queue.payload IS 'Parameters of the work item.';
COMMENT ON COLUMN obmen.queue.idempotency_key IS 'Deduplicates enqueueing the same work twice; NULL for none.';
COMMENT ON COLUMN obmen.queue.attempts IS 'Delivery attempts so far.';
COMMENT ON COLUMN obmen.queue.next_attempt_at IS 'Not claimed before this moment (backoff).';
COMMENT ON COLUMN obmen.queue.lease_until IS 'An in_flight item whose lease ran out is claimable again (its worker died).';
COMMENT ON COLUMN obmen.queue.state IS 'pending, in_flight, done, or dead (gave up; an admin may retry or drop it).';
COMMENT ON COLUMN obmen.queue.last_error_class IS 'transient, permanent or bug — how the last failure was classified.';
COMMENT ON COLUMN obmen.queue.last_error IS 'Message of the last failure.';
COMMENT ON COLUMN obmen.queue.created_at IS 'When the item was enqueued.';
COMMENT ON COLUMN obmen.queue.updated_at IS 'When the item last changed state.';

CREATE TABLE obmen.jobs (
  id           bigserial PRIMARY KEY,
  source       text NOT NULL,
  entity       text,
  mode         text,
  dry_run      boolean NOT NULL DEFAULT false,
  state        text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
  progress     jsonb,
  result       jsonb,
  error        text,
  requested_by text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  started_at   timestamptz,
  finished_at  timestamptz
);
CREATE INDEX jobs_active ON obmen.jobs (created_at) WHERE state IN ('queued', 'running');
COMMENT ON TABLE obmen.jobs IS 'Resync jobs requested by an admin (obmenctl resync) and their outcome.';
COMMENT ON COLUMN obmen.jobs.id IS 'Job id.';
COMMENT ON COLUMN obmen.jobs.source IS 'Source name to sync from.';
COMMENT ON COLUMN obmen.jobs.entity IS 'What to sync (products, prices, stock …); NULL = everything.';
COMMENT ON COLUMN obmen.jobs.mode IS 'full or incremental.';
COMMENT ON COLUMN obmen.jobs.dry_run IS 'true: compute and report, roll back instead of committing.';
COMMENT ON COLUMN obmen.jobs.state IS 'queued, running, done, failed or cancelled.';
COMMENT ON COLUMN obmen.jobs.progress IS 'Progress of a running job (JSON).';
COMMENT ON COLUMN obmen.jobs.result IS 'Counts of a finished job (import_counts JSON).';
COMMENT ON COLUMN obmen.jobs.error IS 'Why the job failed.';
COMMENT ON COLUMN obmen.jobs.requested_by IS 'Who asked (user name from obmenctl).';
COMMENT ON COLUMN obmen.jobs.created_at IS 'When the job was requested.';
COMMENT ON COLUMN obmen.jobs.started_at IS 'When a worker began it.';
COMMENT ON COLUMN obmen.jobs.finished_at IS 'When it ended.';

CREATE TABLE obmen.bookmarks (
  source     text NOT NULL,
  entity     text NOT NULL,
  value      text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (source, entity)
);
COMMENT ON TABLE obmen.bookmarks IS 'Incremental sync positions (e.g. МойСклад updated-since), saved in the same transaction as the data they cover.';
COMMENT ON COLUMN obmen.bookmarks.source IS 'Source name.';
COMMENT ON COLUMN obmen.bookmarks.entity IS 'What the bookmark is for (products, stock …).';
COMMENT ON COLUMN obmen.bookmarks.value IS 'Opaque position, as the adapter wrote it.';
COMMENT ON COLUMN obmen.bookmarks.updated_at IS 'When it last moved.';
