//! `version()`: a PostgreSQL-compatible version string that also names lakehouse.
//! Drivers such as SQLAlchemy and JDBC parse `PostgreSQL X.Y` out of it.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};

pub const NAME: &str = "version";
/// The PostgreSQL version lakehouse reports to clients (server_version and version()).
pub const PG_COMPAT_VERSION: &str = "16.6";

pub fn version_string() -> String {
    format!(
        "PostgreSQL {PG_COMPAT_VERSION} (lakehouse {}, Apache DataFusion 54) on x86_64-linux, compiled by rustc",
        env!("CARGO_PKG_VERSION")
    )
}

pub fn version_udf() -> ScalarUDF {
    create_udf(
        NAME,
        vec![],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(|_args: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(version_string()))))
        }),
    )
}
