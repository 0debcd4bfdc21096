//! Key files shared by every instance through the keys directory.

use std::path::Path;

/// Writes `dir/name` unless it exists: written aside, then hard-linked into place, which is
/// atomic and fails rather than overwrite. So two instances starting at once on an empty
/// directory agree: the first link wins and the other reads it. Readable by the owner only.
pub fn write_once(dir: &Path, name: &str, contents: &[u8]) -> std::io::Result<()> {
    let temp = dir.join(format!(".{name}.{}", uuid::Uuid::new_v4()));
    std::fs::write(&temp, contents)?;
    restrict_permissions(&temp)?;
    let linked = std::fs::hard_link(&temp, dir.join(name));
    std::fs::remove_file(&temp)?;
    match linked {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict_permissions(_: &Path) -> std::io::Result<()> {
    Ok(())
}
