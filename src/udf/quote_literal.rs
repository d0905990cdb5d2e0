//! `quote_literal(x)` and `quote_nullable(x)`, as PostgreSQL's: the value as text in
//! single quotes, quotes doubled; with a backslash in it, backslashes doubled and the
//! literal written `E'…'`. For NULL, quote_literal answers NULL and quote_nullable the
//! word `NULL` (asyncpg's `copy_from_query` and `mogrify` build statements with them).
//! A value of another type is quoted in its PostgreSQL text (udf/pg_text.rs).

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

#[derive(Debug, PartialEq, Eq, Hash)]
struct Quote {
    name: &'static str,
    nullable: bool,
    signature: Signature,
}

pub fn functions() -> Vec<ScalarUDF> {
    [("quote_literal", false), ("quote_nullable", true)]
        .into_iter()
        .map(|(name, nullable)| ScalarUDF::new_from_impl(Quote { name, nullable, signature: Signature::any(1, Volatility::Immutable) }))
        .collect()
}

/// `s` as a string literal.
pub fn quote_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 3);
    if s.contains('\\') {
        out.push('E');
    }
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

impl ScalarUDFImpl for Quote {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let input = args.args[0].to_array(args.number_rows)?;
        let text = super::pg_text::texts(input.as_ref())?;
        let text = text.as_string::<i32>();
        let mut out = StringBuilder::with_capacity(text.len(), text.value_data().len() + 3 * text.len());
        for i in 0..text.len() {
            match (text.is_null(i), self.nullable) {
                (true, true) => out.append_value("NULL"),
                (true, false) => out.append_null(),
                (false, _) => out.append_value(quote_literal(text.value(i))),
            }
        }
        Ok(super::one_or_many(Arc::new(out.finish()), &args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_as_postgres() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal(r"a\b'"), r"E'a\\b'''");
        assert_eq!(quote_literal(""), "''");
    }
}
