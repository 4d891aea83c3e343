//! The daemon launcher: starts the real `vvtv` binary on 127.0.0.1 with a temp data dir and a config, reads its log,
//! talks to its control API over HTTP, runs `vvtvctl` against it and signals it; plus the readers of the HLS
//! playlists it writes.
//!
//! The binaries are found next to the running test, bench or kit executable (`target/<profile>/`, one level up from
//! `deps/`), where cargo builds them; `VVTV_BIN` and `VVTVCTL_BIN` name others. The playlist readers parse segment
//! names themselves (`seg00000042.ts`): they check the daemon's contract, not its code.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A two-rung ladder small enough that slates and clips encode in about a second on two cores.
pub const SMALL_LADDER: &str = r#"
[house_format]
x264_preset = "ultrafast"
[[house_format.ladder]]
name = "180p"
width = 320
height = 180
video_kbps = 300
[[house_format.ladder]]
name = "90p"
width = 160
height = 90
video_kbps = 150
"#;

/// How long a daemon may take to report its listening address.
const START_LIMIT: Duration = Duration::from_secs(120);

/// The `vvtv` daemon binary: `VVTV_BIN`, else the one cargo built next to this executable.
pub fn vvtv_bin() -> PathBuf {
    binary("vvtv", "VVTV_BIN")
}

/// The `vvtvctl` binary: `VVTVCTL_BIN`, else the one cargo built next to this executable (`cargo build --workspace`
/// builds it; `cargo test --test …` alone does not).
pub fn vvtvctl_bin() -> PathBuf {
    binary("vvtvctl", "VVTVCTL_BIN")
}

fn binary(name: &str, variable: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(variable) {
        return PathBuf::from(path);
    }
    let path = target_dir().join(name);
    assert!(path.exists(), "{} missing: run `cargo build --workspace` first (or set {variable})", path.display());
    path
}

/// `target/<profile>/`: tests, benches and examples run from `deps/` or `examples/` below it.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the path of the running executable");
    let dir = exe.parent().expect("the executable's folder");
    match dir.file_name().and_then(OsStr::to_str) {
        Some("deps" | "examples") => dir.parent().unwrap_or(dir).to_path_buf(),
        _ => dir.to_path_buf(),
    }
}

/// A config for tests: its own data dir (`dir/data`), a free port, and `extra` TOML appended. Written to
/// `dir/vvtv.toml`, whose path is returned.
pub fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("vvtv.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[storage]\ndata_dir = \"{}\"\n\n{extra}\n",
        dir.join("data").display()
    );
    std::fs::write(&path, text).expect("write test config");
    path
}

/// A running daemon; killed when dropped.
pub struct Daemon {
    pub child: Child,
    /// `http://127.0.0.1:PORT`, as the daemon reported it.
    pub base: String,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    /// Every line the daemon printed so far is sent here by a reader thread (and echoed to stderr).
    pub log: mpsc::Receiver<String>,
}

impl Daemon {
    /// Starts the daemon with `config_path` and waits until it prints its listening address.
    pub fn start(dir: &Path, config_path: &Path) -> Daemon {
        Daemon::start_with_env(dir, config_path, &[])
    }

    /// [`Daemon::start`] with extra environment variables for the daemon.
    pub fn start_with_env(dir: &Path, config_path: &Path, env: &[(&str, &OsStr)]) -> Daemon {
        let mut child = Command::new(vvtv_bin())
            .args(["run", "--config"])
            .arg(config_path)
            .envs(env.iter().copied())
            // The listening address is read from an info line.
            .env("VVTV_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vvtv");
        let (tx, rx) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    eprintln!("[vvtv] {line}");
                    let _ = tx.send(line);
                }
            });
        }
        let deadline = Instant::now() + START_LIMIT;
        let base = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).expect("daemon did not report its listening address in time");
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break format!("http://{}", rest.trim().trim_end_matches('/'));
            }
        };
        Daemon { child, base, dir: dir.to_owned(), config_path: config_path.to_owned(), log: rx }
    }

    /// The data dir [`write_config`] gives it.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The control API's bearer token, as the daemon wrote it.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("control.token")).expect("token file").trim().to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GETs an API path with the token; panics unless it answers 2xx with JSON.
    pub fn api_get(&self, path: &str) -> serde_json::Value {
        let resp = reqwest::blocking::Client::new()
            .get(self.url(path))
            .bearer_auth(self.token())
            .send()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json().expect("json body")
    }

    /// Runs `vvtvctl --api BASE --token TOKEN ARGS…` and returns what it did.
    pub fn vvtvctl(&self, args: &[&str]) -> Output {
        Command::new(vvtvctl_bin())
            .arg("--api")
            .arg(&self.base)
            .arg("--token")
            .arg(self.token())
            .args(args)
            .output()
            .expect("run vvtvctl")
    }

    /// Sends a signal and waits for the exit status, at most `limit`.
    pub fn signal_and_wait(&mut self, signal: i32, limit: Duration) -> Option<ExitStatus> {
        // SAFETY: a plain syscall on the daemon this launcher started.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 250 ms until it holds; panics naming `what` after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("timed out waiting for {what}");
}

