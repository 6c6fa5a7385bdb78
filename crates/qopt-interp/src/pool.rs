//! Reuse of f32 buffers between the values of one run and across runs.
//!
//! Values die at their last use (the plan knows where); their buffers come back here and the
//! next value of a similar size takes one (best fit, at most twice the size it needs, so a
//! small value never pins a large buffer). After the first run with given input shapes the
//! pool holds the buffers the whole run needs, so later runs allocate (almost) nothing.
//! Buffers are plain `Vec<f32>`: a tensor built on one gives it back through
//! `ArrayD::into_raw_vec_and_offset`.

/// Requests smaller than this go to the allocator: malloc's small bins are fast and pooling
/// them would only fragment the pool.
const MIN_POOLED: usize = 1024;

#[derive(Default, Debug)]
pub struct BufferPool {
    free: Vec<Vec<f32>>,
    /// Requests the pool could not serve (fresh allocations), for diagnostics.
    pub misses: u64,
}

impl BufferPool {
    pub fn new() -> BufferPool {
        BufferPool::default()
    }

    /// A buffer of exactly `len` elements with unspecified (but initialised) contents.
    pub fn take(&mut self, len: usize) -> Vec<f32> {
        if len >= MIN_POOLED {
            let best = self
                .free
                .iter()
                .enumerate()
                .filter(|(_, v)| v.capacity() >= len && v.capacity() <= 2 * len)
                .min_by_key(|(_, v)| v.capacity())
                .map(|(i, _)| i);
            if let Some(i) = best {
                let mut v = self.free.swap_remove(i);
                // Shrinking only drops the length; growing within capacity zero-fills the tail.
                v.resize(len, 0.0);
                return v;
            }
        }
        self.misses += 1;
        vec![0.0; len]
    }

    /// A zero-filled buffer of `len` elements.
    pub fn take_zeroed(&mut self, len: usize) -> Vec<f32> {
        let mut v = self.take(len);
        v.fill(0.0);
        v
    }

    pub fn give(&mut self, v: Vec<f32>) {
        if v.capacity() >= MIN_POOLED {
            self.free.push(v);
        }
    }

    /// Total capacity held, in elements.
    pub fn held(&self) -> usize {
        self.free.iter().map(Vec::capacity).sum()
    }

    pub fn clear(&mut self) {
        self.free.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_best_fit_and_never_a_much_larger_buffer() {
        let mut p = BufferPool::new();
        let a = p.take(10_000);
        let b = p.take(4_000);
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        p.give(a);
        p.give(b);
        let c = p.take(3_000);
        assert_eq!(c.as_ptr(), pb, "best fit is the 4000 buffer");
        assert_eq!(c.len(), 3_000);
        // 10_000 is more than twice 2_000: a fresh buffer instead.
        let d = p.take(2_000);
        assert_ne!(d.as_ptr(), pa);
        let e = p.take(9_000);
        assert_eq!(e.as_ptr(), pa);
    }
}
