//! The project's own generator of visit files: realistic rows, every invalid kind of
//! docs/data-contract.md §4, and every dialect of docs/data-contract.md §2. Used by tests, the demo and benchmarks.

use crate::feed::ErrorCode;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The header of a well-formed file.
pub const HEADER: &str = "email,jyv,Badmail,Baja,Fecha envio,Fecha open,Opens,Opens virales,Fecha click,Clicks,Clicks virales,Links,IPs,Navegadores,Plataformas";

/// How the bytes of a generated file are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// UTF-8, LF.
    Utf8,
    /// UTF-8 with a BOM, CRLF line ends.
    Utf8BomCrlf,
    /// Windows-1252 (accented names in `jyv`), LF.
    Windows1252,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct FileSpec {
    /// Data records.
    pub rows: usize,
    /// Share of invalid records, 0.0 to 1.0 (each invalid kind in turn).
    pub invalid_ratio: f64,
    /// Distinct visitors the e-mails are drawn from.
    pub distinct_emails: usize,
    /// Random seed: the same spec gives the same bytes.
    pub seed: u64,
    /// Encoding and line ends.
    pub dialect: Dialect,
    /// Use the `jk` alias for the second column.
    pub alias_header: bool,
    /// Year of `Fecha envio`.
    pub year: i32,
}

impl Default for FileSpec {
    fn default() -> Self {
        Self {
            rows: 100,
            invalid_ratio: 0.05,
            distinct_emails: 50,
            seed: 1,
            dialect: Dialect::Utf8,
            alias_header: false,
            year: 2026,
        }
    }
}

/// A generated file and what the loader must make of it.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// Records that must load.
    pub valid: usize,
    /// Records that must be rejected, by error code.
    pub invalid: BTreeMap<&'static str, usize>,
}

impl Generated {
    /// All rejected records.
    pub fn invalid_total(&self) -> usize {
        self.invalid.values().sum()
    }
}

/// The invalid kinds, in turn; a too-long text is rare because it is big.
const INVALID_KINDS: [ErrorCode; 12] = [
    ErrorCode::EmailInvalido,
    ErrorCode::FechaEnvioInvalida,
    ErrorCode::FieldCount,
    ErrorCode::EnteroInvalido,
    ErrorCode::FechaOpenInvalida,
    ErrorCode::FechaClickInvalida,
    ErrorCode::EmailInvalido,
    ErrorCode::FechaEnvioInvalida,
    ErrorCode::FieldCount,
    ErrorCode::EnteroInvalido,
    ErrorCode::EmailInvalido,
    ErrorCode::TextoDemasiadoLargo,
];

const BROWSERS: [&str; 5] = ["Chrome", "Firefox", "Safari", "Edge", "Opera"];
const PLATFORMS: [&str; 4] = ["Windows", "Android", "iOS", "Linux"];
const DOMAINS: [&str; 5] = [
    "example.com",
    "correo.mx",
    "empresa.com.mx",
    "mail.net",
    "visitas.org",
];
const NAMES: [&str; 5] = ["José", "Peña", "Ana", "Núñez", "Raúl"];

