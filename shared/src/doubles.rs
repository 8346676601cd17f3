//! Test doubles of the ports: a clock that moves only when told and deterministic randomness. Compiled
//! for tests, benches and the AWS limits model (feature `aws-model`, which `testing` implies), never
//! into the Lambda binaries.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::ports::{Clock, Random};

/// A clock that only moves when told to.
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn at_secs(secs: i64) -> Self {
        Self(Arc::new(AtomicI64::new(secs * 1000)))
    }

    pub fn set_secs(&self, secs: i64) {
        self.0.store(secs * 1000, Ordering::SeqCst);
    }

    pub fn advance_secs(&self, secs: i64) {
        self.0.fetch_add(secs * 1000, Ordering::SeqCst);
    }

    /// Sets the time in milliseconds (benches that simulate sub-second arrival times).
    pub fn set_millis(&self, millis: i64) {
        self.0.store(millis, Ordering::SeqCst);
    }

    pub fn advance_millis(&self, millis: i64) {
        self.0.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Deterministic bytes for tests (a counter-based stream; never use outside tests and replays).
#[derive(Debug, Default)]
pub struct SeqRandom(std::sync::atomic::AtomicU64);

impl Random for SeqRandom {
    fn fill(&self, buf: &mut [u8]) {
        for b in buf.iter_mut() {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            *b = (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8;
        }
    }
}
