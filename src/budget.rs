//! The server-wide budget for upload bodies held in memory. `--max-body` bounds each body; this bounds
//! their sum, so many slow uploads at once can't exhaust memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes of upload bodies held across all connections and workers, and the most allowed.
#[derive(Debug)]
pub struct BodyBudget {
    used: AtomicUsize,
    limit: usize,
}

impl BodyBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<BodyBudget> {
        Arc::new(BodyBudget { used: AtomicUsize::new(0), limit })
    }
}

/// Bytes reserved for a body before any of it arrives. 64 KiB: most JSON documents fit, and a client that
/// declares a large body and then stalls holds no more than this.
pub const INITIAL_BODY_BYTES: usize = 64 * 1024;

/// An upload body being received or stored. Its buffer is counted against the budget until it is dropped,
/// on the loop or on the worker that stored it.
#[derive(Debug)]
pub struct UploadBody {
    /// The body received so far.
    pub bytes: Vec<u8>,
    /// The Content-Length, if declared: the buffer never grows past it.
    declared: Option<usize>,
    counted: usize,
    budget: Arc<BodyBudget>,
}

impl UploadBody {
    /// An empty body of `declared` length (if known) drawing on `budget`.
    pub fn new(budget: &Arc<BodyBudget>, declared: Option<u64>) -> UploadBody {
        let declared = declared.map(|len| usize::try_from(len).unwrap_or(usize::MAX));
        UploadBody { bytes: Vec::new(), declared, counted: 0, budget: Arc::clone(budget) }
    }

    /// Makes room for `incoming` more bytes and counts it against the budget. The buffer doubles, as a
    /// `Vec` would, so memory follows what has arrived rather than what was declared, but it never grows
    /// past a declared length. False when the memory can't be had or the budget is exceeded: the caller
    /// refuses the upload, and dropping it gives the bytes back.
    pub fn make_room(&mut self, incoming: usize) -> bool {
        let len = self.bytes.len();
        let needed = len.saturating_add(incoming);
        if needed > self.bytes.capacity() {
            let doubled = self.bytes.capacity().saturating_mul(2).max(INITIAL_BODY_BYTES);
            let target = match self.declared {
                Some(total) => doubled.max(needed).min(total).max(len),
                None => doubled.max(needed),
            };
            if self.bytes.try_reserve_exact(target - len).is_err() {
                return false;
            }
        }
        self.account()
    }

    fn account(&mut self) -> bool {
        let held = self.bytes.capacity();
        if held > self.counted {
            self.budget.used.fetch_add(held - self.counted, Ordering::SeqCst);
            self.counted = held;
        }
        self.budget.used.load(Ordering::SeqCst) <= self.budget.limit
    }
}

impl Drop for UploadBody {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.counted, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_share_the_budget_and_return_it_when_dropped() {
        let budget = BodyBudget::new(1000);
        let mut first = UploadBody::new(&budget, Some(600));
        assert!(first.make_room(600));
        assert_eq!(first.bytes.capacity(), 600, "a declared body is reserved exactly");
        let mut second = UploadBody::new(&budget, Some(600));
        assert!(!second.make_room(600), "1200 bytes held against a budget of 1000");
        drop(second);
        assert_eq!(budget.used.load(Ordering::SeqCst), 600);
        drop(first);
        assert_eq!(budget.used.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn memory_follows_what_arrived_not_what_was_declared() {
        let budget = BodyBudget::new(usize::MAX);
        let mut body = UploadBody::new(&budget, Some(10 * 1024 * 1024));
        assert!(body.make_room(100));
        assert_eq!(body.bytes.capacity(), INITIAL_BODY_BYTES);
        body.bytes.resize(INITIAL_BODY_BYTES, 0);
        assert!(body.make_room(1));
        assert_eq!(body.bytes.capacity(), 2 * INITIAL_BODY_BYTES);
        let mut chunked = UploadBody::new(&budget, None);
        assert!(chunked.make_room(3 * INITIAL_BODY_BYTES));
        assert!(chunked.bytes.capacity() >= 3 * INITIAL_BODY_BYTES);
    }

    #[test]
    fn a_declared_body_never_grows_past_its_length() {
        let budget = BodyBudget::new(usize::MAX);
        let mut body = UploadBody::new(&budget, Some(70_000));
        body.bytes.resize(INITIAL_BODY_BYTES, 0);
        // The read buffer may also hold the next pipelined request: still no more than the declared length.
        assert!(body.make_room(100_000));
        assert_eq!(body.bytes.capacity(), 70_000);
    }
}
