//! The on-disk names of a channel's HLS output, shared by the broadcaster that writes it and the origin that serves it.
//!
//! Layout under the channel's HLS folder (`data_dir/hls/{channel}/`):
//! - `live.m3u8`: the multivariant playlist, or, with a single rung, that rung's media playlist;
//! - `{rung}/live.m3u8`: the rung's media playlist;
//! - `{rung}/seg{seq:08}.ts`: the segments, named by their media sequence number.
//!
//! A rung's folder is named after the rung, and that name is also the URL component players use, so it is kept to
//! `[a-z0-9-]+` (checked by the playlist settings, and again by the origin).

use std::path::{Path, PathBuf};

/// File name of every playlist (the channel's and each rung's).
pub const PLAYLIST_FILE: &str = "live.m3u8";

/// The folder of one rung in the channel's HLS folder: `{channel_dir}/{rung}`.
pub fn rung_dir(channel_dir: &Path, rung: &str) -> PathBuf {
    channel_dir.join(rung)
}

/// `seg00000042.ts`: zero-padded so a directory listing sorts in playout order.
pub fn segment_file_name(seq: u64) -> String {
    format!("seg{seq:08}.ts")
}

/// The media sequence number in a segment file name, if it is one.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("seg")?.strip_suffix(".ts")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}
