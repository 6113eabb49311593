//! The encoding a file was decoded with (docs/data-contract.md §2).

/// The encoding a file was decoded with, as recorded in `bitacora_control.encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Valid UTF-8 (a BOM, if any, stripped).
    Utf8,
    /// Not valid UTF-8: every byte decoded as Windows-1252 (WHATWG mapping), nothing lost.
    Windows1252,
}

impl Encoding {
    /// The label stored in the database.
    pub fn label(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Windows1252 => "windows-1252",
        }
    }
}
