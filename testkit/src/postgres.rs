//! A throwaway PostgreSQL 15 cluster on 127.0.0.1, the real server behind the cluster store's tests: `start` gives a
//! test its own cluster, `shared` gives a whole test process one, from which each test takes a `fresh_database`.
//!
//! Debian's binaries (`PG_BIN`, else `/usr/lib/postgresql/15/bin`; `scripts/install-deps.sh` installs them) run in
//! a temp folder (`$TMPDIR/vvtv-postgres-<pid>-<n>`: data, logs and the unix socket, never /var/run) on a free
//! port, with trust auth for the `postgres` role and durability off (`fsync`, `synchronous_commit` and
//! `full_page_writes`): nothing here must survive a crash. Measured on the 2-core machine: a cluster accepts
//! connections 1.0-1.6 s after `start` (initdb is 0.5 s of it), its postmaster 32 MB resident. Postgres
//! refuses to run as root, so as root initdb and the server run as the `postgres` system user, who owns the folder.
//!
//! The server is tied to the test process (the kit's `tether`): when the process dies, the postmaster gets
//! SIGQUIT (immediate shutdown) and its backends follow. A process that exits normally also stops the shared
//! cluster and removes its folder; a killed one cannot, so each start removes the folders of dead processes.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::nginx::free_port;

/// How long a cluster may take to accept connections.
const START_LIMIT: Duration = Duration::from_secs(20);

/// How long a fast shutdown may take before the postmaster is killed.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// The prefix of every cluster folder in the temp dir; the pid of the process that owns it follows.
const DIR_PREFIX: &str = "vvtv-postgres-";

static SHARED: OnceLock<Postgres> = OnceLock::new();

/// Numbers cluster folders and fresh databases apart within one process.
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `PG_BIN`, else Debian's PostgreSQL 15 binaries.
pub fn pg_bin() -> PathBuf {
    let dir = std::env::var_os("PG_BIN").map_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"), PathBuf::from);
    assert!(
        dir.join("postgres").exists(),
        "{} has no postgres: run scripts/install-deps.sh (or set PG_BIN)",
        dir.display()
    );
    dir
}

/// A running PostgreSQL cluster; dropping it shuts it down and removes its folder.
pub struct Postgres {
    child: Child,
    /// The cluster folder: `data/`, `initdb.log`, `postgres.log` and the unix socket.
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
}

impl Postgres {
    /// Starts a cluster of its own and waits until it accepts connections (about 1 s).
    pub fn start() -> Postgres {
        remove_dead_folders();
        let bin = pg_bin();
        let user = SystemUser::for_postgres();
        let dir = std::env::temp_dir().join(format!(
            "{DIR_PREFIX}{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        if let Some(user) = &user {
            user.chown(&dir);
        }
        init(&bin, &dir, user.as_ref());
        // The port is free a moment before postgres binds it, so another process can take it in between: try again.
        let mut attempts = 3;
        loop {
            let port = free_port();
            match serve(&bin, &dir, port, user.as_ref()) {
                Ok(child) => return Postgres { child, dir, port, bin },
                Err(log) if attempts > 1 && log.contains("could not bind") => attempts -= 1,
                Err(log) => panic!("postgres did not start (log {}):\n{log}", dir.join("postgres.log").display()),
            }
        }
    }

    /// The cluster every test of this process shares, started on first use; each test takes a
    /// [`fresh_database`](Self::fresh_database) of its own. It stops when the process ends.
    pub fn shared() -> &'static Postgres {
        SHARED.get_or_init(|| {
            let postgres = Postgres::start();
            // SAFETY: registers a plain function with no arguments; it runs once, at exit.
            unsafe {
                libc::atexit(stop_shared);
            }
            postgres
        })
    }

