//! PostgreSQL's session-level advisory locks (#14): `pg_advisory_lock`,
//! `pg_advisory_lock_shared`, `pg_try_advisory_lock[_shared]`, `pg_advisory_unlock[_shared]`
//! (one bigint key, or two int4 keys) and `pg_advisory_unlock_all()`. Locks are held by
//! the session (backends.rs) until unlocked or the session ends; a waiting
//! `pg_advisory_lock` is a timer-free wait that a cancel or `statement_timeout` ends.
//! The transaction-level `_xact_` forms come with transactions.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, BooleanBuilder, Int64Array, new_null_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::async_udf::{AsyncScalarUDF, AsyncScalarUDFImpl};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility};

use crate::backends::AdvisoryLocks;
use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Lock,
    TryLock,
    Unlock,
    UnlockAll,
}

#[derive(Debug)]
pub struct AdvisoryLockFn {
    name: &'static str,
    op: Op,
    shared: bool,
    signature: Signature,
    pid: i32,
    locks: Arc<AdvisoryLocks>,
}

impl PartialEq for AdvisoryLockFn {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name && self.pid == o.pid
    }
}
impl Eq for AdvisoryLockFn {}
impl std::hash::Hash for AdvisoryLockFn {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.name.hash(h);
        self.pid.hash(h);
    }
}

/// The functions of the session `pid`.
pub fn functions(pid: i32, locks: &Arc<AdvisoryLocks>) -> Vec<ScalarUDF> {
    let keys = || {
        Signature::one_of(
            vec![
                TypeSignature::Exact(vec![DataType::Int64]),
                TypeSignature::Exact(vec![DataType::Int32, DataType::Int32]),
                TypeSignature::Exact(vec![DataType::Int64, DataType::Int64]),
            ],
            Volatility::Volatile,
        )
    };
    let all = [
        ("pg_advisory_lock", Op::Lock, false),
        ("pg_advisory_lock_shared", Op::Lock, true),
        ("pg_try_advisory_lock", Op::TryLock, false),
        ("pg_try_advisory_lock_shared", Op::TryLock, true),
        ("pg_advisory_unlock", Op::Unlock, false),
        ("pg_advisory_unlock_shared", Op::Unlock, true),
        ("pg_advisory_unlock_all", Op::UnlockAll, false),
    ];
    all.into_iter()
        .map(|(name, op, shared)| {
            let signature = if op == Op::UnlockAll { Signature::nullary(Volatility::Volatile) } else { keys() };
            let f = AdvisoryLockFn { name, op, shared, signature, pid, locks: locks.clone() };
            if op == Op::Lock { AsyncScalarUDF::new(Arc::new(f)).into_scalar_udf() } else { ScalarUDF::new_from_impl(f) }
        })
        .collect()
}

/// The 64-bit key of each row: the bigint, or two int4s as PostgreSQL combines them.
fn keys(args: &ScalarFunctionArgs) -> DfResult<Vec<Option<i64>>> {
    let n = args.number_rows;
    let col = |i: usize| -> DfResult<Int64Array> {
        let a = cast(&args.args[i].to_array(n)?, &DataType::Int64)?;
        Ok(a.as_any().downcast_ref::<Int64Array>().cloned().unwrap_or_else(|| Int64Array::from(Vec::<i64>::new())))
    };
    let first = col(0)?;
    let second = if args.args.len() > 1 { Some(col(1)?) } else { None };
    Ok((0..first.len())
        .map(|i| {
            if first.is_null(i) || second.as_ref().is_some_and(|s| s.is_null(i)) {
                return None;
            }
            Some(match &second {
                Some(s) => ((first.value(i) as i32 as i64) << 32) | (s.value(i) as i32 as u32 as i64),
                None => first.value(i),
            })
        })
        .collect())
}

fn void(n: usize) -> ColumnarValue {
    ColumnarValue::Array(new_null_array(&DataType::Utf8, n.max(1)))
}

impl ScalarUDFImpl for AdvisoryLockFn {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// PostgreSQL's lock and unlock_all return `void` (an empty value here).
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(match self.op {
            Op::Lock | Op::UnlockAll => DataType::Utf8,
            Op::TryLock | Op::Unlock => DataType::Boolean,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        match self.op {
            Op::UnlockAll => {
                self.locks.release_all(self.pid);
                Ok(void(args.number_rows))
            }
            Op::TryLock | Op::Unlock => {
                let mut out = BooleanBuilder::new();
                for k in keys(&args)? {
                    match k {
                        None => out.append_null(),
                        Some(k) if self.op == Op::TryLock => out.append_value(self.locks.try_lock(k, self.pid, self.shared)),
                        Some(k) => out.append_value(self.locks.unlock(k, self.pid, self.shared)),
                    }
                }
                Ok(ColumnarValue::Array(Arc::new(out.finish())))
            }
            Op::Lock => Err(Error::NotSupported(format!("{}() in this position (use it in a SELECT list)", self.name)).into_datafusion()),
        }
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for AdvisoryLockFn {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        for k in keys(&args)?.into_iter().flatten() {
            self.locks.lock(k, self.pid, self.shared).await;
        }
        Ok(void(n))
    }
}
