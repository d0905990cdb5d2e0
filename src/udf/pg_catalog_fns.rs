//! pg_catalog functions that read lakehouse's catalog by OID (#14), for psql's `\d`
//! and ORMs' reflection: `pg_get_constraintdef`, `pg_get_indexdef`, `pg_get_viewdef`,
//! `obj_description`, `col_description`, `pg_table_is_visible`, `pg_type_is_visible`,
//! `pg_get_expr`, `pg_relation_is_publishable`, `pg_collation_is_visible`.
//! OIDs are table_providers/pg_relations.rs's; each session gets its own copies, which
//! see its temporary tables.

use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanBuilder, Int64Array, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility};

use super::one_or_many;
use crate::catalog::Catalog;
use crate::table_providers::pg_relations::{self, Directory, SessionTemp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    ConstraintDef,
    IndexDef,
    ViewDef,
    ObjDescription,
    ColDescription,
    TableIsVisible,
    TypeIsVisible,
    GetExpr,
    RelationIsPublishable,
    CollationIsVisible,
    RegClass,
}

pub struct CatalogFn {
    kind: Kind,
    name: &'static str,
    signature: Signature,
    catalog: Arc<Catalog>,
    temp: SessionTemp,
    session: String,
}

impl std::fmt::Debug for CatalogFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.name)
    }
}
impl PartialEq for CatalogFn {
    fn eq(&self, o: &Self) -> bool {
        self.kind == o.kind && self.session == o.session
    }
}
impl Eq for CatalogFn {}
impl std::hash::Hash for CatalogFn {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.kind.hash(h);
        self.session.hash(h);
    }
}

pub fn functions(catalog: &Arc<Catalog>, temp: &SessionTemp, session: &str) -> Vec<ScalarUDF> {
    use DataType::*;
    let oid_forms = |extra: Vec<Vec<DataType>>| {
        // An OID written as a quoted constant ('16384') arrives as text.
        let mut forms = vec![TypeSignature::Exact(vec![Int64]), TypeSignature::Exact(vec![Int32]), TypeSignature::Exact(vec![Utf8])];
        forms.extend(extra.into_iter().map(TypeSignature::Exact));
        Signature::one_of(forms, Volatility::Stable)
    };
    [
        (Kind::ConstraintDef, "pg_get_constraintdef", oid_forms(vec![vec![Int64, Boolean], vec![Int32, Boolean]])),
        (Kind::IndexDef, "pg_get_indexdef", oid_forms(vec![vec![Int64, Int64, Boolean], vec![Int32, Int64, Boolean], vec![Int32, Int32, Boolean]])),
        (Kind::ViewDef, "pg_get_viewdef", oid_forms(vec![vec![Int64, Boolean], vec![Int32, Boolean], vec![Utf8], vec![Utf8, Boolean]])),
        (Kind::ObjDescription, "obj_description", oid_forms(vec![vec![Int64, Utf8], vec![Int32, Utf8]])),
        (Kind::ColDescription, "col_description", Signature::one_of(vec![TypeSignature::Exact(vec![Int64, Int64]), TypeSignature::Exact(vec![Int32, Int32]), TypeSignature::Exact(vec![Int32, Int64]), TypeSignature::Exact(vec![Int32, Int16])], Volatility::Stable)),
        (Kind::TableIsVisible, "pg_table_is_visible", oid_forms(vec![])),
        (
            Kind::GetExpr,
            "pg_get_expr",
            Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![Utf8, Int32]),
                    TypeSignature::Exact(vec![Utf8, Int64]),
                    TypeSignature::Exact(vec![Utf8, Int32, Boolean]),
                    TypeSignature::Exact(vec![Utf8, Int64, Boolean]),
                ],
                Volatility::Stable,
            ),
        ),
        (Kind::TypeIsVisible, "pg_type_is_visible", oid_forms(vec![])),
        (Kind::CollationIsVisible, "pg_collation_is_visible", oid_forms(vec![])),
        (Kind::RegClass, REGCLASS_FN, Signature::any(1, Volatility::Stable)),
        (Kind::RelationIsPublishable, "pg_relation_is_publishable", oid_forms(vec![])),
    ]
    .into_iter()
    .map(|(kind, name, signature)| ScalarUDF::new_from_impl(CatalogFn { kind, name, signature, catalog: catalog.clone(), temp: temp.clone(), session: session.to_string() }))
    .collect()
}

/// `expr::regclass` of a column or expression (engine/pg_compat.rs writes it as a call
/// of this): an OID as it is, a relation name looked up on the search path.
pub const REGCLASS_FN: &str = "lh_regclass";

fn ints(a: &ColumnarValue, n: usize) -> DfResult<Int64Array> {
    let arr = cast(&a.to_array(n)?, &DataType::Int64)?;
    Ok(arr.as_any().downcast_ref::<Int64Array>().cloned().unwrap_or_else(|| Int64Array::from(Vec::<i64>::new())))
}

impl CatalogFn {
    fn text(&self, args: &ScalarFunctionArgs, f: impl Fn(&Directory, i32, Option<i64>) -> Option<String>) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let dir = Directory::build(&self.catalog.snapshot(), Some(&self.temp));
        let oids = ints(&args.args[0], n)?;
        let second = match args.args.get(1) {
            Some(a) if matches!(a.data_type(), DataType::Int16 | DataType::Int32 | DataType::Int64) => Some(ints(a, n)?),
            _ => None,
        };
        let mut out = StringBuilder::new();
        for i in 0..oids.len() {
            if oids.is_null(i) {
                out.append_null();
                continue;
            }
            let extra = second.as_ref().and_then(|s| (!s.is_null(i)).then(|| s.value(i)));
            match f(&dir, oids.value(i) as i32, extra) {
                Some(v) => out.append_value(v),
                None => out.append_null(),
            }
        }
        Ok(one_or_many(Arc::new(out.finish()), args))
    }
}