    /// The URL of `database` for the `postgres` role (trust auth: no password).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates the database `name` (lower-case letters, digits and `_`) and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        assert!(
            name.starts_with(|c: char| c.is_ascii_lowercase())
                && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "database name {name:?}: use lower-case letters, digits and _ (it goes into SQL unquoted)"
        );
        self.psql("postgres", &format!("CREATE DATABASE {name};"));
        self.url(name)
    }

    /// Creates a database no other caller of this process gets, and returns its URL: tests running in parallel on
    /// [`shared`](Self::shared) each take one.
    pub fn fresh_database(&self) -> String {
        self.create_database(&format!("test_{}", COUNTER.fetch_add(1, Ordering::Relaxed)))
    }

    /// Runs `sql` (one or more statements) in `database` with the cluster's `psql` and returns what it printed:
    /// unaligned, tuples only, one row a line (`SELECT 1+1` gives `2`). Panics with psql's message on an error.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let mut child = self
            .psql_command(database)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn psql: {e}"));
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(sql.as_bytes()).unwrap_or_else(|e| panic!("send SQL to psql: {e}"));
        }
        let output = child.wait_with_output().unwrap_or_else(|e| panic!("run psql: {e}"));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "psql in {database} failed ({}): {stderr}\nSQL: {sql}", output.status);
        String::from_utf8_lossy(&output.stdout).trim_end().to_owned()
    }

    /// A `psql` on `database` that reads SQL from stdin and stops at the first error, for a caller that keeps a
    /// session open (a transaction holding locks while another session runs).
    pub fn psql_command(&self, database: &str) -> Command {
        let mut command = Command::new(self.bin.join("psql"));
        command
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres"])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-d")
            .arg(database)
            .args(["-f", "-"]);
        command
    }

    /// Fast shutdown (the postmaster disconnects its clients and stops), then the folder goes.
    fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            signal(self.child.id(), libc::SIGINT);
            let deadline = Instant::now() + STOP_LIMIT;
            while self.child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs at exit: the shared cluster is a static, which is never dropped. Immediate shutdown, since its data goes.
extern "C" fn stop_shared() {
    let Some(postgres) = SHARED.get() else { return };
    let pid = postgres.child.id() as libc::pid_t;
    signal(postgres.child.id(), libc::SIGQUIT);
    let deadline = Instant::now() + STOP_LIMIT;
    // `Child::wait` needs the cluster mutably, which a static is not; waitpid on its pid reaps it the same.
    // SAFETY: waits for a child of this process; a null status pointer is allowed.
    while unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) } == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::fs::remove_dir_all(&postgres.dir);
}

fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: a plain syscall on a process this kit started.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

