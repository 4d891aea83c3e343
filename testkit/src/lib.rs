//! `vvtv-testkit`: the one kit VVTV's unit tests, end-to-end tests and benchmarks share.
//!
//! Every piece talks real protocols on 127.0.0.1 (or runs real GStreamer), so a test exercises the product the way
//! production does. The servers run on their own thread with their own tokio runtime: plain `#[test]`s that drive a
//! daemon and `#[tokio::test]`s can both use them, and dropping one stops it.
//!
//! # Layout
//! - [`check`]: the error type and `context` of test code.
//! - [`site`]: the fixture web site (pages, files, robots.txt, redirects) with a timed log of every request.
//! - [`flaky`]: the scriptable HTTP server that misbehaves on purpose (cuts, pacing, hangs, Range/If-Range replies).
//! - [`media`]: the one media generator: runs a gst-launch description, plus the few clips the tests share.
//! - [`llm`]: the stand-in for an Ollama or OpenAI-compatible model server.
//! - [`prometheus`]: readers of the `/metrics` text and of PromQL queries, and the `promtool check metrics` runner.
//! - [`daemon`]: starts the real `vvtv` binary with a config, reads its log, drives its API and `vvtvctl`, and
//!   reads the HLS playlists it writes.
//! - [`nginx`]: Debian's nginx in a temp prefix (a stand-in CDN, the yardstick of the origin benchmark).
//! - [`xmltv`]: Debian's `tv_validate_file` against the XMLTV DTD, offline.
//! - [`postgres`]: a throwaway PostgreSQL 15 cluster on 127.0.0.1 (one per test, or one per test process).
//! - [`seaweed`]: SeaweedFS's `weed mini` on 127.0.0.1, the S3 object store, with SigV4-signed requests.
//! - [`cluster`]: a station shared by several nodes: both engines and each node's config.
//!
//! The kit does not depend on the `vvtv` crate: the daemon's own unit tests use it, and where it reads what the daemon
//! writes (segment names, playlists) it checks the contract independently.

mod background;
pub mod check;
pub mod cluster;
pub mod daemon;
pub mod flaky;
pub mod llm;
pub mod media;
pub mod nginx;
pub mod postgres;
pub mod prometheus;
pub mod seaweed;
pub mod site;
mod tether;
pub mod xmltv;
