//! Sequences (#14): `CREATE SEQUENCE`, and the ones `SERIAL` and `GENERATED … AS
//! IDENTITY` columns own. A sequence is a catalog record; values are handed out from
//! memory in blocks (engine/sequences.rs), and the end of each block is written here
//! *before* any value of it is returned, so after a crash the sequence restarts past
//! every value it may have handed out — PostgreSQL's own rule (it logs 32 values
//! ahead); the values of an unfinished block are skipped, never repeated.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::Catalog;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SequenceRecord {
    pub name: String,
    /// `smallint`, `integer` or `bigint` (PostgreSQL's `AS type`).
    pub data_type: String,
    pub start: i64,
    pub increment: i64,
    pub min: i64,
    pub max: i64,
    pub cycle: bool,
    /// PostgreSQL's CACHE: accepted and shown; the block size is lakehouse's.
    #[serde(default = "one")]
    pub cache: i64,
    /// The last value that may have been handed out (the end of the reserved
    /// block), and whether it was: with `is_called` false the next value *is*
    /// `last_value` (a new sequence, or `setval(…, false)`).
    pub last_value: i64,
    pub is_called: bool,
    /// `OWNED BY table.column`: dropped with the table (SERIAL and identity columns).
    #[serde(default)]
    pub owned_by: Option<(String, String)>,
    /// Owner (the table's, for an owned sequence).
    #[serde(default)]
    pub owner: Option<String>,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

fn one() -> i64 {
    1
}

/// Options as `CREATE SEQUENCE` gives them; None where not given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SequenceOptions {
    pub data_type: Option<String>,
    pub start: Option<i64>,
    pub increment: Option<i64>,
    /// `Some(None)`: NO MINVALUE.
    pub min: Option<Option<i64>>,
    pub max: Option<Option<i64>>,
    pub cycle: Option<bool>,
    pub cache: Option<i64>,
}

/// The range of a sequence type.
pub fn type_range(data_type: &str) -> Result<(i64, i64)> {
    Ok(match data_type {
        "smallint" => (i16::MIN as i64, i16::MAX as i64),
        "integer" => (i32::MIN as i64, i32::MAX as i64),
        "bigint" => (i64::MIN, i64::MAX),
        other => {
            return Err(Error::InvalidParameter(format!(
                "sequence type must be smallint, integer, or bigint (got {other})"
            )));
        }
    })
}

/// A record from options, with PostgreSQL's defaults and checks (CREATE SEQUENCE).
pub fn new_record(name: &str, options: &SequenceOptions, owner: Option<String>) -> Result<SequenceRecord> {
    let data_type = options.data_type.clone().unwrap_or_else(|| "bigint".into());
    let (lo, hi) = type_range(&data_type)?;
    let increment = options.increment.unwrap_or(1);
    if increment == 0 {
        return Err(Error::InvalidParameter("INCREMENT must not be zero".into()));
    }
    let min = options.min.flatten().unwrap_or(if increment > 0 { 1 } else { lo });
    let max = options.max.flatten().unwrap_or(if increment > 0 { hi } else { -1 });
    if min < lo || max > hi {
        return Err(Error::InvalidParameter(format!(
            "MINVALUE ({min}) and MAXVALUE ({max}) must be within the range of type {data_type} ({lo} .. {hi})"
        )));
    }
    if min >= max {
        return Err(Error::InvalidParameter(format!("MINVALUE ({min}) must be less than MAXVALUE ({max})")));
    }
    let start = options.start.unwrap_or(if increment > 0 { min } else { max });
    if start < min || start > max {
        return Err(Error::InvalidParameter(format!(
            "START value ({start}) cannot be outside the range MINVALUE ({min}) .. MAXVALUE ({max})"
        )));
    }
    let cache = options.cache.unwrap_or(1);
    if cache < 1 {
        return Err(Error::InvalidParameter(format!("CACHE ({cache}) must be greater than zero")));
    }
    Ok(SequenceRecord {
        name: name.to_string(),
        data_type,
        start,
        increment,
        min,
        max,
        cycle: options.cycle.unwrap_or(false),
        cache,
        last_value: start,
        is_called: false,
        owned_by: None,
        owner,
        created_at: super::now_rfc3339(),
        comment: None,
    })
}

