//! pg_catalog's relation tables from lakehouse's own catalog (#14): `pg_namespace`,
//! `pg_class`, `pg_attribute`, `pg_attrdef`, `pg_constraint`, `pg_index`,
//! `pg_description` and `pg_sequence`, in PostgreSQL's shapes, so the reflection
//! queries of psql, SQLAlchemy and JDBC drivers find tables, views, materialized
//! views, sequences, indexes, columns with their defaults and identity, constraints
//! and comments where PostgreSQL keeps them.
//!
//! Relations are every table of every schema of the session's catalog (its temporary
//! tables in `pg_temp` included), plus what only our catalog knows: sequences, indexes
//! (B-tree, hash, hnsw, and the ones behind PRIMARY KEY and UNIQUE). OIDs are stable:
//! PostgreSQL's own for its system schemas and catalogs, and a hash of the object's
//! schema and name for the rest (see [`rel_oid`]), so the same object has the same
//! OID in every table, every session and after a restart.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, BooleanArray, Float64Array, Int16Array, Int32Array, Int64Array, ListBuilder, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::Result as DfResult;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use super::system::scan_columns;
use crate::catalog::datasets::DatasetRecord;
use crate::catalog::roles::role_oid;
use crate::catalog::sequences::SequenceRecord;
use crate::catalog::{Catalog, CatalogState, schemas};

pub const PG_CATALOG_NAMESPACE: i32 = 11;
pub const PUBLIC_NAMESPACE: i32 = 2200;
/// The OID pg_type's built-in rows (datafusion-pg-catalog's copy of PostgreSQL's) give
/// information_schema's domains, so that pg_type joins pg_namespace for them too.
pub const INFORMATION_SCHEMA_NAMESPACE: i32 = 13_283;
/// pg_class's own OID (pg_description.classoid of a relation's comment).
pub const PG_CLASS_OID: i32 = 1259;
pub const PG_CONSTRAINT_OID: i32 = 2606;

/// Access methods (pg_am): PostgreSQL's btree and hash, and hnsw.
pub const BTREE_AM: i32 = 403;
pub const HASH_AM: i32 = 405;
pub const HNSW_AM: i32 = 16_400 - 1;

fn fnv(parts: &[&str]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h
}

/// A stable OID in PostgreSQL's range for user objects.
fn stable_oid(parts: &[&str]) -> i32 {
    (20_000 + fnv(parts) % 0x7000_0000) as i32
}

/// The OID of a schema.
pub fn namespace_oid(name: &str) -> i32 {
    match name {
        "pg_catalog" => PG_CATALOG_NAMESPACE,
        "public" => PUBLIC_NAMESPACE,
        "information_schema" => INFORMATION_SCHEMA_NAMESPACE,
        other => stable_oid(&["namespace", other]),
    }
}

/// The OID of relation `name` in schema `namespace` (a table, view, sequence or index).
pub fn rel_oid(namespace: &str, name: &str) -> i32 {
    if namespace == "pg_catalog" {
        let fixed = match name {
            "pg_type" => 1247,
            "pg_attribute" => 1249,
            "pg_proc" => 1255,
            "pg_class" => 1259,
            "pg_namespace" => 2615,
            "pg_constraint" => 2606,
            "pg_index" => 2610,
            "pg_description" => 2609,
            "pg_attrdef" => 2604,
            "pg_database" => 1262,
            "pg_sequence" => 2224,
            _ => 0,
        };
        if fixed != 0 {
            return fixed;
        }
    }
    stable_oid(&["rel", namespace, name])
}

/// The OID of type `name` in schema `namespace` (an enum or a domain).
pub fn type_oid(namespace: &str, name: &str) -> i32 {
    stable_oid(&["type", namespace, name])
}

/// The OID of the array type of type `name` (an enum's `_name`).
pub fn array_type_oid(namespace: &str, name: &str) -> i32 {
    stable_oid(&["type[]", namespace, name])
}

/// The OID of label `label` of enum `name` (pg_enum.oid).
pub fn enum_label_oid(namespace: &str, name: &str, label: &str) -> i32 {
    stable_oid(&["enum", namespace, name, label])
}

fn constraint_oid(namespace: &str, table: &str, name: &str) -> i32 {
    stable_oid(&["constraint", namespace, table, name])
}

/// The namespace and bare name of a catalog key.
pub fn split_key(state: &CatalogState, key: &str) -> (String, String) {
    match schemas::split(key, |s| state.schemas.contains_key(s)) {
        (Some(s), t) => (s.to_string(), t.to_string()),
        (None, t) => ("public".to_string(), t.to_string()),
    }
}

/// A session's temporary tables and sequences, reachable from its config
/// (registered as a config extension when the session is made).
#[derive(Debug, Clone)]
pub struct SessionTemp {
    pub tables: Arc<Mutex<BTreeMap<String, DatasetRecord>>>,
    pub sequences: Arc<crate::catalog::sequences::Sequences>,
}

/// A table with what lakehouse knows of it: its record (tables, views, temporary
/// tables) and the namespace it is in.
#[derive(Debug, Clone)]
pub struct TableDef {
    pub oid: i32,
    pub namespace: String,
    pub name: String,
    pub record: DatasetRecord,
    pub temporary: bool,
}

/// An index, as pg_class and pg_index show it.
#[derive(Debug, Clone)]
pub struct IndexDef {
    pub oid: i32,
    pub namespace: String,
    pub name: String,
    pub table_oid: i32,
    pub table: String,
    pub columns: Vec<String>,
    pub attnums: Vec<i16>,
    pub descending: Vec<bool>,
    pub unique: bool,
    pub primary: bool,
    pub am: i32,
    pub method: String,
    pub comment: Option<String>,
    /// The constraint it enforces (PRIMARY KEY / UNIQUE), if any.
    pub constraint: Option<String>,
    pub temporary: bool,
}

