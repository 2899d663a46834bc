//! The open-loop (constant arrival rate) schedule shared by a pool of load users.
//!
//! Request `k` of the run is meant to start at `start + k / rate`; user `u` of `users` takes
//! the requests `u, u + users, u + 2·users, …`. A user sleeps until its next slot, sends, and
//! records the latency from the slot, not from the send: when the server stalls, a late user
//! sends at once on its overdue slot and that wait is in its latency, which keeps the
//! histogram honest (no coordinated omission) as long as the pool is larger than the rate
//! times the longest latency. A slot that is later than `rate × users` slots behind is
//! counted as [`Slot::missed`] so a too-small pool is visible in the report.

use std::time::Duration;

/// The schedule of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Requests per second over all users.
    pub rate: f64,
    /// Users sharing the schedule.
    pub users: usize,
    /// How long the schedule lasts from its start.
    pub duration: Duration,
}

/// One user's next request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slot {
    /// Index of the request over the whole run.
    pub k: u64,
    /// Its intended start, from the schedule's start.
    pub at: Duration,
}

impl Schedule {
    /// The `n`-th request (0, 1, …) of user `user`, or `None` past the end of the schedule.
    pub fn slot(&self, user: usize, n: u64) -> Option<Slot> {
        if self.rate <= 0.0 || self.users == 0 {
            return None;
        }
        let k = n * self.users as u64 + (user % self.users) as u64;
        let at = Duration::from_secs_f64(k as f64 / self.rate);
        (at < self.duration).then_some(Slot { k, at })
    }

    /// Requests the whole schedule holds.
    pub fn total(&self) -> u64 {
        (self.rate * self.duration.as_secs_f64()).ceil().max(0.0) as u64
    }

    /// Users needed so that `latency` at most still leaves a user free for every slot.
    pub fn users_for(rate: f64, latency: Duration) -> usize {
        ((rate * latency.as_secs_f64()).ceil() as usize).max(1)
    }
}

/// Whether a request sent `now` for `slot` is so late that the pool was exhausted (every
/// user was busy for a whole round of the schedule).
pub fn missed(schedule: &Schedule, slot: Slot, now: Duration) -> bool {
    let round =
        Duration::from_secs_f64(schedule.users as f64 / schedule.rate.max(f64::MIN_POSITIVE));
    now > slot.at + round
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Schedule = Schedule { rate: 100.0, users: 4, duration: Duration::from_secs(1) };

    #[test]
    fn users_interleave_the_slots() {
        let slots: Vec<u64> = (0..3).map(|n| S.slot(1, n).unwrap().k).collect();
        assert_eq!(slots, [1, 5, 9]);
        assert_eq!(S.slot(0, 1).unwrap().at, Duration::from_millis(40));
        assert_eq!(S.slot(3, 0).unwrap().at, Duration::from_millis(30));
    }

    #[test]
    fn every_slot_is_taken_once() {
        let mut all: Vec<u64> = (0..S.users)
            .flat_map(|u| (0..).map_while(move |n| S.slot(u, n)).map(|s| s.k))
            .collect();
        all.sort();
        assert_eq!(all, (0..S.total()).collect::<Vec<_>>());
        assert_eq!(S.total(), 100);
    }

    #[test]
    fn ends_with_the_duration() {
        assert!(S.slot(0, 25).is_none());
        assert!(Schedule { rate: 0.0, ..S }.slot(0, 0).is_none());
    }

    #[test]
    fn pool_size_and_missed_slots() {
        assert_eq!(Schedule::users_for(200.0, Duration::from_millis(500)), 100);
        let slot = S.slot(0, 0).unwrap();
        assert!(!missed(&S, slot, Duration::from_millis(39)));
        assert!(missed(&S, slot, Duration::from_millis(41)));
    }
}
