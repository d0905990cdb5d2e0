//! `has_table_privilege([role,] table, privilege)` and
//! `has_schema_privilege([role,] schema, privilege)` as PostgreSQL answers them
//! (#13): from the catalog's owners, grants and memberships. Each session gets its
//! own copy, which knows the session's user (the library's versions say true to
//! everything). `privilege` is one or more names separated by commas, any of them
//! enough, `WITH GRANT OPTION` allowed.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanBuilder, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility};

use crate::catalog::Catalog;
use crate::catalog::roles::{Identity, Object, Privilege, may};
use crate::error::Error;

pub struct HasPrivilege {
    name: &'static str,
    signature: Signature,
    me: Identity,
    catalog: Arc<Catalog>,
    /// Whether a role name is a superuser (a catalog role, or lakehouse.toml's).
    superuser: Arc<dyn Fn(&str) -> bool + Send + Sync>,
}

impl PartialEq for HasPrivilege {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.me.user == other.me.user
    }
}
impl Eq for HasPrivilege {}
impl std::hash::Hash for HasPrivilege {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.me.user.hash(state);
    }
}

impl std::fmt::Debug for HasPrivilege {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}(for {})", self.name, self.me.user)
    }
}

/// Both functions for a session of `me`.
pub fn functions(me: &Identity, catalog: &Arc<Catalog>, superuser: Arc<dyn Fn(&str) -> bool + Send + Sync>) -> Vec<ScalarUDF> {
    ["has_table_privilege", "has_schema_privilege"]
        .into_iter()
        .map(|name| {
            ScalarUDF::new_from_impl(HasPrivilege {
                name,
                signature: Signature::one_of(
                    vec![TypeSignature::String(2), TypeSignature::String(3)],
                    Volatility::Stable,
                ),
                me: me.clone(),
                catalog: catalog.clone(),
                superuser: superuser.clone(),
            })
        })
        .collect()
}

fn privileges(text: &str) -> std::result::Result<Vec<Privilege>, Error> {
    text.split(',')
        .map(|p| {
            let p = p.trim().to_uppercase();
            let p = p.strip_suffix(" WITH GRANT OPTION").unwrap_or(&p).trim().to_string();
            match p.as_str() {
                "SELECT" => Ok(Privilege::Select),
                "INSERT" => Ok(Privilege::Insert),
                "UPDATE" => Ok(Privilege::Update),
                "DELETE" => Ok(Privilege::Delete),
                "TRUNCATE" => Ok(Privilege::Truncate),
                "REFERENCES" => Ok(Privilege::References),
                "TRIGGER" => Ok(Privilege::Trigger),
                "USAGE" => Ok(Privilege::Usage),
                // Every role may create tables in public; nothing else takes CREATE.
                "CREATE" | "MAINTAIN" => Ok(Privilege::Usage),
                other => Err(Error::InvalidParameter(format!("unrecognized privilege type: \"{other}\""))),
            }
        })
        .collect()
}

impl ScalarUDFImpl for HasPrivilege {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let arrays: Vec<ArrayRef> = ColumnarValue::values_to_arrays(&args.args)?
            .iter()
            .map(|a| cast(a, &DataType::Utf8))
            .collect::<Result<_, _>>()?;
        let text = |i: usize| arrays[i].as_any().downcast_ref::<StringArray>().cloned();
        let (role, object, privilege) = match arrays.len() {
            3 => (text(0), text(1), text(2)),
            _ => (None, text(0), text(1)),
        };
        let (Some(object), Some(privilege)) = (object, privilege) else {
            return Err(Error::Internal("has_*_privilege arguments".into()).into_datafusion());
        };
        let state = self.catalog.snapshot();
        let mut out = BooleanBuilder::with_capacity(rows);
        for row in 0..object.len() {
            if object.is_null(row) || privilege.is_null(row) || role.as_ref().is_some_and(|r| r.is_null(row)) {
                out.append_null();
                continue;
            }
            let who = match &role {
                Some(r) => Identity { user: r.value(row).to_string(), superuser: (self.superuser)(r.value(row)) },
                None => self.me.clone(),
            };
            let name = object.value(row);
            let name = name.strip_prefix("lakehouse.").filter(|r| r.starts_with("public.")).unwrap_or(name);
            let mut wanted_usage = false;
            let target = if self.name == "has_schema_privilege" {
                match state.attachments.contains_key(name) {
                    true => Some(Object::Schema(name.to_string())),
                    // public, lakehouse, pg_catalog, information_schema: USAGE and
                    // CREATE (public) for every role.
                    false => None,
                }
            } else {
                let table = name.strip_prefix("public.").unwrap_or(name).trim_matches('"');
                let schema = name.split_once('.').map(|(s, _)| s);
                if state.datasets.contains_key(table) {
                    Some(Object::Table(table.to_string()))
                } else if let Some(s) = schema.filter(|s| state.attachments.contains_key(*s)) {
                    // An attachment's table: read with USAGE on the attachment.
                    wanted_usage = true;
                    Some(Object::Schema(s.to_string()))
                } else if name.contains('.') {
                    // A system table (lakehouse.*, pg_catalog.*): readable by all.
                    None
                } else {
                    return Err(Error::TableNotFound(name.to_string()).into_datafusion());
                }
            };
            let mut wanted = privileges(privilege.value(row)).map_err(Error::into_datafusion)?;
            if wanted_usage {
                wanted = vec![Privilege::Usage];
            }
            out.append_value(match target {
                Some(t) => wanted.iter().any(|p| may(&state, &who, &t, *p)),
                None => true,
            });
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}