/// A constraint, as pg_constraint shows it.
#[derive(Debug, Clone)]
pub struct ConstraintDef {
    pub oid: i32,
    pub namespace: String,
    pub table_oid: i32,
    pub record: crate::catalog::datasets::ConstraintRecord,
    pub attnums: Vec<i16>,
    pub index_oid: i32,
    pub ref_oid: i32,
    pub ref_attnums: Vec<i16>,
}

/// What lakehouse's catalog (and a session's temporary objects) hold, with OIDs.
#[derive(Debug, Default)]
pub struct Directory {
    pub tables: Vec<TableDef>,
    pub indexes: Vec<IndexDef>,
    pub constraints: Vec<ConstraintDef>,
    pub sequences: Vec<(i32, String, SequenceRecord, bool)>,
}

fn attnums_of(rec: &DatasetRecord, columns: &[String]) -> Vec<i16> {
    let schema = rec.arrow_schema().ok().flatten();
    columns
        .iter()
        .map(|c| schema.as_ref().and_then(|s| s.index_of(c).ok()).map(|i| i as i16 + 1).unwrap_or(0))
        .collect()
}

impl Directory {
    pub fn build(state: &CatalogState, temp: Option<&SessionTemp>) -> Directory {
        let mut d = Directory::default();
        let mut add_table = |rec: &DatasetRecord, namespace: String, name: String, temporary: bool| {
            d.tables.push(TableDef { oid: rel_oid(&namespace, &name), namespace, name, record: rec.clone(), temporary });
        };
        for rec in state.datasets.values() {
            let (ns, name) = split_key(state, &rec.name);
            add_table(rec, ns, name, false);
        }
        if let Some(t) = temp {
            for rec in t.tables.lock().unwrap_or_else(|p| p.into_inner()).values() {
                add_table(rec, "pg_temp".into(), rec.name.clone(), true);
            }
        }
        let by_key: BTreeMap<(String, String), i32> = d.tables.iter().map(|t| ((t.namespace.clone(), t.name.clone()), t.oid)).collect();
        for t in &d.tables {
            let rec = &t.record;
            for c in &rec.constraints {
                let oid = constraint_oid(&t.namespace, &t.name, &c.name);
                let attnums = attnums_of(rec, &c.columns);
                let index_oid = if c.kind == "p" || c.kind == "u" { rel_oid(&t.namespace, &c.name) } else { 0 };
                let (ref_oid, ref_attnums) = match &c.references {
                    Some((table, cols)) => {
                        let (ns, name) = if t.temporary { ("pg_temp".to_string(), table.clone()) } else { split_key(state, table) };
                        let ref_rec = if t.temporary { None } else { state.datasets.get(table) };
                        (by_key.get(&(ns, name)).copied().unwrap_or(0), ref_rec.map(|r| attnums_of(r, cols)).unwrap_or_default())
                    }
                    None => (0, vec![]),
                };
                if c.kind == "p" || c.kind == "u" {
                    d.indexes.push(IndexDef {
                        oid: index_oid,
                        namespace: t.namespace.clone(),
                        name: c.name.clone(),
                        table_oid: t.oid,
                        table: t.name.clone(),
                        columns: c.columns.clone(),
                        attnums: attnums.clone(),
                        descending: vec![false; c.columns.len()],
                        unique: true,
                        primary: c.kind == "p",
                        am: BTREE_AM,
                        method: "btree".into(),
                        comment: None,
                        constraint: Some(c.name.clone()),
                        temporary: t.temporary,
                    });
                }
                d.constraints.push(ConstraintDef { oid, namespace: t.namespace.clone(), table_oid: t.oid, record: c.clone(), attnums, index_oid, ref_oid, ref_attnums });
            }
            for i in &rec.indexes {
                d.indexes.push(IndexDef {
                    oid: rel_oid(&t.namespace, &i.name),
                    namespace: t.namespace.clone(),
                    name: i.name.clone(),
                    table_oid: t.oid,
                    table: t.name.clone(),
                    columns: i.columns.clone(),
                    attnums: attnums_of(rec, &i.columns),
                    descending: i.descending.clone(),
                    unique: i.unique,
                    primary: false,
                    am: if i.method == "hash" { HASH_AM } else { BTREE_AM },
                    method: i.method.clone(),
                    comment: i.comment.clone(),
                    constraint: None,
                    temporary: t.temporary,
                });
            }
        }
        for ir in state.indexes.values() {
            let (ns, table) = split_key(state, &ir.table);
            let Some(rec) = state.datasets.get(&ir.table) else { continue };
            let table_oid = rel_oid(&ns, &table);
            d.indexes.push(IndexDef {
                oid: rel_oid(&ns, &ir.name),
                namespace: ns,
                name: ir.name.clone(),
                table_oid,
                table,
                columns: vec![ir.column.clone()],
                attnums: attnums_of(rec, std::slice::from_ref(&ir.column)),
                descending: vec![false],
                unique: false,
                primary: false,
                am: HNSW_AM,
                method: "hnsw".into(),
                comment: ir.comment.clone(),
                constraint: None,
                temporary: false,
            });
        }
        for q in state.sequences.values() {
            let (ns, name) = split_key(state, &q.name);
            d.sequences.push((rel_oid(&ns, &name), ns, q.clone(), false));
        }
        if let Some(t) = temp {
            for q in t.sequences.records() {
                d.sequences.push((rel_oid("pg_temp", &q.name), "pg_temp".into(), q, true));
            }
        }
        d
    }

