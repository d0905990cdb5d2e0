//! Types made by `CREATE TYPE … AS ENUM` and `CREATE DOMAIN` (#14).
//!
//! A type is keyed like a table (`name` in `public`, `schema.name` elsewhere,
//! catalog/schemas.rs). Its OID is a hash of its schema and name, the same in every
//! session and after a restart (as a table's is, table_providers/pg_relations.rs), so
//! a column's `pg_attribute.atttypid` and the wire's type OID agree with `pg_type`.
//!
//! An enum's values are text; its labels are checked wherever a value becomes the type
//! (a cast, an INSERT into a column of it). A domain is its base type with NOT NULL and
//! CHECK constraints checked the same way; on the wire a domain travels as its base
//! type, as PostgreSQL sends it.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TypeRecord {
    /// Its catalog key (`name` or `schema.name`).
    pub name: String,
    pub kind: TypeKind,
    pub owner: Option<String>,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TypeKind {
    /// Labels in their sort order (`pg_enum.enumsortorder` 1, 2, …).
    Enum { labels: Vec<String> },
    /// `base` is the base type as SQL (`integer`, `numeric[]`, another domain's name).
    Domain {
        base: String,
        /// The base type's Arrow field (IPC schema of one field, base64, as a
        /// dataset's schema is kept): what a value of the domain is.
        field: String,
        #[serde(default)]
        not_null: bool,
        #[serde(default)]
        default: Option<String>,
        /// (constraint name, CHECK expression over `VALUE`) in the order declared.
        #[serde(default)]
        checks: Vec<(String, String)>,
    },
}

/// Longest label PostgreSQL takes (NAMEDATALEN - 1).
pub const MAX_LABEL: usize = 63;

/// An enum's labels: at most 63 bytes each and unique (PostgreSQL's rules and SQLSTATEs).
pub fn check_labels(type_name: &str, labels: &[String]) -> Result<()> {
    for (i, l) in labels.iter().enumerate() {
        if l.len() > MAX_LABEL {
            return Err(Error::State("42602", format!("invalid enum label \"{l}\"\nDETAIL: Labels must be {MAX_LABEL} bytes or less.")));
        }
        if labels[..i].contains(l) {
            return Err(Error::State("42710", format!("enum label \"{l}\" used more than once in type \"{type_name}\"")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_checked_as_postgres_checks_them() {
        let ok = vec!["a".to_string(), "b".to_string()];
        assert!(check_labels("t", &ok).is_ok());
        let dup = vec!["a".to_string(), "a".to_string()];
        assert_eq!(check_labels("t", &dup).unwrap_err().sqlstate(), "42710");
        assert_eq!(check_labels("t", &["x".repeat(64)]).unwrap_err().sqlstate(), "42602");
        let rec = TypeRecord { name: "mood".into(), kind: TypeKind::Enum { labels: ok }, owner: None, created_at: String::new(), comment: None };
        let json = serde_json::to_string(&rec).unwrap();
        assert!(json.contains("\"kind\":\"enum\""), "{json}");
        assert_eq!(serde_json::from_str::<TypeRecord>(&json).unwrap(), rec);
    }
}
