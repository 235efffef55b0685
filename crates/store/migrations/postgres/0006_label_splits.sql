-- Traffic splits and the kind of each label move.
--
-- A label may serve several versions by weight: `split` is the JSON list of
-- {"version", "weight"} entries (weights sum to 100; the first entry is the label's
-- version_number). NULL when the label points at one version.
ALTER TABLE labels ADD COLUMN split JSONB;

-- Each history entry keeps the split the label served after the move, and what the move was:
-- set, remove, split, promote, rollback. Entries written before this migration were plain moves
-- or removals.
ALTER TABLE label_history ADD COLUMN split JSONB;
ALTER TABLE label_history ADD COLUMN action TEXT NOT NULL DEFAULT 'set'
    CHECK (action IN ('set', 'remove', 'split', 'promote', 'rollback'));
UPDATE label_history SET action = 'remove' WHERE to_version IS NULL;