impl Catalog {
    pub fn sequence(&self, name: &str) -> Option<SequenceRecord> {
        self.snapshot().sequences.get(name).cloned()
    }

    /// Write a sequence's position (the end of a reserved block, or setval's value).
    pub fn set_sequence_position(&self, name: &str, last_value: i64, is_called: bool) -> Result<()> {
        self.update(|s| {
            let rec = s.sequences.get_mut(name).ok_or_else(|| undefined(name))?;
            rec.last_value = last_value;
            rec.is_called = is_called;
            Ok(())
        })
    }
}

pub fn undefined(name: &str) -> Error {
    Error::State("42P01", format!("relation \"{name}\" does not exist (no such sequence; see SELECT sequencename FROM pg_sequences)"))
}

/// Values reserved per catalog write beyond what a call asks for (PostgreSQL logs 32).
const BLOCK: u64 = 32;

/// Where a sequence is in memory.
#[derive(Debug, Clone, Copy)]
struct Live {
    last: i64,
    is_called: bool,
    /// Values after `last` already covered by the durable record.
    reserved: u64,
}

/// Where sequence records live: the catalog, or (a session's temporary sequences)
/// memory only.
enum Store {
    Catalog(Arc<Catalog>),
    Memory(Mutex<std::collections::BTreeMap<String, SequenceRecord>>),
}

impl Store {
    fn get(&self, name: &str) -> Option<SequenceRecord> {
        match self {
            Store::Catalog(c) => c.sequence(name),
            Store::Memory(m) => m.lock().unwrap_or_else(|p| p.into_inner()).get(name).cloned(),
        }
    }

    fn set_position(&self, name: &str, last_value: i64, is_called: bool) -> Result<()> {
        match self {
            Store::Catalog(c) => c.set_sequence_position(name, last_value, is_called),
            Store::Memory(m) => {
                let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
                let rec = m.get_mut(name).ok_or_else(|| undefined(name))?;
                rec.last_value = last_value;
                rec.is_called = is_called;
                Ok(())
            }
        }
    }
}

pub struct Sequences {
    store: Store,
    live: Mutex<HashMap<String, Live>>,
}

impl std::fmt::Debug for Sequences {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sequences")
    }
}

/// One step of `rec` from `(last, is_called)`: the next value, wrapping when it
/// cycles; None at the end of a sequence that does not.
fn step(rec: &SequenceRecord, last: i64, is_called: bool) -> Option<i64> {
    if !is_called {
        return Some(last);
    }
    match last.checked_add(rec.increment) {
        Some(v) if v >= rec.min && v <= rec.max => Some(v),
        _ if rec.cycle => Some(if rec.increment > 0 { rec.min } else { rec.max }),
        _ => None,
    }
}

fn exhausted(rec: &SequenceRecord) -> Error {
    let (what, bound) = if rec.increment > 0 { ("maximum", rec.max) } else { ("minimum", rec.min) };
    Error::State("2200H", format!("nextval: reached {what} value of sequence \"{}\" ({bound})", rec.name))
}

impl Sequences {
    pub fn new(catalog: Arc<Catalog>) -> Sequences {
        Sequences { store: Store::Catalog(catalog), live: Mutex::new(HashMap::new()) }
    }

    /// A session's temporary sequences (SERIAL columns of temporary tables): in
    /// memory, gone with the session.
    pub fn in_memory() -> Sequences {
        Sequences { store: Store::Memory(Mutex::default()), live: Mutex::new(HashMap::new()) }
    }

    /// Add a record to an in-memory store.
    pub fn add(&self, rec: SequenceRecord) -> Result<()> {
        match &self.store {
            Store::Memory(m) => {
                m.lock().unwrap_or_else(|p| p.into_inner()).insert(rec.name.clone(), rec);
                Ok(())
            }
            Store::Catalog(_) => Err(Error::Internal("sequences in the catalog are added by a catalog update".into())),
        }
    }

    /// Remove a record from an in-memory store (and forget its position).
    pub fn remove(&self, name: &str) {
        if let Store::Memory(m) = &self.store {
            m.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
        }
        self.forget(name);
    }

