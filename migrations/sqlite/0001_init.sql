-- VVTV store: the single source of truth. Append-only migrations; never edit a released one.
-- Times are unix milliseconds (UTC) in INTEGER columns named *_ms; durations are milliseconds too.

CREATE TABLE channels (
    id          TEXT PRIMARY KEY,               -- [a-z0-9-]+, from config
    name        TEXT NOT NULL,
    created_ms  INTEGER NOT NULL
);

-- Candidates found by the curator (never downloaded by it).
CREATE TABLE plans (
    id              INTEGER PRIMARY KEY,
    source          TEXT NOT NULL,              -- name of the [[curator.sources]] entry, or 'manual'
    source_kind     TEXT NOT NULL CHECK (source_kind IN ('browser', 'feed', 'folder', 'manual')),
    page_url        TEXT,
    media_url       TEXT NOT NULL,
    canonical_key   TEXT NOT NULL UNIQUE,       -- canonical page/media URL: nothing is planned twice
    title           TEXT NOT NULL DEFAULT '',
    description     TEXT NOT NULL DEFAULT '',
    tags            TEXT NOT NULL DEFAULT '[]', -- JSON array
    license         TEXT,
    width           INTEGER,
    height          INTEGER,
    duration_ms     INTEGER,
    playable        INTEGER,                    -- play-before-download: did playback advance
    score           REAL,
    scorer          TEXT,                       -- 'llm:<model>' or 'deterministic'
    reasons         TEXT NOT NULL DEFAULT '',   -- why this score / why rejected, for humans
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'approved', 'rejected', 'queued', 'done', 'failed')),
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL
);
CREATE INDEX plans_status ON plans(status);

-- Ingest work: one per plan, `vvtvctl ingest`, API call or inbox file.
CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY,
    plan_id         INTEGER REFERENCES plans(id) ON DELETE SET NULL,
    input           TEXT NOT NULL,              -- URL or local path
    origin          TEXT NOT NULL CHECK (origin IN ('plan', 'cli', 'api', 'inbox', 'demo')),
    title           TEXT,
    priority        INTEGER NOT NULL DEFAULT 0, -- higher first
    webhook_url     TEXT,
    status          TEXT NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'downloading', 'probing', 'normalizing', 'gating',
                                      'ready', 'rejected', 'failed')),
    progress        REAL NOT NULL DEFAULT 0,    -- 0..1 of the current stage
    speed           REAL,                       -- × real time while normalizing
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER,                    -- back-off after a failure
    reason          TEXT,                       -- rejection or failure, for humans
    asset_id        INTEGER REFERENCES assets(id) ON DELETE SET NULL,
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL
);
CREATE INDEX jobs_status ON jobs(status, priority DESC, id);

-- Normalized media in the house format.
CREATE TABLE assets (
    id                INTEGER PRIMARY KEY,
    sha256            TEXT UNIQUE,              -- of the source bytes: the same content twice is one asset
    title             TEXT NOT NULL,
    source            TEXT NOT NULL DEFAULT '', -- URL or path it came from
    kind              TEXT NOT NULL DEFAULT 'programme'
                      CHECK (kind IN ('programme', 'demo', 'slate')),
    emergency         INTEGER NOT NULL DEFAULT 0, -- member of the emergency pool
    status            TEXT NOT NULL DEFAULT 'ready' CHECK (status IN ('ready', 'bad', 'evicted')),
    bad_reason        TEXT,
    dir               TEXT NOT NULL,            -- folder holding the renditions and poster
    duration_ms       INTEGER NOT NULL,
    first_dts_ns      INTEGER,                  -- B-frame delay, from the ingest scan
    keyframes_ms      TEXT NOT NULL DEFAULT '[]', -- JSON array of keyframe PTS (cut points)
    loudness_in_lufs  REAL,
    loudness_out_lufs REAL,
    lra_lu            REAL,
    true_peak_dbtp    REAL,
    vmaf_mean         REAL,
    vmaf_min          REAL,
    vmaf_p5           REAL,
    source_facts      TEXT NOT NULL DEFAULT '{}', -- JSON: codec, size, fps, audio of the source
    tags              TEXT NOT NULL DEFAULT '[]',
    last_aired_ms     INTEGER,
    air_count         INTEGER NOT NULL DEFAULT 0,
    created_ms        INTEGER NOT NULL
);
CREATE INDEX assets_status ON assets(status, kind);

CREATE TABLE renditions (
    asset_id    INTEGER NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
    rung        TEXT NOT NULL,                  -- ladder rung name, e.g. '1080p'
    path        TEXT NOT NULL,
    width       INTEGER NOT NULL,
    height      INTEGER NOT NULL,
    video_kbps  INTEGER NOT NULL,
    size_bytes  INTEGER NOT NULL,
    PRIMARY KEY (asset_id, rung)
);

-- What each channel will air, in order. The planner appends; the broadcaster consumes.
CREATE TABLE schedule (
    id          INTEGER PRIMARY KEY,
    channel_id  TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    asset_id    INTEGER NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
    status      TEXT NOT NULL DEFAULT 'scheduled'
                CHECK (status IN ('scheduled', 'airing', 'aired', 'skipped', 'cut')),
    reason      TEXT NOT NULL DEFAULT '',       -- why the planner chose it
    resume_ms   INTEGER NOT NULL DEFAULT 0,     -- position to resume from after a crash
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL
);
CREATE INDEX schedule_channel ON schedule(channel_id, status, id);

-- Everything that went on air, for the EPG, the planner and audits.
CREATE TABLE airings (
    id           INTEGER PRIMARY KEY,
    channel_id   TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    asset_id     INTEGER REFERENCES assets(id) ON DELETE SET NULL, -- NULL: the slate
    schedule_id  INTEGER REFERENCES schedule(id) ON DELETE SET NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('scheduled', 'emergency', 'slate')),
    title        TEXT NOT NULL,
    start_ms     INTEGER NOT NULL,              -- wall clock of the first frame on the output timeline
    end_ms       INTEGER,                       -- NULL while on air (or if the process died)
    offset_ms    INTEGER NOT NULL DEFAULT 0     -- position in the asset where airing began
);
CREATE INDEX airings_channel ON airings(channel_id, start_ms);

-- Every autonomous decision, with a reason a human can read.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    at_ms       INTEGER NOT NULL,
    actor       TEXT NOT NULL,                  -- station, broadcaster, factory, curator, planner, http
    channel_id  TEXT,
    kind        TEXT NOT NULL,                  -- short machine name, e.g. 'emergency', 'asset_skipped'
    message     TEXT NOT NULL,
    data        TEXT NOT NULL DEFAULT '{}'      -- JSON detail
);
CREATE INDEX events_at ON events(at_ms);

-- Business-logic keys set at run time (override the config defaults).
CREATE TABLE settings (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_ms  INTEGER NOT NULL
);
