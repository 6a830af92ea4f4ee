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
        Arc::new(BodyBudget {
            used: AtomicUsize::new(0),
            limit,
        })
    }
}

/// An upload body being received or stored. Its buffer is counted against the budget until it is dropped,
/// on the loop or on the worker that stored it.
#[derive(Debug)]
pub struct UploadBody {
    /// The body received so far.
    pub bytes: Vec<u8>,
    counted: usize,
    budget: Arc<BodyBudget>,
}

impl UploadBody {
    /// An empty body drawing on `budget`.
    pub fn new(budget: &Arc<BodyBudget>) -> UploadBody {
        UploadBody {
            bytes: Vec::new(),
            counted: 0,
            budget: Arc::clone(budget),
        }
    }

    /// Counts the buffer's growth since the last call. False when the budget is exceeded: the caller refuses
    /// the upload, and dropping it gives the bytes back.
    pub fn account(&mut self) -> bool {
        let held = self.bytes.capacity();
        if held > self.counted {
            self.budget
                .used
                .fetch_add(held - self.counted, Ordering::SeqCst);
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
        let mut first = UploadBody::new(&budget);
        first.bytes.reserve_exact(600);
        assert!(first.account());
        let mut second = UploadBody::new(&budget);
        second.bytes.reserve_exact(600);
        assert!(
            !second.account(),
            "1200 bytes held against a budget of 1000"
        );
        drop(second);
        assert_eq!(budget.used.load(Ordering::SeqCst), first.bytes.capacity());
        drop(first);
        assert_eq!(budget.used.load(Ordering::SeqCst), 0);
    }
}