/// Generates one file.
pub fn generate(spec: &FileSpec) -> Generated {
    let mut rng = fastrand::Rng::with_seed(spec.seed);
    let newline = if spec.dialect == Dialect::Utf8BomCrlf {
        "\r\n"
    } else {
        "\n"
    };
    let header = if spec.alias_header {
        HEADER.replacen("jyv", "jk", 1)
    } else {
        HEADER.to_string()
    };
    let mut text = String::with_capacity(spec.rows * 180 + 200);
    text.push_str(&header);
    text.push_str(newline);
    let invalid_every = if spec.invalid_ratio > 0.0 {
        (1.0 / spec.invalid_ratio).round() as usize
    } else {
        0
    };
    let mut invalid = BTreeMap::new();
    let mut kind = 0;
    for row in 0..spec.rows {
        let mut fields = valid_fields(&mut rng, spec);
        if invalid_every > 0 && row % invalid_every == invalid_every - 1 {
            let code = INVALID_KINDS[kind % INVALID_KINDS.len()];
            kind += 1;
            break_rule(&mut fields, code, &mut rng);
            *invalid.entry(code.as_str()).or_insert(0) += 1;
        }
        text.push_str(&fields.join(","));
        text.push_str(newline);
    }
    let bytes = match spec.dialect {
        Dialect::Utf8 => text.into_bytes(),
        Dialect::Utf8BomCrlf => [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat(),
        Dialect::Windows1252 => encoding_rs::WINDOWS_1252.encode(&text).0.into_owned(),
    };
    Generated {
        bytes,
        valid: spec.rows - invalid.values().sum::<usize>(),
        invalid,
    }
}

fn valid_fields(rng: &mut fastrand::Rng, spec: &FileSpec) -> Vec<String> {
    let visitor = rng.usize(0..spec.distinct_emails.max(1));
    let mut email = format!("visitante{visitor}@{}", DOMAINS[visitor % DOMAINS.len()]);
    if rng.u8(0..10) == 0 {
        email = email.to_uppercase(); // the same visitor, written differently
    }
    let (day, month, hour, minute) = (
        rng.u32(1..=28),
        rng.u32(1..=12),
        rng.u32(0..24),
        rng.u32(0..60),
    );
    let sent = format!("{day:02}/{month:02}/{} {hour:02}:{minute:02}", spec.year);
    let opened = rng.bool();
    let clicked = opened && rng.bool();
    let date_after = |rng: &mut fastrand::Rng| {
        format!(
            "{:02}/{month:02}/{} {:02}:{:02}",
            (day + 1).min(28),
            spec.year,
            rng.u32(0..24),
            rng.u32(0..60)
        )
    };
    let ips = if rng.u8(0..4) == 0 {
        format!(
            "\"189.{}.{}.1,200.2.2.{}\"",
            rng.u8(..),
            rng.u8(..),
            rng.u8(..)
        )
    } else {
        format!("189.{}.{}.{}", rng.u8(..), rng.u8(..), rng.u8(..))
    };
    let jyv = if spec.dialect == Dialect::Windows1252 {
        NAMES[rng.usize(0..NAMES.len())].to_string()
    } else {
        format!("J{}", rng.u32(1000..9999))
    };
    vec![
        email,
        jyv,
        if rng.u8(0..20) == 0 {
            "SI".into()
        } else {
            "-".into()
        },
        "-".into(),
        sent,
        if opened { date_after(rng) } else { "-".into() },
        if opened {
            rng.u32(1..20).to_string()
        } else {
            "0".into()
        },
        rng.u32(0..3).to_string(),
        if clicked { date_after(rng) } else { "-".into() },
        if clicked {
            rng.u32(1..10).to_string()
        } else {
            "0".into()
        },
        "0".into(),
        format!("https://www.ejemplo.com/promo/{}", rng.u32(1..500)),
        ips,
        BROWSERS[rng.usize(0..BROWSERS.len())].into(),
        PLATFORMS[rng.usize(0..PLATFORMS.len())].into(),
    ]
}

fn break_rule(fields: &mut Vec<String>, code: ErrorCode, rng: &mut fastrand::Rng) {
    match code {
        ErrorCode::EmailInvalido => {
            let bad = [
                "sin-arroba.example.com",
                "a..b@example.com",
                "ana@localhost",
                "",
            ];
            fields[0] = bad[rng.usize(0..bad.len())].into();
        }
        ErrorCode::FechaEnvioInvalida => {
            fields[4] =
                ["31/02/2026 10:00", "8/2/2026 18:30", "2026-02-08 18:30"][rng.usize(0..3)].into()
        }
        ErrorCode::FechaOpenInvalida => fields[5] = "32/01/2026 10:00".into(),
        ErrorCode::FechaClickInvalida => fields[8] = "01/13/2026 10:00".into(),
        ErrorCode::EnteroInvalido => {
            fields[6] = ["abc", "-1", "2147483648"][rng.usize(0..3)].into()
        }
        ErrorCode::TextoDemasiadoLargo => fields[11] = "x".repeat(4097),
        ErrorCode::FieldCount => {
            fields.pop();
        }
        ErrorCode::CaracterInvalido => fields[13].push('\0'),
    }
}

/// A file name of the feed.
pub fn report_name(n: usize) -> String {
    format!("report_{n}.txt")
}

/// A compact description, for logs and the demo.
pub fn describe(generated: &Generated) -> String {
    let mut s = format!(
        "{} valid, {} invalid",
        generated.valid,
        generated.invalid_total()
    );
    for (code, n) in &generated.invalid {
        let _ = write!(s, ", {code}={n}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::{VISITS, decode, validate};

    #[test]
    fn the_rules_agree_with_what_the_generator_intended() {
        for dialect in [Dialect::Utf8, Dialect::Utf8BomCrlf, Dialect::Windows1252] {
            let spec = FileSpec {
                rows: 600,
                invalid_ratio: 0.1,
                dialect,
                alias_header: true,
                ..Default::default()
            };
            let generated = generate(&spec);
            let (text, _) = decode(&generated.bytes);
            let batch = validate(&text, &VISITS).unwrap();
            assert_eq!(batch.valid().height(), generated.valid, "{dialect:?}");
            let mut found = BTreeMap::new();
            for r in batch.rejected() {
                *found.entry(r.code.as_str()).or_insert(0) += 1;
            }
            assert_eq!(found, generated.invalid, "{dialect:?}");
        }
    }
}
