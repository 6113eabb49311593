//! Text that reaches PostgreSQL, logs and alerts from outside the program's control
//! (a file's content, an error's wording): made storable and capped in one place, so no
//! file can make writing an audit or error row fail.
//!
//! PostgreSQL `text` in a UTF-8 database (the service's only supported encoding) stores
//! every Unicode scalar value except NUL (U+0000). Two treatments:
//! - [`message`] for what people read (`mensaje_error`, `errores.detalle`, alerts, log
//!   lines): NUL written `\0`, then cut to [`MESSAGE_MAX_CHARS`], saying how much was cut;
//! - [`line`] for `errores.fila_original`, which must keep the line exactly: a line that
//!   holds a NUL is escaped reversibly (`\` → `\\`, NUL → `\0`; [`unescape_line`] undoes
//!   it); any other line is stored as it is.

use std::borrow::Cow;

/// Longest message stored or sent, in characters.
pub const MESSAGE_MAX_CHARS: usize = 2_000;

/// Whether PostgreSQL `text` can hold `text` as it is.
pub fn is_storable(text: &str) -> bool {
    !text.as_bytes().contains(&0)
}

/// A message for people and the database: NUL written `\0`, at most
/// [`MESSAGE_MAX_CHARS`] characters (the cut is said at the end).
pub fn message(text: &str) -> Cow<'_, str> {
    capped(text, MESSAGE_MAX_CHARS)
}

/// As [`message`], with another cap.
pub fn capped(text: &str, max_chars: usize) -> Cow<'_, str> {
    let text: Cow<'_, str> = if is_storable(text) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.replace('\0', "\\0"))
    };
    // Cheap exit before counting characters: bytes bound characters.
    if text.len() <= max_chars {
        return text;
    }
    let total = text.chars().count();
    if total <= max_chars {
        return text;
    }
    let end = text
        .char_indices()
        .nth(max_chars)
        .map_or(text.len(), |(i, _)| i);
    Cow::Owned(format!(
        "{}… [cut: {} more character{} not shown]",
        &text[..end],
        thousands(total - max_chars),
        if total - max_chars == 1 { "" } else { "s" }
    ))
}

/// A line for `errores.fila_original`: as it is when storable, else escaped reversibly
/// (`\` → `\\`, NUL → `\0`).
pub fn line(text: &str) -> Cow<'_, str> {
    if is_storable(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The line [`line`] escaped, back as it was in the file.
pub fn unescape_line(stored: &str) -> String {
    let mut out = String::with_capacity(stored.len());
    let mut chars = stored.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some('\\')) => {
                out.push('\\');
                chars.next();
            }
            ('\\', Some('0')) => {
                out.push('\0');
                chars.next();
            }
            (c, _) => out.push(c),
        }
    }
    out
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_lose_their_nuls_and_say_what_was_cut() {
        assert!(matches!(message("plain"), Cow::Borrowed("plain")));
        assert_eq!(message("e\0m\0a\0i\0l"), "e\\0m\\0a\\0i\\0l");
        let long = "é".repeat(MESSAGE_MAX_CHARS + 1_234_567);
        let cut = message(&long);
        assert!(is_storable(&cut));
        assert_eq!(
            cut.chars().count(),
            MESSAGE_MAX_CHARS + "… [cut: 1,234,567 more characters not shown]".len() - 2
        );
        assert!(
            cut.ends_with("é… [cut: 1,234,567 more characters not shown]"),
            "{}",
            &cut[cut.len() - 60..]
        );
        assert_eq!(capped("abcdef", 6), "abcdef");
        assert_eq!(
            capped("abcdefg", 6),
            "abcdef… [cut: 1 more character not shown]"
        );
    }

    #[test]
    fn lines_are_kept_as_they_are_unless_they_hold_a_nul_and_then_escaped_reversibly() {
        assert!(matches!(line(r"a\0b"), Cow::Borrowed(r"a\0b")));
        for original in ["a\0b", "\0", "back\\slash, \\0 and NUL\0", "\\\0\\\\0"] {
            let stored = line(original);
            assert!(is_storable(&stored), "{stored}");
            assert_eq!(unescape_line(&stored), original);
        }
        assert_eq!(line("x\\y\0z"), "x\\\\y\\0z");
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(
            [0, 999, 1000, 183_961, 5_000_000].map(thousands),
            ["0", "999", "1,000", "183,961", "5,000,000"]
        );
    }
}
