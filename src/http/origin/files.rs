//! Reads segment files under the HLS root in four system calls, and never through a symlink.
//!
//! The root is opened once. A segment is opened relative to it with one `openat2` whose resolution may not leave
//! the root and may not follow any symlink (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`): the kernel enforces what
//! two `canonicalize` calls and a prefix check used to, without the race between checking and opening. Then one
//! `fstat` on the handle (a regular file, its length and time) and one `pread` of exactly the bytes asked for.
//! Where `openat2` is missing (Linux before 5.6, or a sandbox that filters it) each component is opened with
//! `O_NOFOLLOW` from the root instead: three opens, the same guarantee.
//!
//! The read runs on the request's own task, not in the blocking pool: the segments players ask for were written
//! seconds ago and sit in the page cache, so reading one costs less than the hop to another thread would.

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// The HLS root, opened on first use (the broadcaster creates it after the server starts).
pub(super) struct Root {
    path: PathBuf,
    dir: OnceLock<OwnedFd>,
    /// Set once `openat2` turned out to be unavailable.
    walk_only: AtomicBool,
}

/// An open regular file and what `fstat` said about it.
pub(super) struct Opened {
    fd: OwnedFd,
    pub len: u64,
    pub modified: SystemTime,
}

/// `O_NONBLOCK`: a FIFO planted under the root must not block the open (it is then refused as not a file).
const FILE_FLAGS: OFlags = OFlags::RDONLY.union(OFlags::CLOEXEC).union(OFlags::NOFOLLOW).union(OFlags::NONBLOCK);
const DIR_FLAGS: OFlags = OFlags::PATH.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC).union(OFlags::NOFOLLOW);

impl Root {
    pub fn new(path: PathBuf) -> Root {
        Root { path, dir: OnceLock::new(), walk_only: AtomicBool::new(false) }
    }

    fn dir(&self) -> io::Result<BorrowedFd<'_>> {
        if let Some(fd) = self.dir.get() {
            return Ok(fd.as_fd());
        }
        // The root itself may be a symlink: it is the operator's configured folder.
        let fd = rustix::fs::open(&self.path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        Ok(self.dir.get_or_init(|| fd).as_fd())
    }

    /// Opens `path` (relative, `/`-separated names the caller has whitelisted) below the root, refusing symlinks
    /// anywhere on the way and anything that is not a regular file (`NotFound` then, like a missing file).
    pub fn open(&self, path: &str) -> io::Result<Opened> {
        let dir = self.dir()?;
        let fd = if self.walk_only.load(Ordering::Relaxed) {
            open_walking(dir, path)?
        } else {
            let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
            match rustix::fs::openat2(dir, path, FILE_FLAGS, Mode::empty(), resolve) {
                Ok(fd) => fd,
                Err(Errno::NOSYS | Errno::PERM) => {
                    tracing::info!("openat2 unavailable: the origin opens HLS files one component at a time");
                    self.walk_only.store(true, Ordering::Relaxed);
                    open_walking(dir, path)?
                }
                Err(e) => return Err(e.into()),
            }
        };
        let stat = rustix::fs::fstat(&fd)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(io::Error::new(io::ErrorKind::NotFound, "not a regular file"));
        }
        // The field types differ between architectures (signed on some), hence the conversions.
        #[allow(clippy::useless_conversion)]
        let nanos = u64::try_from(stat.st_mtime_nsec).unwrap_or(0);
        let modified = SystemTime::UNIX_EPOCH
            + Duration::from_secs(u64::try_from(stat.st_mtime).unwrap_or(0))
            + Duration::from_nanos(nanos);
        Ok(Opened { fd, len: u64::try_from(stat.st_size).unwrap_or(0), modified })
    }
}

/// Opens each directory with `O_NOFOLLOW | O_DIRECTORY` (a symlink is then refused) and the file with `O_NOFOLLOW`.
fn open_walking(root: BorrowedFd<'_>, path: &str) -> io::Result<OwnedFd> {
    let components: Vec<&str> = path.split('/').collect();
    let Some((file, dirs)) = components.split_last() else {
        return Err(io::Error::new(io::ErrorKind::NotFound, "empty path"));
    };
    let mut held: Option<OwnedFd> = None;
    for name in dirs {
        let parent = held.as_ref().map_or(root, |fd| fd.as_fd());
        held = Some(rustix::fs::openat(parent, *name, DIR_FLAGS, Mode::empty())?);
    }
    let parent = held.as_ref().map_or(root, |fd| fd.as_fd());
    Ok(rustix::fs::openat(parent, *file, FILE_FLAGS, Mode::empty())?)
}