/// `initdb` into `dir/data`, its output in `dir/initdb.log`.
fn init(bin: &Path, dir: &Path, user: Option<&SystemUser>) {
    let mut command = Command::new(bin.join("initdb"));
    command.arg("-D").arg(dir.join("data"));
    command.args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"]);
    // A throwaway cluster needs no fsync of its files, nor the "how to start it" advice.
    command.args(["--no-sync", "--no-instructions"]);
    if let Some(user) = user {
        user.run_as(&mut command);
    }
    let output = command.output().unwrap_or_else(|e| panic!("run {}: {e}", bin.join("initdb").display()));
    let log = dir.join("initdb.log");
    let _ = std::fs::write(&log, [output.stdout.as_slice(), output.stderr.as_slice()].concat());
    assert!(
        output.status.success(),
        "initdb failed ({}), log {}:\n{}",
        output.status,
        log.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Starts the postmaster on `port` and waits until it accepts connections; on failure, its log.
fn serve(bin: &Path, dir: &Path, port: u16, user: Option<&SystemUser>) -> Result<Child, String> {
    let log_path = dir.join("postgres.log");
    let log = std::fs::File::create(&log_path).unwrap_or_else(|e| panic!("create {}: {e}", log_path.display()));
    let mut command = Command::new(bin.join("postgres"));
    command
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-p")
        .arg(port.to_string())
        .args(["-c", "listen_addresses=127.0.0.1"])
        .arg("-c")
        .arg(format!("unix_socket_directories={}", dir.display()))
        .args(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
        .args(["-c", "max_connections=200"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap_or_else(|e| panic!("share {}: {e}", log_path.display())))
        .stderr(log);
    if let Some(user) = user {
        user.run_as(&mut command);
    }
    let mut child = crate::tether::spawn(command, libc::SIGQUIT, "postgres");
    let deadline = Instant::now() + START_LIMIT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!("exited at start ({status})\n{log}"));
        }
        // pg_isready answers 0 only once the server takes connections, not while it is still starting up.
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-p"])
            .arg(port.to_string())
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!("not accepting connections on port {port} within {START_LIMIT:?}\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Removes the cluster folders left by processes that died without cleaning up (killed, aborted). Their servers got
/// SIGQUIT when they died; a folder whose postmaster still runs is left alone.
fn remove_dead_folders() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)).and_then(|n| n.split('-').next())
        else {
            continue;
        };
        let postmaster = std::fs::read_to_string(entry.path().join("data/postmaster.pid")).unwrap_or_default();
        let postmaster = postmaster.lines().next().unwrap_or_default();
        if owner.parse().is_ok_and(is_dead) && postmaster.parse().map_or(true, is_dead) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// No process has this pid (or only a zombie: it has exited and waits to be reaped).
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold spaces.
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

/// The `postgres` system user that runs the cluster when the kit runs as root.
struct SystemUser {
    uid: libc::uid_t,
    gid: libc::gid_t,
}

impl SystemUser {
    /// `None` when not root: the cluster then runs as the caller.
    fn for_postgres() -> Option<SystemUser> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        // SAFETY: getpwnam reads the passwd database; the entry is copied out before any other call.
        let entry = unsafe { libc::getpwnam(c"postgres".as_ptr()) };
        assert!(!entry.is_null(), "no `postgres` system user: run scripts/install-deps.sh (postgresql-15 creates it)");
        // SAFETY: checked non-null above.
        let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
        Some(SystemUser { uid, gid })
    }

    fn chown(&self, path: &Path) {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .unwrap_or_else(|e| panic!("give {} to the postgres user: {e}", path.display()));
    }

    /// Makes `command` drop root for this user between fork and exec.
    fn run_as(&self, command: &mut Command) {
        let (uid, gid) = (self.uid, self.gid);
        // SAFETY: setgroups, setgid and setuid are async-signal-safe. Groups first, uid last: afterwards the child
        // may no longer change them.
        unsafe {
            command.pre_exec(move || {
                if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    /// Set by the test that runs this binary as a child, to what the child does with its shared cluster.
    const CHILD_MODE: &str = "VVTV_TESTKIT_SHARED_POSTGRES";

    #[test]
    fn a_cluster_serves_two_databases_apart() {
        let started = Instant::now();
        let postgres = Postgres::start();
        let elapsed = started.elapsed();
        let url = postgres.create_database("alpha");
        assert_eq!(url, format!("postgres://postgres@127.0.0.1:{}/alpha", postgres.port()));
        postgres.create_database("beta");
        assert_eq!(postgres.psql("alpha", "SELECT 1+1;"), "2");
        postgres.psql("alpha", "CREATE TABLE only_here (id int); INSERT INTO only_here VALUES (7);");
        assert_eq!(postgres.psql("alpha", "SELECT id FROM only_here;"), "7");
        assert_eq!(postgres.psql("beta", "SELECT count(*) FROM pg_tables WHERE tablename = 'only_here';"), "0");
        assert_eq!(postgres.psql("postgres", "SHOW max_connections; SHOW fsync;"), "200\noff");
        assert!(elapsed < Duration::from_secs(10), "start took {elapsed:?}");
        eprintln!(
            "postgres: accepting connections after {elapsed:?}, {} MB resident",
            crate::tether::resident_bytes(postgres.child.id()) / 1_000_000
        );
        let dir = postgres.dir.clone();
        drop(postgres);
        assert!(!dir.exists(), "{} left behind", dir.display());
    }

    #[test]
    fn skip_locked_passes_over_a_row_another_session_holds() {
        let postgres = Postgres::shared();
        let url = postgres.fresh_database();
        let database = url.rsplit('/').next().expect("a database in the URL");
        postgres.psql(database, "CREATE TABLE jobs (id int PRIMARY KEY); INSERT INTO jobs VALUES (1), (2), (3);");
        let claim = "SELECT id FROM jobs ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED;";

        // The first session claims a job and keeps its transaction open: psql waits for more input.
        let mut holder =
            postgres.psql_command(database).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("spawn psql");
        let mut stdin = holder.stdin.take().expect("psql stdin");
        writeln!(stdin, "BEGIN; {claim}").expect("send to psql");
        let mut first = String::new();
        BufReader::new(holder.stdout.take().expect("psql stdout")).read_line(&mut first).expect("read psql");
        assert_eq!(first.trim(), "1");

        assert_eq!(postgres.psql(database, claim), "2", "the second session must skip the held row");
        writeln!(stdin, "COMMIT;").expect("send to psql");
        drop(stdin);
        assert!(holder.wait().expect("wait for psql").success());
        assert_eq!(postgres.psql(database, claim), "1", "the row is free once its holder commits");
    }

    #[test]
    fn fresh_databases_are_distinct() {
        let postgres = Postgres::shared();
        let (a, b) = (postgres.fresh_database(), postgres.fresh_database());
        assert_ne!(a, b);
        assert!(std::ptr::eq(postgres, Postgres::shared()), "one shared cluster per process");
    }

    /// The child's side of the test below: does nothing unless that test started this binary.
    #[test]
    fn shared_cluster_child() {
        let Ok(mode) = std::env::var(CHILD_MODE) else { return };
        let postgres = Postgres::shared();
        postgres.fresh_database();
        println!("SHARED {} {}", postgres.child.id(), postgres.dir.display());
        std::io::stdout().flush().expect("flush stdout");
        if mode == "kill" {
            signal(std::process::id(), libc::SIGKILL);
            std::thread::sleep(Duration::from_secs(10));
        }
    }

    #[test]
    fn the_shared_cluster_dies_with_its_test_process() {
        // A killed process cannot clean up: the death signal stops its server, the next start removes its folder.
        let (killed, killed_dir) = run_child("kill");
        wait_until_gone(&killed_dir);
        let (exited, exited_dir) = run_child("exit");
        wait_until_gone(&exited_dir);
        assert!(is_dead(killed) && is_dead(exited), "a postmaster survived its test process");
        assert!(!exited_dir.exists(), "{} left behind by a process that exited", exited_dir.display());
        assert!(!killed_dir.exists(), "{} left behind by a killed process after the next start", killed_dir.display());
    }

    /// Runs this binary's `shared_cluster_child` in `mode`; its postmaster's pid and its cluster folder.
    fn run_child(mode: &str) -> (u32, PathBuf) {
        let exe = std::env::current_exe().expect("this test binary");
        let output = Command::new(exe)
            .args(["--exact", "postgres::tests::shared_cluster_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_MODE, mode)
            .output()
            .expect("run the child");
        let stdout = String::from_utf8_lossy(&output.stdout);
        // libtest prints the test's name without a line break before the test's own output.
        let line = stdout.split_once("SHARED ").and_then(|(_, rest)| rest.lines().next()).unwrap_or_else(|| {
            panic!("the {mode} child printed no cluster ({}):\n{stdout}{}", output.status, {
                String::from_utf8_lossy(&output.stderr)
            })
        });
        let (pid, dir) = line.split_once(' ').expect("pid and folder");
        (pid.parse().expect("a pid"), PathBuf::from(dir))
    }

    /// Waits until no process works in `dir` (every postgres process has its data folder as working directory).
    fn wait_until_gone(dir: &Path) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = processes_in(dir);
            if left.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "postgres processes {left:?} still run in {}", dir.display());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn processes_in(dir: &Path) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(dir)))
            .collect()
    }
}
