//! Login throttling: failed authentications are counted per client address, and a
//! start-up from an address with recent failures is held back before it is answered,
//! for longer the more it failed (doubling, up to [`MAX_DELAY`]). The wait happens
//! in that connection's own task, so an attacker's burst slows the attacker's
//! connections, not clients from other addresses. A success clears the address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pgwire::error::PgWireError;

/// Failures an address may have before it is slowed (typing a password wrong).
const FREE_FAILURES: u32 = 3;
const FIRST_DELAY: Duration = Duration::from_millis(50);
pub const MAX_DELAY: Duration = Duration::from_secs(5);
/// Failures older than this are forgotten.
const WINDOW: Duration = Duration::from_secs(600);
/// Addresses tracked at most (the oldest are dropped first).
const MAX_ADDRESSES: usize = 65_536;

#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Throttle {
    /// How long a start-up from `ip` waits now.
    pub fn delay(&self, ip: IpAddr, now: Instant) -> Duration {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&ip) {
            Some((n, last)) if now.duration_since(*last) < WINDOW && *n > FREE_FAILURES => {
                let doublings = (*n - FREE_FAILURES - 1).min(16);
                (FIRST_DELAY * 2u32.pow(doublings)).min(MAX_DELAY)
            }
            _ => Duration::ZERO,
        }
    }

    pub fn record_failure(&self, ip: IpAddr, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ADDRESSES && !map.contains_key(&ip) {
            map.retain(|_, (_, last)| now.duration_since(*last) < WINDOW);
            if map.len() >= MAX_ADDRESSES {
                if let Some(oldest) = map.iter().min_by_key(|(_, (_, last))| *last).map(|(k, _)| *k) {
                    map.remove(&oldest);
                }
            }
        }
        let entry = map.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) >= WINDOW {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
    }

    pub fn record_success(&self, ip: IpAddr) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(&ip);
    }
}

/// Wait as long as `ip`'s recent failures say, before its start-up is answered.
pub async fn hold_back(throttle: &Throttle, ip: IpAddr) {
    let d = throttle.delay(ip, Instant::now());
    if !d.is_zero() {
        tracing::debug!("holding back a login from {ip} for {d:?} after repeated failures");
        tokio::time::sleep(d).await;
    }
}

/// An error ended an authentication from `ip`: count it.
pub fn failed(throttle: &Throttle, ip: IpAddr, _error: &PgWireError) {
    throttle.record_failure(ip, Instant::now());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_per_address_and_clear_on_success() {
        let t = Throttle::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let now = Instant::now();
        for _ in 0..FREE_FAILURES {
            t.record_failure(a, now);
        }
        assert_eq!(t.delay(a, now), Duration::ZERO, "a few typos are free");
        t.record_failure(a, now);
        assert_eq!(t.delay(a, now), FIRST_DELAY);
        t.record_failure(a, now);
        assert_eq!(t.delay(a, now), FIRST_DELAY * 2);
        for _ in 0..500 {
            t.record_failure(a, now);
        }
        assert_eq!(t.delay(a, now), MAX_DELAY);
        assert_eq!(t.delay(b, now), Duration::ZERO, "other addresses are not slowed");
        assert_eq!(t.delay(a, now + WINDOW), Duration::ZERO, "old failures are forgotten");
        t.record_success(a);
        assert_eq!(t.delay(a, now), Duration::ZERO);
    }
}
