//! Spawns the kit's long-lived servers (PostgreSQL, SeaweedFS) tied to the test process: they get a signal when it
//! dies, however it dies (a kill, an abort, a CI timeout), instead of living on as orphans holding ports and memory.
//!
//! The tie is `PR_SET_PDEATHSIG`, which Linux fires when the *thread* that forked the child exits, not the process.
//! A test's own thread ends as soon as the test does, and `Postgres::shared()` outlives the test that started it, so
//! every such child is forked by one thread that lives as long as the process.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, OnceLock};

type Request = (Command, Sender<io::Result<Child>>);

/// The spawner thread's inbox; the sender lives in a static, so the thread never ends before the process does.
static SPAWNER: OnceLock<Mutex<Sender<Request>>> = OnceLock::new();

/// Spawns `command` from the process-long thread; the child gets `signal` when the test process dies.
///
/// `command`'s own `pre_exec` steps run first: one that changes the user (postgres refuses to run as root) must,
/// because Linux clears the death signal on a change of credentials.
pub(crate) fn spawn(mut command: Command, signal: libc::c_int, what: &str) -> Child {
    let parent = std::process::id();
    // SAFETY: prctl and getppid are async-signal-safe, which is all a pre_exec hook may use.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between the fork and the prctl: then no signal will ever come.
            if libc::getppid() as u32 != parent {
                return Err(io::Error::other("the test process died while this child was starting"));
            }
            Ok(())
        });
    }
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("testkit-tether".to_owned())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("spawn the kit's spawner thread");
        Mutex::new(tx)
    });
    let (reply, answer) = mpsc::channel();
    spawner.lock().unwrap_or_else(|e| e.into_inner()).send((command, reply)).expect("the spawner thread is gone");
    let child = answer.recv().expect("the spawner thread is gone");
    child.unwrap_or_else(|e| panic!("spawn {what}: {e}"))
}

/// The resident memory of process `pid` (`VmRSS`), in bytes; 0 once it is gone.
pub(crate) fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next());
    kib.and_then(|k| k.parse::<u64>().ok()).unwrap_or(0) * 1024
}