/// The query of a view definition as stored (`CREATE VIEW … AS query`).
fn view_query(definition: &str) -> String {
    let upper = definition.to_ascii_uppercase();
    match upper.find(" AS ") {
        Some(at) if upper.starts_with("CREATE") => definition[at + 4..].trim().to_string(),
        _ => definition.to_string(),
    }
}

impl ScalarUDFImpl for CatalogFn {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(match self.kind {
            Kind::TableIsVisible | Kind::TypeIsVisible | Kind::RelationIsPublishable | Kind::CollationIsVisible => DataType::Boolean,
            Kind::RegClass => DataType::Int32,
            _ => DataType::Utf8,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        match self.kind {
            Kind::ConstraintDef => self.text(&args, |d, oid, _| d.constraint(oid).map(|c| pg_relations::constraint_def(d, c))),
            Kind::IndexDef => self.text(&args, |d, oid, col| {
                let i = d.index(oid)?;
                match col {
                    Some(c) if c > 0 => i.columns.get(c as usize - 1).map(|x| pg_relations::quote_ident(x)),
                    _ => Some(pg_relations::index_def(i)),
                }
            }),
            Kind::RegClass => {
                let n = args.number_rows;
                let a = args.args[0].to_array(n)?;
                if !matches!(a.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
                    let ints = cast(&a, &DataType::Int32)?;
                    return Ok(one_or_many(ints, &args));
                }
                let names = cast(&a, &DataType::Utf8)?;
                let names = names.as_any().downcast_ref::<datafusion::arrow::array::StringArray>().cloned().unwrap_or_else(|| vec![None::<&str>; 0].into());
                let dir = Directory::build(&self.catalog.snapshot(), Some(&self.temp));
                let mut out = datafusion::arrow::array::Int32Builder::new();
                for i in 0..names.len() {
                    if names.is_null(i) {
                        out.append_null();
                        continue;
                    }
                    let name = names.value(i).trim();
                    if let Ok(oid) = name.parse::<i32>() {
                        out.append_value(oid);
                        continue;
                    }
                    let parts: Vec<String> = name.split('.').map(|p| if p.starts_with('"') { p.trim_matches('"').to_string() } else { p.to_lowercase() }).collect();
                    let found = match parts.as_slice() {
                        [rel] => ["pg_temp", "public", "pg_catalog"].iter().find_map(|ns| dir.oid_of(ns, rel)),
                        [ns, rel] => dir.oid_of(ns, rel),
                        _ => None,
                    };
                    match found {
                        Some(oid) => out.append_value(oid),
                        None => return Err(crate::error::Error::TableNotFound(name.to_string()).into_datafusion()),
                    }
                }
                Ok(one_or_many(Arc::new(out.finish()), &args))
            }
            // Our adbin/conbin/indexprs hold the expression's SQL text already.
            Kind::GetExpr => Ok(args.args[0].clone()),
            Kind::ViewDef => {
                if matches!(args.args[0].data_type(), DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8) {
                    return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)));
                }
                self.text(&args, |d, oid, _| {
                    let t = d.table(oid)?;
                    t.record.materialized.clone().or_else(|| t.record.definition.as_deref().map(view_query))
                })
            }
            Kind::ObjDescription => self.text(&args, |d, oid, _| {
                d.table(oid)
                    .and_then(|t| t.record.comment.clone())
                    .or_else(|| d.index(oid).and_then(|i| i.comment.clone()))
                    .or_else(|| d.constraint(oid).and_then(|c| c.record.comment.clone()))
                    .or_else(|| d.sequences.iter().find(|s| s.0 == oid).and_then(|s| s.2.comment.clone()))
            }),
            Kind::ColDescription => self.text(&args, |d, oid, col| {
                let t = d.table(oid)?;
                let schema = t.record.arrow_schema().ok().flatten()?;
                let i = usize::try_from(col?).ok()?.checked_sub(1)?;
                let name = schema.fields().get(i)?.name().clone();
                t.record.column_comments.get(&name).cloned()
            }),
            Kind::TableIsVisible | Kind::TypeIsVisible | Kind::RelationIsPublishable | Kind::CollationIsVisible => {
                let n = args.number_rows;
                let oids = ints(&args.args[0], n)?;
                // Types and collations all live in pg_catalog (or public): visible.
                let dir = if !matches!(self.kind, Kind::TypeIsVisible | Kind::CollationIsVisible) { Some(Directory::build(&self.catalog.snapshot(), Some(&self.temp))) } else { None };
                let mut out = BooleanBuilder::new();
                for i in 0..oids.len() {
                    if oids.is_null(i) {
                        out.append_null();
                        continue;
                    }
                    // Visible: on the search path (pg_temp, pg_catalog, public); a
                    // relation in another schema needs its schema named.
                    let visible = match &dir {
                        // A permanent table (not a view, temporary or system table).
                        Some(d) if self.kind == Kind::RelationIsPublishable => {
                            let oid = oids.value(i) as i32;
                            d.table(oid).is_some_and(|t| t.record.definition.is_none() && t.record.materialized.is_none())
                                && d.namespace_of(oid).is_some_and(|ns| !matches!(ns, "pg_temp" | "pg_catalog"))
                        }
                        Some(d) => d.namespace_of(oids.value(i) as i32).is_none_or(|ns| matches!(ns, "public" | "pg_temp" | "pg_catalog")),
                        None => true,
                    };
                    out.append_value(visible);
                }
                Ok(one_or_many(Arc::new(out.finish()), &args))
            }
        }
    }
}
