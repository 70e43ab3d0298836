//! The audit log: one JSON line per call the gateway answered — when, who (the caller's name,
//! or none when its token was missing or unknown), what (method and path), the answer's HTTP
//! status and error code, and the submission and certificate it made. A line is appended and
//! synced to disk before the answer leaves; a write is also logged as `received` before
//! anything is signed, so that no submission is made that the log lacks.
//!
//! It is not a record of the chain (the chain is): it says which calling system asked for what.

use anyhow::{Context, Result};
use serde::Serialize;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// One call, as logged.
#[derive(Debug, Default, Serialize)]
pub struct Entry {
    /// Milliseconds since the Unix epoch, by this machine's clock.
    pub time_ms: u64,
    /// `received` (a write, before it is signed) or `answered`.
    pub phase: Phase,
    /// The caller, when its token was known.
    pub caller: Option<String>,
    /// The HTTP method.
    pub method: String,
    /// The path asked for.
    pub path: String,
    /// The answer's HTTP status (none while `received`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The error's code, when the answer was an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    /// The transaction submitted, when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub submission: Option<String>,
    /// The certificate the call was about or made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

/// When in a call an entry is written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// A write, authenticated and about to be signed and submitted.
    Received,
    /// The answer, about to leave.
    #[default]
    Answered,
}

/// The log file, appended to by one writer at a time.
pub struct AuditLog {
    file: Mutex<std::fs::File>,
}

impl AuditLog {
    /// Open (or create) the log at `path` for appending.
    pub fn open(path: &Path) -> Result<AuditLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the audit log {}", path.display()))?;
        Ok(AuditLog {
            file: Mutex::new(file),
        })
    }

    /// Append `entry` and sync it to disk.
    pub fn record(&self, entry: &Entry) -> Result<()> {
        let mut line = serde_json::to_vec(entry)?;
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(&line)?;
        file.sync_data()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_appended_one_json_line_each_across_openings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/audit.jsonl");
        for caller in ["land-system", "permit-system"] {
            let log = AuditLog::open(&path).unwrap();
            log.record(&Entry {
                caller: Some(caller.into()),
                method: "POST".into(),
                path: "/v1/anchors".into(),
                status: Some(202),
                ..Entry::default()
            })
            .unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["caller"], "land-system");
        assert_eq!(lines[1]["caller"], "permit-system");
        assert!(lines[1].get("code").is_none());
    }
}
