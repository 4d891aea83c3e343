-- Many nodes on one database: who is alive, who plays which channel, which segments were published, which node
-- works a job. On one box the same tables hold one node; nothing else changes.
-- Times here are on the database's clock (unix ms), so nodes with drifting clocks agree on expiry.
CREATE TABLE nodes (
    id            TEXT PRIMARY KEY,              -- [node] id
    roles         TEXT NOT NULL DEFAULT '[]',    -- JSON array: factory, broadcaster, curator, http
    started_ms    BIGINT NOT NULL,
    heartbeat_ms  BIGINT NOT NULL
);

-- One broadcaster per channel: the holder plays it while its lease is unexpired; a takeover bumps the epoch, and
-- every segment is committed with its epoch checked against this row (fencing).
CREATE TABLE channel_lease (
    channel_id    TEXT PRIMARY KEY REFERENCES channels(id) ON DELETE CASCADE,
    holder        TEXT NOT NULL,
    epoch         BIGINT NOT NULL,
    expires_ms    BIGINT NOT NULL,
    acquired_ms   BIGINT NOT NULL,
    multivariant  TEXT                           -- the holder's live.m3u8 (the ladder), for the other origins
);

-- Every published segment of a channel (present on every rung), committed only by the lease holder of its epoch.
-- Objects live under hls/{channel}/{rung}/e{epoch}/seg{seq}.ts and are never overwritten.
CREATE TABLE segments (
    channel_id             TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    seq                    BIGINT NOT NULL,     -- media sequence number
    epoch                  BIGINT NOT NULL,
    duration_ns            BIGINT NOT NULL,
    start_ns               BIGINT NOT NULL,     -- PROGRAM-DATE-TIME of its first frame, unix ns
    discontinuity          BOOLEAN NOT NULL DEFAULT FALSE,
    discontinuity_sequence BIGINT NOT NULL,     -- discontinuities before this segment
    committed_ms           BIGINT NOT NULL,
    PRIMARY KEY (channel_id, seq)
);

ALTER TABLE jobs ADD COLUMN node TEXT;           -- the node working it (NULL while queued)
ALTER TABLE jobs ADD COLUMN heartbeat_ms BIGINT;
