//! The process's panic hook: every panic is counted, and reported in the log at most
//! [`REPORTS_PER_MINUTE`] times a minute (with a backtrace when `RUST_BACKTRACE` asks
//! for one). A panic is never how lakehouse answers a client — the server turns a
//! statement's panic into its error and a connection's into a FATAL for that client —
//! but a flood of them (say, one per malformed frame) must not flood the log either.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const REPORTS_PER_MINUTE: u32 = 20;

static PANICS: AtomicU64 = AtomicU64::new(0);
static WINDOW: Mutex<Option<(Instant, u32, u64)>> = Mutex::new(None);

/// Panics since the process started.
pub fn count() -> u64 {
    PANICS.load(Ordering::Relaxed)
}

pub fn install_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let n = PANICS.fetch_add(1, Ordering::Relaxed) + 1;
        let mut w = WINDOW.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let (start, reported, suppressed) = w.get_or_insert((now, 0, 0));
        if now.duration_since(*start) >= Duration::from_secs(60) {
            if *suppressed > 0 {
                eprintln!("lakehouse: {suppressed} more panics in the last minute were not reported ({n} since start)");
            }
            *start = now;
            *reported = 0;
            *suppressed = 0;
        }
        if *reported < REPORTS_PER_MINUTE {
            *reported += 1;
            drop(w);
            eprintln!("lakehouse: panic #{n} (the affected statement or connection got an error; the server goes on)");
            default(info);
        } else {
            *suppressed += 1;
        }
    }));
}
