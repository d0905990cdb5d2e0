//! Roles, role membership and access-control lists (#13), as PostgreSQL has them.
//!
//! Login roles are the users of lakehouse.toml `[[auth.users]]` (their passwords
//! stay there); `CREATE ROLE` adds roles to the catalog: group roles to grant
//! privileges to, and in trust mode (no users configured) roles one can log in as.
//! Tables and attachments carry an owner and an ACL. A record written before #13
//! has neither: it is owned by no one (only superusers may drop or grant on it) and
//! every role may use it, as every role could before.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Catalog, CatalogState, now_rfc3339};
use crate::error::{Error, Result};

/// The grantee every role belongs to.
pub const PUBLIC: &str = "PUBLIC";

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "UPPERCASE")]
pub enum Privilege {
    Select,
    Insert,
    Update,
    Delete,
    Truncate,
    References,
    Trigger,
    Usage,
}

impl Privilege {
    pub fn as_str(self) -> &'static str {
        match self {
            Privilege::Select => "SELECT",
            Privilege::Insert => "INSERT",
            Privilege::Update => "UPDATE",
            Privilege::Delete => "DELETE",
            Privilege::Truncate => "TRUNCATE",
            Privilege::References => "REFERENCES",
            Privilege::Trigger => "TRIGGER",
            Privilege::Usage => "USAGE",
        }
    }

    /// What `ALL PRIVILEGES` means on a table (PostgreSQL's order).
    pub const TABLE: [Privilege; 7] = [
        Privilege::Insert,
        Privilege::Select,
        Privilege::Update,
        Privilege::Delete,
        Privilege::Truncate,
        Privilege::References,
        Privilege::Trigger,
    ];
}

/// One entry of an ACL: what `grantee` (a role or PUBLIC) was given, and by whom.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AclItem {
    pub grantee: String,
    pub grantor: String,
    pub privileges: BTreeSet<Privilege>,
}

/// Who owns an object and who else may use it. `owner: None` with `acl: None` is a
/// record from before #13: open to every role.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Access {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// None: the default (the owner's privileges only; everyone's for a legacy record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<Vec<AclItem>>,
}

impl Access {
    pub fn owned_by(owner: &str) -> Access {
        Access { owner: Some(owner.to_string()), acl: None }
    }

    /// The explicit entries, the default ones made explicit (PostgreSQL's
    /// `acldefault`): the owner holds `all`; a legacy record gives PUBLIC `all`.
    pub fn items(&self, all: &[Privilege]) -> Vec<AclItem> {
        if let Some(acl) = &self.acl {
            return acl.clone();
        }
        let every: BTreeSet<Privilege> = all.iter().copied().collect();
        match &self.owner {
            Some(o) => vec![AclItem { grantee: o.clone(), grantor: o.clone(), privileges: every }],
            None => vec![AclItem { grantee: PUBLIC.into(), grantor: String::new(), privileges: every }],
        }
    }

    /// Add (grant) or remove (revoke) `privileges` for `grantee`.
    pub fn change(&mut self, all: &[Privilege], grantee: &str, grantor: &str, privileges: &[Privilege], grant: bool) {
        let mut items = self.items(all);
        match items.iter_mut().find(|i| i.grantee == grantee && (!grant || i.grantor == grantor || grantor.is_empty())) {
            Some(item) if grant => item.privileges.extend(privileges.iter().copied()),
            _ if grant => items.push(AclItem {
                grantee: grantee.to_string(),
                grantor: grantor.to_string(),
                privileges: privileges.iter().copied().collect(),
            }),
            _ => {
                for item in items.iter_mut().filter(|i| i.grantee == grantee) {
                    for p in privileges {
                        item.privileges.remove(p);
                    }
                }
            }
        }
        items.retain(|i| !i.privileges.is_empty());
        self.acl = Some(items);
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoleRecord {
    pub name: String,
    #[serde(default)]
    pub superuser: bool,
    /// May log in (in trust mode; with users configured, only they log in).
    #[serde(default)]
    pub login: bool,
    pub created_at: String,
}

/// `member` is a member of `role` (and has its privileges).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Membership {
    pub role: String,
    pub member: String,
    pub grantor: String,
}

/// Roles and memberships, kept in the catalog document.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct RoleState {
    #[serde(default)]
    pub roles: BTreeMap<String, RoleRecord>,
    #[serde(default)]
    pub members: BTreeSet<Membership>,
}

