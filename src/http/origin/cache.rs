//! The segments players are fetching right now, kept in memory after their first read (`server.segment_cache_mb`).
//!
//! Every viewer of a channel asks for the same few newest segments, so after the first request each is answered
//! without a system call or a copy: the body is shared. A segment never changes once listed (its number is never
//! reused), so an entry is never stale; it leaves when newer ones need the room, oldest first, which in a live
//! stream is also the one nobody asks for any more.

use super::ranges::Validators;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// One whole segment file as read, with its validators.
#[derive(Clone)]
pub(super) struct Cached {
    pub body: Bytes,
    pub validators: Validators,
}

pub(super) struct SegmentCache {
    budget: u64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// By path below the HLS root (`main/720p/seg00000012.ts`).
    entries: HashMap<String, Cached>,
    /// Insertion order: the oldest leaves first.
    order: VecDeque<String>,
    bytes: u64,
}

impl SegmentCache {
    /// A cache of at most `budget` bytes (0: nothing is kept).
    pub fn new(budget: u64) -> SegmentCache {
        SegmentCache { budget, inner: Mutex::new(Inner::default()) }
    }

    /// Whether a file of `len` bytes is worth keeping: an eighth of the budget at most, so one odd file cannot
    /// push out the live window.
    pub fn keeps(&self, len: u64) -> bool {
        len > 0 && len <= self.budget / 8
    }

    pub fn get(&self, path: &str) -> Option<Cached> {
        self.lock().entries.get(path).cloned()
    }

    /// Keeps `cached` under `path` (unless another request did first), making room oldest first.
    pub fn insert(&self, path: &str, cached: Cached) {
        let len = cached.body.len() as u64;
        if !self.keeps(len) {
            return;
        }
        let mut inner = self.lock();
        if inner.entries.contains_key(path) {
            return;
        }
        while inner.bytes + len > self.budget {
            let Some(oldest) = inner.order.pop_front() else { break };
            if let Some(gone) = inner.entries.remove(&oldest) {
                inner.bytes -= gone.body.len() as u64;
            }
        }
        inner.entries.insert(path.to_owned(), cached);
        inner.order.push_back(path.to_owned());
        inner.bytes += len;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Nothing in here can be left half-done by a panic: every change is one insert or one remove.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[cfg(test)]
    fn bytes(&self) -> u64 {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn segment(len: usize) -> Cached {
        Cached { body: Bytes::from(vec![7u8; len]), validators: Validators::new(SystemTime::now(), len as u64) }
    }

    #[test]
    fn keeps_the_newest_segments_within_its_budget() {
        let cache = SegmentCache::new(8000);
        for seq in 0..10 {
            cache.insert(&format!("main/720p/seg{seq:08}.ts"), segment(1000));
        }
        assert_eq!(cache.bytes(), 8000);
        assert!(cache.get("main/720p/seg00000001.ts").is_none(), "the oldest made room");
        assert!(cache.get("main/720p/seg00000002.ts").is_some());
        assert_eq!(cache.get("main/720p/seg00000009.ts").map(|c| c.body.len()), Some(1000));
        assert!(cache.get("main/360p/seg00000009.ts").is_none(), "another rung is another file");
    }

    #[test]
    fn a_second_insert_of_the_same_segment_changes_nothing() {
        let cache = SegmentCache::new(8000);
        cache.insert("main/720p/seg00000001.ts", segment(1000));
        cache.insert("main/720p/seg00000001.ts", segment(1000));
        assert_eq!(cache.bytes(), 1000);
    }

    #[test]
    fn files_too_large_for_it_and_a_zero_budget_keep_nothing() {
        let cache = SegmentCache::new(8000);
        cache.insert("main/720p/seg00000001.ts", segment(1001));
        assert!(cache.get("main/720p/seg00000001.ts").is_none(), "more than an eighth of the budget");
        let off = SegmentCache::new(0);
        off.insert("main/720p/seg00000001.ts", segment(10));
        assert!(off.get("main/720p/seg00000001.ts").is_none());
    }
}
