//! The files of a test: generated at the origin, found again in the backups, and what a
//! process printed.

use super::app::TestApp;
use sha2::{Digest, Sha256};
use shared::fixtures::{FileSpec, generate, report_name};
use std::collections::BTreeMap;
use std::path::Path;

/// The SHA-256 of `bytes`, in hex.
fn sha256(bytes: &[u8]) -> String {
    shared::local::hash::to_hex(&Sha256::digest(bytes))
}

/// Puts generated files `report_{from..=to}.txt` at the origin; returns name → SHA-256.
pub fn put_files(app: &TestApp, from: usize, to: usize, rows: usize) -> BTreeMap<String, String> {
    (from..=to)
        .map(|n| {
            let g = generate(&FileSpec {
                rows,
                seed: n as u64 * 7,
                ..Default::default()
            });
            app.put(&report_name(n), &g.bytes);
            (report_name(n), sha256(&g.bytes))
        })
        .collect()
}

/// Entry name → SHA-256 of its bytes, for the zip at `zip`.
pub fn zip_hashes(zip: &Path) -> BTreeMap<String, String> {
    zip_hashes_of(&std::fs::read(zip).unwrap())
}

/// Entry name → SHA-256 of its bytes, for a zip's bytes.
pub fn zip_hashes_of(zip: &[u8]) -> BTreeMap<String, String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut entry = archive.by_index(i).unwrap();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            (entry.name().unwrap().to_string(), sha256(&bytes))
        })
        .collect()
}

/// Everything a finished process printed, stdout then stderr.
pub fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
