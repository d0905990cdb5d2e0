//! Which server files a statement may name. PostgreSQL lets only superusers (or
//! `pg_read_server_files` / `pg_write_server_files`) read or write server files;
//! lakehouse lets an ordinary user name a path only inside a registered bucket, and
//! nobody — superuser or not — reach the catalog directory (`_catalog/`: the catalog,
//! its secrets) or the config file through SQL. Paths are resolved first (`..`,
//! symlinks), so a link or a `..` out of a bucket is judged by where it leads.
//!
//! Secrets named in SQL (`password_env`, `password_file`, `api_key_env`) need a
//! superuser too, and must be on lakehouse.toml's `[secrets]` allow-list.

use std::path::{Component, Path, PathBuf};

use super::Engine;
use crate::error::{Error, Result};
use crate::session::Session;

/// Where a location leads: a local path (resolved), or a URL of another scheme.
enum Target {
    Local(PathBuf),
    Remote(String),
}

fn target(location: &str) -> Result<Target> {
    let loc = location.trim();
    let path = if let Some(rest) = loc.strip_prefix("file://") {
        url::Url::parse(loc)
            .ok()
            .and_then(|u| u.to_file_path().ok())
            .unwrap_or_else(|| PathBuf::from(rest))
    } else if loc.contains("://") {
        return Ok(Target::Remote(loc.to_string()));
    } else {
        PathBuf::from(loc)
    };
    Ok(Target::Local(resolve(&path)?))
}

/// Make `path` absolute, resolve symlinks in the part that exists, and `..` in the
/// part that does not yet (a file COPY would create).
pub fn resolve(path: &Path) -> Result<PathBuf> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map_err(|e| Error::io("the current directory", e))?.join(path)
    };
    let mut existing = abs.clone();
    let mut rest: Vec<std::ffi::OsString> = vec![];
    loop {
        if let Ok(c) = std::fs::canonicalize(&existing) {
            let mut out = c;
            for part in rest.iter().rev() {
                match Path::new(part).components().next() {
                    Some(Component::ParentDir) => {
                        out.pop();
                    }
                    Some(Component::CurDir) | None => {}
                    _ => out.push(part),
                }
            }
            return Ok(out);
        }
        match existing.components().next_back() {
            Some(Component::Normal(n)) => rest.push(n.to_os_string()),
            Some(Component::ParentDir) => rest.push("..".into()),
            Some(Component::CurDir) => {}
            // Nothing above exists (not even the root): keep it as written.
            _ => return Ok(abs),
        }
        if !existing.pop() {
            return Ok(abs);
        }
    }
}

impl Engine {
    /// May this session read (or, with `write`, write) the files at `location`?
    pub(crate) fn check_server_path(&self, session: &Session, location: &str, write: bool) -> Result<()> {
        let verb = if write { "writing" } else { "reading" };
        let path = match target(location)? {
            Target::Remote(url) => {
                return session.require_superuser(&format!("{verb} {url}"));
            }
            Target::Local(p) => p,
        };
        let catalog_dir = resolve(&self.catalog().data_dir().join(crate::catalog::CATALOG_DIR))?;
        if path.starts_with(&catalog_dir) || catalog_dir.starts_with(&path) {
            return Err(Error::PermissionDenied(format!(
                "{} is or contains lakehouse's catalog directory ({}), which SQL never reads or writes",
                path.display(),
                catalog_dir.display()
            )));
        }
        if let Some(config) = self.config().source.as_deref() {
            if let Ok(config) = resolve(config) {
                if path == config || (!write && config.starts_with(&path)) {
                    return Err(Error::PermissionDenied(format!(
                        "{} is or contains the server's configuration file, which SQL never reads",
                        path.display()
                    )));
                }
            }
        }
        if session.superuser {
            return Ok(());
        }
        if write {
            return session.require_superuser(&format!("writing the server file {}", path.display()));
        }
        let snapshot = self.catalog().snapshot();
        let roots: Vec<PathBuf> = snapshot.buckets.values().filter_map(|b| b.local_path()).filter_map(|r| resolve(&r).ok()).collect();
        // What lakehouse writes in a bucket (tables, indexes, eval sets) is read by
        // name, with its owner's grants: never as files by someone else.
        for root in &roots {
            for managed in ["datasets", "indexes", "tuning"].map(|d| root.join(d)) {
                if path.starts_with(&managed) || managed.starts_with(&path) {
                    return Err(Error::InsufficientPrivilege(format!(
                        "{} is or contains {}, where lakehouse keeps its tables and indexes; read a table by its name (its owner can GRANT SELECT on it)",
                        path.display(),
                        managed.display()
                    )));
                }
            }
        }
        if roots.iter().any(|r| path.starts_with(r)) {
            return Ok(());
        }
        session.require_superuser(&format!(
            "reading {} (outside every bucket: see SELECT name, url FROM lakehouse.buckets)",
            path.display()
        ))
    }

    /// A new bucket's directory: anywhere a superuser chooses, but never the catalog.
    pub fn check_bucket_location(&self, session: &Session, location: &str) -> Result<()> {
        self.check_server_path(session, location, true)
    }

    /// A secret source named in SQL: superusers only, and only what `[secrets]` lists.
    pub fn check_secret_env(&self, session: &Session, var: &str, what: &str) -> Result<()> {
        session.require_superuser(&format!("{what} => '{var}'"))?;
        self.config().secrets.check_env(var)
    }

    pub fn check_secret_file(&self, session: &Session, path: &str, what: &str) -> Result<()> {
        session.require_superuser(&format!("{what} => '{path}'"))?;
        self.config().secrets.check_file(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_dotdot_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let inside = root.join("bucket");
        std::fs::create_dir(&inside).unwrap();
        let outside = root.join("secret");
        std::fs::create_dir(&outside).unwrap();
        assert_eq!(resolve(&inside.join("../secret/x.parquet")).unwrap(), outside.join("x.parquet"));
        std::os::unix::fs::symlink(&outside, inside.join("link")).unwrap();
        assert_eq!(resolve(&inside.join("link/y")).unwrap(), outside.join("y"));
        assert_eq!(resolve(&inside.join("new/../z")).unwrap(), inside.join("z"));
    }
}
