//! Enums and domains in plans (#14): the type planner that resolves their names (in
//! casts and column definitions), the marks their fields carry, and `lakehouse_type_in`,
//! the check every value passes when it becomes one (catalog/types.rs holds the types).
//!
//! An enum value is text marked with its type (`lakehouse.type` = `enum` and its OID,
//! name and schema), so the wire and `pg_attribute` give the enum's OID; a domain value
//! is its base type's value marked with the domain's OID (`lakehouse.domain`), so the
//! wire gives the base type, as PostgreSQL sends domains, and `pg_attribute` the
//! domain. A cast to either, and an INSERT (or COPY FROM) into a column of either, goes
//! through [`TypeIn`]: an enum value must be one of its labels (22P02), a domain value
//! must pass its base type's checks, NOT NULL (23502) and every CHECK (23514). Labels
//! and constraints are read from the catalog when the statement runs, so a label added
//! by `ALTER TYPE … ADD VALUE` counts at once.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result as DfResult};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::TypePlanner;
use datafusion::logical_expr::{ColumnarValue, Expr, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::sql::sqlparser::ast;

use super::vector::VECTOR_MARK;
use crate::catalog::types::{TypeKind, TypeRecord};
use crate::catalog::{Catalog, CatalogState};
use crate::error::Error;
use crate::table_providers::pg_relations::{split_key, type_oid};

/// The OID of the enum a text field holds (with `lakehouse.type` = `enum`).
pub const TYPE_OID: &str = "lakehouse.type_oid";
/// The enum's name and schema (the wire type's name, pg_typeof).
pub const TYPE_NAME: &str = "lakehouse.type_name";
pub const TYPE_SCHEMA: &str = "lakehouse.type_schema";
/// The OID of the domain a field holds.
pub const DOMAIN: &str = "lakehouse.domain";

/// The keys a value's user type travels in (engine/field_metadata.rs keeps them).
pub const KEYS: &[&str] = &[TYPE_OID, TYPE_NAME, TYPE_SCHEMA, DOMAIN];

fn df(e: Error) -> datafusion::error::DataFusionError {
    e.into_datafusion()
}

/// The field of a value of enum `name` in `schema`.
pub fn enum_field(schema: &str, name: &str, oid: i32) -> Field {
    Field::new("", DataType::Utf8, true).with_metadata(
        [
            (VECTOR_MARK.to_string(), "enum".to_string()),
            (TYPE_OID.to_string(), oid.to_string()),
            (TYPE_NAME.to_string(), name.to_string()),
            (TYPE_SCHEMA.to_string(), schema.to_string()),
        ]
        .into(),
    )
}

/// An enum field's type: (OID, name, schema).
pub fn enum_of(f: &Field) -> Option<(u32, &str, &str)> {
    let m = f.metadata();
    if m.get(VECTOR_MARK).is_none_or(|v| v != "enum") {
        return None;
    }
    let oid = m.get(TYPE_OID)?.parse::<i32>().ok()? as u32;
    Some((oid, m.get(TYPE_NAME).map_or("", |s| s.as_str()), m.get(TYPE_SCHEMA).map_or("public", |s| s.as_str())))
}

/// The domain a field holds, by OID.
pub fn domain_of(f: &Field) -> Option<i32> {
    f.metadata().get(DOMAIN)?.parse().ok()
}

/// The user type whose checks a value of field `f` (or, for an array, of its
/// elements) must pass: its domain, else its enum.
fn checked_type(f: &Field) -> Option<i32> {
    let f = match f.data_type() {
        DataType::List(item) | DataType::LargeList(item) if domain_of(f).is_none() => item.as_ref(),
        _ => f,
    };
    domain_of(f).or_else(|| enum_of(f).map(|(oid, _, _)| oid as i32))
}

/// The catalog key of a type name as written (unquoted parts folded to lower case):
/// `name` in `public`, `schema.name` in a schema made by CREATE SCHEMA.
pub fn resolve(state: &CatalogState, name: &ast::ObjectName) -> Option<String> {
    let part = |p: &ast::ObjectNamePart| p.as_ident().map(|i| if i.quote_style.is_some() { i.value.clone() } else { i.value.to_lowercase() });
    let key = match name.0.as_slice() {
        [n] => part(n)?,
        [s, n] => crate::catalog::schemas::key(Some(&part(s)?), &part(n)?),
        _ => return None,
    };
    state.types.contains_key(&key).then_some(key)
}

/// A type's OID from its key.
pub fn oid_of(state: &CatalogState, key: &str) -> i32 {
    let (ns, name) = split_key(state, key);
    type_oid(&ns, &name)
}

/// The type with OID `oid`.
pub fn by_oid(state: &CatalogState, oid: i32) -> Option<(&String, &TypeRecord)> {
    state.types.iter().find(|(k, _)| oid_of(state, k) == oid)
}

/// The field a value of type `key` has.
pub fn field_of(state: &CatalogState, key: &str) -> crate::error::Result<Field> {
    let rec = state.types.get(key).ok_or_else(|| Error::UndefinedObject(format!("type \"{key}\" does not exist")))?;
    let (ns, name) = split_key(state, key);
    let oid = type_oid(&ns, &name);
    match &rec.kind {
        TypeKind::Enum { .. } => Ok(enum_field(&ns, &name, oid)),
        TypeKind::Domain { field, .. } => {
            let schema = crate::catalog::datasets::decode_schema(field)?;
            let base = schema.fields().first().ok_or_else(|| Error::Internal(format!("domain {key} has no base type")))?;
            let mut m = base.metadata().clone();
            m.insert(DOMAIN.to_string(), oid.to_string());
            Ok(base.as_ref().clone().with_name("").with_metadata(m))
        }
    }
}

// ------------------------------------------------------------------- type planner

/// Enum and domain names in casts and column definitions, after `fallback` (the
/// built-in names) found nothing.
#[derive(Debug)]
pub struct UserTypePlanner {
    pub catalog: Arc<Catalog>,
    pub fallback: Option<Arc<dyn TypePlanner>>,
}

impl TypePlanner for UserTypePlanner {
    fn plan_type_field(&self, sql_type: &ast::DataType) -> DfResult<Option<FieldRef>> {
        // Built-in names first, as PostgreSQL searches pg_catalog before public.
        if let Some(f) = &self.fallback {
            if let Some(field) = f.plan_type_field(sql_type)? {
                return Ok(Some(field));
            }
        }
        let ast::DataType::Custom(name, modifiers) = sql_type else { return Ok(None) };
        let state = self.catalog.snapshot();
        // DataFusion plans no other named type: say so as PostgreSQL does (42704).
        let Some(key) = resolve(&state, name) else { return Err(df(Error::UndefinedObject(format!("type \"{name}\" does not exist")))) };
        if !modifiers.is_empty() {
            return Err(df(Error::Syntax(format!("type modifier is not allowed for type \"{key}\""))));
        }
        field_of(&state, &key).map(|f| Some(Arc::new(f))).map_err(df)
    }
}

impl UserTypePlanner {
    /// The planner sessions use: ours, then `vector`, then datafusion-pg-catalog's oid
    /// aliases.
    pub fn new(catalog: Arc<Catalog>) -> UserTypePlanner {
        use datafusion_pg_catalog::pg_catalog::oid_type_planner::PgOidTypePlanner;
        let oids = super::vector::VectorTypePlanner { fallback: Some(Arc::new(PgOidTypePlanner)) };
        UserTypePlanner { catalog, fallback: Some(Arc::new(oids)) }
    }

    /// The field a type written in SQL has when the planners know it, arrays of such
    /// types included (DataFusion plans an array's element itself); None for types
    /// DataFusion's own conversion plans.
    pub fn field(&self, sql_type: &ast::DataType) -> DfResult<Option<Field>> {
        use ast::ArrayElemTypeDef;
        match sql_type {
            ast::DataType::Array(ArrayElemTypeDef::AngleBracket(inner) | ArrayElemTypeDef::SquareBracket(inner, None)) => {
                Ok(self.field(inner)?.map(|f| Field::new("", DataType::List(Arc::new(f.with_name("item"))), true)))
            }
            t => Ok(self.plan_type_field(t)?.map(|f| f.as_ref().clone())),
        }
    }
}

// ------------------------------------------------------------------------ checks

/// CHECK expressions planned once per (SQL, base type).
type Checks = Mutex<HashMap<(String, DataType), Arc<dyn PhysicalExpr>>>;

/// Does every value of `values` belong to type `oid`? Err with PostgreSQL's SQLSTATE
/// and message when one does not.
pub fn validate(state: &CatalogState, oid: i32, values: &ArrayRef, planned: &Checks) -> crate::error::Result<()> {
    validate_depth(state, oid, values, planned, 0)
}

fn validate_depth(state: &CatalogState, oid: i32, values: &ArrayRef, planned: &Checks, depth: usize) -> crate::error::Result<()> {
    if depth > 32 {
        return Err(Error::Internal("domains nested more than 32 deep".into()));
    }
    let Some((key, rec)) = by_oid(state, oid) else {
        // Dropped since the statement was planned.
        return Err(Error::UndefinedObject(format!("type with OID {oid} does not exist")));
    };
    let (_, name) = split_key(state, key);
    match &rec.kind {
        TypeKind::Enum { labels } => {
            let values = match values.data_type() {
                DataType::List(_) | DataType::LargeList(_) => flatten(values)?,
                _ => values.clone(),
            };
            let text = cast(&values, &DataType::Utf8)?;
            let text = text.as_string::<i32>();
            for i in 0..text.len() {
                if text.is_valid(i) && !labels.iter().any(|l| l == text.value(i)) {
                    return Err(Error::InvalidText(format!("invalid input value for enum {name}: \"{}\"", text.value(i))));
                }
            }
            Ok(())
        }
        TypeKind::Domain { field, not_null, checks, .. } => {
            let base = crate::catalog::datasets::decode_schema(field)?;
            if let Some(inner) = base.fields().first().and_then(|f| checked_type(f)) {
                validate_depth(state, inner, values, planned, depth + 1)?;
            }
            if *not_null && values.null_count() > 0 {
                return Err(Error::State("23502", format!("domain {name} does not allow null values")));
            }
            for (constraint, sql) in checks {
                let ok = evaluate(sql, values, planned)?;
                if (0..ok.len()).any(|i| ok.is_valid(i) && !ok.value(i)) {
                    return Err(Error::State("23514", format!("value for domain {name} violates check constraint \"{constraint}\"")));
                }
            }
            Ok(())
        }
    }
}

/// The elements of a list array's rows (of its slice only: a sliced list's child
/// array holds the other rows' elements too).
fn flatten(values: &ArrayRef) -> crate::error::Result<ArrayRef> {
    fn within<O: datafusion::arrow::array::OffsetSizeTrait>(l: &datafusion::arrow::array::GenericListArray<O>) -> ArrayRef {
        let o = l.value_offsets();
        let (first, last) = (o.first().map_or(0, |x| x.as_usize()), o.last().map_or(0, |x| x.as_usize()));
        l.values().slice(first, last - first)
    }
    Ok(match values.data_type() {
        DataType::List(_) => within(values.as_list::<i32>()),
        DataType::LargeList(_) => within(values.as_list::<i64>()),
        _ => values.clone(),
    })
}

/// A domain's CHECK over `values` (the column `value`): one bool (or NULL) each.
fn evaluate(sql: &str, values: &ArrayRef, planned: &Checks) -> crate::error::Result<datafusion::arrow::array::BooleanArray> {
    let schema = Arc::new(Schema::new(vec![Field::new("value", values.data_type().clone(), true)]));
    let key = (sql.to_string(), values.data_type().clone());
    let expr = {
        let mut cache = planned.lock().unwrap_or_else(|p| p.into_inner());
        match cache.get(&key) {
            Some(e) => e.clone(),
            None => {
                let e = plan_check(sql, &schema)?;
                if cache.len() > 256 {
                    cache.clear();
                }
                cache.insert(key, e.clone());
                e
            }
        }
    };
    let batch = RecordBatch::try_new(schema, vec![values.clone()]).map_err(|e| Error::Internal(e.to_string()))?;
    let out = expr.evaluate(&batch)?.into_array(batch.num_rows())?;
    let out = cast(&out, &DataType::Boolean)?;
    Ok(out.as_boolean().clone())
}

/// A CHECK expression over `value` planned for `schema` (CREATE DOMAIN plans it once
/// to refuse one that does not plan).
pub fn plan_check(sql: &str, schema: &Arc<Schema>) -> crate::error::Result<Arc<dyn PhysicalExpr>> {
    let ctx = datafusion::prelude::SessionContext::new();
    let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
    let expr = ctx.parse_sql_expr(sql, &df_schema)?;
    Ok(ctx.create_physical_expr(expr, &df_schema)?)
}

/// `lakehouse_type_in(value)`: the value, once it passed its type's checks.
#[derive(Debug)]
struct TypeIn {
    catalog: Arc<Catalog>,
    oid: i32,
    field: FieldRef,
    signature: Signature,
    planned: Arc<Checks>,
}

impl PartialEq for TypeIn {
    fn eq(&self, other: &Self) -> bool {
        self.oid == other.oid && self.field == other.field
    }
}

impl Eq for TypeIn {}

impl Hash for TypeIn {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.oid.hash(state);
        self.field.hash(state);
    }
}

