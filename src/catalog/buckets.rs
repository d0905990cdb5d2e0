//! Buckets: named object-store locations that hold datasets and index files.
//! `primary` is the data directory and `rescue` (for recovery copies) sits beside it;
//! both always exist and cannot be dropped.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Catalog, CatalogState, now_rfc3339};
use crate::error::{Error, Result};

pub const PRIMARY: &str = "primary";
pub const RESCUE: &str = "rescue";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BucketKind {
    Primary,
    Rescue,
    User,
}

impl BucketKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            BucketKind::Primary => "primary",
            BucketKind::Rescue => "rescue",
            BucketKind::User => "user",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BucketRecord {
    pub name: String,
    /// Always ends with `/`.
    pub url: String,
    pub kind: BucketKind,
    pub created_at: String,
}

impl BucketRecord {
    pub fn new(name: &str, url: &str, kind: BucketKind) -> Self {
        BucketRecord {
            name: name.to_string(),
            url: url.to_string(),
            kind,
            created_at: now_rfc3339(),
        }
    }

    /// The local directory behind a `file://` bucket.
    pub fn local_path(&self) -> Option<PathBuf> {
        url::Url::parse(&self.url).ok()?.to_file_path().ok()
    }
}

fn dir_url(path: &Path) -> Result<String> {
    let mut u = url::Url::from_directory_path(path)
        .map_err(|_| Error::invalid(format!("{} is not an absolute directory path", path.display())))?
        .to_string();
    if !u.ends_with('/') {
        u.push('/');
    }
    Ok(u)
}

/// Make sure `primary` (the data dir) and `rescue` (its sibling `<name>-rescue`) exist
/// and point where the data directory is now (it may have been moved).
pub(super) fn ensure_builtin(state: &mut CatalogState, data_dir: &Path) -> Result<()> {
    let rescue_dir = rescue_dir_for(data_dir);
    std::fs::create_dir_all(&rescue_dir).map_err(|e| Error::io(rescue_dir.display(), e))?;
    for (name, kind, path) in [
        (PRIMARY, BucketKind::Primary, data_dir.to_path_buf()),
        (RESCUE, BucketKind::Rescue, rescue_dir),
    ] {
        let url = dir_url(&path)?;
        let entry = state
            .buckets
            .entry(name.to_string())
            .or_insert_with(|| BucketRecord::new(name, &url, kind));
        let old = std::mem::replace(&mut entry.url, url.clone());
        entry.kind = kind;
        if old != url {
            relocate(state, &old, &url);
        }
    }
    Ok(())
}

/// The data directory moved from `old` to `new` (both directory URLs): every
/// location the catalog holds under `old` now lies under `new`. Without this the
/// tables would point at the old place, and the start's orphan cleanup would take
/// their directories for leftovers.
fn relocate(state: &mut CatalogState, old: &str, new: &str) {
    let moved = |loc: &mut String| {
        if let Some(rest) = loc.strip_prefix(old) {
            *loc = format!("{new}{rest}");
        }
    };
    for d in state.datasets.values_mut() {
        moved(&mut d.location);
    }
    for i in state.indexes.values_mut() {
        moved(&mut i.location);
    }
    for e in state.eval_sets.values_mut() {
        moved(&mut e.location);
    }
    tracing::info!("data directory moved from {old} to {new}: catalog locations follow");
}

pub fn rescue_dir_for(data_dir: &Path) -> PathBuf {
    let base = data_dir.file_name().and_then(|n| n.to_str()).unwrap_or("lakehouse-data");
    data_dir.with_file_name(format!("{base}-rescue"))
}

/// Names are SQL-identifier-like so they read well in `bucket => 'x'` and paths.
pub fn validate_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid {kind} name \"{name}\": use 1-63 lowercase letters, digits, '_' or '-', starting with a letter"
        )))
    }
}

