//! Bytes to text (docs/data-contract.md §2, §7): UTF-8 with or without BOM, else Windows-1252.

use crate::types::Encoding;
use std::borrow::Cow;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Decodes a whole file; borrows when the bytes are already UTF-8.
pub fn decode(bytes: &[u8]) -> (Cow<'_, str>, Encoding) {
    let body = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    match std::str::from_utf8(body) {
        Ok(text) => (Cow::Borrowed(text), Encoding::Utf8),
        Err(_) => {
            // encoding_rs maps the five bytes Windows-1252 leaves undefined to C1 controls.
            let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(body);
            (text, Encoding::Windows1252)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_bom_is_stripped() {
        let (text, enc) = decode(b"\xEF\xBB\xBFemail\n");
        assert_eq!((text.as_ref(), enc), ("email\n", Encoding::Utf8));
    }

    #[test]
    fn invalid_utf8_falls_back_to_windows_1252_and_keeps_every_byte() {
        let (text, enc) = decode(b"\xEF\xBB\xBFJos\xE9 \x81\x8D\x8F\x90\x9D \x80");
        assert_eq!(enc, Encoding::Windows1252);
        assert_eq!(text, "José \u{81}\u{8D}\u{8F}\u{90}\u{9D} €");
    }
}
