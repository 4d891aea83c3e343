//! The Chromium process: started in its own process group with our flags, killed as a whole, with a throw-away
//! profile.
//!
//! No browser process may outlive the [`Browser`](super::Browser) that started it, whatever happens to the daemon:
//! Drop kills the whole process group (and anything else with our profile on its command line) and removes the
//! profile; a daemon killed without running Drop takes Chromium with it through `PR_SET_PDEATHSIG`.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::{lock, BrowserError, BrowserOptions};

/// Lines of Chromium's stderr kept to explain a failed start.
const STDERR_TAIL_LINES: usize = 12;

/// Chromium started as the leader of its own process group, with a profile that lives as long as it does.
pub(super) struct ChromiumProcess {
    child: Child,
    /// Set once the child has been reaped: from then on its pid may belong to someone else.
    reaped: bool,
    terminated: bool,
    profile: Option<tempfile::TempDir>,
    /// `--user-data-dir=…`: every Chromium process of this instance has it on its command line.
    marker: String,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

impl ChromiumProcess {
    /// Starts Chromium; the receiver yields the DevTools WebSocket address once Chromium prints it.
    pub(super) fn spawn(
        opts: &BrowserOptions,
        death: Arc<watch::Sender<Option<String>>>,
    ) -> Result<(ChromiumProcess, tokio::sync::oneshot::Receiver<String>), BrowserError> {
        let profile = tempfile::Builder::new().prefix("vvtv-chromium-").tempdir().map_err(BrowserError::Profile)?;
        let marker = format!("--user-data-dir={}", profile.path().display());
        let mut command = Command::new(&opts.chromium);
        command
            .args([
                // The flags that work here as root, in a container, without a GPU.
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                // Play-before-download: muted autoplay without a user gesture.
                "--autoplay-policy=no-user-gesture-required",
                "--mute-audio",
                // No requests of Chromium's own: no extensions (Debian loads some by default), no prefetching or
                // prerendering of links, no DNS prefetch, no hyperlink-auditing pings, no crash or metrics uploads.
                "--disable-extensions",
                "--disable-default-apps",
                "--disable-features=Prerender2,NoStatePrefetch,SpeculationRulesPrefetchFuture,NavigationPredictor,\
                 OptimizationHints,Translate,MediaRouter,AutofillServerCommunication,InterestFeedContentSuggestions",
                "--dns-prefetch-disable",
                "--no-pings",
                "--disable-breakpad",
                "--disable-domain-reliability",
                "--disable-client-side-phishing-detection",
                "--metrics-recording-only",
                "--no-default-browser-check",
                "--password-store=basic",
                "--use-mock-keychain",
                // Small /dev/shm in containers crashes renderers; hidden tabs must keep playing and running timers.
                "--disable-dev-shm-usage",
                "--disable-background-timer-throttling",
                "--disable-renderer-backgrounding",
                "--disable-backgrounding-occluded-windows",
                "--hide-scrollbars",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-agent={}", opts.user_agent))
            .arg(&marker)
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group, so that one signal reaches every process Chromium forks.
            .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches only the new process. If the daemon dies without running
        // Drop (SIGKILL, abort), the kernel kills Chromium too. The Debian wrapper script `exec`s Chromium, which
        // keeps this setting. The kernel watches the spawning *thread*: a tokio runtime thread lives as long as the
        // runtime; should one end earlier (`block_in_place`), Chromium dies with it and is simply relaunched.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
                Ok(())
            });
        }
        let child = command.spawn().map_err(|source| BrowserError::Spawn { binary: opts.chromium.clone(), source })?;
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let (ws_tx, ws_rx) = tokio::sync::oneshot::channel();
        let mut process =
            ChromiumProcess { child, reaped: false, terminated: false, profile: Some(profile), marker, stderr_tail };
        let Some(stderr) = process.child.stderr.take() else {
            let source = std::io::Error::other("no stderr pipe");
            return Err(BrowserError::Spawn { binary: opts.chromium.clone(), source });
        };
        let tail = process.stderr_tail.clone();
        // Chromium's stderr must be drained for as long as it runs (a full pipe blocks it). Its end means every
        // Chromium process is gone, which is the quickest crash signal there is.
        let reader = std::thread::Builder::new().name("chromium-stderr".into()).spawn(move || {
            let mut ws_tx = Some(ws_tx);
            let mut reader = BufReader::new(stderr);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end();
                if let Some(ws) = text.split_once("DevTools listening on ").map(|(_, ws)| ws.trim()) {
                    if let Some(tx) = ws_tx.take() {
                        let _ = tx.send(ws.to_string());
                    }
                }
                tracing::debug!(target: "vvtv::chromium", "{text}");
                let mut tail = lock(&tail);
                if tail.len() == STDERR_TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(text.to_string());
            }
            death.send_replace(Some("Chromium exited".to_string()));
        });
        match reader {
            Ok(_) => Ok((process, ws_rx)),
            // Dropping `process` kills the Chromium that was just started.
            Err(source) => Err(BrowserError::Spawn { binary: opts.chromium.clone(), source }),
        }
    }

    pub(super) fn profile_dir(&self) -> &Path {
        self.profile.as_ref().map_or(Path::new(""), |p| p.path())
    }

    pub(super) fn stderr_tail(&self) -> String {
        let tail = lock(&self.stderr_tail);
        if tail.is_empty() {
            "(nothing)".to_string()
        } else {
            tail.iter().map(String::as_str).collect::<Vec<_>>().join(" | ")
        }
    }

    pub(super) fn has_exited(&mut self) -> bool {
        if !self.reaped {
            self.reaped = matches!(self.child.try_wait(), Ok(Some(_)) | Err(_));
        }
        self.reaped
    }

    #[cfg(test)]
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills every process of this Chromium, reaps the leader and removes the profile. Blocks for a few
    /// milliseconds at most (5 s if the kernel is very slow to deliver SIGKILL).
    fn terminate(&mut self) {
        if self.terminated {
            return;
        }
        self.terminated = true;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        if !self.has_exited() {
            // An unreaped child still owns its pid, so the group id is certainly ours.
            let pgid = self.child.id() as libc::pid_t;
            // SAFETY: a plain syscall; it signals only the process group Chromium leads.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            while !self.has_exited() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        // Anything still alive with our profile on its command line (a process that left the group, or one that was
        // mid-fork) is ours too.
        while kill_by_marker(&self.marker) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Some(profile) = self.profile.take() {
            let path = profile.path().to_path_buf();
            if let Err(e) = profile.close() {
                tracing::warn!(profile = %path.display(), "cannot remove the Chromium profile: {e}");
            }
        }
    }
}