    pub fn table(&self, oid: i32) -> Option<&TableDef> {
        self.tables.iter().find(|t| t.oid == oid)
    }

    pub fn index(&self, oid: i32) -> Option<&IndexDef> {
        self.indexes.iter().find(|i| i.oid == oid)
    }

    pub fn constraint(&self, oid: i32) -> Option<&ConstraintDef> {
        self.constraints.iter().find(|c| c.oid == oid)
    }

    /// The namespace of relation `oid`, if it is one of ours.
    /// The OID of relation `name` in schema `namespace`, if there is one.
    pub fn oid_of(&self, namespace: &str, name: &str) -> Option<i32> {
        let oid = rel_oid(namespace, name);
        let exists = self.tables.iter().any(|t| t.oid == oid && t.namespace == namespace && t.name == name)
            || self.indexes.iter().any(|i| i.oid == oid && i.namespace == namespace)
            || self.sequences.iter().any(|s| s.0 == oid && s.1 == namespace);
        exists.then_some(oid)
    }

    pub fn namespace_of(&self, oid: i32) -> Option<&str> {
        self.table(oid)
            .map(|t| t.namespace.as_str())
            .or_else(|| self.index(oid).map(|i| i.namespace.as_str()))
            .or_else(|| self.sequences.iter().find(|s| s.0 == oid).map(|s| s.1.as_str()))
    }
}

/// An identifier as PostgreSQL's quote_ident writes it: bare when it is lower-case
/// letters, digits and underscores (not starting with a digit), else double-quoted.
pub fn quote_ident(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain { s.to_string() } else { format!("\"{}\"", s.replace('"', "\"\"")) }
}

/// `pg_get_constraintdef` of a constraint.
pub fn constraint_def(d: &Directory, c: &ConstraintDef) -> String {
    let quote = |s: &str| quote_ident(s);
    let cols = c.record.columns.iter().map(|x| quote(x)).collect::<Vec<_>>().join(", ");
    match c.record.kind.as_str() {
        "p" => format!("PRIMARY KEY ({cols})"),
        "u" => format!("UNIQUE ({cols})"),
        "c" => format!("CHECK (({}))", c.record.check.as_deref().unwrap_or("true")),
        "f" => {
            let (table, ref_cols) = c.record.references.clone().unwrap_or_default();
            let target = match d.table(c.ref_oid) {
                Some(t) if t.namespace != "public" && t.namespace != "pg_temp" => format!("{}.{}", quote(&t.namespace), quote(&t.name)),
                Some(t) => quote(&t.name),
                None => quote(&table),
            };
            let mut s = format!("FOREIGN KEY ({cols}) REFERENCES {target}({})", ref_cols.iter().map(|x| quote(x)).collect::<Vec<_>>().join(", "));
            if let Some(u) = &c.record.on_update {
                s.push_str(&format!(" ON UPDATE {u}"));
            }
            if let Some(del) = &c.record.on_delete {
                s.push_str(&format!(" ON DELETE {del}"));
            }
            s
        }
        other => format!("{other}"),
    }
}

/// `pg_get_indexdef` of an index.
pub fn index_def(i: &IndexDef) -> String {
    let quote = |s: &str| quote_ident(s);
    let cols: Vec<String> = i
        .columns
        .iter()
        .zip(i.descending.iter().chain(std::iter::repeat(&false)))
        .map(|(c, desc)| if *desc { format!("{} DESC", quote(c)) } else { quote(c) })
        .collect();
    let table = if i.namespace == "pg_temp" { quote(&i.table) } else { format!("{}.{}", quote(&i.namespace), quote(&i.table)) };
    format!("CREATE {}INDEX {} ON {table} USING {} ({})", if i.unique { "UNIQUE " } else { "" }, quote(&i.name), i.method, cols.join(", "))
}

/// A relation of pg_class.
struct Rel {
    oid: i32,
    name: String,
    namespace: i32,
    kind: &'static str,
    persistence: &'static str,
    owner: i32,
    natts: i16,
    checks: i16,
    has_index: bool,
    am: i32,
    schema: Option<SchemaRef>,
    table: Option<TableDef>,
}

fn owner_oid(rec: Option<&DatasetRecord>) -> i32 {
    rec.and_then(|r| r.access.owner.as_deref()).map(|o| role_oid(o) as i32).unwrap_or(10)
}

