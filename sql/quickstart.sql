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

-- Vectors: pgvector's type, functions and operators, and an HNSW index the planner uses.
DROP TABLE IF EXISTS items;
CREATE TABLE items (id BIGINT, name TEXT, emb vector(3));
INSERT INTO items VALUES
  (1, 'apple',  '[0.9, 0.1, 0.0]'),
  (2, 'pear',   '[0.8, 0.3, 0.1]'),
  (3, 'carrot', '[0.1, 0.9, 0.2]'),
  (4, 'potato', '[0.0, 0.7, 0.6]');
CREATE INDEX items_emb_idx ON items USING hnsw (emb vector_l2_ops) WITH (m = 16, ef_construction = 64);
SELECT id, name, round(emb <-> '[1, 0.2, 0]', 4) AS l2 FROM items ORDER BY emb <-> '[1, 0.2, 0]' LIMIT 2;
SELECT name, round(cosine_distance(emb, '[0, 1, 0.5]'), 4) AS cosine FROM items ORDER BY cosine LIMIT 2;
SET hnsw.ef_search = 100;
SELECT id, name, round(_distance, 4) AS distance FROM vector_search('items_emb_idx', '[0.1, 0.8, 0.3]', 2);
SELECT name, "table", metric, params, rows, dims FROM lakehouse.indexes;

-- Embeddings: text in, vectors out. The built-in model 'hash' is lexical (words and
-- character trigrams hashed into 256 dimensions), not semantic, and needs no files or
-- server; CALL create_model('minilm', provider => 'local', path => '…') or an
-- Ollama/OpenAI server gives semantic vectors (see README).
SELECT name, provider, dims, reachable FROM lakehouse.models;
SELECT vector_dims(embed('a sentence to embed')) AS dims,
       round(1 - cosine_distance(embed('nearest neighbour search'), embed('nearest-neighbour searches')), 3) AS similar,
       round(1 - cosine_distance(embed('nearest neighbour search'), embed('quarterly revenue report')), 3) AS unrelated;
-- A text index embeds the column (here with the session's default model, 'hash').
CREATE INDEX docs_body_idx ON docs USING hnsw (body);
SELECT id, title, round(_distance, 3) AS distance
  FROM vector_search('docs_body_idx', 'indexes for nearest neighbour search', 2);
SELECT name, "column", model, dims, rows FROM lakehouse.indexes WHERE model IS NOT NULL;
