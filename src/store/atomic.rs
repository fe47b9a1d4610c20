//! Atomic file writes: write beside the target, sync, rename over it. A
//! reader sees the old file or the new one, never a torn one.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A temporary path in the same directory as `target` (so rename is atomic).
pub fn temp_path_for(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

pub fn write(target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = temp_path_for(target);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes a whole folder atomically: `fill` writes into a fresh folder
/// beside `target`, which then takes its place. A crash leaves the old
/// folder (as `target` or, for the instant between two renames, as the
/// folder [`recover_dir`] finds), never a half-written one.
pub fn write_dir(
    target: &Path,
    fill: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = temp_path_for(target);
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let result = fill(&tmp).and_then(|()| {
        for entry in std::fs::read_dir(&tmp)? {
            std::fs::File::open(entry?.path())?.sync_all()?;
        }
        let old = old_path_for(target);
        let _ = std::fs::remove_dir_all(&old);
        if target.exists() {
            std::fs::rename(target, &old)?;
        }
        std::fs::rename(&tmp, target)?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// Where [`write_dir`] keeps the previous folder while it swaps.
fn old_path_for(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.old"))
}

/// `target`, or the previous folder a crash mid-swap left beside it.
pub fn recover_dir(target: &Path) -> Option<PathBuf> {
    if target.is_dir() {
        return Some(target.to_path_buf());
    }
    let old = old_path_for(target);
    old.is_dir().then_some(old)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_folder_is_replaced_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("ckpt");
        super::write_dir(&t, |d| Ok(std::fs::write(d.join("a"), "1")?)).unwrap();
        super::write_dir(&t, |d| Ok(std::fs::write(d.join("b"), "2")?)).unwrap();
        assert!(!t.join("a").exists() && t.join("b").exists());
        let failed = super::write_dir(&t, |d| {
            std::fs::write(d.join("c"), "3")?;
            anyhow::bail!("disk full")
        });
        assert!(failed.is_err());
        assert!(
            t.join("b").exists() && !t.join("c").exists(),
            "the old folder stays"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary left"
        );
        std::fs::rename(&t, dir.path().join(".ckpt.old")).unwrap();
        assert_eq!(
            super::recover_dir(&t).unwrap(),
            dir.path().join(".ckpt.old")
        );
    }

    #[test]
    fn replaces_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        super::write(&p, b"first version, long").unwrap();
        super::write(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }
}