/// Every relation the session sees, and its namespaces.
async fn relations(state: &dyn Session, catalog: &Catalog, catalog_name: &str) -> DfResult<(Vec<(i32, String, i32)>, Vec<Rel>, Directory)> {
    let snapshot = catalog.snapshot();
    let temp = state.config().get_extension::<SessionTemp>();
    let dir = Directory::build(&snapshot, temp.as_deref());
    let mut namespaces = vec![];
    let mut rels = vec![];
    let Some(session) = state.as_any().downcast_ref::<SessionState>() else {
        return Ok((namespaces, rels, dir));
    };
    let Some(cat) = session.catalog_list().catalog(catalog_name) else {
        return Ok((namespaces, rels, dir));
    };
    let mut schema_names = cat.schema_names();
    if !schema_names.iter().any(|s| s == "pg_temp") {
        schema_names.push("pg_temp".into());
    }
    for schema_name in schema_names {
        let ns = namespace_oid(&schema_name);
        let owner = snapshot.schemas.get(&schema_name).and_then(|s| s.owner.as_deref()).map(|o| role_oid(o) as i32).unwrap_or(10);
        namespaces.push((ns, schema_name.clone(), owner));
        let Some(provider) = cat.schema(&schema_name) else { continue };
        let is_remote = snapshot.attachments.contains_key(&schema_name);
        for name in provider.table_names() {
            let oid = rel_oid(&schema_name, &name);
            let table = dir.table(oid).cloned();
            let Ok(Some(t)) = provider.table(&name).await else { continue };
            let schema = t.schema();
            let kind = match (&table, t.table_type()) {
                (Some(td), _) if td.record.materialized.is_some() => "m",
                (Some(td), _) if td.record.is_view() => "v",
                (_, TableType::View) => "v",
                _ if is_remote => "f",
                _ => "r",
            };
            let rec = table.as_ref().map(|t| &t.record);
            let checks = rec.map(|r| r.constraints.iter().filter(|c| c.kind == "c").count() as i16).unwrap_or(0);
            let has_index = dir.indexes.iter().any(|i| i.table_oid == oid);
            rels.push(Rel {
                oid,
                name: name.clone(),
                namespace: ns,
                kind,
                persistence: if schema_name == "pg_temp" { "t" } else { "p" },
                owner: owner_oid(rec),
                natts: schema.fields().len() as i16,
                checks,
                has_index,
                am: if kind == "r" || kind == "m" { 2 } else { 0 },
                schema: Some(schema),
                table,
            });
        }
    }
    for i in &dir.indexes {
        rels.push(Rel {
            oid: i.oid,
            name: i.name.clone(),
            namespace: namespace_oid(&i.namespace),
            kind: "i",
            persistence: if i.temporary { "t" } else { "p" },
            owner: owner_oid(dir.table(i.table_oid).map(|t| &t.record)),
            natts: i.columns.len() as i16,
            checks: 0,
            has_index: false,
            am: i.am,
            schema: None,
            table: None,
        });
    }
    for (oid, ns, q, temporary) in &dir.sequences {
        rels.push(Rel {
            oid: *oid,
            name: schemas::split(&q.name, |s| snapshot.schemas.contains_key(s)).1.to_string(),
            namespace: namespace_oid(ns),
            kind: "S",
            persistence: if *temporary { "t" } else { "p" },
            owner: q.owner.as_deref().map(|o| role_oid(o) as i32).unwrap_or(10),
            natts: 3,
            checks: 0,
            has_index: false,
            am: 0,
            schema: None,
            table: None,
        });
    }
    Ok((namespaces, rels, dir))
}

/// Which table a [`PgRelationTable`] computes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum View {
    Namespace,
    Class,
    Attribute,
    Attrdef,
    Constraint,
    Index,
    Description,
    Sequence,
    Am,
    /// Row security policies: lakehouse has none, so no rows, with PostgreSQL's columns
    /// (psql's `\d` reads them).
    Policy,
    /// Extended statistics objects: none (CREATE STATISTICS is not supported).
    StatisticExt,
    /// Logical replication publications: none.
    Publication,
    PublicationRel,
    PublicationNamespace,
}

pub struct PgRelationTable {
    view: View,
    schema: SchemaRef,
    catalog: Arc<Catalog>,
    catalog_name: String,
}

impl fmt::Debug for PgRelationTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgRelationTable({:?})", self.view)
    }
}

fn oid_field(name: &str, kind: &str) -> Field {
    let mut m = std::collections::HashMap::new();
    m.insert("pg.oid_alias".to_string(), kind.to_string());
    Field::new(name, DataType::Int32, true).with_metadata(m)
}

fn char_field(name: &str) -> Field {
    let mut m = std::collections::HashMap::new();
    m.insert(crate::udf::vector::VECTOR_MARK.to_string(), "char".to_string());
    Field::new(name, DataType::Utf8, true).with_metadata(m)
}

fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn int(name: &str, dt: DataType) -> Field {
    Field::new(name, dt, true)
}

fn flag(name: &str) -> Field {
    Field::new(name, DataType::Boolean, true)
}

fn list16(name: &str) -> Field {
    Field::new(name, DataType::List(Arc::new(Field::new("item", DataType::Int16, true))), true)
}

fn list32(name: &str) -> Field {
    Field::new(name, DataType::List(Arc::new(Field::new("item", DataType::Int32, true))), true)
}

/// PostgreSQL's int2vector / oidvector (pg_index's indkey, indclass, …): arrays sent
/// with their own type, whose text form is space-separated ("1 2").
fn vector_of(list: Field, kind: &str) -> Field {
    list.with_metadata([(crate::udf::vector::VECTOR_MARK.to_string(), kind.to_string())].into())
}

