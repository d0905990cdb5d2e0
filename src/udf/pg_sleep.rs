//! `pg_sleep(seconds)`, as PostgreSQL's: the statement waits that long per row. The
//! wait is a timer, not a held thread, so a cancel, `statement_timeout` or a client
//! that hangs up ends it at once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, Float64Array, new_null_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::async_udf::{AsyncScalarUDF, AsyncScalarUDFImpl};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

use crate::error::Error;

/// The longest single wait (PostgreSQL has none; a `Duration` does).
const MAX_SECONDS: f64 = 1e9;

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgSleep {
    signature: Signature,
}

pub fn udf() -> ScalarUDF {
    let f = PgSleep { signature: Signature::uniform(1, vec![DataType::Float64], Volatility::Volatile) };
    AsyncScalarUDF::new(Arc::new(f)).into_scalar_udf()
}

impl ScalarUDFImpl for PgSleep {
    fn name(&self) -> &str {
        "pg_sleep"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// PostgreSQL's is `void`: an empty value.
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Err(Error::NotSupported("pg_sleep() in this position (use it in a SELECT list or WHERE)".into()).into_datafusion())
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for PgSleep {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let seconds = match &args.args[..] {
            [ColumnarValue::Array(a)] => cast(a, &DataType::Float64)?,
            [ColumnarValue::Scalar(s)] => cast(&s.to_array_of_size(n)?, &DataType::Float64)?,
            _ => return Err(Error::InvalidParameter("pg_sleep takes one argument: seconds".into()).into_datafusion()),
        };
        let seconds = seconds.as_any().downcast_ref::<Float64Array>().ok_or_else(|| Error::Internal("pg_sleep argument".into()).into_datafusion())?;
        for i in 0..seconds.len() {
            if seconds.is_null(i) {
                continue;
            }
            let s = seconds.value(i);
            if s.is_finite() && s > 0.0 {
                tokio::time::sleep(Duration::from_secs_f64(s.min(MAX_SECONDS))).await;
            }
        }
        Ok(ColumnarValue::Array(new_null_array(&DataType::Utf8, n)))
    }
}
