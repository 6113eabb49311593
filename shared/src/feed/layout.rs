//! The file layout (SPEC §3) as data, and the header check.

use super::records::{FieldSplitter, Line};

/// How a column's values are checked and typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Required e-mail address, trimmed and lower-cased.
    Email,
    /// `dd/mm/yyyy HH:mm`; `required` columns may not be null.
    DateTime {
        /// Whether null is an error.
        required: bool,
        /// The error code for this column.
        code: ErrorCode,
    },
    /// Non-negative 32-bit integer, nullable.
    Integer,
    /// Free text, nullable, at most [`MAX_TEXT_CHARS`].
    Text,
}

/// A column of the feed: its header names and where it goes.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// The header name, as operators know it.
    pub header: &'static str,
    /// Other header names seen in real files.
    pub aliases: &'static [&'static str],
    /// The column in `estadisticas`.
    pub db_column: &'static str,
    /// The rule.
    pub kind: Kind,
}

/// Longest text value, in characters.
pub const MAX_TEXT_CHARS: u32 = 4096;
/// Longest e-mail address, in characters.
pub const MAX_EMAIL_CHARS: u32 = 254;

/// The record-level error codes of SPEC §4, stored in `errores.tipo_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    /// The record does not have 15 well-formed fields.
    FieldCount,
    /// The e-mail is missing or invalid.
    EmailInvalido,
    /// `Fecha envio` is missing or invalid.
    FechaEnvioInvalida,
    /// `Fecha open` is invalid.
    FechaOpenInvalida,
    /// `Fecha click` is invalid.
    FechaClickInvalida,
    /// An integer column holds something else.
    EnteroInvalido,
    /// A text column is too long.
    TextoDemasiadoLargo,
}

impl ErrorCode {
    /// The code as stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::FieldCount => "FIELD_COUNT",
            ErrorCode::EmailInvalido => "EMAIL_INVALIDO",
            ErrorCode::FechaEnvioInvalida => "FECHA_ENVIO_INVALIDA",
            ErrorCode::FechaOpenInvalida => "FECHA_OPEN_INVALIDA",
            ErrorCode::FechaClickInvalida => "FECHA_CLICK_INVALIDA",
            ErrorCode::EnteroInvalido => "ENTERO_INVALIDO",
            ErrorCode::TextoDemasiadoLargo => "TEXTO_DEMASIADO_LARGO",
        }
    }
}

impl Column {
    /// The error code a failing value of this column gets.
    pub fn error_code(&self) -> ErrorCode {
        match self.kind {
            Kind::Email => ErrorCode::EmailInvalido,
            Kind::DateTime { code, .. } => code,
            Kind::Integer => ErrorCode::EnteroInvalido,
            Kind::Text => ErrorCode::TextoDemasiadoLargo,
        }
    }
}

const fn col(header: &'static str, db_column: &'static str, kind: Kind) -> Column {
    Column {
        header,
        aliases: &[],
        db_column,
        kind,
    }
}

/// The visits feed: 15 columns in this order (SPEC §3).
pub const VISITS: [Column; 15] = [
    col("email", "email", Kind::Email),
    Column {
        header: "jyv",
        aliases: &["jk"],
        db_column: "jyv",
        kind: Kind::Text,
    },
    col("Badmail", "badmail", Kind::Text),
    col("Baja", "baja", Kind::Text),
    col(
        "Fecha envio",
        "fecha_envio",
        Kind::DateTime {
            required: true,
            code: ErrorCode::FechaEnvioInvalida,
        },
    ),
    col(
        "Fecha open",
        "fecha_open",
        Kind::DateTime {
            required: false,
            code: ErrorCode::FechaOpenInvalida,
        },
    ),
    col("Opens", "opens", Kind::Integer),
    col("Opens virales", "opens_virales", Kind::Integer),
    col(
        "Fecha click",
        "fecha_click",
        Kind::DateTime {
            required: false,
            code: ErrorCode::FechaClickInvalida,
        },
    ),
    col("Clicks", "clicks", Kind::Integer),
    col("Clicks virales", "clicks_virales", Kind::Integer),
    col("Links", "links", Kind::Text),
    col("IPs", "ips", Kind::Text),
    col("Navegadores", "navegadores", Kind::Text),
    col("Plataformas", "plataformas", Kind::Text),
];