impl ScalarUDFImpl for TypeIn {
    fn name(&self) -> &str {
        "lakehouse_type_in"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(self.field.data_type().clone())
    }

    fn return_field_from_args(&self, _: ReturnFieldArgs) -> DfResult<FieldRef> {
        Ok(Arc::new(self.field.as_ref().clone().with_name(self.name()).with_nullable(true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let values = args.args[0].to_array(args.number_rows)?;
        let values = match (self.field.data_type(), values.data_type()) {
            // Arrow's cast keeps the list's own element field (without our marks).
            (DataType::List(item), DataType::List(_)) => {
                let l = values.as_list::<i32>();
                Arc::new(datafusion::arrow::array::ListArray::try_new(item.clone(), l.offsets().clone(), cast(l.values(), item.data_type())?, l.nulls().cloned())?)
            }
            (want, got) if want == got => values,
            (want, _) => cast(&values, want)?,
        };
        validate(&self.catalog.snapshot(), self.oid, &values, &self.planned).map_err(df)?;
        if matches!(values.data_type(), DataType::List(_)) {
            // A list scalar would lose its element field's marks (ScalarValue keeps
            // only the name and nullability).
            return Ok(ColumnarValue::Array(values));
        }
        Ok(super::one_or_many(values, &args))
    }
}

fn type_in(catalog: &Arc<Catalog>, oid: i32, field: FieldRef, planned: &Arc<Checks>, e: Expr) -> Expr {
    let udf = TypeIn { catalog: catalog.clone(), oid, field, signature: Signature::any(1, Volatility::Immutable), planned: planned.clone() };
    Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(ScalarUDF::new_from_impl(udf)), vec![e]))
}

// ------------------------------------------------------------------ analyzer rule

/// Casts to an enum or domain, and INSERTs into columns of one, go through
/// [`TypeIn`].
#[derive(Debug)]
pub struct UserTypeInput {
    catalog: Arc<Catalog>,
    planned: Arc<Checks>,
}

impl UserTypeInput {
    pub fn new(catalog: Arc<Catalog>) -> UserTypeInput {
        UserTypeInput { catalog, planned: Arc::default() }
    }
}

impl AnalyzerRule for UserTypeInput {
    fn name(&self) -> &str {
        "user_type_input"
    }