fn schema_of(view: View) -> SchemaRef {
    use DataType::*;
    let fields = match view {
        View::Namespace => vec![oid_field("oid", "oid"), text("nspname"), oid_field("nspowner", "oid"), text("nspacl")],
        View::Class => vec![
            oid_field("oid", "oid"),
            text("relname"),
            oid_field("relnamespace", "regnamespace"),
            oid_field("reltype", "oid"),
            oid_field("reloftype", "oid"),
            oid_field("relowner", "oid"),
            oid_field("relam", "oid"),
            oid_field("relfilenode", "oid"),
            oid_field("reltablespace", "oid"),
            int("relpages", Int32),
            Field::new("reltuples", Float64, true),
            int("relallvisible", Int32),
            oid_field("reltoastrelid", "oid"),
            flag("relhasindex"),
            flag("relisshared"),
            char_field("relpersistence"),
            char_field("relkind"),
            int("relnatts", Int16),
            int("relchecks", Int16),
            flag("relhasrules"),
            flag("relhastriggers"),
            flag("relhassubclass"),
            flag("relrowsecurity"),
            flag("relforcerowsecurity"),
            flag("relispopulated"),
            char_field("relreplident"),
            flag("relispartition"),
            oid_field("relrewrite", "oid"),
            int("relfrozenxid", Int32),
            int("relminmxid", Int32),
            text("relacl"),
            Field::new("reloptions", List(Arc::new(Field::new("item", Utf8, true))), true),
            text("relpartbound"),
        ],
        View::Attribute => vec![
            oid_field("attrelid", "regclass"),
            text("attname"),
            oid_field("atttypid", "regtype"),
            int("attstattarget", Int32),
            int("attlen", Int16),
            int("attnum", Int16),
            int("attndims", Int32),
            int("attcacheoff", Int32),
            int("atttypmod", Int32),
            flag("attbyval"),
            char_field("attalign"),
            char_field("attstorage"),
            char_field("attcompression"),
            flag("attnotnull"),
            flag("atthasdef"),
            flag("atthasmissing"),
            char_field("attidentity"),
            char_field("attgenerated"),
            flag("attisdropped"),
            flag("attislocal"),
            int("attinhcount", Int32),
            oid_field("attcollation", "oid"),
            text("attacl"),
            text("attoptions"),
            text("attfdwoptions"),
            text("attmissingval"),
        ],
        View::Attrdef => vec![oid_field("oid", "oid"), oid_field("adrelid", "regclass"), int("adnum", Int16), text("adbin")],
        View::Constraint => vec![
            oid_field("oid", "oid"),
            text("conname"),
            oid_field("connamespace", "regnamespace"),
            char_field("contype"),
            flag("condeferrable"),
            flag("condeferred"),
            flag("convalidated"),
            oid_field("conrelid", "regclass"),
            oid_field("contypid", "oid"),
            oid_field("conindid", "regclass"),
            oid_field("conparentid", "oid"),
            oid_field("confrelid", "regclass"),
            char_field("confupdtype"),
            char_field("confdeltype"),
            char_field("confmatchtype"),
            flag("conislocal"),
            int("coninhcount", Int32),
            flag("connoinherit"),
            list16("conkey"),
            list16("confkey"),
            list32("conpfeqop"),
            list32("conppeqop"),
            list32("conffeqop"),
            list16("confdelsetcols"),
            list32("conexclop"),
            text("conbin"),
        ],
        View::Index => vec![
            oid_field("indexrelid", "regclass"),
            oid_field("indrelid", "regclass"),
            int("indnatts", Int16),
            int("indnkeyatts", Int16),
            flag("indisunique"),
            flag("indnullsnotdistinct"),
            flag("indisprimary"),
            flag("indisexclusion"),
            flag("indimmediate"),
            flag("indisclustered"),
            flag("indisvalid"),
            flag("indcheckxmin"),
            flag("indisready"),
            flag("indislive"),
            flag("indisreplident"),
            vector_of(list16("indkey"), "int2vector"),
            vector_of(list32("indcollation"), "oidvector"),
            vector_of(list32("indclass"), "oidvector"),
            vector_of(list16("indoption"), "int2vector"),
            text("indexprs"),
            text("indpred"),
        ],
        View::Description => vec![oid_field("objoid", "oid"), oid_field("classoid", "oid"), int("objsubid", Int32), text("description")],
        View::Sequence => vec![
            oid_field("seqrelid", "regclass"),
            oid_field("seqtypid", "regtype"),
            int("seqstart", Int64),
            int("seqincrement", Int64),
            int("seqmax", Int64),
            int("seqmin", Int64),
            int("seqcache", Int64),
            flag("seqcycle"),
        ],
        View::Am => vec![oid_field("oid", "oid"), text("amname"), oid_field("amhandler", "regproc"), char_field("amtype")],
        View::Policy => vec![
            oid_field("oid", "oid"),
            text("polname"),
            oid_field("polrelid", "regclass"),
            char_field("polcmd"),
            flag("polpermissive"),
            list32("polroles"),
            text("polqual"),
            text("polwithcheck"),
        ],
        View::StatisticExt => vec![
            oid_field("oid", "oid"),
            oid_field("stxrelid", "regclass"),
            text("stxname"),
            oid_field("stxnamespace", "regnamespace"),
            oid_field("stxowner", "oid"),
            int("stxstattarget", Int32),
            list16("stxkeys"),
            Field::new("stxkind", List(Arc::new(Field::new("item", Utf8, true))), true),
            text("stxexprs"),
        ],
        View::Publication => vec![
            oid_field("oid", "oid"),
            text("pubname"),
            oid_field("pubowner", "oid"),
            flag("puballtables"),
            flag("pubinsert"),
            flag("pubupdate"),
            flag("pubdelete"),
            flag("pubtruncate"),
            flag("pubviaroot"),
        ],
        View::PublicationRel => vec![oid_field("oid", "oid"), oid_field("prpubid", "oid"), oid_field("prrelid", "regclass"), text("prqual"), list16("prattrs")],
        View::PublicationNamespace => vec![oid_field("oid", "oid"), oid_field("pnpubid", "oid"), oid_field("pnnspid", "oid")],
    };
    Arc::new(Schema::new(fields))
}

/// The pg_catalog tables this module computes, by name.
pub fn tables(catalog: &Arc<Catalog>, catalog_name: &str) -> Vec<(&'static str, Arc<dyn TableProvider>)> {
    [
        ("pg_namespace", View::Namespace),
        ("pg_class", View::Class),
        ("pg_attribute", View::Attribute),
        ("pg_attrdef", View::Attrdef),
        ("pg_constraint", View::Constraint),
        ("pg_index", View::Index),
        ("pg_description", View::Description),
        ("pg_sequence", View::Sequence),
        ("pg_am", View::Am),
        ("pg_policy", View::Policy),
        ("pg_statistic_ext", View::StatisticExt),
        ("pg_publication", View::Publication),
        ("pg_publication_rel", View::PublicationRel),
        ("pg_publication_namespace", View::PublicationNamespace),
    ]
    .into_iter()
    .map(|(name, view)| {
        let t: Arc<dyn TableProvider> = Arc::new(PgRelationTable { view, schema: schema_of(view), catalog: catalog.clone(), catalog_name: catalog_name.to_string() });
        (name, t)
    })
    .collect()
}

