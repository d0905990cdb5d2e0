//! `pg_backend_pid()`, `pg_cancel_backend(pid)`, `pg_terminate_backend(pid)` and
//! `txid_current()` (the open BEGIN block's id, else a new one per statement) (#14),
//! as PostgreSQL has them. Each session gets its own copies: `pg_backend_pid` is its
//! process id, and the signal functions know who asks. A role may signal its own
//! sessions; a superuser any; signalling another role's session is 42501. A pid
//! that is no session gives false, as in PostgreSQL.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, BooleanBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

use crate::backends::Backends;
use crate::catalog::roles::Identity;
use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    BackendPid,
    Cancel,
    Terminate,
    Notify,
    TxidCurrent,
}

pub struct BackendFn {
    kind: Kind,
    signature: Signature,
    pid: i32,
    me: Identity,
    backends: Arc<Backends>,
}

impl PartialEq for BackendFn {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.pid == other.pid
    }
}
impl Eq for BackendFn {}
impl std::hash::Hash for BackendFn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
        self.pid.hash(state);
    }
}
impl std::fmt::Debug for BackendFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}(pid {})", self.kind, self.pid)
    }
}

/// The functions of the session with process id `pid`, run by `me`.
pub fn functions(pid: i32, me: &Identity, backends: &Arc<Backends>) -> Vec<ScalarUDF> {
    [
        (Kind::BackendPid, Signature::nullary(Volatility::Stable)),
        (Kind::Cancel, pid_signature()),
        (Kind::Terminate, pid_signature()),
        (Kind::Notify, Signature::uniform(2, vec![DataType::Utf8], Volatility::Volatile)),
        (Kind::TxidCurrent, Signature::nullary(Volatility::Stable)),
    ]
    .into_iter()
    .map(|(kind, signature)| ScalarUDF::new_from_impl(BackendFn { kind, signature, pid, me: me.clone(), backends: backends.clone() }))
    .collect()
}

/// int4 (PostgreSQL's), or an int8 literal.
fn pid_signature() -> Signature {
    use datafusion::logical_expr::TypeSignature;
    Signature::one_of(vec![TypeSignature::Exact(vec![DataType::Int32]), TypeSignature::Exact(vec![DataType::Int64])], Volatility::Volatile)
}

impl BackendFn {
    fn signal(&self, pid: i32) -> Result<bool, Error> {
        let Some(target) = self.backends.get(pid) else { return Ok(false) };
        let what = if self.kind == Kind::Cancel { "cancel" } else { "terminate" };
        if !self.me.superuser && target.user != self.me.user {
            return Err(Error::InsufficientPrivilege(format!(
                "permission denied to {what} process {pid}: only a superuser or the role \"{}\" whose session it is may",
                target.user
            )));
        }
        Ok(if self.kind == Kind::Cancel { target.cancel() } else { target.terminate() })
    }
}

impl ScalarUDFImpl for BackendFn {
    fn name(&self) -> &str {
        match self.kind {
            Kind::BackendPid => "pg_backend_pid",
            Kind::Cancel => "pg_cancel_backend",
            Kind::Terminate => "pg_terminate_backend",
            Kind::Notify => "pg_notify",
            Kind::TxidCurrent => "txid_current",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(match self.kind {
            Kind::BackendPid => DataType::Int32,
            Kind::TxidCurrent => DataType::Int64,
            // void
            Kind::Notify => DataType::Utf8,
            Kind::Cancel | Kind::Terminate => DataType::Boolean,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        if self.kind == Kind::BackendPid {
            return Ok(ColumnarValue::Scalar(ScalarValue::Int32(Some(self.pid))));
        }
        if self.kind == Kind::TxidCurrent {
            let id = self.backends.get(self.pid).map(|b| b.txid_current()).ok_or_else(|| Error::Internal("this session's backend is gone".into()).into_datafusion())?;
            return Ok(ColumnarValue::Scalar(ScalarValue::Int64(Some(id))));
        }
        if self.kind == Kind::Notify {
            let n = args.number_rows;
            let channels = cast(&args.args[0].to_array(n)?, &DataType::Utf8)?;
            let payloads = cast(&args.args[1].to_array(n)?, &DataType::Utf8)?;
            let (channels, payloads) = (channels.as_string::<i32>(), payloads.as_string::<i32>());
            for i in 0..channels.len() {
                if channels.is_null(i) {
                    return Err(Error::InvalidParameter("channel name cannot be empty".into()).into_datafusion());
                }
                let payload = if payloads.is_null(i) { "" } else { payloads.value(i) };
                crate::backends::check_payload(payload).map_err(Error::into_datafusion)?;
                self.backends.notify(channels.value(i), payload, self.pid);
            }
            return Ok(ColumnarValue::Array(datafusion::arrow::array::new_null_array(&DataType::Utf8, n.max(1))));
        }
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let pids = cast(&args.args[0].to_array(args.number_rows)?, &DataType::Int64)?;
        let pids = pids.as_any().downcast_ref::<datafusion::arrow::array::Int64Array>().ok_or_else(|| Error::Internal("pid argument".into()).into_datafusion())?;
        let mut out = BooleanBuilder::with_capacity(pids.len());
        for i in 0..pids.len() {
            if pids.is_null(i) {
                out.append_null();
            } else {
                // A pid outside int4 is no session's.
                let signalled = match i32::try_from(pids.value(i)) {
                    Ok(pid) => self.signal(pid).map_err(Error::into_datafusion)?,
                    Err(_) => false,
                };
                out.append_value(signalled);
            }
        }
        let out = out.finish();
        Ok(if scalar && out.len() == 1 { ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?) } else { ColumnarValue::Array(Arc::new(out)) })
    }
}
