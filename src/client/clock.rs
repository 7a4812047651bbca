//! The appliance's clock as this device sees it: an offset learned from the
//! answers to its own requests (they are fresh by construction), so that a
//! device and an appliance whose clocks disagree by minutes or hours still
//! judge message freshness alike and do not drop each other's messages.

use std::sync::atomic::{AtomicI64, Ordering};

/// Appliance time minus local time, in ms.
#[derive(Debug, Default)]
pub(crate) struct ApplianceClock {
    offset: AtomicI64,
}

impl ApplianceClock {
    /// The appliance's time now, by this device's estimate.
    pub fn now(&self, local: i64) -> i64 {
        local + self.offset()
    }

    /// The current offset.
    pub fn offset(&self) -> i64 {
        self.offset.load(Ordering::Relaxed)
    }

    /// Learns from an answer stamped `ts` by the appliance and received at
    /// local time `local`; moves the offset only when it is off by more
    /// than `tolerance` (network and queueing delays stay within it).
    /// True if it moved.
    pub fn learn(&self, ts: i64, local: i64, tolerance: i64) -> bool {
        let sample = ts - local;
        if (sample - self.offset()).abs() > tolerance {
            self.offset.store(sample, Ordering::Relaxed);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_large_offset_and_ignores_jitter() {
        let c = ApplianceClock::default();
        assert!(!c.learn(1_000_100, 1_000_000, 15_000), "100 ms is jitter");
        assert!(c.learn(4_600_000, 1_000_000, 15_000), "an hour ahead");
        assert_eq!(c.now(2_000_000), 5_600_000);
        assert!(!c.learn(4_605_000, 1_000_000, 15_000));
        assert!(c.learn(1_000_000, 1_000_000, 15_000), "set right again");
        assert_eq!(c.offset(), 0);
    }
}
