//! Privilege checks and `GRANT`/`REVOKE` on tables and attachments (#13), with
//! PostgreSQL's rules: a table's owner holds every privilege (and may grant it), a
//! superuser bypasses every check, a role has the privileges of the roles it is a
//! member of and of PUBLIC. An index is used and tuned through its table: reading it
//! (`vector_search`, an ORDER BY it serves) needs SELECT on the table; creating,
//! dropping and tuning it needs ownership of the table. An attachment is a schema:
//! reading any of its tables needs USAGE on it. Views are checked as PostgreSQL does:
//! the reader needs SELECT on the view, the view's owner needs SELECT on what the
//! view reads.

use std::collections::BTreeSet;

use datafusion::common::TableReference;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::{DmlStatement, LogicalPlan, WriteOp};
use datafusion::sql::sqlparser::ast::{Action, GrantObjects, Grantee, GranteesType, GranteeName, Privileges};

use super::{DATA_SCHEMA, Engine, QueryResult, Session};
use crate::catalog::CatalogState;
use crate::catalog::roles::{Identity, Membership, Object, PUBLIC, Privilege, all_of, denied, may, owns};
use crate::error::{Error, Result};

/// One privilege a statement needs. `view`: needed by that view's owner (the view
/// reads it), not by the session's user.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Need {
    pub object: Object,
    pub privilege: Privilege,
    pub view: Option<String>,
}

fn not_owner(object: &Object, user: &str) -> Error {
    Error::InsufficientPrivilege(format!(
        "must be owner of {object} (role \"{user}\" is not); its owner or a superuser can do this"
    ))
}

/// Views nested deeper than this are refused (54001) rather than left unchecked.
const MAX_VIEW_DEPTH: usize = 32;

/// The privileges `plan` needs, from its table scans (subqueries and views
/// included) and its write target.
pub fn needs_of(plan: &LogicalPlan, state: &CatalogState) -> Result<Vec<Need>> {
    let mut out = BTreeSet::new();
    let skip = match plan {
        // UPDATE/DELETE scan their target: that is the write, not a read.
        LogicalPlan::Dml(DmlStatement { op: WriteOp::Update | WriteOp::Delete, table_name, .. }) => Some(table_name.clone()),
        _ => None,
    };
    if !collect(plan, state, skip.as_ref(), None, &mut out, 0) {
        return Err(Error::StackDepth(format!("views nested more than {MAX_VIEW_DEPTH} deep")));
    }
    Ok(out.into_iter().collect())
}

fn object_of(name: &TableReference, state: &CatalogState) -> Option<Object> {
    match name.schema() {
        None | Some(DATA_SCHEMA) => Some(Object::Table(name.table().to_string())),
        Some(s) if state.schemas.contains_key(s) => Some(Object::Table(crate::catalog::schemas::key(Some(s), name.table()))),
        Some(s) if state.attachments.contains_key(s) => Some(Object::Schema(s.to_string())),
        // System schemas (lakehouse, pg_catalog, information_schema).
        _ => None,
    }
}

