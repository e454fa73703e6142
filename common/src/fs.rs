//! Writing files the way every kubectl-phd command does: atomically, and
//! never through a symbolic link.
//!
//! A cluster repository is a git checkout, and git stores symbolic links: a
//! pushed change can aim `instances/<name>/env` (or any file in it) at a
//! directory outside the repository. phd therefore never follows a link
//! when it writes or removes a file it manages: a link found where phd
//! writes is replaced (the link itself, not its target), and a link among
//! the directories above is refused. And a write that fails half-way (a
//! full disk, a kill) must not leave a file cut short: every file is
//! written to a temporary file beside it, flushed to disk, then renamed
//! over the old one, so readers see the old bytes or the new, never a part.

use std::io::Write as _;
use std::path::{Component, Path, PathBuf};

/// Errors of [`write_atomic`] and [`ensure_real_dir`].
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is a symbolic link; kubectl-phd never reads or writes through links (git can point them outside the repository): replace it with the file or directory itself"
    )]
    Symlink { path: PathBuf },
    #[error("{path} is a file where kubectl-phd needs a directory")]
    NotADirectory { path: PathBuf },
}

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// directory, flushed, then renamed over `path`. The new file keeps the mode
/// of the file it replaces, else gets `mode` (unix permission bits, e.g.
/// `0o644`; `0o600` for credentials). A symbolic link at `path` is replaced
/// by the file; its target is never touched.
///
/// Errors: [`FsError::Write`] with the I/O cause (a missing parent, a full
/// disk); `path` is then unchanged.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FsError> {
    let error = |source| FsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".phd-")
        .suffix(".tmp")
        .tempfile_in(parent)
        .map_err(error)?;
    temp.write_all(bytes).map_err(error)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_file() => meta.permissions().mode() & 0o7777,
            _ => mode,
        };
        temp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(error)?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    temp.as_file().sync_all().map_err(error)?;
    temp.persist(path).map_err(|e| error(e.error))?;
    Ok(())
}

/// Makes `root/relative` a real directory, creating what is missing, one
/// component at a time and never following a link: a symbolic link among
/// the components below `root` is removed (the link, not its target) and
/// replaced by a directory. `root` itself must not be a link either.
///
/// `relative` is a relative path of normal components (as
/// [`Path::strip_prefix`] gives); other components are refused.
pub fn ensure_real_dir(root: &Path, relative: &Path) -> Result<(), FsError> {
    refuse_link(root)?;
    let mut current = root.to_path_buf();
    for component in relative.components() {
        let Component::Normal(part) = component else {
            return Err(FsError::NotADirectory {
                path: root.join(relative),
            });
        };
        current.push(part);
        let error = |source| FsError::Write {
            path: current.clone(),
            source,
        };
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                std::fs::remove_file(&current).map_err(error)?;
                std::fs::create_dir(&current).map_err(error)?;
            }
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(FsError::NotADirectory { path: current });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&current).map_err(error)?;
            }
            Err(e) => return Err(error(e)),
        }
    }
    Ok(())
}

/// Refuses `path` when it is a symbolic link (a missing path is fine).
pub fn refuse_link(path: &Path) -> Result<(), FsError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(FsError::Symlink {
            path: path.to_path_buf(),
        }),
        _ => Ok(()),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_a_link_and_never_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let link = dir.path().join("config.yml");
        std::os::unix::fs::symlink(&victim, &link).unwrap();

        write_atomic(&link, b"new", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert!(!std::fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(std::fs::read_to_string(&link).unwrap(), "new");
    }

    #[test]
    fn a_write_keeps_the_mode_and_leaves_no_temporary_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        write_atomic(&path, b"a", 0o600).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&path, b"b", 0o600).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("kubeconfig")]);
    }

    #[test]
    fn a_failed_write_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("config.yml");
        assert!(matches!(
            write_atomic(&path, b"x", 0o644),
            Err(FsError::Write { .. })
        ));
        // A directory where the file should be: the rename fails, and the
        // temporary file is removed.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("inner"), "keep").unwrap();
        assert!(write_atomic(&blocked, b"new", 0o644).is_err());
        assert_eq!(
            std::fs::read_to_string(blocked.join("inner")).unwrap(),
            "keep"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("blocked")]);
    }

    #[test]
    fn directories_are_made_without_following_links() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("file"), "keep").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("k8s")).unwrap();
        ensure_real_dir(root.path(), Path::new("k8s/apps")).unwrap();
        assert!(root.path().join("k8s/apps").is_dir());
        assert!(
            !std::fs::symlink_metadata(root.path().join("k8s"))
                .unwrap()
                .is_symlink()
        );
        assert_eq!(
            std::fs::read_to_string(outside.path().join("file")).unwrap(),
            "keep"
        );
        assert!(!outside.path().join("apps").exists());

        let linked_root = root.path().join("env-link");
        std::os::unix::fs::symlink(outside.path(), &linked_root).unwrap();
        assert!(matches!(
            ensure_real_dir(&linked_root, Path::new("k8s")),
            Err(FsError::Symlink { .. })
        ));
    }
}
