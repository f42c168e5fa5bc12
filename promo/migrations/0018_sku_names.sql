-- A product's name in each language other than English (R-X15: customers read product
-- names, never SKU ids, in their own language). skus.name stays the English name, and
-- the fallback for a language without a row here.
CREATE TABLE sku_names (
    sku   TEXT NOT NULL REFERENCES skus (sku),
    lang  TEXT NOT NULL,
    name  TEXT NOT NULL,
    PRIMARY KEY (sku, lang)
);
