//! Debian's nginx, started on 127.0.0.1 in a temp prefix with a config of the caller's: the stand-in CDN of the CDN
//! test and the yardstick `make bench-origin` measures the origin against. Stopped (and its workers with it) when
//! dropped.
//!
//! The kit writes the main context (no daemon, a pid and error log in the prefix, every temp path in the prefix,
//! `access_log off` unless the caller's block sets one); the caller gives what goes inside `http { }`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long nginx may take to accept connections.
const START_LIMIT: Duration = Duration::from_secs(10);

/// `NGINX_BIN`, else Debian's `/usr/sbin/nginx` (`scripts/install-deps.sh` installs it).
pub fn nginx_bin() -> PathBuf {
    let path = std::env::var_os("NGINX_BIN").map_or_else(|| PathBuf::from("/usr/sbin/nginx"), PathBuf::from);
    assert!(path.exists(), "{} missing: run scripts/install-deps.sh (or set NGINX_BIN)", path.display());
    path
}

/// A port free on 127.0.0.1 a moment ago (nginx must be told its port in its config).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// A running nginx.
pub struct Nginx {
    child: Child,
    /// Its prefix: config, logs, temp and cache folders live here.
    pub prefix: PathBuf,
    /// Where it listens (the caller's `listen` directive).
    pub addr: SocketAddr,
}

impl Nginx {
    /// Starts nginx with `http` as the body of its `http { }` block, in `prefix` (created), with `workers` worker
    /// processes, and waits until `port` (which `http` must listen on, on 127.0.0.1) accepts connections.
    pub fn start(prefix: &Path, port: u16, workers: usize, http: &str) -> Nginx {
        std::fs::create_dir_all(prefix.join("temp")).expect("create the nginx prefix");
        let p = prefix.display();
        // As root nginx would switch its workers to `nobody`, who cannot read a test's 0700 temp folders.
        // SAFETY: geteuid has no preconditions.
        let user = if unsafe { libc::geteuid() } == 0 { "user root;" } else { "" };
        let conf = format!(
            "{user}\ndaemon off;\nmaster_process on;\nworker_processes {workers};\npid {p}/nginx.pid;\n\
             error_log {p}/error.log warn;\nevents {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {p}/temp/body;\n  proxy_temp_path {p}/temp/proxy;\n  \
             fastcgi_temp_path {p}/temp/fastcgi;\n  uwsgi_temp_path {p}/temp/uwsgi;\n  scgi_temp_path {p}/temp/scgi;\n\
             {http}\n}}\n"
        );
        let conf_path = prefix.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let mut child = Command::new(nginx_bin())
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(prefix.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nginx");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
                }
                let log = std::fs::read_to_string(prefix.join("error.log")).unwrap_or_default();
                panic!("nginx exited at start ({status}): {stderr}{log}");
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "nginx did not listen on {addr} within {START_LIMIT:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx { child, prefix: prefix.to_path_buf(), addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops nginx (fast shutdown: the master stops its workers) and waits for it, so its logs are complete.
    pub fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        // SAFETY: a plain syscall on the process this kit started.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn serves_a_folder_and_stops_with_its_workers() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(tmp.path().join("www")).expect("mkdir");
        std::fs::write(tmp.path().join("www/hello.txt"), "hello").expect("write");
        let port = free_port();
        let http = format!("server {{ listen 127.0.0.1:{port}; root {}; }}", tmp.path().join("www").display());
        let mut nginx = Nginx::start(&tmp.path().join("nginx"), port, 1, &http);
        let mut stream = TcpStream::connect(nginx.addr).expect("connect");
        stream.write_all(b"GET /hello.txt HTTP/1.0\r\n\r\n").expect("send");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("hello"), "{answer}");
        nginx.stop();
        assert!(TcpStream::connect_timeout(&nginx.addr, Duration::from_millis(200)).is_err(), "still listening");
    }
}