impl Drop for ChromiumProcess {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// SIGKILLs every process with the argument `marker` on its command line; returns how many there were.
fn kill_by_marker(marker: &str) -> usize {
    let marker = marker.as_bytes();
    // Arguments are separated by NUL, or by spaces once a process has rewritten its title (Chromium's children do).
    let has_marker = |cmdline: &[u8]| {
        cmdline.windows(marker.len()).enumerate().any(|(at, window)| {
            window == marker && cmdline.get(at + marker.len()).is_none_or(|next| *next == 0 || *next == b' ')
        })
    };
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<libc::pid_t>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        if has_marker(&cmdline) {
            // SAFETY: a plain syscall on a process identified by our unique profile path.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed += 1;
        }
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curator::browser::test_support::{chromium_processes, init_tracing, options};
    use crate::curator::browser::Browser;
    use std::path::PathBuf;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_chromium_outlives_close_or_drop() {
        init_tracing();
        let opts = options(Duration::from_secs(30));

        let browser = Browser::launch(&opts).await.expect("Chromium starts");
        let profile = browser.profiles[0].clone();
        assert_ne!(chromium_processes(&profile), "", "Chromium runs with its own profile");
        browser.close().await;
        assert_eq!(chromium_processes(&profile), "");
        assert!(!profile.exists(), "the profile is removed");

        let browser = Browser::launch(&opts).await.expect("Chromium starts");
        let profile = browser.profiles[0].clone();
        assert_ne!(chromium_processes(&profile), "");
        drop(browser);
        assert_eq!(chromium_processes(&profile), "");
        assert!(!profile.exists(), "the profile is removed");

        let missing = BrowserOptions { chromium: PathBuf::from("/nonexistent/chromium"), ..opts };
        let error = Browser::launch(&missing).await.err().expect("no such binary").to_string();
        assert!(error.contains("/nonexistent/chromium"), "{error}");
    }
}
