-- The planner asks, for every airable asset, when it was last scheduled on a channel. Without this index that is a
-- scan of the whole (ever-growing) schedule per asset per pick.
CREATE INDEX schedule_asset ON schedule(asset_id, channel_id, id);
