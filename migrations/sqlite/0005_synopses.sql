-- One-line programme synopses for the guide, written by the curator's LLM once per asset (asked once, kept).
CREATE TABLE synopses (
    asset_id   INTEGER PRIMARY KEY REFERENCES assets(id) ON DELETE CASCADE,
    text       TEXT NOT NULL,
    model      TEXT NOT NULL,       -- the scorer that wrote it, e.g. llm:qwen2.5
    created_ms INTEGER NOT NULL
);
