//! `CREATE ROLE`, `CREATE USER`, `DROP ROLE` (#13). Roles created here are group
//! roles to grant privileges to (and, in trust mode, roles one can log in as, with
//! their attributes); the users of lakehouse.toml `[[auth.users]]` are the login
//! roles, and their passwords stay in that file.

use datafusion::sql::sqlparser::ast::{CreateRole, ObjectName};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

use super::{Engine, QueryResult, Session};
use crate::catalog::roles::{Membership, new_role};
use crate::error::{Error, Result};

/// A one-part role (or schema) name, unquoted.
pub fn role_name(n: &ObjectName) -> Result<String> {
    match n.0.as_slice() {
        [one] => Ok(one.as_ident().map(|i| i.value.clone()).unwrap_or_else(|| one.to_string())),
        _ => Err(Error::Syntax(format!("a role name has one part, not \"{n}\""))),
    }
}

pub fn no_such_role(name: &str) -> Error {
    Error::UndefinedObject(format!("role \"{name}\" does not exist; see SELECT rolname FROM pg_roles"))
}

fn reserved(name: &str) -> Option<Error> {
    let lower = name.to_lowercase();
    (lower == "public" || lower == "none" || lower.starts_with("pg_"))
        .then(|| Error::ReservedName(format!("role name \"{name}\" is reserved")))
}

impl Engine {
    pub(super) async fn create_role(&self, session: &Session, c: &CreateRole) -> Result<QueryResult> {
        session.require_superuser("CREATE ROLE")?;
        if c.password.is_some() {
            return Err(Error::NotSupported(
                "PASSWORD in CREATE ROLE: login passwords live in lakehouse.toml [[auth.users]] (add the user there)".into(),
            ));
        }
        let unsupported = [
            (c.bypassrls.is_some(), "BYPASSRLS"),
            (c.create_db.is_some(), "CREATEDB"),
            (c.create_role.is_some(), "CREATEROLE"),
            (c.replication.is_some(), "REPLICATION"),
            (c.connection_limit.is_some(), "CONNECTION LIMIT"),
            (c.valid_until.is_some(), "VALID UNTIL"),
            (c.inherit == Some(false), "NOINHERIT"),
            (!c.in_group.is_empty(), "IN GROUP"),
            (!c.role.is_empty() || !c.user.is_empty() || !c.admin.is_empty(), "ROLE/USER/ADMIN"),
            (c.authorization_owner.is_some(), "AUTHORIZATION"),
        ];
        if let Some((_, what)) = unsupported.iter().find(|(set, _)| *set) {
            return Err(Error::NotSupported(format!("{what} in CREATE ROLE")));
        }
        let configured: Vec<String> = self.config.auth.users.iter().map(|u| u.name.clone()).collect();
        let _ddl = self.ddl.lock().await;
        for n in &c.names {
            let name = role_name(n)?;
            if let Some(e) = reserved(&name) {
                return Err(e);
            }
            for r in &c.in_role {
                if !self.role_exists(&r.value) || r.value == crate::catalog::roles::PUBLIC {
                    return Err(no_such_role(&r.value));
                }
            }
            let record = new_role(&name, c.superuser.unwrap_or(false), c.login.unwrap_or(false));
            let catalog = self.catalog.clone();
            let (conf, n2) = (configured.clone(), name.clone());
            match crate::catalog::blocking(move || catalog.create_role(record, &conf)).await {
                Err(Error::DuplicateObject(_)) if c.if_not_exists => {
                    session.notice(format!("role \"{n2}\" already exists, skipping"));
                    continue;
                }
                other => other?,
            }
            for r in &c.in_role {
                let m = Membership { role: r.value.clone(), member: name.clone(), grantor: session.user.clone() };
                let catalog = self.catalog.clone();
                crate::catalog::blocking(move || catalog.set_membership(m, true)).await?;
            }
        }
        Ok(QueryResult::command("CREATE ROLE"))
    }

    pub(super) async fn drop_role(&self, session: &Session, names: &[ObjectName], if_exists: bool) -> Result<QueryResult> {
        session.require_superuser("DROP ROLE")?;
        let _ddl = self.ddl.lock().await;
        for n in names {
            let name = role_name(n)?;
            if name == session.user {
                return Err(Error::ObjectInUse("current user cannot be dropped".into()));
            }
            if self.config.auth.users.iter().any(|u| u.name == name) {
                return Err(Error::InsufficientPrivilege(format!(
                    "role \"{name}\" is a user of lakehouse.toml [[auth.users]]; remove it there and restart"
                )));
            }
            let catalog = self.catalog.clone();
            let n2 = name.clone();
            if !crate::catalog::blocking(move || catalog.drop_role(&n2)).await? {
                if if_exists {
                    session.notice(format!("role \"{name}\" does not exist, skipping"));
                } else {
                    return Err(no_such_role(&name));
                }
            }
        }
        Ok(QueryResult::command("DROP ROLE"))
    }
}

