//! The PCM files of this module: interleaved F32LE stereo at 48 kHz, no header.
//!
//! Read a block at a time; written beside their final path and renamed into place when complete.

use super::{LoudnessError, FRAME_BYTES};
use std::ffi::OsString;
use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};

/// Reads a PCM file a block at a time.
pub(super) struct PcmReader {
    path: PathBuf,
    file: File,
    /// Frames in the file.
    pub(super) frames: u64,
    /// Frames not read yet.
    left: u64,
    bytes: Vec<u8>,
}

impl PcmReader {
    pub(super) fn open(path: &Path) -> Result<PcmReader, LoudnessError> {
        let file = File::open(path).map_err(|e| LoudnessError::io(path, "cannot open", e))?;
        let metadata = file.metadata().map_err(|e| LoudnessError::io(path, "cannot open", e))?;
        if !metadata.is_file() {
            return Err(LoudnessError::NotAFile { path: path.to_owned() });
        }
        let len = metadata.len();
        if len % FRAME_BYTES as u64 != 0 {
            let reason = format!("{len} bytes is not a whole number of {FRAME_BYTES}-byte stereo frames");
            return Err(LoudnessError::NotPcm { path: path.to_owned(), reason });
        }
        let frames = len / FRAME_BYTES as u64;
        Ok(PcmReader { path: path.to_owned(), file, frames, left: frames, bytes: Vec::new() })
    }

    /// Appends up to `max_frames` interleaved frames to `out`; returns how many (0 at the end).
    pub(super) fn read(&mut self, max_frames: usize, out: &mut Vec<f32>) -> Result<usize, LoudnessError> {
        let frames = (max_frames as u64).min(self.left) as usize;
        self.bytes.resize(frames * FRAME_BYTES, 0);
        self.file.read_exact(&mut self.bytes).map_err(|e| LoudnessError::io(&self.path, "cannot read", e))?;
        out.extend(self.bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])));
        self.left -= frames as u64;
        Ok(frames)
    }
}

/// A file written beside its final path (`name.part`) and renamed into place when complete, so a reader never sees
/// half a file. The part file is removed if it is never committed.
pub(super) struct Staged {
    pub(super) target: PathBuf,
    pub(super) part: PathBuf,
}

impl Staged {
    pub(super) fn new(target: &Path) -> Staged {
        let mut name = target.file_name().map(OsString::from).unwrap_or_default();
        name.push(".part");
        Staged { target: target.to_owned(), part: target.with_file_name(name) }
    }

    /// Creates (or truncates) the part file.
    pub(super) fn create(&self) -> Result<BufWriter<File>, LoudnessError> {
        let file = File::create(&self.part).map_err(|e| LoudnessError::io(&self.part, "cannot create", e))?;
        Ok(BufWriter::with_capacity(1 << 20, file))
    }

    pub(super) fn commit(self) -> Result<(), LoudnessError> {
        std::fs::rename(&self.part, &self.target).map_err(|e| LoudnessError::io(&self.target, "cannot rename", e))
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        // After a commit the part file no longer exists and this fails harmlessly.
        let _ = std::fs::remove_file(&self.part);
    }
}