fn i32s(v: Vec<Option<i32>>) -> ArrayRef {
    Arc::new(Int32Array::from(v))
}
fn i16s(v: Vec<Option<i16>>) -> ArrayRef {
    Arc::new(Int16Array::from(v))
}
fn i64s(v: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(Int64Array::from(v))
}
fn strs<S: AsRef<str>>(v: Vec<Option<S>>) -> ArrayRef {
    Arc::new(StringArray::from(v.iter().map(|s| s.as_ref().map(|s| s.as_ref())).collect::<Vec<_>>()))
}
fn bools(v: Vec<Option<bool>>) -> ArrayRef {
    Arc::new(BooleanArray::from(v))
}
fn list_i16(v: Vec<Option<Vec<i16>>>) -> ArrayRef {
    list_of::<datafusion::arrow::datatypes::Int16Type>(v)
}
fn list_i32(v: Vec<Option<Vec<i32>>>) -> ArrayRef {
    list_of::<datafusion::arrow::datatypes::Int32Type>(v)
}
fn list_of<T: datafusion::arrow::datatypes::ArrowPrimitiveType>(v: Vec<Option<Vec<T::Native>>>) -> ArrayRef {
    let mut b = ListBuilder::new(datafusion::arrow::array::PrimitiveBuilder::<T>::new());
    for row in v {
        match row {
            Some(items) => {
                b.values().append_slice(&items);
                b.append(true);
            }
            None => b.append(false),
        }
    }
    Arc::new(b.finish())
}

