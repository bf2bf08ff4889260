//! Files only their owner may read: dev mode's secret and Web Push key. A leaf: the modules
//! that keep such files (`devdb`, `push::keys`) share it without importing each other.

use std::fs::OpenOptions;
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
