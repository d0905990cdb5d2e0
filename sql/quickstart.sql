-- lakehouse quickstart: runs on the embedded defaults, no server needed.
--   cargo run -- sql -f sql/quickstart.sql
-- Datasets are Parquet in the primary bucket (./lakehouse-data) and survive restarts.

DROP TABLE IF EXISTS docs;
CREATE TABLE docs (id BIGINT, title TEXT, body TEXT);
INSERT INTO docs VALUES
  (1, 'Lakehouse', 'Parquet and Lance datasets in object-store buckets'),
  (2, 'Vectors', 'HNSW and IVF_PQ indexes for nearest-neighbour search'),
  (3, 'Wire', 'Served over the PostgreSQL wire protocol to psql and every driver');

SELECT id, title FROM docs ORDER BY id;

DROP TABLE IF EXISTS doc_stats;
CREATE TABLE doc_stats AS
  SELECT id, length(body) AS body_chars FROM docs;
SELECT * FROM doc_stats ORDER BY body_chars DESC;

SELECT name, kind, url FROM lakehouse.buckets ORDER BY name;
SELECT name, bucket, source FROM lakehouse.datasets ORDER BY name;
SHOW server_version;