/// Why a file's layout is refused (`FALLO_LAYOUT`); the message is for operators.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// No bytes, or only white space.
    #[error("line 1: the file is empty (no header line)")]
    Empty,
    /// The header line is not well-formed CSV.
    #[error("line 1: the header is not well-formed CSV")]
    MalformedHeader,
    /// Too few or too many columns.
    #[error("line 1: the header has {found} columns, expected {expected} ({detail})")]
    ColumnCount {
        /// Columns found.
        found: usize,
        /// Columns expected.
        expected: usize,
        /// Which names are missing or extra.
        detail: String,
    },
    /// A column is renamed or out of place.
    #[error("line 1, column {position}: found `{found}`, expected `{expected}`")]
    ColumnName {
        /// 1-based column position.
        position: usize,
        /// The name found.
        found: String,
        /// The name expected there.
        expected: &'static str,
    },
}

/// Checks the header line against the layout (names trimmed, case-insensitive).
pub fn check_header(header: Option<&Line<'_>>, layout: &[Column]) -> Result<(), LayoutError> {
    let header = header.ok_or(LayoutError::Empty)?;
    if header.text.trim().is_empty() {
        return Err(LayoutError::Empty);
    }
    let names = FieldSplitter::default()
        .split(header.text)
        .ok_or(LayoutError::MalformedHeader)?;
    let names: Vec<&str> = names.iter().map(|n| n.trim()).collect();
    let matches = |name: &str, column: &Column| {
        std::iter::once(column.header)
            .chain(column.aliases.iter().copied())
            .any(|h| h.to_lowercase() == name.to_lowercase())
    };
    if names.len() != layout.len() {
        let missing: Vec<&str> = layout
            .iter()
            .filter(|c| !names.iter().any(|n| matches(n, c)))
            .map(|c| c.header)
            .collect();
        let extra: Vec<&str> = names
            .iter()
            .filter(|n| !layout.iter().any(|c| matches(n, c)))
            .copied()
            .collect();
        return Err(LayoutError::ColumnCount {
            found: names.len(),
            expected: layout.len(),
            detail: format!(
                "missing: [{}]; unexpected: [{}]",
                missing.join(", "),
                extra.join(", ")
            ),
        });
    }
    for (i, (name, column)) in names.iter().zip(layout).enumerate() {
        if !matches(name, column) {
            return Err(LayoutError::ColumnName {
                position: i + 1,
                found: (*name).to_string(),
                expected: column.header,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "email,jyv,Badmail,Baja,Fecha envio,Fecha open,Opens,Opens virales,Fecha click,Clicks,Clicks virales,Links,IPs,Navegadores,Plataformas";

    fn check(text: &str) -> Result<(), LayoutError> {
        check_header(Some(&Line { number: 1, text }), &VISITS)
    }

    #[test]
    fn exact_header_alias_case_and_spaces_pass() {
        assert_eq!(check(HEADER), Ok(()));
        assert_eq!(
            check(&HEADER.replace("jyv", "JK").replace("Opens,", " OPENS ,")),
            Ok(())
        );
    }

    #[test]
    fn renamed_reordered_missing_extra_columns_fail() {
        assert!(matches!(
            check(&HEADER.replace("Badmail", "Bad mail")),
            Err(LayoutError::ColumnName { position: 3, .. })
        ));
        assert!(matches!(
            check(&HEADER.replace("Badmail,Baja", "Baja,Badmail")),
            Err(LayoutError::ColumnName { position: 3, .. })
        ));
        assert!(matches!(
            check(&HEADER.replace(",Plataformas", "")),
            Err(LayoutError::ColumnCount { found: 14, .. })
        ));
        assert!(matches!(
            check(&format!("{HEADER},Extra")),
            Err(LayoutError::ColumnCount { found: 16, .. })
        ));
        assert_eq!(check_header(None, &VISITS), Err(LayoutError::Empty));
    }
}
