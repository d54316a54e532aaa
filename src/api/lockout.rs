//! Pickup-code lockout: after a few wrong codes for one order, or from one terminal, collecting
//! is refused for a while, so a 4-digit code cannot be brute-forced.
//!
//! Counted in memory (a restart forgets the strikes; a restart takes longer than a lockout
//! would let an attacker try codes anyway). Only wrong codes for orders that exist and are
//! ready are counted, so the maps are bounded by real orders and configured terminals.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Which counter locked collecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Order,
    Terminal,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Order => "order",
            Scope::Terminal => "terminal",
        }
    }
}

/// Collecting is locked by `scope` for `retry_after` more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    pub scope: Scope,
    pub retry_after: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Strikes {
    failures: u32,
    /// Strikes are forgotten this long after the last failure; locked until then once
    /// `failures` reached the maximum.
    until: Instant,
}

pub struct PickupLockout {
    max_failures: u32,
    lockout: Duration,
    strikes: Mutex<HashMap<(Scope, String), Strikes>>,
}

impl PickupLockout {
    pub fn new(max_failures: u32, lockout: Duration) -> Self {
        Self {
            max_failures,
            lockout,
            strikes: Mutex::new(HashMap::new()),
        }
    }

    /// `Err` while the order or the terminal is locked out.
    pub fn check(&self, order: &str, terminal: &str, now: Instant) -> Result<(), Locked> {
        let Ok(strikes) = self.strikes.lock() else {
            return Ok(());
        };
        for (scope, key) in [(Scope::Order, order), (Scope::Terminal, terminal)] {
            if let Some(s) = strikes.get(&(scope, key.to_string()))
                && s.failures >= self.max_failures
                && s.until > now
            {
                return Err(Locked {
                    scope,
                    retry_after: s.until - now,
                });
            }
        }
        Ok(())
    }

    /// Counts a wrong code; the lock it caused, if this failure reached the maximum.
    pub fn failed(&self, order: &str, terminal: &str, now: Instant) -> Option<Locked> {
        let mut strikes = self.strikes.lock().ok()?;
        strikes.retain(|_, s| s.until > now);
        let mut locked = None;
        for (scope, key) in [(Scope::Order, order), (Scope::Terminal, terminal)] {
            let entry = strikes.entry((scope, key.to_string())).or_insert(Strikes {
                failures: 0,
                until: now,
            });
            entry.failures += 1;
            entry.until = now + self.lockout;
            if entry.failures >= self.max_failures && locked.is_none() {
                locked = Some(Locked {
                    scope,
                    retry_after: self.lockout,
                });
            }
        }
        locked
    }

    /// The order was collected: its strikes go (the terminal's stay, so an attacker holding
    /// one valid code cannot reset the count of a terminal guessing others).
    pub fn succeeded(&self, order: &str) {
        if let Ok(mut strikes) = self.strikes.lock() {
            strikes.remove(&(Scope::Order, order.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: Duration = Duration::from_secs(60);

    #[test]
    fn locks_an_order_after_max_failures_and_lets_it_go_after_the_lockout() {
        let guard = PickupLockout::new(3, LOCK);
        let t0 = Instant::now();
        assert_eq!(guard.failed("o1", "pos1", t0), None);
        assert_eq!(guard.failed("o1", "pos2", t0), None);
        assert!(guard.check("o1", "pos3", t0).is_ok());
        let locked = guard.failed("o1", "pos3", t0).expect("third failure locks");
        assert_eq!(locked.scope, Scope::Order);
        let refused = guard.check("o1", "pos4", t0 + Duration::from_secs(1));
        assert_eq!(refused.map_err(|l| l.scope), Err(Scope::Order));
        assert!(
            guard.check("o2", "pos4", t0).is_ok(),
            "other orders unaffected"
        );
        assert!(guard.check("o1", "pos4", t0 + LOCK).is_ok());
    }

    #[test]
    fn locks_a_terminal_guessing_across_orders() {
        let guard = PickupLockout::new(3, LOCK);
        let t0 = Instant::now();
        guard.failed("o1", "pos1", t0);
        guard.failed("o2", "pos1", t0);
        let locked = guard.failed("o3", "pos1", t0).expect("locked");
        assert_eq!(locked.scope, Scope::Terminal);
        assert_eq!(
            guard.check("o4", "pos1", t0).map_err(|l| l.scope),
            Err(Scope::Terminal)
        );
        assert!(guard.check("o4", "pos2", t0).is_ok());
    }

    #[test]
    fn success_clears_the_order_but_not_the_terminal() {
        let guard = PickupLockout::new(2, LOCK);
        let t0 = Instant::now();
        guard.failed("o1", "pos1", t0);
        guard.succeeded("o1");
        assert_eq!(
            guard.failed("o1", "pos2", t0),
            None,
            "order count restarted"
        );
        assert!(
            guard.failed("o2", "pos1", t0).is_some(),
            "terminal count kept"
        );
    }
}
