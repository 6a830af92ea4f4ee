//! Buffers handed from one request to the next. A connection takes one when input arrives or a response is
//! to be written, and gives it back once it is empty again, so idle connections hold none, and a busy loop
//! doesn't pay `malloc` and `free` for every request (a small response's buffer is past the allocator's
//! per-thread cache: a fifth of a small request's instructions went there). h2o recycles its buffers the
//! same way.

/// Most spare buffers kept. 64: a loop writes to few connections at once, and 64 of the largest kept hold
/// at most 1 MiB.
pub const MAX_SPARE_BUFFERS: usize = 64;

/// Largest buffer kept for reuse. 16 KiB: a few pipelined small requests or responses fit; a file's 64 KiB
/// chunk is given back to the allocator.
pub const MAX_KEPT_CAPACITY: usize = 16 * 1024;

/// The spare buffers of one event loop.
#[derive(Debug, Default)]
pub struct BufferPool {
    spare: Vec<Vec<u8>>,
}

impl BufferPool {
    /// An empty buffer, with the capacity of one given back earlier if there is one.
    pub fn take(&mut self) -> Vec<u8> {
        self.spare.pop().unwrap_or_default()
    }

    /// Keeps `buf`'s memory for a later `take`, unless it is too large to keep or enough are kept.
    pub fn give(&mut self, mut buf: Vec<u8>) {
        let capacity = buf.capacity();
        if capacity == 0 || capacity > MAX_KEPT_CAPACITY || self.spare.len() >= MAX_SPARE_BUFFERS {
            return;
        }
        buf.clear();
        self.spare.push(buf);
    }

    /// Buffers kept now.
    #[cfg(test)]
    pub fn spare(&self) -> usize {
        self.spare.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_taken_again_empty() {
        let mut pool = BufferPool::default();
        let mut buf = pool.take();
        buf.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        let (ptr, capacity) = (buf.as_ptr(), buf.capacity());
        pool.give(buf);
        let again = pool.take();
        assert!(again.is_empty());
        assert_eq!((again.as_ptr(), again.capacity()), (ptr, capacity));
    }

    #[test]
    fn only_a_bounded_number_of_small_buffers_is_kept() {
        let mut pool = BufferPool::default();
        pool.give(Vec::new());
        pool.give(Vec::with_capacity(MAX_KEPT_CAPACITY + 1));
        assert_eq!(pool.spare(), 0);
        for _ in 0..MAX_SPARE_BUFFERS + 10 {
            pool.give(Vec::with_capacity(MAX_KEPT_CAPACITY));
        }
        assert_eq!(pool.spare(), MAX_SPARE_BUFFERS);
    }
}
