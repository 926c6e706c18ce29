//! The time a [`TokenSource`](super::TokenSource) judges expiry and cooldowns by: injectable,
//! so that tests move it instead of sleeping.

use std::time::SystemTime;

/// Wall-clock time for a [`TokenSource`](super::TokenSource).
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Now.
    fn now(&self) -> SystemTime;
}

/// The system clock (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}