/// PostgreSQL syntax sqlparser does not take, as the form it does: `CREATE USER x`
/// is `CREATE ROLE x LOGIN`, and `GRANT a, b TO c` (membership) is
/// `GRANT ROLE a, ROLE b TO c`, in each statement of `sql`. None when no statement
/// is either. The words are spliced into the text as written (re-printing tokens
/// would lose the escaping of quotes in the batch's other statements).
pub fn rewrite_role_syntax(sql: &str) -> Option<String> {
    // Parse runs this on every statement: tokenize only text that can hold one.
    let has = |word: &str| sql.as_bytes().windows(word.len()).any(|w| w.eq_ignore_ascii_case(word.as_bytes()));
    if !(has("grant") || has("revoke") || has("user")) {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location().ok()?;
    let offsets = super::split::Offsets::new(sql);
    let offset = |loc: Location| offsets.of(loc);
    // (byte offset, bytes replaced, text put there)
    let mut edits: Vec<(usize, usize, &'static str)> = vec![];
    for segment in tokens.split_inclusive(|t| matches!(t.token, Token::SemiColon)) {
        statement_edits(segment, &offset, &mut edits);
    }
    if edits.is_empty() {
        return None;
    }
    let mut out = sql.to_string();
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    for (at, len, text) in edits {
        out.replace_range(at..at + len, text);
    }
    Some(out)
}

fn statement_edits(tokens: &[TokenWithSpan], offset: &dyn Fn(Location) -> Option<usize>, edits: &mut Vec<(usize, usize, &'static str)>) {
    let words: Vec<&TokenWithSpan> = tokens.iter().filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::SemiColon)).collect();
    let kw = |i: usize| match words.get(i).map(|t| &t.token) {
        Some(Token::Word(w)) => Some(w.keyword),
        _ => None,
    };
    let Some(last) = words.last() else { return };
    match (kw(0), kw(1)) {
        (Some(Keyword::CREATE), Some(Keyword::USER)) => {
            let (Some(user), Some(end)) = (offset(words[1].span.start), offset(last.span.end)) else { return };
            let has_login = words.iter().any(|t| matches!(&t.token, Token::Word(w) if w.keyword == Keyword::LOGIN || w.value.eq_ignore_ascii_case("nologin")));
            edits.push((user, "user".len(), "ROLE"));
            if !has_login {
                edits.push((end, 0, " LOGIN"));
            }
        }
        (Some(Keyword::GRANT | Keyword::REVOKE), _) => {
            // Membership: names up to TO/FROM, no ON, none of them a privilege.
            let Some(to) = words.iter().position(|t| matches!(&t.token, Token::Word(w) if w.keyword == Keyword::TO || w.keyword == Keyword::FROM)) else {
                return;
            };
            if to < 2 || words[..to].iter().any(|t| matches!(&t.token, Token::Word(w) if w.keyword == Keyword::ON)) {
                return;
            }
            let privilege = |t: &Token| {
                matches!(t, Token::Word(w) if matches!(w.keyword,
                    Keyword::SELECT | Keyword::INSERT | Keyword::UPDATE | Keyword::DELETE | Keyword::TRUNCATE
                    | Keyword::REFERENCES | Keyword::TRIGGER | Keyword::USAGE | Keyword::ALL | Keyword::CREATE
                    | Keyword::CONNECT | Keyword::TEMPORARY | Keyword::TEMP | Keyword::EXECUTE | Keyword::ROLE))
            };
            let mut mine = vec![];
            for (pos, t) in words[1..to].iter().enumerate() {
                match &t.token {
                    Token::Word(_) if pos % 2 == 0 && !privilege(&t.token) => match offset(t.span.start) {
                        Some(at) => mine.push((at, 0, "ROLE ")),
                        None => return,
                    },
                    Token::Comma if pos % 2 == 1 => {}
                    _ => return,
                }
            }
            edits.extend(mine);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::rewrite_role_syntax as r;

    #[test]
    fn role_syntax_is_rewritten_to_what_sqlparser_takes() {
        assert_eq!(r("CREATE USER bob").as_deref(), Some("CREATE ROLE bob LOGIN"));
        assert_eq!(r("create user bob nologin;").as_deref(), Some("create ROLE bob nologin;"));
        assert_eq!(r("CREATE USER bob; -- a comment").as_deref(), Some("CREATE ROLE bob LOGIN; -- a comment"));
        // The rest of the batch is left exactly as written (quotes stay doubled).
        assert_eq!(
            r("INSERT INTO audit VALUES ('x'';DROP TABLE t;--'); GRANT r TO u").as_deref(),
            Some("INSERT INTO audit VALUES ('x'';DROP TABLE t;--'); GRANT ROLE r TO u")
        );
        assert_eq!(r("GRANT \"Ré\" TO\n  alice").as_deref(), Some("GRANT ROLE \"Ré\" TO\n  alice"));
        assert_eq!(r("GRANT readers TO alice").as_deref(), Some("GRANT ROLE readers TO alice"));
        assert_eq!(r("grant a, \"B\" to c, d").as_deref(), Some("grant ROLE a, ROLE \"B\" to c, d"));
        assert_eq!(r("REVOKE readers FROM alice;").as_deref(), Some("REVOKE ROLE readers FROM alice;"));
        assert_eq!(r("GRANT SELECT ON t TO alice"), None);
        assert_eq!(r("GRANT SELECT, INSERT ON t TO alice"), None);
        assert_eq!(r("GRANT readers TO alice; SELECT 1").as_deref(), Some("GRANT ROLE readers TO alice; SELECT 1"));
        assert_eq!(r("CREATE ROLE a; GRANT a TO b").as_deref(), Some("CREATE ROLE a; GRANT ROLE a TO b"));
        assert_eq!(r("SELECT 1"), None);
    }
}
