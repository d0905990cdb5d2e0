//! Every open session as `pg_stat_activity` shows it (#14): its process id, who and
//! where it is, what it runs now; and how to cancel its statement or end its
//! connection (`pg_cancel_backend`, `pg_terminate_backend`). A session owns its
//! [`Backend`]; the registry holds weak references, so a closed session is gone from
//! it without any unregistering. The server gives each client session a
//! [`BackendControl`] (the protocol's cancel key and a way to close the socket);
//! in-process sessions have none.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use chrono::{DateTime, Utc};

/// What the server does for pg_cancel_backend / pg_terminate_backend.
pub trait BackendControl: Send + Sync {
    /// Cancel the statement running now, as a CancelRequest would.
    fn cancel(&self);
    /// Cancel it and close the connection (FATAL 57P01).
    fn terminate(&self);
}

/// `state` and `query` of pg_stat_activity.
#[derive(Debug, Clone)]
pub struct Activity {
    pub state: &'static str,
    pub query: String,
    pub query_start: Option<DateTime<Utc>>,
    pub state_change: DateTime<Utc>,
}

pub struct Backend {
    pub pid: i32,
    locks: Arc<AdvisoryLocks>,
    pub user: String,
    pub database: String,
    pub client_addr: Option<SocketAddr>,
    pub backend_start: DateTime<Utc>,
    pub application_name: Mutex<String>,
    activity: Mutex<Activity>,
    control: Mutex<Option<Arc<dyn BackendControl>>>,
    /// LISTEN's channels, and notifications waiting to be sent to the client.
    listening: Mutex<std::collections::BTreeSet<String>>,
    inbox: Mutex<std::collections::VecDeque<Notification>>,
    /// The transaction id `txid_current()` gave inside the open BEGIN block, and
    /// whether a block is open (outside one, each statement is its own transaction).
    xact: Mutex<(bool, Option<i64>)>,
    next_xid: Arc<AtomicI64>,
    /// Wakes the connection loop when a notification arrives.
    pub arrived: tokio::sync::Notify,
}

/// PostgreSQL's limit on a NOTIFY payload.
pub const MAX_PAYLOAD: usize = 7999;

/// 22023 when a NOTIFY payload is too long.
pub fn check_payload(payload: &str) -> crate::error::Result<()> {
    if payload.len() > MAX_PAYLOAD {
        return Err(crate::error::Error::InvalidParameter("payload string too long (at most 7999 bytes)".into()));
    }
    Ok(())
}

/// One NOTIFY, as the client receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub pid: i32,
    pub channel: String,
    pub payload: String,
}

impl Backend {
    /// BEGIN (true) or COMMIT/ROLLBACK (false): the block's transaction id ends.
    pub fn set_block(&self, open: bool) {
        *lock(&self.xact) = (open, None);
    }

    /// `txid_current()`: the open block's id (assigned at its first call), or a new one
    /// for a statement outside a block.
    pub fn txid_current(&self) -> i64 {
        let mut x = lock(&self.xact);
        match *x {
            (true, Some(id)) => id,
            (open, _) => {
                let id = self.next_xid.fetch_add(1, Ordering::Relaxed);
                if open {
                    x.1 = Some(id);
                }
                id
            }
        }
    }
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Backend({})", self.pid)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Drop for Backend {
    /// A session's advisory locks end with it.
    fn drop(&mut self) {
        self.locks.release_all(self.pid);
    }
}

impl Backend {
    /// The session starts running `query`.
    pub fn begin(&self, query: &str) {
        let now = Utc::now();
        *lock(&self.activity) = Activity { state: "active", query: query.to_string(), query_start: Some(now), state_change: now };
    }

    /// The statement ended; the last query stays shown, as in PostgreSQL.
    pub fn end(&self) {
        let mut a = lock(&self.activity);
        a.state = "idle";
        a.state_change = Utc::now();
    }

    pub fn activity(&self) -> Activity {
        lock(&self.activity).clone()
    }

    /// LISTEN channel.
    pub fn listen(&self, channel: &str) {
        lock(&self.listening).insert(channel.to_string());
    }

    /// UNLISTEN channel (None: `*`, all of them).
    pub fn unlisten(&self, channel: Option<&str>) {
        match channel {
            Some(c) => {
                lock(&self.listening).remove(c);
            }
            None => lock(&self.listening).clear(),
        }
    }

    pub fn listening(&self) -> Vec<String> {
        lock(&self.listening).iter().cloned().collect()
    }

    /// The notifications that arrived since the last call.
    pub fn take_notifications(&self) -> Vec<Notification> {
        lock(&self.inbox).drain(..).collect()
    }

