//! Schemas made by `CREATE SCHEMA` (#14). `public` is always there and has no record.
//! A table, view or sequence in schema `s` is keyed `s.<name>` in the catalog (one
//! in `public` by its bare name, as before schemas existed, so older catalogs read
//! unchanged).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SchemaRecord {
    pub name: String,
    /// The role that owns it (AUTHORIZATION, else its creator).
    pub owner: Option<String>,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// Names no CREATE SCHEMA may take: the built-in schemas (PostgreSQL reserves `pg_`).
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains('.') || name.contains('\0') {
        return Err(Error::InvalidParameter(format!("invalid schema name \"{name}\" (no dots)")));
    }
    if name.starts_with("pg_") || matches!(name, "public" | "information_schema" | "lakehouse") {
        return Err(Error::State("42939", format!("unacceptable schema name \"{name}\"\nDETAIL: The prefix \"pg_\" and the names public, information_schema and lakehouse are reserved for system schemas.")));
    }
    Ok(())
}

/// The catalog key of `table` in `schema` (None or `public`: the bare name).
pub fn key(schema: Option<&str>, table: &str) -> String {
    match schema {
        None | Some("public") => table.to_string(),
        Some(s) => format!("{s}.{table}"),
    }
}

/// A key as (schema, name) when `schema_exists` says its prefix is a schema.
pub fn split<'a>(key: &'a str, schema_exists: impl Fn(&str) -> bool) -> (Option<&'a str>, &'a str) {
    match key.split_once('.') {
        Some((s, t)) if schema_exists(s) => (Some(s), t),
        _ => (None, key),
    }
}

/// The key as SQL: `"s"."t"` or `"t"`.
pub fn sql_ref(key: &str, schema_exists: impl Fn(&str) -> bool) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    match split(key, schema_exists) {
        (Some(s), t) => format!("{}.{}", q(s), q(t)),
        (None, t) => q(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_only_at_known_schemas() {
        assert_eq!(key(Some("s"), "t"), "s.t");
        assert_eq!(key(Some("public"), "t"), "t");
        assert_eq!(split("s.t", |s| s == "s"), (Some("s"), "t"));
        assert_eq!(split("a.b", |s| s == "s"), (None, "a.b"));
        assert_eq!(sql_ref("s.t\"x", |s| s == "s"), "\"s\".\"t\"\"x\"");
        assert_eq!(check_name("pg_x").unwrap_err().sqlstate(), "42939");
        assert!(check_name("analytics").is_ok());
    }
}