    fn analyze(&self, plan: LogicalPlan, _: &ConfigOptions) -> DfResult<LogicalPlan> {
        if self.catalog.snapshot().types.is_empty() {
            return Ok(plan);
        }
        let plan = plan
            .transform_up_with_subqueries(|p| {
                p.map_expressions(|e| {
                    e.transform_up(|e| {
                        let (inner, field, oid) = match e {
                            Expr::Cast(c) => match checked_type(&c.field) {
                                Some(oid) => (c.expr, c.field, oid),
                                None => return Ok(Transformed::no(Expr::Cast(c))),
                            },
                            Expr::TryCast(c) => match checked_type(&c.field) {
                                Some(oid) => (c.expr, c.field, oid),
                                None => return Ok(Transformed::no(Expr::TryCast(c))),
                            },
                            other => return Ok(Transformed::no(other)),
                        };
                        let plain = Expr::Cast(datafusion::logical_expr::Cast::new(inner, field.data_type().clone()));
                        Ok(Transformed::yes(type_in(&self.catalog, oid, field, &self.planned, plain)))
                    })
                })
            })?
            .data;
        super::check_inserts(plan, |f, column| checked_type(f).map(|oid| type_in(&self.catalog, oid, f.clone(), &self.planned, column)))
    }
}

// ------------------------------------------------------------------- format_type

/// `format_type(oid, typmod)` (datafusion-pg-catalog's) knowing the catalog's types
/// and `vector`: SQLAlchemy and psql name a column's type with it.
#[derive(Debug)]
pub struct FormatType {
    inner: Arc<ScalarUDF>,
    catalog: Arc<Catalog>,
}

impl PartialEq for FormatType {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner
    }
}

