-- The tuning loop, end to end: an index, an eval set, a trial by hand, autotune
-- (grid, then adaptive), the promotion registry, rollback and the agent's queue.
-- Run it with `cargo run -- sql -f sql/autotune.sql` (CI runs it: tests/integration/autotune.rs).

-- 2,000 random 16-dimensional points and an index with deliberately weak parameters.
CREATE TABLE points AS
SELECT value AS id,
       CAST(make_array(random(), random(), random(), random(), random(), random(), random(), random(),
                       random(), random(), random(), random(), random(), random(), random(), random()) AS vector(16)) AS v
FROM generate_series(1, 2000);

CREATE INDEX points_idx ON points USING hnsw (v vector_l2_ops) WITH (m = 4, ef_construction = 10);

-- 100 held-out rows as queries, their exact 10 nearest neighbours as ground truth.
CALL create_eval_set('points_idx', queries => 100, k => 10, seed => 42);
SELECT name, index_name, queries, k, rows, source FROM lakehouse.eval_sets;

-- One trial by hand: the index's own graph at ef_search 10.
CALL run_trial('points_idx', ef_search => 10);

-- The old service's grid (5 configurations; m = 16, ef_search-only variants share a
-- build). The winner (highest recall, then lowest p50) must reach min_recall.
CALL autotune('points_idx', min_recall => 0.9, wait => true);

-- Trials are data.
SELECT trial_id, m, ef_construction, ef_search, round(recall, 3) AS recall, source
FROM lakehouse.trials ORDER BY trial_id;

-- The promotion is durable and already built (wait => true): the index has its
-- parameters, and queries use its ef_search unless the session sets one.
SELECT position, trial_id, is_current, m, ef_construction, ef_search, promoted_by, applied
FROM lakehouse.promotions ORDER BY position;
SELECT name, params FROM lakehouse.indexes;
EXPLAIN SELECT id FROM points ORDER BY v <-> '[0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5]' LIMIT 5;

-- The adaptive strategy: the fastest configuration reaching recall 0.95, in a
-- budget of trials; here it only reports (promote => false).
CALL autotune('points_idx', min_recall => 0.95, strategy => 'adaptive', max_trials => 6, promote => false);

-- A gate that nothing reaches: nothing is promoted and the result says so.
CALL autotune('points_idx', min_recall => 0.999, grid => '[{"m": 4, "ef_construction": 10, "ef_search": 10}]');

-- Promote the hand-run trial, then roll back to autotune's choice, then past it.
CALL promote('points_idx', 1, note => 'back to the original graph', wait => true);
SELECT position, trial_id, is_current, promoted_by, note FROM lakehouse.promotions ORDER BY position;
CALL rollback('points_idx', wait => true);
CALL rollback('points_idx', wait => true);
SELECT count(*) AS promotions FROM lakehouse.promotions;
SELECT name, params FROM lakehouse.indexes;

-- The background agent (off unless lakehouse.toml says [agent] enabled = true).
CALL autotune_enqueue('points_idx');
SELECT enabled, queue, max_trials_per_hour, cooldown_secs FROM lakehouse.agent;
