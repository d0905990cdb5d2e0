//! `pg_typeof(any)`: the PostgreSQL type name of its argument, as its column would be
//! sent (pg_types.rs).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(PgTypeof { signature: Signature::any(1, Volatility::Immutable) })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PgTypeof {
    signature: Signature,
}

impl ScalarUDFImpl for PgTypeof {
    fn name(&self) -> &str {
        "pg_typeof"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, _: ReturnFieldArgs) -> DfResult<FieldRef> {
        Ok(Arc::new(Field::new("pg_typeof", DataType::Utf8, false)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let t = crate::pg_types::field_pg_type(&args.arg_fields[0]);
        // format_type's spelling: the SQL name, arrays as `element[]`.
        let spelled = |name: &str| -> String {
            match name {
                "int2" => "smallint",
                "int4" => "integer",
                "int8" => "bigint",
                "float4" => "real",
                "float8" => "double precision",
                "bool" => "boolean",
                "timestamp" => "timestamp without time zone",
                "timestamptz" => "timestamp with time zone",
                "time" => "time without time zone",
                "timetz" => "time with time zone",
                "varchar" => "character varying",
                "bpchar" => "character",
                other => other,
            }
            .to_string()
        };
        let name = match t.name().strip_prefix('_') {
            Some(element) => format!("{}[]", spelled(element)),
            None => spelled(t.name()),
        };
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(name))))
    }
}
