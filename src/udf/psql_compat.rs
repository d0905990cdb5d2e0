//! Catalog functions psql's `\df` calls that datafusion-pg-catalog does not provide:
//! `pg_function_is_visible(oid)` (every function lakehouse has is on the search path,
//! so: true), `pg_get_function_result(oid)` and `pg_get_function_arguments(oid)`
//! (DataFusion functions are overloaded by signature rather than described by one
//! result type, so these answer NULL, which psql prints as blank).

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, new_null_array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PsqlCompatUdf {
    name: &'static str,
    returns: DataType,
    signature: Signature,
}

impl ScalarUDFImpl for PsqlCompatUdf {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(self.returns.clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let visible = self.returns == DataType::Boolean;
        Ok(match &args.args[0] {
            ColumnarValue::Scalar(s) if visible => {
                ColumnarValue::Scalar(ScalarValue::Boolean((!s.is_null()).then_some(true)))
            }
            ColumnarValue::Scalar(_) => ColumnarValue::Scalar(ScalarValue::Utf8(None)),
            ColumnarValue::Array(a) if visible => ColumnarValue::Array(std::sync::Arc::new(
                (0..a.len()).map(|i| (!a.is_null(i)).then_some(true)).collect::<BooleanArray>(),
            )),
            ColumnarValue::Array(a) => {
                let nulls: ArrayRef = new_null_array(&DataType::Utf8, a.len());
                ColumnarValue::Array(nulls)
            }
        })
    }
}

fn udf(name: &'static str, returns: DataType) -> ScalarUDF {
    ScalarUDF::new_from_impl(PsqlCompatUdf { name, returns, signature: Signature::any(1, Volatility::Stable) })
}

pub fn functions() -> Vec<ScalarUDF> {
    vec![
        udf("pg_function_is_visible", DataType::Boolean),
        udf("pg_get_function_result", DataType::Utf8),
        udf("pg_get_function_arguments", DataType::Utf8),
    ]
}
