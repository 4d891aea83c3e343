//! A station shared by several `vvtv` nodes on one machine: a throwaway PostgreSQL cluster, SeaweedFS's `weed mini`
//! serving S3, and the config each node gets (its own data dir and port, the shared database and object store), as
//! the README's "Many nodes" sets them up. Used by the cluster test and `make bench-cluster`.

use crate::daemon::{listed_segments, Daemon, SMALL_LADDER};
use crate::postgres::Postgres;
use crate::seaweed::Seaweed;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The database the nodes share.
const DATABASE: &str = "vvtv";
/// The bucket (and prefix) of the objects.
const BUCKET: &str = "vvtv";

/// The shared engines of a station, and where its nodes live.
pub struct Station {
    pub pg: Postgres,
    pub weed: Seaweed,
    /// Each node's folder is `dir/{name}`; ingest roots are `dir/media`.
    pub dir: PathBuf,
}

impl Station {
    /// Starts PostgreSQL and SeaweedFS under `dir`, with the station's database and bucket.
    pub fn start(dir: &Path) -> Station {
        let pg = Postgres::start();
        pg.create_database(DATABASE);
        let weed = Seaweed::start(&dir.join("weed"));
        weed.create_bucket(BUCKET);
        std::fs::create_dir_all(dir.join("media")).expect("create the media folder");
        Station { pg, weed, dir: dir.to_owned() }
    }

    /// Where test media to ingest by path goes (every node's `factory.ingest_roots`).
    pub fn media_dir(&self) -> PathBuf {
        self.dir.join("media")
    }

    /// What `psql` prints for `sql` on the station's database, trimmed.
    pub fn sql(&self, sql: &str) -> String {
        self.pg.psql(DATABASE, sql).trim().to_string()
    }

    pub fn number(&self, sql: &str) -> i64 {
        let text = self.sql(sql);
        text.parse().unwrap_or_else(|_| panic!("{sql}: {text:?} is not a number"))
    }

    /// (holder, epoch) of `channel`'s lease.
    pub fn lease(&self, channel: &str) -> Option<(String, i64)> {
        let row = self.sql(&format!("SELECT holder || ' ' || epoch FROM channel_lease WHERE channel_id = '{channel}'"));
        let (holder, epoch) = row.split_once(' ')?;
        Some((holder.to_string(), epoch.parse().ok()?))
    }

    /// Writes node `name`'s config: its own data dir and a free port, the shared database and object store, one
    /// channel `main`, and `extra` TOML appended (keys of tables not set here).
    pub fn config(&self, name: &str, extra: &str) -> PathBuf {
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).expect("create the node folder");
        let w = &self.weed;
        let text = format!(
            r#"[server]
listen = "127.0.0.1:0"
allow_loopback_without_token = true

[storage]
data_dir = "{data}"
database_url = "{db}"
object_url = "s3://{BUCKET}/station"

[storage.s3]
endpoint = "{endpoint}"
region = "{region}"
access_key_id = "{key}"
secret_access_key = "{secret}"
allow_http = true

[node]
id = "{name}"
lease_seconds = 4
dead_after_seconds = 6

[factory]
ingest_roots = ["{media}"]
vmaf_subsample = 61
# Generated test patterns at 300 kb/s sit near the default 85.
vmaf_min = 60.0
min_height = 180

[broadcaster]
playlist_segments = 5
segment_grace_seconds = 30

[curator]
enabled = false
{SMALL_LADDER}
[[channels]]
id = "main"
name = "Main"
demo_clips = false
{extra}
"#,
            data = dir.join("data").display(),
            db = self.pg.url(DATABASE),
            endpoint = w.endpoint(),
            region = w.region(),
            key = w.access_key(),
            secret = w.secret_key(),
            media = self.media_dir().display(),
        );
        let path = dir.join("vvtv.toml");
        std::fs::write(&path, text).expect("write the node config");
        path
    }

    /// Starts node `name` (see [`Station::config`]).
    pub fn start_node(&self, name: &str) -> Daemon {
        let config = self.config(name, "");
        Daemon::start(&self.dir.join(name), &config)
    }

    /// The first segment number of lease epoch `epoch` of channel `main`, once one is committed.
    pub fn first_segment_of(&self, epoch: i64) -> Option<u64> {
        self.sql(&format!("SELECT MIN(seq) FROM segments WHERE channel_id = 'main' AND epoch = {epoch}")).parse().ok()
    }

    /// Waits until `node` lists a segment of lease epoch `epoch` (the new holder's first) in its `main` 180p
    /// playlist; returns when it saw it and the playlist. Panics after `limit`.
    pub fn wait_for_epoch(&self, node: &Daemon, epoch: i64, limit: Duration) -> (Instant, String) {
        let deadline = Instant::now() + limit;
        loop {
            if let (Some(first), Some(text)) = (self.first_segment_of(epoch), playlist(node)) {
                if listed_segments(&text).contains(&first) {
                    return (Instant::now(), text);
                }
            }
            assert!(Instant::now() < deadline, "no segment of epoch {epoch} listed by {} within {limit:?}", node.base);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// GET `url` (5 s timeout): status and body, or None when nothing answered.
pub fn get(url: &str) -> Option<(u16, Vec<u8>)> {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().ok()?;
    let res = client.get(url).send().ok()?;
    let status = res.status().as_u16();
    Some((status, res.bytes().ok()?.to_vec()))
}

/// The `main` channel's 180p playlist as `node` serves it, if it serves one.
pub fn playlist(node: &Daemon) -> Option<String> {
    match get(&node.url("/hls/main/180p/live.m3u8")) {
        Some((200, body)) => Some(String::from_utf8_lossy(&body).into_owned()),
        _ => None,
    }
}

/// CPU seconds (user + system) a process has used so far, from `/proc/{pid}/stat`.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz.max(1.0)
}