impl RoleState {
    /// `user`, every role it is a member of (directly or through other roles), and
    /// PUBLIC.
    pub fn effective(&self, user: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::from([user.to_string(), PUBLIC.to_string()]);
        let mut frontier = vec![user.to_string()];
        while let Some(r) = frontier.pop() {
            for m in self.members.iter().filter(|m| m.member == r) {
                if out.insert(m.role.clone()) {
                    frontier.push(m.role.clone());
                }
            }
        }
        out
    }
}

/// A PostgreSQL-style role oid, stable across restarts: config users are not stored,
/// so the oid comes from the name (FNV-1a into the range above PostgreSQL's own).
pub fn role_oid(name: &str) -> i64 {
    let mut h: u32 = 0x811c9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x01000193);
    }
    16384 + i64::from(h % 0x7000_0000)
}

impl Catalog {
    pub fn create_role(&self, record: RoleRecord, configured: &[String]) -> Result<()> {
        self.update(|s| {
            if s.roles.roles.contains_key(&record.name) || configured.contains(&record.name) {
                return Err(Error::DuplicateObject(format!("role \"{}\"", record.name)));
            }
            s.roles.roles.insert(record.name.clone(), record);
            Ok(())
        })
    }

    /// Drop `name`; refused (2BP01, as PostgreSQL) while it owns an object.
    pub fn drop_role(&self, name: &str) -> Result<bool> {
        self.update(|s| {
            if !s.roles.roles.contains_key(name) {
                return Ok(false);
            }
            if let Some(what) = owned_by(s, name).first() {
                return Err(Error::DependentObjects(format!(
                    "role \"{name}\" cannot be dropped because of {what}; DROP or REVOKE first"
                )));
            }
            s.roles.roles.remove(name);
            s.roles.members.retain(|m| m.role != name && m.member != name);
            for d in s.datasets.values_mut() {
                drop_grantee(&mut d.access, name);
            }
            for a in s.attachments.values_mut() {
                drop_grantee(&mut a.access, name);
            }
            Ok(true)
        })
    }

    /// Grant (or revoke) membership of `role` to `member`. Returns false when there
    /// was nothing to do.
    pub fn set_membership(&self, m: Membership, grant: bool) -> Result<bool> {
        self.update(|s| {
            if grant {
                if m.role == m.member || s.roles.effective(&m.role).contains(&m.member) {
                    return Err(Error::InvalidGrant(format!(
                        "role \"{}\" is a member of role \"{}\"; a membership loop is not allowed",
                        m.role, m.member
                    )));
                }
                if s.roles.members.iter().any(|x| x.role == m.role && x.member == m.member) {
                    return Ok(false);
                }
                Ok(s.roles.members.insert(m))
            } else {
                let before = s.roles.members.len();
                s.roles.members.retain(|x| !(x.role == m.role && x.member == m.member));
                Ok(s.roles.members.len() != before)
            }
        })
    }

    /// Change the access of table `name` (a dataset) or attachment `name`.
    pub fn change_access(&self, table: Option<&str>, attachment: Option<&str>, change: impl FnOnce(&mut Access)) -> Result<()> {
        self.update(|s| {
            let access = match (table, attachment) {
                (Some(t), _) => &mut s.datasets.get_mut(t).ok_or_else(|| Error::TableNotFound(t.to_string()))?.access,
                (_, Some(a)) => {
                    &mut s.attachments.get_mut(a).ok_or_else(|| Error::SchemaNotFound(a.to_string()))?.access
                }
                _ => return Err(Error::Internal("change_access without an object".into())),
            };
            change(access);
            Ok(())
        })
    }
}

fn drop_grantee(access: &mut Access, name: &str) {
    if let Some(acl) = &mut access.acl {
        acl.retain(|i| i.grantee != name);
    }
}

/// What `name` owns or holds privileges on, for DROP ROLE's error (PostgreSQL
/// refuses both).
fn owned_by(s: &CatalogState, name: &str) -> Vec<String> {
    let holds = |a: &Access| a.acl.as_ref().is_some_and(|acl| acl.iter().any(|i| i.grantee == name || i.grantor == name));
    let tables = s.datasets.values().filter(|d| d.access.owner.as_deref() == Some(name)).map(|d| format!("table \"{}\"", d.name));
    let attachments =
        s.attachments.values().filter(|a| a.access.owner.as_deref() == Some(name)).map(|a| format!("attachment \"{}\"", a.name));
    let grants = s.datasets.values().filter(|d| holds(&d.access)).map(|d| format!("privileges on table \"{}\" (REVOKE them)", d.name));
    let usage = s.attachments.values().filter(|a| holds(&a.access)).map(|a| format!("privileges on schema \"{}\" (REVOKE them)", a.name));
    tables.chain(attachments).chain(grants).chain(usage).collect()
}

