-- The planner's grid and its explanations, and what a channel's library is chosen by.
-- planned_start_ms: when the planner expects the row to start, recomputed from what actually aired (never drifts).
-- pick: JSON of how it was chosen (score breakdown, shortlist, masks, draw); slot: the fixed-time slot it fills;
-- end_ms: where in the asset it ends when a hard slot start cuts it (a keyframe), NULL: at the asset's end;
-- filler: padding before a slot (a filler asset or an "up next" card).
ALTER TABLE schedule ADD COLUMN planned_start_ms BIGINT;
ALTER TABLE schedule ADD COLUMN pick TEXT;
ALTER TABLE schedule ADD COLUMN slot TEXT;
ALTER TABLE schedule ADD COLUMN end_ms BIGINT;
ALTER TABLE schedule ADD COLUMN filler BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX schedule_planned ON schedule(channel_id, planned_start_ms);

-- What the curator knew of an asset's content, carried over from its plan: the library filters and the EPG read it.
ALTER TABLE assets ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE assets ADD COLUMN source_name TEXT NOT NULL DEFAULT '';  -- curator source, 'manual', 'inbox' or 'demo'
ALTER TABLE assets ADD COLUMN language TEXT;                         -- ISO 639-1
ALTER TABLE assets ADD COLUMN rating TEXT;
ALTER TABLE assets ADD COLUMN series TEXT;
ALTER TABLE assets ADD COLUMN curator_score DOUBLE PRECISION;