    pub fn set_control(&self, control: Arc<dyn BackendControl>) {
        *lock(&self.control) = Some(control);
    }

    /// False when the session has no connection to signal (in-process).
    pub fn cancel(&self) -> bool {
        match lock(&self.control).clone() {
            Some(c) => {
                c.cancel();
                true
            }
            None => false,
        }
    }

    pub fn terminate(&self) -> bool {
        match lock(&self.control).clone() {
            Some(c) => {
                c.terminate();
                true
            }
            None => false,
        }
    }
}

/// The registry of live sessions.
#[derive(Debug)]
pub struct Backends {
    live: Mutex<BTreeMap<i32, Weak<Backend>>>,
    next_pid: AtomicI32,
    pub locks: Arc<AdvisoryLocks>,
    /// Transaction ids: counted from the start time in microseconds, so they grow
    /// across restarts too.
    next_xid: Arc<AtomicI64>,
}

impl Default for Backends {
    fn default() -> Self {
        // In-process sessions count from here; the server's come from the protocol's
        // random process ids, never taken twice while both live.
        let start = Utc::now().timestamp_micros().max(1);
        Backends { live: Mutex::default(), next_pid: AtomicI32::new(10_000), locks: Arc::default(), next_xid: Arc::new(AtomicI64::new(start)) }
    }
}

impl Backends {
    /// A new backend, registered; `pid` None picks one.
    pub fn register(&self, pid: Option<i32>, user: &str, database: &str, client_addr: Option<SocketAddr>) -> Arc<Backend> {
        let mut live = lock(&self.live);
        live.retain(|_, b| b.strong_count() > 0);
        let pid = match pid {
            Some(p) if !live.contains_key(&p) => p,
            _ => loop {
                let p = self.next_pid.fetch_add(1, Ordering::Relaxed);
                if p > 0 && !live.contains_key(&p) {
                    break p;
                }
            },
        };
        let now = Utc::now();
        let backend = Arc::new(Backend {
            pid,
            locks: self.locks.clone(),
            user: user.to_string(),
            database: database.to_string(),
            client_addr,
            backend_start: now,
            application_name: Mutex::new(String::new()),
            activity: Mutex::new(Activity { state: "idle", query: String::new(), query_start: None, state_change: now }),
            control: Mutex::new(None),
            listening: Mutex::default(),
            inbox: Mutex::default(),
            xact: Mutex::default(),
            next_xid: self.next_xid.clone(),
            arrived: tokio::sync::Notify::new(),
        });
        live.insert(pid, Arc::downgrade(&backend));
        backend
    }

    /// The live backends, by pid.
    pub fn all(&self) -> Vec<Arc<Backend>> {
        lock(&self.live).values().filter_map(Weak::upgrade).collect()
    }

    pub fn get(&self, pid: i32) -> Option<Arc<Backend>> {
        lock(&self.live).get(&pid).and_then(Weak::upgrade)
    }

    /// NOTIFY: every session listening on `channel` (the sender's too) gets it.
    pub fn notify(&self, channel: &str, payload: &str, from: i32) {
        for b in self.all() {
            if lock(&b.listening).contains(channel) {
                lock(&b.inbox).push_back(Notification { pid: from, channel: channel.to_string(), payload: payload.to_string() });
                b.arrived.notify_one();
            }
        }
    }
}

/// One advisory lock: held by one session exclusively, or shared by several; each
/// holder counts its acquisitions (PostgreSQL's locks stack).
#[derive(Debug)]
enum Held {
    Exclusive(i32, u32),
    Shared(BTreeMap<i32, u32>),
}

/// `pg_advisory_lock` and friends (#14): session-level locks on 64-bit keys, released
/// by unlock or when the session ends.
#[derive(Debug, Default)]
pub struct AdvisoryLocks {
    held: Mutex<BTreeMap<i64, Held>>,
    released: tokio::sync::Notify,
}

impl AdvisoryLocks {
    /// Take `key` for `pid` if nothing blocks it.
    pub fn try_lock(&self, key: i64, pid: i32, shared: bool) -> bool {
        let mut held = lock(&self.held);
        match (held.get_mut(&key), shared) {
            (None, false) => {
                held.insert(key, Held::Exclusive(pid, 1));
                true
            }
            (None, true) => {
                held.insert(key, Held::Shared(BTreeMap::from([(pid, 1)])));
                true
            }
            (Some(Held::Exclusive(p, n)), false) if *p == pid => {
                *n += 1;
                true
            }
            (Some(Held::Shared(holders)), true) => {
                *holders.entry(pid).or_insert(0) += 1;
                true
            }
            _ => false,
        }
    }

