//! The catalog views of roles and privileges (#13), in PostgreSQL's shapes:
//! `pg_catalog.pg_roles`, `pg_catalog.pg_auth_members`,
//! `information_schema.table_privileges` and `information_schema.usage_privileges`
//! (an attachment is a foreign server there). They are computed at scan time from
//! the catalog and lakehouse.toml's users, and the privilege views show what
//! PostgreSQL's do: the rows whose grantor or grantee is one of the reader's roles
//! or PUBLIC (a superuser sees every row).
//!
//! DataFusion builds `information_schema` itself, with a fixed set of tables, and
//! `pg_catalog` comes from datafusion-pg-catalog: [`Overlay`] is a schema that
//! answers with our tables first and the library's for the rest.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, BooleanArray, Int32Array, new_null_array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;

use super::system::{scan_columns, strings};
use crate::catalog::roles::{Identity, PUBLIC, Privilege, all_of, role_oid};
use crate::catalog::{Catalog, CatalogState};
use crate::config::Config;

/// Which view a [`RolesTable`] computes.
#[derive(Debug, Clone, Copy)]
enum View {
    PgRoles,
    PgAuthMembers,
    TablePrivileges,
    UsagePrivileges,
}

/// One role as the views show it.
struct RoleRow {
    name: String,
    superuser: bool,
    login: bool,
}

pub struct RolesTable {
    view: View,
    schema: SchemaRef,
    catalog: Arc<Catalog>,
    /// lakehouse.toml's users (name, superuser); empty in trust mode.
    users: Vec<(String, bool)>,
    /// The catalog name information_schema rows carry.
    catalog_name: String,
}

impl fmt::Debug for RolesTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RolesTable({:?})", self.view)
    }
}

fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn flag(name: &str) -> Field {
    Field::new(name, DataType::Boolean, true)
}

fn oid(name: &str) -> Field {
    Field::new(name, DataType::Int32, true)
}

fn oids(values: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(Int32Array::from(values.map(|v| v as i32).collect::<Vec<_>>()))
}

fn flags(values: impl Iterator<Item = bool>) -> ArrayRef {
    Arc::new(BooleanArray::from(values.collect::<Vec<_>>()))
}

impl RolesTable {
    fn new(view: View, catalog: &Arc<Catalog>, config: &Config, catalog_name: &str) -> RolesTable {
        let schema = match view {
            View::PgRoles => Schema::new(vec![
                text("rolname"),
                flag("rolsuper"),
                flag("rolinherit"),
                flag("rolcreaterole"),
                flag("rolcreatedb"),
                flag("rolcanlogin"),
                flag("rolreplication"),
                Field::new("rolconnlimit", DataType::Int32, true),
                text("rolpassword"),
                Field::new("rolvaliduntil", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
                flag("rolbypassrls"),
                Field::new("rolconfig", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), true),
                oid("oid"),
            ]),
            View::PgAuthMembers => Schema::new(vec![
                oid("oid"),
                oid("roleid"),
                oid("member"),
                oid("grantor"),
                flag("admin_option"),
                flag("inherit_option"),
                flag("set_option"),
            ]),
            View::TablePrivileges => Schema::new(vec![
                text("grantor"),
                text("grantee"),
                text("table_catalog"),
                text("table_schema"),
                text("table_name"),
                text("privilege_type"),
                text("is_grantable"),
                text("with_hierarchy"),
            ]),
            View::UsagePrivileges => Schema::new(vec![
                text("grantor"),
                text("grantee"),
                text("object_catalog"),
                text("object_schema"),
                text("object_name"),
                text("object_type"),
                text("privilege_type"),
                text("is_grantable"),
            ]),
        };
        let users = config.auth.users.iter().map(|u| (u.name.clone(), config.is_superuser(&u.name))).collect();
        RolesTable { view, schema: Arc::new(schema), catalog: catalog.clone(), users, catalog_name: catalog_name.to_string() }
    }