/// Is role `name` a superuser? lakehouse.toml decides for its users; a catalog role
/// says so itself; any other name is the config's answer (trust mode: every name
/// is the one local superuser).
pub fn is_superuser(config: &crate::config::Config, state: &CatalogState, name: &str) -> bool {
    if config.auth.users.iter().any(|u| u.name == name) {
        return config.is_superuser(name);
    }
    match state.roles.roles.get(name) {
        Some(r) => r.superuser,
        None => config.is_superuser(name),
    }
}

pub fn new_role(name: &str, superuser: bool, login: bool) -> RoleRecord {
    RoleRecord { name: name.to_string(), superuser, login, created_at: now_rfc3339() }
}

/// Who runs a statement, as its DataFusion session carries it (a config extension),
/// for the checks made inside planning (`vector_search`).
#[derive(Debug, Clone)]
pub struct Identity {
    pub user: String,
    pub superuser: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Object {
    Table(String),
    /// An attachment's schema.
    Schema(String),
}

impl std::fmt::Display for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Object::Table(t) => write!(f, "table {t}"),
            Object::Schema(s) => write!(f, "schema {s}"),
        }
    }
}

pub fn access<'a>(state: &'a CatalogState, object: &Object) -> Option<&'a Access> {
    match object {
        Object::Table(t) => state.datasets.get(t).map(|d| &d.access),
        Object::Schema(s) => state.attachments.get(s).map(|a| &a.access),
    }
}

pub fn all_of(object: &Object) -> &'static [Privilege] {
    match object {
        Object::Table(_) => &Privilege::TABLE,
        Object::Schema(_) => &[Privilege::Usage],
    }
}

/// May `id` use `object` with `privilege`? An object the catalog does not hold
/// (a system table) is not checked here.
pub fn may(state: &CatalogState, id: &Identity, object: &Object, privilege: Privilege) -> bool {
    if id.superuser {
        return true;
    }
    let Some(access) = access(state, object) else { return true };
    let roles = state.roles.effective(&id.user);
    access.items(all_of(object)).iter().any(|i| roles.contains(&i.grantee) && i.privileges.contains(&privilege))
}

/// Does `id` own `object` (or is it a member of the owning role, or a superuser)?
pub fn owns(state: &CatalogState, id: &Identity, object: &Object) -> bool {
    if id.superuser {
        return true;
    }
    // Not in the catalog: the caller's own "does not exist" answers.
    let Some(access) = access(state, object) else { return true };
    match access.owner.as_deref() {
        Some(owner) => state.roles.effective(&id.user).contains(owner),
        // A record from before #13 is owned by no one: superusers only.
        None => false,
    }
}

pub fn denied(object: &Object, privilege: Privilege, user: &str) -> Error {
    let what = match object {
        Object::Table(t) => format!("ON {t}"),
        Object::Schema(s) => format!("ON SCHEMA {s}"),
    };
    Error::InsufficientPrivilege(format!(
        "permission denied for {object}: role \"{user}\" needs {p}; its owner or a superuser can GRANT {p} {what} TO {user}",
        p = privilege.as_str()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_acls_are_the_owners_or_everyones_for_legacy_records() {
        let legacy = Access::default();
        assert_eq!(legacy.items(&Privilege::TABLE)[0].grantee, PUBLIC);
        let mut a = Access::owned_by("alice");
        assert_eq!(a.items(&Privilege::TABLE)[0].grantee, "alice");
        a.change(&Privilege::TABLE, "bob", "alice", &[Privilege::Select], true);
        assert_eq!(a.acl.as_ref().unwrap().len(), 2);
        a.change(&Privilege::TABLE, "bob", "alice", &[Privilege::Select], false);
        assert_eq!(a.acl.as_ref().unwrap().len(), 1, "an empty entry is removed");
        // The owner can revoke from itself, as in PostgreSQL.
        a.change(&Privilege::TABLE, "alice", "alice", &[Privilege::Delete], false);
        assert!(!a.items(&Privilege::TABLE)[0].privileges.contains(&Privilege::Delete));
    }

    #[test]
    fn membership_is_transitive_and_public_is_everyones() {
        let mut s = RoleState::default();
        s.members.insert(Membership { role: "readers".into(), member: "analysts".into(), grantor: "root".into() });
        s.members.insert(Membership { role: "analysts".into(), member: "alice".into(), grantor: "root".into() });
        let e = s.effective("alice");
        assert!(e.contains("readers") && e.contains("analysts") && e.contains(PUBLIC) && e.contains("alice"));
        assert!(!s.effective("bob").contains("readers"));
        assert_ne!(role_oid("alice"), role_oid("bob"));
        assert!(role_oid("alice") >= 16384);
    }
}
