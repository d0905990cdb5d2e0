//! `nextval`, `currval`, `setval`, `lastval` and `pg_get_serial_sequence` (#14), as
//! PostgreSQL defines them. Each session gets its own copies: `currval`/`lastval`
//! answer from the values *this session* drew (55000 before any), and the privilege
//! checks know who asks. The allocator is the engine's (catalog/sequences.rs).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, Int64Builder, StringArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility};

use crate::catalog::Catalog;
use crate::catalog::roles::Identity;
use crate::catalog::sequences::{Sequences, resolve_name, sequence_access, undefined};
use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Nextval,
    Currval,
    Setval,
    Lastval,
    SerialSequence,
}

/// What one session drew: per sequence, and the last of all.
#[derive(Debug, Default)]
pub struct Drawn {
    values: HashMap<String, i64>,
    last: Option<String>,
}

pub struct SequenceFn {
    kind: Kind,
    name: &'static str,
    signature: Signature,
    me: Identity,
    session: String,
    sequences: Arc<Sequences>,
    /// The session's temporary sequences (SERIAL columns of its temporary tables).
    temp: Arc<Sequences>,
    catalog: Arc<Catalog>,
    drawn: Arc<Mutex<Drawn>>,
}

impl PartialEq for SequenceFn {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.session == other.session
    }
}
impl Eq for SequenceFn {}
impl std::hash::Hash for SequenceFn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
        self.session.hash(state);
    }
}
impl std::fmt::Debug for SequenceFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}(session {})", self.name, self.session)
    }
}

/// The functions for one session of `me`.
pub fn functions(me: &Identity, session: &str, sequences: &Arc<Sequences>, temp: &Arc<Sequences>, catalog: &Arc<Catalog>) -> Vec<ScalarUDF> {
    let drawn = Arc::new(Mutex::new(Drawn::default()));
    let text = || TypeSignature::String(1);
    [
        (Kind::Nextval, "nextval", Signature::one_of(vec![text()], Volatility::Volatile)),
        (Kind::Currval, "currval", Signature::one_of(vec![text()], Volatility::Volatile)),
        (
            Kind::Setval,
            "setval",
            Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Int64]),
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Int64, DataType::Boolean]),
                ],
                Volatility::Volatile,
            ),
        ),
        (Kind::Lastval, "lastval", Signature::nullary(Volatility::Volatile)),
        (Kind::SerialSequence, "pg_get_serial_sequence", Signature::one_of(vec![TypeSignature::String(2)], Volatility::Stable)),
    ]
    .into_iter()
    .map(|(kind, name, signature)| {
        ScalarUDF::new_from_impl(SequenceFn {
            kind,
            name,
            signature,
            me: me.clone(),
            session: session.to_string(),
            sequences: sequences.clone(),
            temp: temp.clone(),
            catalog: catalog.clone(),
            drawn: drawn.clone(),
        })
    })
    .collect()
}

fn strings(a: &ColumnarValue, rows: usize) -> DfResult<StringArray> {
    let arr = a.to_array(rows)?;
    let arr = cast(&arr, &DataType::Utf8)?;
    Ok(arr.as_any().downcast_ref::<StringArray>().cloned().unwrap_or_else(|| StringArray::from(Vec::<Option<String>>::new())))
}

impl SequenceFn {
    /// The sequence `name` names, and the allocator that holds it (the session's
    /// temporary ones first, as pg_temp is first on PostgreSQL's search path).
    fn checked(&self, name: &str, write: bool) -> Result<(String, &Sequences), Error> {
        let name = resolve_name(name)?;
        if self.temp.record(&name).is_some() {
            return Ok((name, &self.temp));
        }
        let state = self.catalog.snapshot();
        let rec = state.sequences.get(&name).ok_or_else(|| undefined(&name))?;
        if !sequence_access(&state, &self.me, rec, write) {
            return Err(Error::InsufficientPrivilege(format!(
                "permission denied for sequence {name}: its owner, a superuser, or a role that may insert into its table can use it"
            )));
        }
        Ok((name, &self.sequences))
    }

    fn record(&self, name: &str, value: i64) {
        let mut d = self.drawn.lock().unwrap_or_else(|p| p.into_inner());
        d.values.insert(name.to_string(), value);
        d.last = Some(name.to_string());
    }