impl Opened {
    /// Bytes `start..start + len` in one `pread` (more only if the kernel returns less).
    pub fn read(&self, start: u64, len: u64) -> io::Result<Vec<u8>> {
        let len = usize::try_from(len).map_err(|_| io::Error::other("range too large to read"))?;
        let mut buf = Vec::with_capacity(len);
        while buf.len() < len {
            let offset = start + buf.len() as u64;
            // Fills the spare capacity and extends the length by what was read; no zeroing, no copy.
            if rustix::io::pread(&self.fd, rustix::buffer::spare_capacity(&mut buf), offset)? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being read"));
            }
        }
        // The allocator may have given more room than asked, and pread may have filled it.
        buf.truncate(len);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Layout {
        tmp: tempfile::TempDir,
    }

    impl Layout {
        fn root(&self) -> PathBuf {
            self.tmp.path().join("hls")
        }
    }

    fn layout() -> Layout {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("hls");
        std::fs::create_dir_all(root.join("main/720p")).expect("mkdir");
        std::fs::write(root.join("main/720p/seg00000001.ts"), b"0123456789").expect("write");
        std::fs::write(tmp.path().join("secret"), b"secret").expect("write");
        std::fs::create_dir_all(tmp.path().join("outside/720p")).expect("mkdir");
        std::fs::write(tmp.path().join("outside/720p/seg00000001.ts"), b"secret").expect("write");
        let link = |target: PathBuf, at: &str| std::os::unix::fs::symlink(target, root.join(at)).expect("symlink");
        link(tmp.path().join("secret"), "main/720p/seg00000002.ts");
        // A link that stays inside the root is refused as well: the broadcaster never makes one.
        link(root.join("main/720p/seg00000001.ts"), "main/720p/seg00000003.ts");
        link(tmp.path().join("outside"), "escape");
        link(root.join("main/720p"), "main/360p");
        rustix::fs::mkfifoat(rustix::fs::CWD, root.join("main/720p/seg00000004.ts"), Mode::from_raw_mode(0o600))
            .expect("mkfifo");
        Layout { tmp }
    }

    fn check(root: &Root) {
        let f = root.open("main/720p/seg00000001.ts").expect("a plain file opens");
        assert_eq!(f.len, 10);
        assert!(f.modified > SystemTime::UNIX_EPOCH);
        assert_eq!(f.read(0, 10).expect("read"), b"0123456789");
        assert_eq!(f.read(3, 4).expect("read"), b"3456");
        assert!(f.read(8, 5).is_err(), "reading past the end is an error, not a short body");
        for path in [
            "main/720p/seg00000002.ts",
            "main/720p/seg00000003.ts",
            "escape/720p/seg00000001.ts",
            "main/360p/seg00000001.ts",
            "main/720p/seg00000004.ts",
            "main/720p/seg00000009.ts",
            "/etc/passwd",
        ] {
            assert!(root.open(path).is_err(), "{path} opened");
        }
    }

    #[test]
    fn opens_plain_files_and_refuses_links_fifos_and_missing_files() {
        let l = layout();
        let root = Root::new(l.root());
        check(&root);
        assert!(!root.walk_only.load(Ordering::Relaxed), "openat2 is available on this kernel");
    }

    #[test]
    fn the_walking_fallback_gives_the_same_answers() {
        let l = layout();
        let root = Root::new(l.root());
        root.walk_only.store(true, Ordering::Relaxed);
        check(&root);
    }

    #[test]
    fn a_root_made_after_the_server_started_is_found() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = Root::new(tmp.path().join("hls"));
        assert!(root.open("main/live.m3u8").is_err());
        std::fs::create_dir_all(tmp.path().join("hls/main")).expect("mkdir");
        std::fs::write(tmp.path().join("hls/main/seg00000000.ts"), b"ts").expect("write");
        assert_eq!(root.open("main/seg00000000.ts").expect("open").len, 2);
    }
}