    pub fn record(&self, name: &str) -> Option<SequenceRecord> {
        self.store.get(name)
    }

    /// The records of an in-memory store.
    pub fn records(&self) -> Vec<SequenceRecord> {
        match &self.store {
            Store::Memory(m) => m.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect(),
            Store::Catalog(c) => c.snapshot().sequences.values().cloned().collect(),
        }
    }

    /// The next `n` values of `name`.
    pub fn next(&self, name: &str, n: usize) -> Result<Vec<i64>> {
        let rec = self.store.get(name).ok_or_else(|| undefined(name))?;
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let mut state = *live
            .entry(name.to_string())
            .or_insert(Live { last: rec.last_value, is_called: rec.is_called, reserved: 0 });
        if state.reserved < n as u64 {
            // Reserve n + BLOCK values (fewer at the end of a sequence that does not
            // cycle) and make the end durable before handing any of them out.
            let (mut last, mut called, mut steps) = (state.last, state.is_called, 0u64);
            while steps < n as u64 + BLOCK {
                match step(&rec, last, called) {
                    Some(v) => {
                        last = v;
                        called = true;
                        steps += 1;
                    }
                    None => break,
                }
            }
            if steps < n as u64 {
                return Err(exhausted(&rec));
            }
            self.store.set_position(name, last, true)?;
            state.reserved = steps;
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let v = step(&rec, state.last, state.is_called).ok_or_else(|| exhausted(&rec))?;
            state.last = v;
            state.is_called = true;
            state.reserved -= 1;
            out.push(v);
        }
        live.insert(name.to_string(), state);
        Ok(out)
    }

    /// `setval(name, value, is_called)`: durable at once.
    pub fn set(&self, name: &str, value: i64, is_called: bool) -> Result<i64> {
        let rec = self.store.get(name).ok_or_else(|| undefined(name))?;
        if value < rec.min || value > rec.max {
            return Err(Error::State(
                "22003",
                format!("setval: value {value} is out of bounds for sequence \"{name}\" ({} .. {})", rec.min, rec.max),
            ));
        }
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        self.store.set_position(name, value, is_called)?;
        live.insert(name.to_string(), Live { last: value, is_called, reserved: 0 });
        Ok(value)
    }

    /// `(last_value, is_called)` as `pg_sequences` and `SELECT * FROM seq` show it:
    /// the last value handed out (not the end of the reserved block).
    pub fn position(&self, rec: &SequenceRecord) -> (i64, bool) {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        match live.get(&rec.name) {
            Some(l) => (l.last, l.is_called),
            None => (rec.last_value, rec.is_called),
        }
    }

    /// Write every sequence's true position (a clean shutdown): the next start goes
    /// on from the last value handed out, not past the reserved block. Blocks are
    /// reserved again afterwards, so values handed out later stay covered.
    pub fn flush(&self) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        for (name, l) in live.iter_mut() {
            if l.reserved > 0 && self.store.set_position(name, l.last, l.is_called).is_ok() {
                l.reserved = 0;
            }
        }
    }

    /// Forget a dropped or altered sequence's block.
    pub fn forget(&self, name: &str) {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
    }
}

/// A sequence name as `nextval('…')` takes it: `x`, `"X"`, `public.x`.
pub fn resolve_name(text: &str) -> Result<String> {
    let mut parts = vec![];
    let mut cur = String::new();
    let mut chars = text.trim().chars().peekable();
    let mut quoted_any = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted_any = true;
                while let Some(q) = chars.next() {
                    if q == '"' {
                        if chars.peek() == Some(&'"') {
                            chars.next();
                            cur.push('"');
                        } else {
                            break;
                        }
                    } else {
                        cur.push(q);
                    }
                }
            }
            '.' => parts.push(std::mem::take(&mut cur)),
            c => cur.extend(c.to_lowercase()),
        }
    }
    parts.push(cur);
    let name = parts.pop().unwrap_or_default();
    let _ = quoted_any;
    // The catalog key: the bare name in public (and a session's pg_temp), else
    // `schema.name` (catalog/schemas.rs).
    let schema = match parts.as_slice() {
        [] => None,
        [s] | [_, s] if parts.len() == 1 || parts[0] == "lakehouse" => Some(s.as_str()),
        _ => return Err(undefined(text)),
    };
    if name.is_empty() {
        return Err(undefined(text));
    }
    Ok(match schema {
        None | Some("public" | "pg_temp") => name,
        Some(s) => super::schemas::key(Some(s), &name),
    })
}

