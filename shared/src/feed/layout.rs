//! The file layout (docs/data-contract.md §3) as data: the columns, their rules and the error codes.

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

/// The record-level error codes of docs/data-contract.md §4, stored in `errores.tipo_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    /// The record does not have 15 well-formed fields.
    FieldCount,
    /// The record holds a character PostgreSQL text cannot store (NUL, U+0000).
    CaracterInvalido,
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
            ErrorCode::CaracterInvalido => "CARACTER_INVALIDO",
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

/// The visits feed: 15 columns in this order (docs/data-contract.md §3).
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
