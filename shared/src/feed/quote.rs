//! How a message shows a piece of a file to an operator: characters that print as
//! nothing or move the cursor (controls, format characters such as a BOM, white space
//! other than the plain space) are escaped as Rust writes them (`\t`, `\r`, `\0`,
//! `\u{feff}`, `\u{a0}`, and so `\` as `\\`), and long values are cut, saying so.

use std::fmt::Write;

/// How much of one value a message quotes.
pub const VALUE_CHARS: usize = 80;

/// `value` as a message shows it: invisible characters escaped, at most `max_chars`
/// characters of the value (`…` marks a cut).
pub fn shown(value: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(value.len().min(max_chars * 4) + 2);
    for (i, c) in value.chars().enumerate() {
        if i == max_chars {
            out.push('…');
            break;
        }
        match c {
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\0' => out.push_str("\\0"),
            '\\' => out.push_str("\\\\"),
            c if is_invisible(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Whether `value` holds a character [`shown`] escapes.
pub fn has_invisible(value: &str) -> bool {
    value.chars().any(is_invisible)
}

/// Controls, white space other than U+0020, and the format characters seen in files
/// (soft hyphen, zero-width and direction marks, word joiner, BOM, interlinear marks).
fn is_invisible(c: char) -> bool {
    c.is_control()
        || (c.is_whitespace() && c != ' ')
        || matches!(c,
            '\u{ad}' | '\u{61c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_characters_are_escaped_and_visible_ones_kept() {
        assert_eq!(
            shown("\u{feff}email\u{a0}x\t\r\n\0\u{1b}[0m\u{200b}ñ €", 80),
            "\\u{feff}email\\u{a0}x\\t\\r\\n\\0\\u{1b}[0m\\u{200b}ñ €"
        );
        assert!(has_invisible("a\u{feff}") && !has_invisible("José €"));
        // A backslash is doubled, so `\0` in the file and a NUL read differently.
        assert_eq!(shown("C:\\temp\\0\0", 80), "C:\\\\temp\\\\0\\0");
    }

    #[test]
    fn long_values_are_cut() {
        assert_eq!(shown("abcdef", 3), "abc…");
        assert_eq!(shown("abc", 3), "abc");
    }
}