/// False when views nest deeper than [`MAX_VIEW_DEPTH`] (nothing past it was seen).
fn collect(plan: &LogicalPlan, state: &CatalogState, skip: Option<&TableReference>, view: Option<&str>, out: &mut BTreeSet<Need>, depth: usize) -> bool {
    let mut complete = true;
    let _ = plan.apply_with_subqueries(|p| {
        match p {
            LogicalPlan::TableScan(scan) => {
                if skip == Some(&scan.table_name) {
                    return Ok(TreeNodeRecursion::Continue);
                }
                let provider = datafusion::datasource::source_as_provider(&scan.source).ok();
                // vector_search's rows were read from an index: its table's SELECT.
                if let Some(found) = provider.as_ref().and_then(|p| p.downcast_ref::<crate::udf::vector_search::SearchResult>()) {
                    out.insert(Need { object: Object::Table(found.table.clone()), privilege: Privilege::Select, view: view.map(str::to_string) });
                    return Ok(TreeNodeRecursion::Continue);
                }
                // A session's temporary table is its own.
                if provider.as_ref().and_then(|p| p.downcast_ref::<crate::table_providers::owned::OwnedTable>()).is_some_and(|o| o.temporary) {
                    return Ok(TreeNodeRecursion::Continue);
                }
                if let Some(object) = object_of(&scan.table_name, state) {
                    let name = match &object {
                        Object::Table(t) => Some(t.clone()),
                        Object::Schema(_) => None,
                    };
                    let privilege = if matches!(object, Object::Schema(_)) { Privilege::Usage } else { Privilege::Select };
                    out.insert(Need { object, privilege, view: view.map(str::to_string) });
                    // A view reads with its owner's privileges.
                    if let (Some(name), Some(v)) = (name, provider.as_ref().and_then(|p| p.downcast_ref::<crate::table_providers::view::CheckedView>())) {
                        if depth >= MAX_VIEW_DEPTH || !collect(v.logical_plan(), state, None, Some(&name), out, depth + 1) {
                            complete = false;
                            return Ok(TreeNodeRecursion::Stop);
                        }
                    }
                }
            }
            LogicalPlan::Dml(DmlStatement { op, table_name, target, .. }) => {
                let temporary = datafusion::datasource::source_as_provider(target)
                    .ok()
                    .is_some_and(|p| p.downcast_ref::<crate::table_providers::owned::OwnedTable>().is_some_and(|o| o.temporary));
                if temporary {
                    return Ok(TreeNodeRecursion::Continue);
                }
                let privilege = match op {
                    WriteOp::Insert(_) => Some(Privilege::Insert),
                    WriteOp::Update => Some(Privilege::Update),
                    WriteOp::Delete => Some(Privilege::Delete),
                    WriteOp::Truncate => Some(Privilege::Truncate),
                    WriteOp::Ctas => None,
                };
                if let (Some(privilege), Some(object)) = (privilege, object_of(table_name, state)) {
                    out.insert(Need { object, privilege, view: view.map(str::to_string) });
                }
            }
            // CREATE VIEW reads nothing now: its readers are checked when they read.
            LogicalPlan::Ddl(datafusion::logical_expr::DdlStatement::CreateView(_)) => return Ok(TreeNodeRecursion::Jump),
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    complete
}

impl Engine {
    /// Is role `name` a superuser? A catalog role says so itself; otherwise the
    /// config decides (trust mode: every name is the one local superuser).
    pub fn is_superuser(&self, name: &str) -> bool {
        crate::catalog::roles::is_superuser(&self.config, &self.catalog.snapshot(), name)
    }

    fn identity(&self, session: &Session) -> Identity {
        Identity { user: session.user.clone(), superuser: session.superuser }
    }

    /// Every privilege `plan` needs, or 42501 naming the first one missing.
    pub(crate) fn check_plan(&self, session: &Session, plan: &LogicalPlan) -> Result<()> {
        use datafusion::logical_expr::Statement as S;
        // SQL-level PREPARE/EXECUTE: the statement prepared is checked at each
        // EXECUTE (a REVOKE in between applies), as the protocol's are. Tracked for
        // every session: DEALLOCATE ALL needs the names.
        let executed = {
            let mut prepared = session.sql_prepared.lock().unwrap_or_else(|p| p.into_inner());
            match plan {
                LogicalPlan::Statement(S::Prepare(p)) => {
                    prepared.insert(p.name.clone(), p.input.as_ref().clone());
                    None
                }
                LogicalPlan::Statement(S::Execute(e)) => prepared.get(&e.name).cloned(),
                LogicalPlan::Statement(S::Deallocate(d)) => {
                    prepared.remove(&d.name);
                    None
                }
                _ => None,
            }
        };
        if session.superuser {
            return Ok(());
        }
        let plan = executed.as_ref().unwrap_or(plan);
        let state = self.catalog.snapshot();
        let me = self.identity(session);
        for need in needs_of(plan, &state)? {
            let who = match &need.view {
                None => me.clone(),
                Some(v) => match state.datasets.get(v).and_then(|d| d.access.owner.clone()) {
                    Some(owner) => Identity { superuser: self.is_superuser(&owner), user: owner },
                    // A view from before #13 has no owner: its reads are the reader's.
                    None => me.clone(),
                },
            };
            if !may(&state, &who, &need.object, need.privilege) {
                return Err(denied(&need.object, need.privilege, &who.user));
            }
        }
        Ok(())
    }

    /// 42501 unless the session's user owns `object` (or is a superuser).
    pub(crate) fn require_owner(&self, session: &Session, object: &Object) -> Result<()> {
        if owns(&self.catalog.snapshot(), &self.identity(session), object) {
            Ok(())
        } else {
            Err(not_owner(object, &session.user))
        }
    }

    /// 42501 unless the session's user may use `object` with `privilege`.
    pub(crate) fn require(&self, session: &Session, object: &Object, privilege: Privilege) -> Result<()> {
        if may(&self.catalog.snapshot(), &self.identity(session), object, privilege) {
            Ok(())
        } else {
            Err(denied(object, privilege, &session.user))
        }
    }

    /// Creating, dropping and tuning an index takes owning its table.
    pub(crate) fn require_index_owner(&self, session: &Session, index: &str) -> Result<()> {
        match self.catalog.snapshot().indexes.get(index) {
            Some(rec) => self.require_owner(session, &Object::Table(rec.table.clone())),
            None => Ok(()),
        }
    }

    /// Does role `name` exist (configured user, catalog role, or PUBLIC)?
    pub(crate) fn role_exists(&self, name: &str) -> bool {
        name == PUBLIC
            || self.config.auth.users.iter().any(|u| u.name == name)
            || self.catalog.snapshot().roles.roles.contains_key(name)
    }

    /// `GRANT … ON … TO …` and `GRANT role TO role`.
    pub(super) async fn grant(&self, session: &Session, g: &datafusion::sql::sqlparser::ast::Grant) -> Result<QueryResult> {
        if g.with_grant_option {
            return Err(Error::NotSupported("WITH GRANT OPTION (owners and superusers grant)".into()));
        }
        if g.as_grantor.is_some() || g.granted_by.is_some() || g.current_grants.is_some() {
            return Err(Error::NotSupported("GRANTED BY in GRANT".into()));
        }
        self.change_privileges(session, &g.privileges, g.objects.as_ref(), &g.grantees, true).await?;
        Ok(QueryResult::command("GRANT"))
    }

    pub(super) async fn revoke(&self, session: &Session, r: &datafusion::sql::sqlparser::ast::Revoke) -> Result<QueryResult> {
        if r.granted_by.is_some() {
            return Err(Error::NotSupported("GRANTED BY in REVOKE".into()));
        }
        self.change_privileges(session, &r.privileges, r.objects.as_ref(), &r.grantees, false).await?;
        Ok(QueryResult::command("REVOKE"))
    }

    async fn change_privileges(
        &self,
        session: &Session,
        privileges: &Privileges,
        objects: Option<&GrantObjects>,
        grantees: &[Grantee],
        grant: bool,
    ) -> Result<()> {
        let grantees = self.grantee_names(grantees)?;
        let Some(objects) = objects else {
            // GRANT role [, …] TO role [, …] (rewritten to GRANT ROLE r by parse).
            return self.change_membership(session, privileges, &grantees, grant).await;
        };
        let targets = self.grant_targets(objects)?;
        let _ddl = self.ddl.lock().await;
        // All or nothing: every object checked before the first changes.
        for object in &targets {
            privileges_for(privileges, object)?;
            self.require_owner(session, object)?;
        }
        for object in &targets {
            let privileges = privileges_for(privileges, object)?;
            let catalog = self.catalog.clone();
            let (object, grantees, grantor) = (object.clone(), grantees.clone(), session.user.clone());
            crate::catalog::blocking(move || {
                let (table, schema) = match &object {
                    Object::Table(t) => (Some(t.as_str()), None),
                    Object::Schema(s) => (None, Some(s.as_str())),
                };
                catalog.change_access(table, schema, |access| {
                    for g in &grantees {
                        access.change(all_of(&object), g, &grantor, &privileges, grant);
                    }
                })
            })
            .await?;
        }
        Ok(())
    }

    fn grantee_names(&self, grantees: &[Grantee]) -> Result<Vec<String>> {
        grantees
            .iter()
            .map(|g| match (&g.grantee_type, &g.name) {
                (GranteesType::Public, _) => Ok(PUBLIC.to_string()),
                (GranteesType::None | GranteesType::Role | GranteesType::User | GranteesType::Group, Some(GranteeName::ObjectName(n))) => {
                    let name = super::roles::role_name(n)?;
                    if name.eq_ignore_ascii_case("public") {
                        return Ok(PUBLIC.to_string());
                    }
                    if !self.role_exists(&name) {
                        return Err(super::roles::no_such_role(&name));
                    }
                    Ok(name)
                }
                _ => Err(Error::NotSupported(format!("grantee {g}"))),
            })
            .collect()
    }

    fn grant_targets(&self, objects: &GrantObjects) -> Result<Vec<Object>> {
        let state = self.catalog.snapshot();
        let schema = |n: &datafusion::sql::sqlparser::ast::ObjectName| -> Result<String> {
            let s = super::roles::role_name(n)?;
            if state.attachments.contains_key(&s) {
                Ok(s)
            } else if s == DATA_SCHEMA {
                Err(Error::NotSupported(format!(
                    "privileges on schema {DATA_SCHEMA} (every role may create tables there; grant on the tables)"
                )))
            } else {
                Err(Error::SchemaNotFound(s))
            }
        };
        match objects {
            GrantObjects::Tables(names) | GrantObjects::Views(names) => names
                .iter()
                .map(|n| {
                    let t = self.dataset_name(&TableReference::from(n.to_string()))?;
                    if state.datasets.contains_key(&t) {
                        Ok(Object::Table(t))
                    } else {
                        Err(Error::TableNotFound(t))
                    }
                })
                .collect(),
            GrantObjects::Schemas(names) => names.iter().map(|n| schema(n).map(Object::Schema)).collect(),
            GrantObjects::AllTablesInSchema { schemas } => {
                let mut out = vec![];
                for s in schemas {
                    let name = super::roles::role_name(s)?;
                    if name == DATA_SCHEMA {
                        out.extend(state.datasets.keys().map(|t| Object::Table(t.clone())));
                    } else {
                        // An attachment's tables are all read through its USAGE.
                        return Err(Error::NotSupported(format!(
                            "ALL TABLES IN SCHEMA {name}: an attachment's tables are read with USAGE on it (GRANT USAGE ON SCHEMA {name} TO …)"
                        )));
                    }
                }
                Ok(out)
            }
            other => Err(Error::NotSupported(format!("GRANT ON {other}: lakehouse grants on tables, views and attachments (schemas)"))),
        }
    }

    async fn change_membership(&self, session: &Session, privileges: &Privileges, members: &[String], grant: bool) -> Result<()> {
        let roles: Vec<String> = match privileges {
            Privileges::Actions(actions) => actions
                .iter()
                .map(|a| match a {
                    Action::Role { role } => super::roles::role_name(role),
                    other => Err(Error::Syntax(format!("{other} needs ON and an object: GRANT {other} ON table TO role"))),
                })
                .collect::<Result<_>>()?,
            Privileges::All { .. } => return Err(Error::Syntax("GRANT ALL needs ON and an object".into())),
        };
        session.require_superuser(if grant { "GRANT role TO role" } else { "REVOKE role FROM role" })?;
        for role in &roles {
            if role == PUBLIC || !self.role_exists(role) {
                return Err(super::roles::no_such_role(role));
            }
            for member in members {
                if member == PUBLIC {
                    return Err(Error::InvalidGrant("PUBLIC cannot be a member of a role".into()));
                }
                let m = Membership { role: role.clone(), member: member.clone(), grantor: session.user.clone() };
                let catalog = self.catalog.clone();
                let changed = crate::catalog::blocking(move || catalog.set_membership(m, grant)).await?;
                if !changed {
                    session.notice(if grant {
                        format!("role \"{member}\" is already a member of role \"{role}\"")
                    } else {
                        format!("role \"{member}\" has not been granted membership in role \"{role}\"")
                    });
                }
            }
        }
        Ok(())
    }
}

/// The privileges named, checked against what `object` has (PostgreSQL: 0LP01
/// "invalid privilege type USAGE for table").
fn privileges_for(privileges: &Privileges, object: &Object) -> Result<Vec<Privilege>> {
    let all = all_of(object);
    let named = match privileges {
        Privileges::All { .. } => return Ok(all.to_vec()),
        Privileges::Actions(actions) => actions,
    };
    named
        .iter()
        .map(|a| {
            let p = match a {
                Action::Select { columns: None } => Privilege::Select,
                Action::Insert { columns: None } => Privilege::Insert,
                Action::Update { columns: None } => Privilege::Update,
                Action::Delete => Privilege::Delete,
                Action::Truncate => Privilege::Truncate,
                Action::References { columns: None } => Privilege::References,
                Action::Trigger => Privilege::Trigger,
                Action::Usage => Privilege::Usage,
                Action::Select { .. } | Action::Insert { .. } | Action::Update { .. } | Action::References { .. } => {
                    return Err(Error::NotSupported("column privileges (grant on the whole table)".into()));
                }
                other => return Err(Error::InvalidGrant(format!("invalid privilege type {other} for {}", kind(object)))),
            };
            if all.contains(&p) {
                Ok(p)
            } else {
                Err(Error::InvalidGrant(format!("invalid privilege type {} for {}", p.as_str(), kind(object))))
            }
        })
        .collect()
}

fn kind(object: &Object) -> &'static str {
    match object {
        Object::Table(_) => "table",
        Object::Schema(_) => "schema",
    }
}