    /// Every role: the configured users, the catalog's roles, and in trust mode the
    /// reader (any name logs in there, as the one local superuser).
    fn roles(&self, state: &CatalogState, reader: Option<&Identity>) -> Vec<RoleRow> {
        let mut out: Vec<RoleRow> = self.users.iter().map(|(n, s)| RoleRow { name: n.clone(), superuser: *s, login: true }).collect();
        out.extend(state.roles.roles.values().map(|r| RoleRow { name: r.name.clone(), superuser: r.superuser, login: r.login }));
        if let Some(id) = reader {
            if !out.iter().any(|r| r.name == id.user) {
                out.push(RoleRow { name: id.user.clone(), superuser: id.superuser, login: true });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn columns(&self, state: &CatalogState, reader: Option<&Identity>) -> Vec<ArrayRef> {
        match self.view {
            View::PgRoles => {
                let roles = self.roles(state, reader);
                let n = roles.len();
                vec![
                    strings(roles.iter().map(|r| Some(r.name.clone()))),
                    flags(roles.iter().map(|r| r.superuser)),
                    flags(roles.iter().map(|_| true)),
                    flags(roles.iter().map(|r| r.superuser)),
                    flags(roles.iter().map(|r| r.superuser)),
                    flags(roles.iter().map(|r| r.login)),
                    flags(roles.iter().map(|_| false)),
                    Arc::new(Int32Array::from(vec![-1; n])),
                    strings(roles.iter().map(|_| Some("********".to_string()))),
                    new_null_array(self.schema.field(9).data_type(), n),
                    flags(roles.iter().map(|r| r.superuser)),
                    new_null_array(self.schema.field(11).data_type(), n),
                    oids(roles.iter().map(|r| role_oid(&r.name))),
                ]
            }
            View::PgAuthMembers => {
                let m: Vec<_> = state.roles.members.iter().collect();
                vec![
                    oids(m.iter().map(|m| role_oid(&format!("{}\u{0}{}", m.role, m.member)))),
                    oids(m.iter().map(|m| role_oid(&m.role))),
                    oids(m.iter().map(|m| role_oid(&m.member))),
                    oids(m.iter().map(|m| role_oid(&m.grantor))),
                    flags(m.iter().map(|_| false)),
                    flags(m.iter().map(|_| true)),
                    flags(m.iter().map(|_| true)),
                ]
            }
            View::TablePrivileges | View::UsagePrivileges => {
                let visible = |grantor: &str, grantee: &str| match reader {
                    None => true,
                    Some(id) if id.superuser => true,
                    Some(id) => {
                        let mine = state.roles.effective(&id.user);
                        grantee == PUBLIC || mine.contains(grantee) || mine.contains(grantor)
                    }
                };
                // (grantor, grantee, schema, name, privilege, grantable)
                let mut rows: Vec<(Option<String>, String, String, String, Privilege, bool)> = vec![];
                let mut add = |object: &crate::catalog::roles::Object, schema: &str, name: &str, access: &crate::catalog::roles::Access| {
                    for item in access.items(all_of(object)) {
                        if !visible(&item.grantor, &item.grantee) {
                            continue;
                        }
                        let grantable = access.owner.as_deref() == Some(item.grantee.as_str());
                        for p in &item.privileges {
                            let grantor = (!item.grantor.is_empty()).then(|| item.grantor.clone());
                            rows.push((grantor, item.grantee.clone(), schema.to_string(), name.to_string(), *p, grantable));
                        }
                    }
                };
                use crate::catalog::roles::Object;
                if let View::TablePrivileges = self.view {
                    for d in state.datasets.values() {
                        add(&Object::Table(d.name.clone()), crate::engine::DATA_SCHEMA, &d.name, &d.access);
                    }
                } else {
                    for a in state.attachments.values() {
                        add(&Object::Schema(a.name.clone()), "", &a.name, &a.access);
                    }
                }
                let yes_no = |b: bool| Some(if b { "YES" } else { "NO" }.to_string());
                let mut cols = vec![
                    strings(rows.iter().map(|r| r.0.clone())),
                    strings(rows.iter().map(|r| Some(r.1.clone()))),
                    strings(rows.iter().map(|_| Some(self.catalog_name.clone()))),
                    strings(rows.iter().map(|r| Some(r.2.clone()))),
                    strings(rows.iter().map(|r| Some(r.3.clone()))),
                ];
                if let View::TablePrivileges = self.view {
                    cols.push(strings(rows.iter().map(|r| Some(r.4.as_str().to_string()))));
                    cols.push(strings(rows.iter().map(|r| yes_no(r.5))));
                    cols.push(strings(rows.iter().map(|r| yes_no(r.4 == Privilege::Select))));
                } else {
                    cols.push(strings(rows.iter().map(|_| Some("FOREIGN SERVER".to_string()))));
                    cols.push(strings(rows.iter().map(|r| Some(r.4.as_str().to_string()))));
                    cols.push(strings(rows.iter().map(|r| yes_no(r.5))));
                }
                cols
            }
        }
    }
}

#[async_trait]
impl TableProvider for RolesTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let reader = state.config().get_extension::<Identity>();
        let columns = self.columns(&self.catalog.snapshot(), reader.as_deref());
        scan_columns(&self.schema, columns, state, projection, filters, limit).await
    }
}

/// A schema answering with its own tables first, then `inner`'s.
#[derive(Debug)]
pub struct Overlay {
    inner: Arc<dyn SchemaProvider>,
    extra: HashMap<String, Arc<dyn TableProvider>>,
}

#[async_trait]
impl SchemaProvider for Overlay {
    fn table_names(&self) -> Vec<String> {
        let mut names: BTreeSet<String> = self.inner.table_names().into_iter().collect();
        names.extend(self.extra.keys().cloned());
        names.into_iter().collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        match self.extra.get(&name.to_ascii_lowercase()) {
            Some(t) => Ok(Some(t.clone())),
            None => self.inner.table(name).await,
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.extra.contains_key(&name.to_ascii_lowercase()) || self.inner.table_exist(name)
    }
}

/// `pg_catalog` with our pg_roles, pg_auth_members, pg_type and `more` over the library's.
pub fn pg_catalog(
    inner: Arc<dyn SchemaProvider>,
    catalog: &Arc<Catalog>,
    config: &Config,
    catalog_name: &str,
    pg_type: Arc<dyn TableProvider>,
    more: Vec<(&str, Arc<dyn TableProvider>)>,
) -> Overlay {
    let mut extra: HashMap<String, Arc<dyn TableProvider>> = HashMap::new();
    extra.insert("pg_type".into(), pg_type);
    for (name, t) in more {
        extra.insert(name.to_string(), t);
    }
    extra.insert("pg_roles".into(), Arc::new(RolesTable::new(View::PgRoles, catalog, config, catalog_name)));
    extra.insert("pg_auth_members".into(), Arc::new(RolesTable::new(View::PgAuthMembers, catalog, config, catalog_name)));
    Overlay { inner, extra }
}

/// `information_schema` with table_privileges and usage_privileges over DataFusion's.
pub fn information_schema(inner: Arc<dyn SchemaProvider>, catalog: &Arc<Catalog>, config: &Config, catalog_name: &str) -> Overlay {
    let mut extra: HashMap<String, Arc<dyn TableProvider>> = HashMap::new();
    extra.insert("table_privileges".into(), Arc::new(RolesTable::new(View::TablePrivileges, catalog, config, catalog_name)));
    extra.insert("usage_privileges".into(), Arc::new(RolesTable::new(View::UsagePrivileges, catalog, config, catalog_name)));
    Overlay { inner, extra }
}