/// May `id` use `rec`: its owner, a superuser, or (for an owned sequence) whoever may
/// insert into (`write` false) or owns (`write` true) the table that owns it.
pub fn sequence_access(state: &crate::catalog::CatalogState, id: &crate::catalog::roles::Identity, rec: &SequenceRecord, write: bool) -> bool {
    use crate::catalog::roles::{Object, Privilege, may, owns};
    if id.superuser {
        return true;
    }
    if rec.owner.as_deref().is_some_and(|o| state.roles.effective(&id.user).contains(o)) {
        return true;
    }
    match &rec.owned_by {
        Some((table, _)) => {
            let t = Object::Table(table.clone());
            if write { owns(state, id, &t) } else { may(state, id, &t, Privilege::Insert) || may(state, id, &t, Privilege::Update) }
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    #[test]
    fn names_resolve_as_regclass_text_does() {
        assert_eq!(resolve_name("t_id_seq").unwrap(), "t_id_seq");
        assert_eq!(resolve_name("T_Id_Seq").unwrap(), "t_id_seq");
        assert_eq!(resolve_name("\"T_id\"").unwrap(), "T_id");
        assert_eq!(resolve_name("public.s").unwrap(), "s");
        assert_eq!(resolve_name("other.s").unwrap(), "other.s");
        assert_eq!(resolve_name("a.b.c").unwrap_err().sqlstate(), "42P01");
    }

    #[test]
    fn values_after_a_restart_are_never_repeated() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Arc::new(Catalog::open(dir.path()).unwrap());
        let rec = new_record("s", &SequenceOptions::default(), None).unwrap();
        catalog.update(|s| Ok(s.sequences.insert("s".into(), rec))).unwrap();
        let seqs = Sequences::new(catalog.clone());
        assert_eq!(seqs.next("s", 3).unwrap(), vec![1, 2, 3]);
        // A crash: the allocator is gone, the catalog is what was written.
        let seqs = Sequences::new(catalog.clone());
        let after = seqs.next("s", 1).unwrap()[0];
        assert!(after > 3, "{after}");
        assert_eq!(seqs.set("s", 10, false).unwrap(), 10);
        assert_eq!(seqs.next("s", 2).unwrap(), vec![10, 11]);
        // A clean stop writes the true position; values after it are reserved again.
        seqs.flush();
        assert_eq!(seqs.next("s", 1).unwrap(), vec![12]);
        assert!(Sequences::new(catalog.clone()).next("s", 1).unwrap()[0] > 12, "12 was reserved again before it was handed out");
        let seqs = Sequences::new(catalog.clone());
        let before = seqs.next("s", 1).unwrap()[0];
        seqs.flush();
        assert_eq!(Sequences::new(catalog.clone()).next("s", 1).unwrap(), vec![before + 1]);
    }

    #[test]
    fn a_bounded_sequence_ends_or_cycles() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Arc::new(Catalog::open(dir.path()).unwrap());
        let o = SequenceOptions { max: Some(Some(3)), ..Default::default() };
        let rec = new_record("s", &o, None).unwrap();
        catalog.update(|s| Ok(s.sequences.insert("s".into(), rec.clone()))).unwrap();
        let seqs = Sequences::new(catalog.clone());
        assert_eq!(seqs.next("s", 3).unwrap(), vec![1, 2, 3]);
        assert_eq!(seqs.next("s", 1).unwrap_err().sqlstate(), "2200H");
        let mut cyc = rec;
        cyc.name = "c".into();
        cyc.cycle = true;
        catalog.update(|s| Ok(s.sequences.insert("c".into(), cyc))).unwrap();
        assert_eq!(seqs.next("c", 5).unwrap(), vec![1, 2, 3, 1, 2]);
    }
}