impl Eq for FormatType {}

impl Hash for FormatType {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.name().hash(state);
    }
}

impl FormatType {
    pub fn udf(inner: Arc<ScalarUDF>, catalog: Arc<Catalog>) -> ScalarUDF {
        ScalarUDF::new_from_impl(FormatType { inner, catalog })
    }

    /// The names of the catalog's types and their arrays, by OID (a type outside
    /// `public` schema-qualified, as format_type writes one off the search path).
    fn names(&self) -> HashMap<i64, String> {
        let state = self.catalog.snapshot();
        let mut out = HashMap::new();
        for key in state.types.keys() {
            let (ns, name) = split_key(&state, key);
            let quote = |s: &str| if s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') { s.to_string() } else { format!("\"{}\"", s.replace('"', "\"\"")) };
            let shown = if ns == "public" { quote(&name) } else { format!("{}.{}", quote(&ns), quote(&name)) };
            out.insert(i64::from(type_oid(&ns, &name)), shown.clone());
            out.insert(i64::from(crate::table_providers::pg_relations::array_type_oid(&ns, &name)), format!("{shown}[]"));
        }
        out
    }
}

impl ScalarUDFImpl for FormatType {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        self.inner.return_type(args)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let oids = cast(&args.args[0].to_array(n)?, &DataType::Int64)?;
        let mods = match args.args.get(1) {
            Some(m) => Some(cast(&m.to_array(n)?, &DataType::Int64)?),
            None => None,
        };
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let base = cast(&self.inner.invoke_with_args(args)?.to_array(n)?, &DataType::Utf8)?;
        let (oids, base) = (oids.as_primitive::<datafusion::arrow::datatypes::Int64Type>(), base.as_string::<i32>());
        let names = self.names();
        let mut out = datafusion::arrow::array::StringBuilder::with_capacity(base.len(), base.value_data().len());
        for i in 0..base.len() {
            let typmod = mods.as_ref().and_then(|m| m.as_primitive_opt::<datafusion::arrow::datatypes::Int64Type>().filter(|m| m.is_valid(i)).map(|m| m.value(i)));
            let oid = oids.is_valid(i).then(|| oids.value(i));
            let vector = i64::from(super::vector::VECTOR_OID);
            match oid {
                Some(o) if o == vector => out.append_value(match typmod {
                    Some(d) if d > 0 => format!("vector({d})"),
                    _ => "vector".to_string(),
                }),
                Some(o) if o == i64::from(super::vector::VECTOR_ARRAY_OID) => out.append_value("vector[]"),
                Some(o) if names.contains_key(&o) => out.append_value(&names[&o]),
                _ if base.is_null(i) => out.append_null(),
                _ => out.append_value(base.value(i)),
            }
        }
        let out: ArrayRef = Arc::new(out.finish());
        if scalar && out.len() == 1 {
            return Ok(ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&out, 0)?));
        }
        Ok(ColumnarValue::Array(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sliced_list_checks_only_its_own_elements() {
        use datafusion::arrow::array::{ListArray, StringArray};
        use datafusion::arrow::buffer::OffsetBuffer;
        let item = Arc::new(Field::new("item", DataType::Utf8, true));
        let values: ArrayRef = Arc::new(StringArray::from(vec!["bad", "ok", "ok", "worse"]));
        let list = ListArray::new(item, OffsetBuffer::new(vec![0, 1, 3, 4].into()), values, None);
        let middle: ArrayRef = Arc::new(list.slice(1, 1));
        let flat = flatten(&middle).unwrap();
        let flat = flat.as_string::<i32>();
        assert_eq!((0..flat.len()).map(|i| flat.value(i)).collect::<Vec<_>>(), vec!["ok", "ok"]);
    }
}
