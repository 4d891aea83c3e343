//! Test harness: starts the real `vvtv` binary on 127.0.0.1 with a temp data dir and talks to it over HTTP.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub mod llm;
pub mod site;

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

pub struct Daemon {
    pub child: Child,
    pub base: String,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    /// Every line the daemon printed so far is sent here by a reader thread.
    pub log: mpsc::Receiver<String>,
}

pub fn vvtv_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vvtv"))
}

/// vvtvctl is built by `cargo test --workspace` next to vvtv.
pub fn vvtvctl_bin() -> PathBuf {
    let path = vvtv_bin().with_file_name("vvtvctl");
    assert!(path.exists(), "{} missing: run `cargo build --workspace` first", path.display());
    path
}

/// A config for tests: its own data dir, a free port, and `extra` TOML appended.
pub fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("vvtv.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[storage]\ndata_dir = \"{}\"\n\n{extra}\n",
        dir.join("data").display()
    );
    std::fs::write(&path, text).expect("write test config");
    path
}

impl Daemon {
    /// Starts the daemon with `config_path` and waits until it prints its listening address.
    pub fn start(dir: &Path, config_path: &Path) -> Daemon {
        Daemon::start_with_env(dir, config_path, &[])
    }

    /// [`Daemon::start`] with extra environment variables for the daemon.
    pub fn start_with_env(dir: &Path, config_path: &Path, env: &[(&str, &std::ffi::OsStr)]) -> Daemon {
        let mut child = Command::new(vvtv_bin())
            .args(["run", "--config"])
            .arg(config_path)
            .envs(env.iter().copied())
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
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let base = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = rx.recv_timeout(left).expect("daemon did not report its listening address in time");
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break format!("http://{}", rest.trim().trim_end_matches('/'));
            }
        };
        Daemon { child, base, dir: dir.to_owned(), config_path: config_path.to_owned(), log: rx }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("control.token")).expect("token file").trim().to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn api_get(&self, path: &str) -> serde_json::Value {
        let resp = reqwest::blocking::Client::new()
            .get(self.url(path))
            .bearer_auth(self.token())
            .send()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json().expect("json body")
    }

    pub fn vvtvctl(&self, args: &[&str]) -> std::process::Output {
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
    pub fn signal_and_wait(&mut self, signal: i32, limit: Duration) -> Option<std::process::ExitStatus> {
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
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

/// Media sequence numbers of the segments a media playlist lists, in order.
pub fn listed_segments(playlist: &str) -> Vec<u64> {
    playlist
        .lines()
        .filter(|l| l.ends_with(".ts"))
        .map(|l| {
            let name = l.rsplit('/').next().unwrap_or(l);
            vvtv::broadcaster::layout::parse_segment_file_name(name).unwrap_or_else(|| panic!("bad segment URI {l}"))
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
