//! `dispatcher generate`: sample files from the project's generator (demo, benchmarks).

use shared::fixtures::{self, Dialect, FileSpec};
use std::path::PathBuf;

/// Options of `dispatcher generate`.
#[derive(clap::Args)]
pub struct Args {
    /// Directory to write into (created if missing).
    #[arg(long)]
    dir: PathBuf,
    /// Number of files.
    #[arg(long, default_value_t = 1)]
    files: usize,
    /// Records per file.
    #[arg(long, default_value_t = 1000)]
    rows: usize,
    /// Percentage of invalid records.
    #[arg(long, default_value_t = 5.0)]
    invalid_pct: f64,
    /// Distinct visitors across all files.
    #[arg(long, default_value_t = 500)]
    emails: usize,
    /// Number of the first file (`report_<N>.txt`).
    #[arg(long, default_value_t = 1)]
    first: usize,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Year of `Fecha envio` (every row falls in it).
    #[arg(long, default_value_t = FileSpec::default().year)]
    year: i32,
    /// Vary the dialect (BOM+CRLF, Windows-1252, alias header) across files.
    #[arg(long)]
    mixed: bool,
}

/// Writes the files and prints what each holds.
pub fn run(args: &Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)?;
    for i in 0..args.files {
        let n = args.first + i;
        let dialect = match (args.mixed, i % 3) {
            (true, 1) => Dialect::Utf8BomCrlf,
            (true, 2) => Dialect::Windows1252,
            _ => Dialect::Utf8,
        };
        let spec = FileSpec {
            rows: args.rows,
            invalid_ratio: args.invalid_pct / 100.0,
            distinct_emails: args.emails,
            seed: args.seed.wrapping_add(n as u64),
            dialect,
            alias_header: args.mixed && i % 4 == 3,
            year: args.year,
        };
        let generated = fixtures::generate(&spec);
        let path = args.dir.join(fixtures::report_name(n));
        std::fs::write(&path, &generated.bytes)?;
        println!("{}: {}", path.display(), fixtures::describe(&generated));
    }
    Ok(())
}
