-- The audience, from the player page's beacons: one row per viewer session (a random id the page made; no IP
-- address, nothing personal) and its watch time per airing. Owned by the audience room; a retention sweep deletes
-- sessions (and, by cascade, their watch rows) some days after their last beacon.
CREATE TABLE audience_sessions (
    id                 TEXT PRIMARY KEY,        -- random, made by the page
    channel_id         TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    started_ms         BIGINT NOT NULL,        -- wall clock of its first beacon
    last_beacon_ms     BIGINT NOT NULL,
    first_playhead_ms  BIGINT NOT NULL,        -- programme time (PROGRAM-DATE-TIME) at its start
    last_playhead_ms   BIGINT NOT NULL,        -- programme time of the last second it watched
    ended_ms           BIGINT,                 -- NULL while live
    end_reason         TEXT CHECK (end_reason IN ('closed', 'error', 'timeout')),
    beacons            BIGINT NOT NULL DEFAULT 0,
    watch_ms           BIGINT NOT NULL DEFAULT 0,
    startup_ms         BIGINT,                 -- from opening the stream to the first frame
    stalls             BIGINT NOT NULL DEFAULT 0,
    stall_ms           BIGINT NOT NULL DEFAULT 0,
    bitrate_switches   BIGINT NOT NULL DEFAULT 0,
    last_bitrate       BIGINT,                 -- bits per second of the rung it played last
    errors             BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX audience_sessions_last ON audience_sessions(last_beacon_ms);
CREATE INDEX audience_sessions_open ON audience_sessions(ended_ms) WHERE ended_ms IS NULL;

-- Watch time of a session inside one airing: the span it watched (programme time) and for how long.
CREATE TABLE audience_watch (
    session_id  TEXT NOT NULL REFERENCES audience_sessions(id) ON DELETE CASCADE,
    airing_id   BIGINT NOT NULL REFERENCES airings(id) ON DELETE CASCADE,
    first_ms    BIGINT NOT NULL,
    last_ms     BIGINT NOT NULL,
    watch_ms    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (session_id, airing_id)
);
CREATE INDEX audience_watch_airing ON audience_watch(airing_id);