    fn nextval(&self, args: &ScalarFunctionArgs) -> Result<ColumnarValue, Error> {
        let rows = args.number_rows;
        if let ColumnarValue::Scalar(s) = &args.args[0] {
            // The common case, a DEFAULT or nextval('s') in a select list: one
            // allocation for the whole batch.
            let Some(text) = scalar_text(s) else {
                return Ok(ColumnarValue::Scalar(ScalarValue::Int64(None)));
            };
            let (name, store) = self.checked(&text, false)?;
            let values = store.next(&name, rows.max(1))?;
            if let Some(&last) = values.last() {
                self.record(&name, last);
            }
            let out: ArrayRef = std::sync::Arc::new(Int64Array::from(values));
            return Ok(if rows == 1 && args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
                ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
            } else {
                ColumnarValue::Array(out)
            });
        }
        let names = strings(&args.args[0], rows)?;
        let mut out = Int64Builder::with_capacity(rows);
        for i in 0..names.len() {
            if names.is_null(i) {
                out.append_null();
                continue;
            }
            let (name, store) = self.checked(names.value(i), false)?;
            let v = store.next(&name, 1)?[0];
            self.record(&name, v);
            out.append_value(v);
        }
        Ok(ColumnarValue::Array(std::sync::Arc::new(out.finish())))
    }

    fn currval(&self, args: &ScalarFunctionArgs) -> Result<ColumnarValue, Error> {
        let names = strings(&args.args[0], args.number_rows)?;
        let mut out = Int64Builder::with_capacity(names.len());
        for i in 0..names.len() {
            if names.is_null(i) {
                out.append_null();
                continue;
            }
            let (name, _) = self.checked(names.value(i), false)?;
            let d = self.drawn.lock().unwrap_or_else(|p| p.into_inner());
            match d.values.get(&name) {
                Some(v) => out.append_value(*v),
                None => return Err(Error::State("55000", format!("currval of sequence \"{name}\" is not yet defined in this session"))),
            }
        }
        Ok(super::one_or_many(std::sync::Arc::new(out.finish()), args))
    }

    fn setval(&self, args: &ScalarFunctionArgs) -> Result<ColumnarValue, Error> {
        let rows = args.number_rows;
        let names = strings(&args.args[0], rows)?;
        let values = cast(&args.args[1].to_array(rows)?, &DataType::Int64)?;
        let values = values.as_any().downcast_ref::<Int64Array>().cloned().ok_or_else(|| Error::Internal("setval value".into()))?;
        let called = match args.args.get(2) {
            Some(c) => c.to_array(rows)?.as_any().downcast_ref::<BooleanArray>().cloned(),
            None => None,
        };
        let mut out = Int64Builder::with_capacity(rows);
        for i in 0..names.len() {
            if names.is_null(i) || values.is_null(i) || called.as_ref().is_some_and(|c| c.is_null(i)) {
                out.append_null();
                continue;
            }
            let (name, store) = self.checked(names.value(i), true)?;
            let is_called = called.as_ref().is_none_or(|c| c.value(i));
            let v = store.set(&name, values.value(i), is_called)?;
            if is_called {
                self.record(&name, v);
            }
            out.append_value(v);
        }
        Ok(super::one_or_many(std::sync::Arc::new(out.finish()), args))
    }

    fn lastval(&self) -> Result<ColumnarValue, Error> {
        let d = self.drawn.lock().unwrap_or_else(|p| p.into_inner());
        match d.last.as_ref().and_then(|n| d.values.get(n)) {
            Some(v) => Ok(ColumnarValue::Scalar(ScalarValue::Int64(Some(*v)))),
            None => Err(Error::State("55000", "lastval is not yet defined in this session".into())),
        }
    }

    /// `pg_get_serial_sequence('t', 'id')`: `public.t_id_seq`, or NULL when the
    /// column owns no sequence.
    fn serial_sequence(&self, args: &ScalarFunctionArgs) -> Result<ColumnarValue, Error> {
        let rows = args.number_rows;
        let (tables, columns) = (strings(&args.args[0], rows)?, strings(&args.args[1], rows)?);
        let state = self.catalog.snapshot();
        let mut out = StringBuilder::new();
        for i in 0..tables.len() {
            if tables.is_null(i) || columns.is_null(i) {
                out.append_null();
                continue;
            }
            // `attrelid::regclass::text` arrives as the table's OID written out.
            let named = match tables.value(i).parse::<i32>() {
                Ok(oid) => {
                    let dir = crate::table_providers::pg_relations::Directory::build(&state, None);
                    let t = dir.table(oid).ok_or_else(|| Error::TableNotFound(tables.value(i).to_string()))?;
                    if t.namespace == "public" { t.name.clone() } else { format!("{}.{}", t.namespace, t.name) }
                }
                Err(_) => tables.value(i).to_string(),
            };
            let table = resolve_name(&named).map_err(|_| Error::TableNotFound(named.clone()))?;
            // The column argument is a name, not an identifier: its case is kept.
            let column = columns.value(i).trim_matches('"');
            let owns = |s: &crate::catalog::sequences::SequenceRecord| s.owned_by.as_ref().is_some_and(|(t, c)| t == &table && (c == column || c.eq_ignore_ascii_case(column)));
            if let Some(s) = self.temp.records().into_iter().find(|s| owns(s)) {
                out.append_value(format!("{}.{}", crate::table_providers::temp::TEMP_SCHEMA, s.name));
                continue;
            }
            if !state.datasets.contains_key(&table) {
                return Err(Error::TableNotFound(table));
            }
            match state.sequences.values().find(|s| owns(s)) {
                Some(s) => match crate::catalog::schemas::split(&s.name, |x| state.schemas.contains_key(x)) {
                    (Some(schema), name) => out.append_value(format!("{schema}.{name}")),
                    (None, name) => out.append_value(format!("public.{name}")),
                },
                None => out.append_null(),
            }
        }
        Ok(super::one_or_many(std::sync::Arc::new(out.finish()), args))
    }
}

fn scalar_text(s: &ScalarValue) -> Option<String> {
    match s {
        ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => v.clone(),
        ScalarValue::Dictionary(_, inner) => scalar_text(inner),
        _ => None,
    }
}

impl ScalarUDFImpl for SequenceFn {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(match self.kind {
            Kind::SerialSequence => DataType::Utf8,
            _ => DataType::Int64,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let r = match self.kind {
            Kind::Nextval => self.nextval(&args),
            Kind::Currval => self.currval(&args),
            Kind::Setval => self.setval(&args),
            Kind::Lastval => self.lastval(),
            Kind::SerialSequence => self.serial_sequence(&args),
        };
        r.map_err(Error::into_datafusion)
    }
}
