//! Files only their owner may read: dev mode's secret and Web Push key. A leaf: the modules
//! that keep such files (`config`, `push::keys`) share it without importing each other.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes a new file only its owner can read (mode 0600); an existing file is an error, so
/// a secret is never overwritten or widened.
pub fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)
}

/// Dev mode's JWT secret: random, kept under `dir` so tokens outlive a restart (open tabs
/// keep working) and `herald token` mints tokens the dev server accepts.
pub fn dev_secret(dir: &Path) -> io::Result<Vec<u8>> {
    fs::create_dir_all(dir)?;
    let path = dir.join("dev-jwt-secret");
    match fs::read(&path) {
        Ok(secret) if secret.len() >= 32 => return Ok(secret),
        Ok(_) => fs::remove_file(&path)?,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, secret.as_bytes())?;
    Ok(secret.into_bytes())
}