impl PgRelationTable {
    async fn columns(&self, state: &dyn Session) -> DfResult<Vec<ArrayRef>> {
        let (namespaces, rels, dir) = relations(state, &self.catalog, &self.catalog_name).await?;
        let n = |len: usize| len;
        Ok(match self.view {
            View::Namespace => vec![
                i32s(namespaces.iter().map(|x| Some(x.0)).collect()),
                strs(namespaces.iter().map(|x| Some(x.1.clone())).collect()),
                i32s(namespaces.iter().map(|x| Some(x.2)).collect()),
                strs::<String>(vec![None; namespaces.len()]),
            ],
            View::Class => {
                let len = n(rels.len());
                let reloptions: ArrayRef = {
                    let mut b = ListBuilder::new(datafusion::arrow::array::StringBuilder::new());
                    for _ in 0..len {
                        b.append(false);
                    }
                    Arc::new(b.finish())
                };
                vec![
                    i32s(rels.iter().map(|r| Some(r.oid)).collect()),
                    strs(rels.iter().map(|r| Some(r.name.clone())).collect()),
                    i32s(rels.iter().map(|r| Some(r.namespace)).collect()),
                    i32s(vec![Some(0); len]),
                    i32s(vec![Some(0); len]),
                    i32s(rels.iter().map(|r| Some(r.owner)).collect()),
                    i32s(rels.iter().map(|r| Some(r.am)).collect()),
                    i32s(rels.iter().map(|r| Some(r.oid)).collect()),
                    i32s(vec![Some(0); len]),
                    i32s(vec![Some(1); len]),
                    Arc::new(Float64Array::from(vec![-1.0; len])),
                    i32s(vec![Some(0); len]),
                    i32s(vec![Some(0); len]),
                    bools(rels.iter().map(|r| Some(r.has_index)).collect()),
                    bools(vec![Some(false); len]),
                    strs(rels.iter().map(|r| Some(r.persistence)).collect()),
                    strs(rels.iter().map(|r| Some(r.kind)).collect()),
                    i16s(rels.iter().map(|r| Some(r.natts)).collect()),
                    i16s(rels.iter().map(|r| Some(r.checks)).collect()),
                    bools(rels.iter().map(|r| Some(r.kind == "v")).collect()),
                    bools(vec![Some(false); len]),
                    bools(vec![Some(false); len]),
                    bools(vec![Some(false); len]),
                    bools(vec![Some(false); len]),
                    bools(vec![Some(true); len]),
                    strs(vec![Some("d"); len]),
                    bools(vec![Some(false); len]),
                    i32s(vec![Some(0); len]),
                    i32s(vec![Some(0); len]),
                    i32s(vec![Some(0); len]),
                    strs::<String>(vec![None; len]),
                    reloptions,
                    strs::<String>(vec![None; len]),
                ]
            }
            View::Attribute => {
                let mut rows: Vec<(i32, String, i32, i16, i16, i32, bool, bool, &'static str, i32)> = vec![];
                for r in &rels {
                    let Some(schema) = &r.schema else { continue };
                    let rec = r.table.as_ref().map(|t| &t.record);
                    for (i, f) in schema.fields().iter().enumerate() {
                        let t = crate::pg_types::field_pg_type(f);
                        let name = f.name().clone();
                        let has_default = rec.is_some_and(|x| x.defaults.contains_key(&name));
                        let identity = match rec {
                            Some(x) if x.identity_always.contains(&name) => "a",
                            Some(x) if x.identity_by_default.contains(&name) => "d",
                            _ => "",
                        };
                        let ndims = if matches!(f.data_type(), DataType::List(_) | DataType::LargeList(_)) && !crate::pg_types::is_vector(f.data_type()) { 1 } else { 0 };
                        // A domain column is the domain's in the catalog (the base type's on the wire).
                        let type_oid = crate::udf::user_types::domain_of(f).unwrap_or(t.oid() as i32);
                        rows.push((r.oid, name, type_oid, crate::pg_types::type_len(&t), i as i16 + 1, ndims, !f.is_nullable(), has_default && identity.is_empty(), identity, if matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) { 100 } else { 0 }));
                    }
                }
                let len = rows.len();
                vec![
                    i32s(rows.iter().map(|x| Some(x.0)).collect()),
                    strs(rows.iter().map(|x| Some(x.1.clone())).collect()),
                    i32s(rows.iter().map(|x| Some(x.2)).collect()),
                    i32s(vec![Some(-1); len]),
                    i16s(rows.iter().map(|x| Some(x.3)).collect()),
                    i16s(rows.iter().map(|x| Some(x.4)).collect()),
                    i32s(rows.iter().map(|x| Some(x.5)).collect()),
                    i32s(vec![Some(-1); len]),
                    i32s(vec![Some(-1); len]),
                    bools(rows.iter().map(|x| Some(x.3 > 0)).collect()),
                    strs(vec![Some("i"); len]),
                    strs(rows.iter().map(|x| Some(if x.3 > 0 { "p" } else { "x" })).collect()),
                    strs(vec![Some(""); len]),
                    bools(rows.iter().map(|x| Some(x.6)).collect()),
                    bools(rows.iter().map(|x| Some(x.7)).collect()),
                    bools(vec![Some(false); len]),
                    strs(rows.iter().map(|x| Some(x.8)).collect()),
                    strs(vec![Some(""); len]),
                    bools(vec![Some(false); len]),
                    bools(vec![Some(true); len]),
                    i32s(vec![Some(0); len]),
                    i32s(rows.iter().map(|x| Some(x.9)).collect()),
                    strs::<String>(vec![None; len]),
                    strs::<String>(vec![None; len]),
                    strs::<String>(vec![None; len]),
                    strs::<String>(vec![None; len]),
                ]
            }
            View::Attrdef => {
                let mut rows: Vec<(i32, i32, i16, String)> = vec![];
                for t in &dir.tables {
                    let Some(schema) = t.record.arrow_schema().ok().flatten() else { continue };
                    for (col, sql) in &t.record.defaults {
                        if t.record.identity_always.contains(col) || t.record.identity_by_default.contains(col) {
                            continue;
                        }
                        let Ok(i) = schema.index_of(col) else { continue };
                        // PostgreSQL shows a sequence default as nextval('name'::regclass).
                        let shown = match sql.strip_prefix("nextval('").and_then(|r| r.strip_suffix("')")) {
                            Some(seq) if !seq.contains('\'') => format!("nextval('{seq}'::regclass)"),
                            _ => sql.clone(),
                        };
                        rows.push((stable_oid(&["attrdef", &t.namespace, &t.name, col]), t.oid, i as i16 + 1, shown));
                    }
                }
                vec![
                    i32s(rows.iter().map(|x| Some(x.0)).collect()),
                    i32s(rows.iter().map(|x| Some(x.1)).collect()),
                    i16s(rows.iter().map(|x| Some(x.2)).collect()),
                    strs(rows.iter().map(|x| Some(x.3.clone())).collect()),
                ]
            }
            View::Constraint => {
                let cs = &dir.constraints;
                let len = cs.len();
                let action = |a: &Option<String>| -> &'static str {
                    match a.as_deref().map(|s| s.to_ascii_uppercase()) {
                        Some(s) if s.contains("CASCADE") => "c",
                        Some(s) if s.contains("SET NULL") => "n",
                        Some(s) if s.contains("SET DEFAULT") => "d",
                        Some(s) if s.contains("RESTRICT") => "r",
                        _ => "a",
                    }
                };
                let is_fk = |c: &ConstraintDef| c.record.kind == "f";
                vec![
                    i32s(cs.iter().map(|c| Some(c.oid)).collect()),
                    strs(cs.iter().map(|c| Some(c.record.name.clone())).collect()),
                    i32s(cs.iter().map(|c| Some(namespace_oid(&c.namespace))).collect()),
                    strs(cs.iter().map(|c| Some(c.record.kind.clone())).collect()),
                    bools(vec![Some(false); len]),
                    bools(vec![Some(false); len]),
                    bools(vec![Some(true); len]),
                    i32s(cs.iter().map(|c| Some(c.table_oid)).collect()),
                    i32s(vec![Some(0); len]),
                    i32s(cs.iter().map(|c| Some(c.index_oid)).collect()),
                    i32s(vec![Some(0); len]),
                    i32s(cs.iter().map(|c| Some(c.ref_oid)).collect()),
                    strs(cs.iter().map(|c| Some(if is_fk(c) { action(&c.record.on_update) } else { " " })).collect()),
                    strs(cs.iter().map(|c| Some(if is_fk(c) { action(&c.record.on_delete) } else { " " })).collect()),
                    strs(cs.iter().map(|c| Some(if is_fk(c) { "s" } else { " " })).collect()),
                    bools(vec![Some(true); len]),
                    i32s(vec![Some(0); len]),
                    bools(vec![Some(false); len]),
                    list_i16(cs.iter().map(|c| Some(c.attnums.clone())).collect()),
                    list_i16(cs.iter().map(|c| if is_fk(c) { Some(c.ref_attnums.clone()) } else { None }).collect()),
                    list_i32(vec![None; len]),
                    list_i32(vec![None; len]),
                    list_i32(vec![None; len]),
                    list_i16(vec![None; len]),
                    list_i32(vec![None; len]),
                    strs(cs.iter().map(|c| c.record.check.clone()).collect()),
                ]
            }
            View::Index => {
                let ix = &dir.indexes;
                let len = ix.len();
                vec![
                    i32s(ix.iter().map(|i| Some(i.oid)).collect()),
                    i32s(ix.iter().map(|i| Some(i.table_oid)).collect()),
                    i16s(ix.iter().map(|i| Some(i.columns.len() as i16)).collect()),
                    i16s(ix.iter().map(|i| Some(i.columns.len() as i16)).collect()),
                    bools(ix.iter().map(|i| Some(i.unique)).collect()),
                    bools(vec![Some(false); len]),
                    bools(ix.iter().map(|i| Some(i.primary)).collect()),
                    bools(vec![Some(false); len]),
                    bools(vec![Some(true); len]),
                    bools(vec![Some(false); len]),
                    bools(vec![Some(true); len]),
                    bools(vec![Some(false); len]),
                    bools(vec![Some(true); len]),
                    bools(vec![Some(true); len]),
                    bools(vec![Some(false); len]),
                    list_i16(ix.iter().map(|i| Some(i.attnums.clone())).collect()),
                    list_i32(ix.iter().map(|i| Some(vec![0; i.columns.len()])).collect()),
                    list_i32(ix.iter().map(|i| Some(vec![0; i.columns.len()])).collect()),
                    list_i16(ix.iter().map(|i| Some(i.descending.iter().map(|d| if *d { 3 } else { 0 }).collect())).collect()),
                    strs::<String>(vec![None; len]),
                    strs::<String>(vec![None; len]),
                ]
            }
            View::Description => {
                let mut rows: Vec<(i32, i32, i32, String)> = vec![];
                for t in &dir.tables {
                    if let Some(c) = &t.record.comment {
                        rows.push((t.oid, PG_CLASS_OID, 0, c.clone()));
                    }
                    if let Some(schema) = t.record.arrow_schema().ok().flatten() {
                        for (col, c) in &t.record.column_comments {
                            if let Ok(i) = schema.index_of(col) {
                                rows.push((t.oid, PG_CLASS_OID, i as i32 + 1, c.clone()));
                            }
                        }
                    }
                }
                for c in &dir.constraints {
                    if let Some(text) = &c.record.comment {
                        rows.push((c.oid, PG_CONSTRAINT_OID, 0, text.clone()));
                    }
                }
                for i in &dir.indexes {
                    if let Some(text) = &i.comment {
                        rows.push((i.oid, PG_CLASS_OID, 0, text.clone()));
                    }
                }
                for (oid, _, q, _) in &dir.sequences {
                    if let Some(text) = &q.comment {
                        rows.push((*oid, PG_CLASS_OID, 0, text.clone()));
                    }
                }
                vec![
                    i32s(rows.iter().map(|x| Some(x.0)).collect()),
                    i32s(rows.iter().map(|x| Some(x.1)).collect()),
                    i32s(rows.iter().map(|x| Some(x.2)).collect()),
                    strs(rows.iter().map(|x| Some(x.3.clone())).collect()),
                ]
            }
            View::Sequence => {
                let qs = &dir.sequences;
                let type_oid = |t: &str| match t {
                    "smallint" => 21,
                    "integer" => 23,
                    _ => 20,
                };
                vec![
                    i32s(qs.iter().map(|q| Some(q.0)).collect()),
                    i32s(qs.iter().map(|q| Some(type_oid(&q.2.data_type))).collect()),
                    i64s(qs.iter().map(|q| Some(q.2.start)).collect()),
                    i64s(qs.iter().map(|q| Some(q.2.increment)).collect()),
                    i64s(qs.iter().map(|q| Some(q.2.max)).collect()),
                    i64s(qs.iter().map(|q| Some(q.2.min)).collect()),
                    i64s(qs.iter().map(|q| Some(q.2.cache)).collect()),
                    bools(qs.iter().map(|q| Some(q.2.cycle)).collect()),
                ]
            }
            View::Am => {
                let ams = [(2, "heap", "t"), (BTREE_AM, "btree", "i"), (HASH_AM, "hash", "i"), (HNSW_AM, "hnsw", "i")];
                vec![
                    i32s(ams.iter().map(|a| Some(a.0)).collect()),
                    strs(ams.iter().map(|a| Some(a.1)).collect()),
                    i32s(vec![Some(0); ams.len()]),
                    strs(ams.iter().map(|a| Some(a.2)).collect()),
                ]
            }
            View::Policy | View::StatisticExt | View::Publication | View::PublicationRel | View::PublicationNamespace => self.schema.fields().iter().map(|f| datafusion::arrow::array::new_empty_array(f.data_type())).collect(),
        })
    }
}

#[async_trait]
impl TableProvider for PgRelationTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(&self, state: &dyn Session, projection: Option<&Vec<usize>>, filters: &[Expr], limit: Option<usize>) -> DfResult<Arc<dyn ExecutionPlan>> {
        let columns = self.columns(state).await?;
        scan_columns(&self.schema, columns, state, projection, filters, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_are_stable_and_postgres_own_for_system_objects() {
        assert_eq!(namespace_oid("public"), 2200);
        assert_eq!(rel_oid("pg_catalog", "pg_class"), 1259);
        assert_eq!(rel_oid("public", "t"), rel_oid("public", "t"));
        assert_ne!(rel_oid("public", "t"), rel_oid("s", "t"));
        assert!(rel_oid("public", "t") >= 20_000);
    }
}