    /// Wait until `key` can be taken (a cancel drops the wait).
    pub async fn lock(&self, key: i64, pid: i32, shared: bool) {
        loop {
            let released = self.released.notified();
            if self.try_lock(key, pid, shared) {
                return;
            }
            released.await;
        }
    }

    /// Release one acquisition; false when `pid` did not hold it in that mode.
    pub fn unlock(&self, key: i64, pid: i32, shared: bool) -> bool {
        let mut held = lock(&self.held);
        let done = match (held.get_mut(&key), shared) {
            (Some(Held::Exclusive(p, n)), false) if *p == pid => {
                *n -= 1;
                if *n == 0 {
                    held.remove(&key);
                }
                true
            }
            (Some(Held::Shared(holders)), true) if holders.contains_key(&pid) => {
                let n = holders.get_mut(&pid).map(|n| {
                    *n -= 1;
                    *n
                });
                if n == Some(0) {
                    holders.remove(&pid);
                }
                if holders.is_empty() {
                    held.remove(&key);
                }
                true
            }
            _ => false,
        };
        drop(held);
        if done {
            self.released.notify_waiters();
        }
        done
    }

    /// Release everything `pid` holds (pg_advisory_unlock_all, session end).
    pub fn release_all(&self, pid: i32) {
        let mut held = lock(&self.held);
        held.retain(|_, h| match h {
            Held::Exclusive(p, _) => *p != pid,
            Held::Shared(holders) => {
                holders.remove(&pid);
                !holders.is_empty()
            }
        });
        drop(held);
        self.released.notify_waiters();
    }

    /// (key, pid, exclusive) of every lock held, for pg_locks.
    pub fn all(&self) -> Vec<(i64, i32, bool)> {
        let held = lock(&self.held);
        let mut out = vec![];
        for (k, h) in held.iter() {
            match h {
                Held::Exclusive(p, _) => out.push((*k, *p, true)),
                Held::Shared(holders) => out.extend(holders.keys().map(|p| (*k, *p, false))),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_session_leaves_the_registry_and_pids_are_not_shared() {
        let b = Backends::default();
        let one = b.register(Some(7), "a", "d", None);
        let two = b.register(Some(7), "b", "d", None);
        assert_eq!(one.pid, 7);
        assert_ne!(two.pid, 7);
        assert_eq!(b.all().len(), 2);
        drop(one);
        assert_eq!(b.all().iter().map(|x| x.pid).collect::<Vec<_>>(), vec![two.pid]);
        assert!(b.get(7).is_none());
        two.begin("SELECT 1");
        assert_eq!(two.activity().state, "active");
        two.end();
        assert_eq!(two.activity().state, "idle");
        assert_eq!(two.activity().query, "SELECT 1");
        assert!(!two.cancel(), "an in-process session has nothing to signal");
    }

    #[test]
    fn notifications_reach_the_sessions_listening() {
        let b = Backends::default();
        let one = b.register(None, "a", "d", None);
        let two = b.register(None, "b", "d", None);
        one.listen("jobs");
        two.listen("other");
        b.notify("jobs", "42", two.pid);
        assert_eq!(one.take_notifications(), vec![Notification { pid: two.pid, channel: "jobs".into(), payload: "42".into() }]);
        assert!(two.take_notifications().is_empty());
        one.unlisten(None);
        b.notify("jobs", "43", two.pid);
        assert!(one.take_notifications().is_empty());
    }

    #[test]
    fn advisory_locks_stack_share_and_end_with_their_session() {
        let b = Backends::default();
        let one = b.register(None, "a", "d", None);
        let two = b.register(None, "b", "d", None);
        let l = &b.locks;
        assert!(l.try_lock(1, one.pid, false));
        assert!(l.try_lock(1, one.pid, false), "locks stack");
        assert!(!l.try_lock(1, two.pid, false));
        assert!(!l.try_lock(1, two.pid, true));
        assert!(l.unlock(1, one.pid, false));
        assert!(!l.try_lock(1, two.pid, false), "still held once");
        assert!(l.unlock(1, one.pid, false));
        assert!(!l.unlock(1, one.pid, false), "not held any more");
        assert!(l.try_lock(2, one.pid, true) && l.try_lock(2, two.pid, true));
        assert!(!l.try_lock(2, one.pid, false));
        assert!(l.try_lock(3, two.pid, false));
        drop(two);
        assert_eq!(l.all(), vec![(2, one.pid, false)], "the dropped session's locks are gone");
    }
}
