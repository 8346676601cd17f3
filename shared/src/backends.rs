//! What a function is built over: its composition root (`AcceptInvite::build`,
//! `EnrollAuthenticator::build`, `SaveEvent::build`) takes a [`Backends`], so the Lambda's `main.rs`,
//! the local CLI and the test harnesses wire each handler the same way and differ only in the adapters
//! they hand over (DynamoDB or memory, the system clock or a manual one).

use std::sync::Arc;

use crate::ports::{Clock, OsRandom, Random, RateLimiter, SystemClock};
use crate::storage::table::Table;

#[derive(Clone)]
pub struct Backends {
    /// The single table every store is written over.
    pub table: Arc<dyn Table>,
    /// Fixed-window counters (enrollment and SMS limits, ingest quotas).
    pub limiter: Arc<dyn RateLimiter>,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
}

impl Backends {
    /// The table and limiter, with the system clock and the OS random source.
    pub fn new(table: Arc<dyn Table>, limiter: Arc<dyn RateLimiter>) -> Self {
        Self { table, limiter, clock: Arc::new(SystemClock), random: Arc::new(OsRandom) }
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn with_random(mut self, random: Arc<dyn Random>) -> Self {
        self.random = random;
        self
    }
}
