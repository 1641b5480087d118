//! An append-only file of lines that is rotated by size: when the next write would take it
//! past `max_bytes`, `file` becomes `file.1` (`file.1` becomes `file.2`, …, the oldest beyond
//! `keep` is deleted) and a new `file` is started. The audit JSONL file and the access log use
//! it, on the log thread.
//!
//! Owns: buffering a batch of lines into one write, and the rotation. Must never: split a line
//! across two files, or be written from a worker core.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub struct RotatingFile {
    path: PathBuf,
    file: File,
    /// Bytes in the current file (what was there at open, plus what was written).
    size: u64,
    max_bytes: u64,
    keep: u32,
    /// Lines of the batch being written, not yet in the file.
    pending: Vec<u8>,
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// `file.N`.
fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

impl RotatingFile {
    /// Opens (creating) `path` for appending.
    pub fn open(path: &Path, max_bytes: u64, keep: u32) -> io::Result<RotatingFile> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_owned(),
            file,
            size,
            max_bytes,
            keep,
            pending: Vec::with_capacity(64 * 1024),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds one line (without its newline, which is added). It reaches the file at the next
    /// [`RotatingFile::flush`], or earlier when a rotation is due. An error is a write or a
    /// rotation that failed; after a failed rotation the line goes to the current file (past
    /// `max_bytes`) rather than being lost, and the next line tries again.
    pub fn push_line(&mut self, line: &[u8]) -> Result<(), (Failure, io::Error)> {
        let len = line.len() as u64 + 1;
        let would_be = self.size + self.pending.len() as u64 + len;
        let mut failed = None;
        if would_be > self.max_bytes && self.size + self.pending.len() as u64 > 0 {
            failed = self.flush().err();
            if failed.is_none() {
                failed = self.rotate().err().map(|e| (Failure::Rotate, e));
            }
        }
        self.pending.extend_from_slice(line);
        self.pending.push(b'\n');
        failed.map_or(Ok(()), Err)
    }

    /// Writes the pending lines. On failure they are dropped (a full disk must not grow this
    /// buffer without bound); the caller counts the error.
    pub fn flush(&mut self) -> Result<(), (Failure, io::Error)> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let written = self.file.write_all(&self.pending);
        let len = self.pending.len() as u64;
        self.pending.clear();
        match written {
            Ok(()) => {
                self.size += len;
                Ok(())
            }
            Err(e) => Err((Failure::Write, e)),
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            match std::fs::remove_file(numbered(&self.path, self.keep)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            for n in (1..self.keep).rev() {
                match std::fs::rename(numbered(&self.path, n), numbered(&self.path, n + 1)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            std::fs::rename(&self.path, numbered(&self.path, 1))?;
        }
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// Which step of writing failed (each kind is logged once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Write,
    Rotate,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::entry::tests::temp_dir;

    #[test]
    fn rotates_by_size_and_keeps_the_newest() {
        let dir = temp_dir("size");
        let path = dir.join("audit.jsonl");
        let mut f = RotatingFile::open(&path, 25, 2).unwrap();
        for i in 0..7 {
            // 9 bytes with the newline: two lines fit under 25.
            f.push_line(format!("line-{i:03}").as_bytes()).unwrap();
        }
        f.flush().unwrap();
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(path.clone()), "line-006\n");
        assert_eq!(read(numbered(&path, 1)), "line-004\nline-005\n");
        assert_eq!(read(numbered(&path, 2)), "line-002\nline-003\n");
        assert!(!numbered(&path, 3).exists(), "only `keep` rotated files");
        // Reopened, it continues from the size already there.
        let mut f = RotatingFile::open(&path, 25, 2).unwrap();
        f.push_line(b"line-007").unwrap();
        f.push_line(b"line-008").unwrap();
        f.flush().unwrap();
        assert_eq!(read(path.clone()), "line-008\n");
        assert_eq!(read(numbered(&path, 1)), "line-006\nline-007\n");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_line_longer_than_the_limit_gets_a_file_of_its_own() {
        let dir = temp_dir("long");
        let path = dir.join("a.log");
        let mut f = RotatingFile::open(&path, 4, 0).unwrap();
        f.push_line(b"0123456789").unwrap();
        f.push_line(b"abcdefghij").unwrap();
        f.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "abcdefghij\n");
        assert!(!numbered(&path, 1).exists(), "keep 0: nothing kept");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_failed_rotation_keeps_the_lines() {
        let dir = temp_dir("stuck");
        let path = dir.join("a.log");
        // A directory where the rotated file should go: the rename cannot happen.
        std::fs::create_dir_all(numbered(&path, 1).join("x")).unwrap();
        let mut f = RotatingFile::open(&path, 4, 1).unwrap();
        f.push_line(b"first").unwrap();
        let err = f.push_line(b"second").unwrap_err();
        assert_eq!(err.0, Failure::Rotate);
        f.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first\nsecond\n");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