/// Turn a user-supplied location into a bucket URL. Only local directories are built
/// into this binary; object-store schemes are refused with a clear message.
pub fn parse_location(location: &str) -> Result<(String, PathBuf)> {
    // Checked on the raw text: URL parsing would silently resolve the `..` away.
    if location.split('/').any(|segment| segment == "..") {
        return Err(Error::invalid(format!("bucket location \"{location}\" must not contain '..'")));
    }
    let path = if let Some(rest) = location.strip_prefix("file://") {
        if !rest.starts_with('/') {
            return Err(Error::invalid(format!(
                "bucket location \"{location}\" must be an absolute file URL such as file:///var/lib/lakehouse/archive"
            )));
        }
        url::Url::parse(location)
            .ok()
            .and_then(|u| u.to_file_path().ok())
            .ok_or_else(|| Error::invalid(format!("bucket location \"{location}\" is not a valid file URL")))?
    } else if location.starts_with('/') {
        PathBuf::from(location)
    } else if let Some((scheme, _)) = location.split_once("://") {
        return Err(Error::NotSupported(format!(
            "bucket scheme \"{scheme}://\" (this build stores buckets on local disk; use file:///absolute/path)"
        )));
    } else {
        return Err(Error::invalid(format!(
            "bucket location \"{location}\" must be an absolute file URL such as file:///var/lib/lakehouse/archive"
        )));
    };
    Ok((dir_url(&path)?, path))
}

impl Catalog {
    pub fn create_bucket(&self, name: &str, location: &str) -> Result<BucketRecord> {
        validate_name("bucket", name)?;
        let (url, path) = parse_location(location)?;
        if path.starts_with(self.data_dir().join(super::CATALOG_DIR)) {
            return Err(Error::invalid("a bucket cannot live inside the catalog directory"));
        }
        std::fs::create_dir_all(&path).map_err(|e| Error::io(path.display(), e))?;
        self.update(|s| {
            if s.buckets.contains_key(name) {
                return Err(Error::DuplicateObject(format!("bucket \"{name}\"")));
            }
            if let Some(other) = s.buckets.values().find(|b| b.url == url) {
                return Err(Error::DuplicateObject(format!(
                    "a bucket at {url} (\"{}\")",
                    other.name
                )));
            }
            let rec = BucketRecord::new(name, &url, BucketKind::User);
            s.buckets.insert(name.to_string(), rec.clone());
            Ok(rec)
        })
    }

    /// Unregister a bucket. Its files stay on disk: dropping a bucket never deletes data.
    pub fn drop_bucket(&self, name: &str) -> Result<BucketRecord> {
        self.update(|s| {
            let rec = s.buckets.get(name).ok_or_else(|| unknown_bucket(name))?;
            if rec.kind != BucketKind::User {
                return Err(Error::PermissionDenied(format!(
                    "bucket \"{name}\" is built in and cannot be dropped"
                )));
            }
            let users: Vec<&str> =
                s.datasets.values().filter(|d| d.bucket == name).map(|d| d.name.as_str()).collect();
            if !users.is_empty() {
                return Err(Error::DependentObjects(format!(
                    "bucket \"{name}\" still holds datasets {}; drop or move them first",
                    users.join(", ")
                )));
            }
            Ok(s.buckets.remove(name).expect("checked above"))
        })
    }

    pub fn bucket(&self, name: &str) -> Result<BucketRecord> {
        self.snapshot().buckets.get(name).cloned().ok_or_else(|| unknown_bucket(name))
    }
}

pub fn unknown_bucket(name: &str) -> Error {
    Error::UndefinedObject(format!(
        "bucket \"{name}\" does not exist; see SELECT name FROM lakehouse.buckets"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert!(parse_location("file:///tmp/a").unwrap().0.ends_with("/tmp/a/"));
        assert!(parse_location("/tmp/a").is_ok());
        assert_eq!(parse_location("s3://b/x").unwrap_err().sqlstate(), "0A000");
        assert_eq!(parse_location("relative/x").unwrap_err().sqlstate(), "22023");
        assert_eq!(parse_location("file:///tmp/../etc").unwrap_err().sqlstate(), "22023");
    }

    #[test]
    fn names() {
        assert!(validate_name("bucket", "archive_2").is_ok());
        for bad in ["", "Upper", "1x", "a b", "a/b", &"x".repeat(64)] {
            assert!(validate_name("bucket", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn builtin_buckets_cannot_be_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(&dir.path().join("data")).unwrap();
        for b in [PRIMARY, RESCUE] {
            assert_eq!(c.drop_bucket(b).unwrap_err().sqlstate(), "42501");
        }
        assert!(dir.path().join("data-rescue").is_dir());
        let loc = format!("file://{}/archive", dir.path().display());
        c.create_bucket("archive", &loc).unwrap();
        assert_eq!(c.create_bucket("archive", &loc).unwrap_err().sqlstate(), "42710");
        c.drop_bucket("archive").unwrap();
        assert_eq!(c.drop_bucket("archive").unwrap_err().sqlstate(), "42704");
    }
}