/// The media sequence number in a segment file name (`seg00000042.ts` → 42), if it is one.
pub fn segment_sequence(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("seg")?.strip_suffix(".ts")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Media sequence numbers of the segments a media playlist lists, in order.
pub fn listed_segments(playlist: &str) -> Vec<u64> {
    playlist
        .lines()
        .filter(|l| l.ends_with(".ts"))
        .map(|l| {
            let name = l.rsplit('/').next().unwrap_or(l);
            segment_sequence(name).unwrap_or_else(|| panic!("bad segment URI {l}"))
        })
        .collect()
}

/// Discontinuities a playlist accounts for: those still listed plus those counted by DISCONTINUITY-SEQUENCE after
/// sliding out of the window.
pub fn discontinuities(playlist: &str) -> u64 {
    let listed = playlist.lines().filter(|l| *l == "#EXT-X-DISCONTINUITY").count() as u64;
    let slid: u64 = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-DISCONTINUITY-SEQUENCE:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    listed + slid
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAYLIST: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:41\n\
        #EXT-X-DISCONTINUITY-SEQUENCE:2\n#EXTINF:4.000,\nseg00000041.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:4.000,\n\
        /hls/main/180p/seg00000042.ts\n";

    #[test]
    fn segment_names_read_as_their_sequence_number() {
        assert_eq!(segment_sequence("seg00000042.ts"), Some(42));
        assert_eq!(segment_sequence("seg123456789.ts"), Some(123_456_789));
        for bad in ["seg.ts", "seg0001.mp4", "segx001.ts", "live.m3u8", "seg-1.ts"] {
            assert_eq!(segment_sequence(bad), None, "{bad}");
        }
    }

    #[test]
    fn playlists_list_their_segments_and_count_their_discontinuities() {
        assert_eq!(listed_segments(PLAYLIST), [41, 42]);
        assert_eq!(discontinuities(PLAYLIST), 3);
        assert_eq!(discontinuities("#EXTM3U\nseg00000001.ts\n"), 0);
    }

    #[test]
    #[should_panic(expected = "bad segment URI")]
    fn a_segment_uri_off_the_contract_is_a_failure() {
        listed_segments("#EXTM3U\nsegment-1.ts\n");
    }

    #[test]
    fn a_test_config_has_its_own_data_dir_and_a_free_port() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = write_config(dir.path(), SMALL_LADDER);
        assert_eq!(path, dir.path().join("vvtv.toml"));
        let text = std::fs::read_to_string(&path).expect("config");
        assert!(text.starts_with("[server]\nlisten = \"127.0.0.1:0\"\n"), "{text}");
        assert!(text.contains(&format!("data_dir = \"{}\"", dir.path().join("data").display())), "{text}");
        assert!(text.contains("[[house_format.ladder]]\nname = \"90p\""), "{text}");
    }

    #[test]
    fn binaries_are_looked_for_in_the_target_profile_folder() {
        let dir = target_dir();
        assert_ne!(dir.file_name().and_then(OsStr::to_str), Some("deps"), "{}", dir.display());
        assert!(std::env::current_exe().expect("exe").starts_with(&dir), "{}", dir.display());
    }
}
