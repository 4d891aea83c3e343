//! VVTV: an autonomous 24/7 TV station in one daemon — it finds videos, judges them, turns them into one house
//! format, programs them and plays them out as one never-ending HLS stream.
//!
//! # Layout
//! One process, five kinds of actor (factory, curator, planner, a broadcaster per channel, audience), one store. Each module is one room; a room's `mod.rs` is its handle (the whole public
//! surface, channel ends only) and its `error.rs` is its error.
//!
//! - [`shutdown`]: the station-wide stop signal and the completion guard every task carries.
//! - [`actor`]: what an actor gets at start ([`actor::Context`]) and the one way to start one.
//! - [`config`]: the whole TOML schema, with a default for every key and validation that names the key.
//! - [`business_logic`]: the rules an operator may change at run time without a restart.
//! - [`store`]: the single source of truth and the only place with SQL (one file per table family): SQLite on one
//!   box, PostgreSQL when several nodes share the station (the same statements on either pool); node heartbeats,
//!   channel leases and committed segments in `store/cluster.rs`.
//! - [`objects`]: the media objects (renditions, posters, clips, HLS segments): the data folder on one box, an
//!   S3-compatible store shared by the nodes.
//! - [`node`]: this process as one node: its heartbeat and the reaper of dead nodes' jobs.
//! - [`media`]: every GStreamer pipeline: the house-format contract, the encoder, loudness, VMAF, probe, scan,
//!   posters and the playout demux; the true-peak limiter is `media/loudness/limiter.rs`.
//! - [`curator`]: sources (web pages via headless Chromium, feeds, folders) into scored plans; robots.txt in
//!   `curator/politeness.rs`, licenses in `curator/license.rs`, the LLM behind its breaker in `curator/score/`.
//! - [`factory`]: jobs into house-format assets or rejections with reasons (download, probe, normalize, gate), and
//!   the generated clips (demo clips, slates, emergency cards).
//! - [`planner`]: keeps each channel's schedule filled ahead on its grid (dayparts, slots, timezone) and says why it
//!   chose each item: the pure selection and fill, the LLM rerank, the guide's projection of planned starts
//!   (`planner/epg.rs`) and `vvtv simulate` (`planner/simulate.rs`).
//! - [`broadcaster`]: one per channel: splices the schedule into one HLS timeline without re-encoding; the MPEG-TS
//!   writer is `broadcaster/ts.rs`, the playlists `broadcaster/playlist/`; with several nodes, the channel lease,
//!   the fenced segment commit and the mirror other origins render from are `broadcaster/lease.rs`.
//! - [`audience`]: viewers counted from the player page's beacons; sessions, watch time per airing, the audience
//!   per airing and per asset (the tables are `store/audience.rs`).
//! - [`http`]: the origin (HLS from memory and a root opened once, posters), signed URLs and country rules
//!   (`http/access.rs`), the guide (`/epg.xml`, `/channels.m3u`), the player and operator pages (`web/`, embedded at
//!   build time), the control API under `/api/v1` (types in the `vvtv-api` crate) and `/metrics`.
//! - [`metrics`]: the Prometheus registry and every family the station exports; the actors count into it.
//! - [`station`]: builds the store, spawns the actors, wires their handles and runs the shutdown (used by `main`).
//!
//! Beside this crate: `api/` (`vvtv-api`, the control API's types shared with the CLI), `vvtvctl/` (the operator's
//! CLI), `testkit/` (fixture site, flaky server, media generator, LLM stand-in, daemon launcher, PostgreSQL and
//! SeaweedFS), `migrations/sqlite` and `migrations/postgres`,
//! `tests/` (end to end against a real daemon) and `benches/`.

pub mod actor;
pub mod audience;
pub mod broadcaster;
pub mod business_logic;
pub mod config;
pub mod curator;
pub mod factory;
pub mod http;
pub mod media;
pub mod metrics;
pub mod node;
pub mod objects;
pub mod planner;
pub mod shutdown;
pub mod station;
pub mod store;
