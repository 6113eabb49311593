//! Reading Rust source as far as the layering needs: the code with comments and string
//! contents removed (a string that is itself a path, as in `#[serde(default =
//! "crate::x")]`, is kept), the paths its `use` items name (with their aliases), the
//! paths written inline, the spans of inline modules, and `#[macro_export]` macros.

/// One path a `use` item names, and the name it is bound to (its alias, or its last
/// segment; none for a glob or `self` import of a module's parent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsePath {
    /// Where the `use` item starts in the code.
    pub at: usize,
    /// The path's segments, `crate`/`super`/`self` included.
    pub segments: Vec<String>,
    /// The name the item is bound to in the file.
    pub bound_as: Option<String>,
    /// A `pub use` (or `pub(…) use`): a re-export.
    pub public: bool,
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// A string's content that is a Rust path (`crate::a::b`), kept in the code.
fn path_in_string(s: &str) -> Option<&str> {
    let first = s.split("::").next()?;
    let is_path = s.contains("::")
        && matches!(first, "crate" | "super" | "self" | "$crate")
        && s.split("::")
            .skip(1)
            .all(|seg| !seg.is_empty() && seg.chars().all(is_ident_char));
    is_path.then_some(s)
}

/// The code without comments and with every string and char literal emptied (`""`,
/// `' '`), but for strings that are paths; raw identifiers lose their `r#`.
pub fn code_of(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let (mut out, mut i) = (String::with_capacity(text.len()), 0);
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        let prev = if i == 0 { ' ' } else { chars[i - 1] };
        if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if !is_ident_char(prev) && (c == 'r' || (c == 'b' && at(i + 1) == 'r')) && {
            let j = if c == 'b' { i + 2 } else { i + 1 };
            at(j) == '"' || (at(j) == '#' && (at(j + 1) == '"' || at(j + 1) == '#'))
        } {
            // A raw string: r"…", r#"…"#, br##"…"##.
            i += if c == 'b' { 2 } else { 1 };
            let mut hashes = 0;
            while at(i) == '#' {
                hashes += 1;
                i += 1;
            }
            i += 1; // the opening quote
            let start = i;
            loop {
                if i >= chars.len() {
                    break;
                }
                if chars[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#') {
                    break;
                }
                i += 1;
            }
            let content: String = chars[start..i.min(chars.len())].iter().collect();
            i += 1 + hashes;
            out.push('"');
            out.push_str(path_in_string(&content).unwrap_or(""));
            out.push('"');
        } else if !is_ident_char(prev) && c == 'r' && at(i + 1) == '#' && is_ident_char(at(i + 2)) {
            i += 2; // a raw identifier: r#type is the identifier `type`
        } else if c == '"' {
            i += 1;
            let start = i;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            let content: String = chars[start..i.min(chars.len())].iter().collect();
            i += 1;
            out.push('"');
            out.push_str(path_in_string(&content).unwrap_or(""));
            out.push('"');
        } else if c == '\'' && at(i + 1) == '\\' {
            // An escaped char literal: '\n', '\'', '\\', '\u{41}'.
            let mut j = i + 2;
            if at(j) == 'u' && at(j + 1) == '{' {
                while j < chars.len() && chars[j] != '}' {
                    j += 1;
                }
            }
            j += 1;
            i = if at(j) == '\'' { j + 1 } else { j };
            out.push_str("' '");
        } else if c == '\'' && at(i + 2) == '\'' {
            i += 3; // a one-character literal
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Every `use` item of the code, braces expanded.
pub fn use_paths(code: &str) -> Vec<UsePath> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = code[from..].find("use ") {
        let at = from + found;
        from = at + 4;
        let before = code[..at].trim_end();
        let starts_item = before
            .chars()
            .last()
            .is_none_or(|c| matches!(c, ';' | '{' | '}' | ')' | ']') || before.ends_with("pub"));
        let prev = code[..at].chars().last().unwrap_or(' ');
        if is_ident_char(prev) || !starts_item {
            continue;
        }
        let public = before.ends_with("pub") || (before.ends_with(')') && before.contains("pub("));
        let Some(end) = code[at + 4..].find(';') else {
            break;
        };
        // Spaces dropped, but a rename's `as` kept as `@`.
        let tree: String = code[at + 4..at + 4 + end]
            .split_whitespace()
            .map(|w| if w == "as" { "@" } else { w })
            .collect();
        let mut paths = Vec::new();
        expand(&tree, &mut Vec::new(), &mut paths);
        out.extend(paths.into_iter().map(|(segments, bound_as)| UsePath {
            at,
            segments,
            bound_as,
            public,
        }));
        from = at + 4 + end;
    }
    out
}

/// Expands one use tree (`a::{b, c::d@e}`) under `prefix`: (path, bound name).
fn expand(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<(Vec<String>, Option<String>)>) {
    if let Some(open) = tree.find('{') {
        let n = prefix.len();
        prefix.extend(
            tree[..open]
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let (mut depth, mut start) = (0, 0);
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&inner[start..i], prefix, out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand(&inner[start..], prefix, out);
        prefix.truncate(n);
    } else if !tree.is_empty() {
        let (path, alias) = match tree.split_once('@') {
            Some((p, a)) => (p, Some(a.to_string())),
            None => (tree, None),
        };
        let mut segments = prefix.clone();
        let mut bound = alias;
        for seg in path.split("::") {
            match seg {
                "*" => bound = None,
                "self" if !segments.is_empty() => {
                    if bound.is_none() {
                        bound = segments.last().cloned();
                    }
                }
                _ => segments.push(seg.to_string()),
            }
        }
        let bound = if path.ends_with('*') {
            None
        } else {
            bound.or_else(|| segments.last().cloned())
        };
        out.push((segments, bound));
    }
}

/// Every path written inline that starts with one of `starts` (e.g. `crate`, `super`,
/// `self`, or a name a `use` bound to a module): (where, segments).
pub fn inline_paths(code: &str, starts: &[String]) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = code.char_indices().collect();
    let mut k = 0;
    while k < chars.len() {
        let (at, c) = chars[k];
        let prev = if k == 0 { ' ' } else { chars[k - 1].1 };
        if !(is_ident_char(c) || c == '$') || is_ident_char(prev) || prev == '$' {
            k += 1;
            continue;
        }
        // Read `ident(::ident)*`.
        let mut end = k;
        while end < chars.len()
            && (is_ident_char(chars[end].1)
                || chars[end].1 == ':'
                || (end == k && chars[end].1 == '$'))
        {
            end += 1;
        }
        let text = &code[at..chars.get(end).map_or(code.len(), |c| c.0)];
        let segments: Vec<String> = text
            .split("::")
            .map(|s| s.trim_end_matches(':').trim_start_matches('$').to_string())
            .filter(|s| !s.is_empty())
            .collect();
        // `a::{…}`, `a::*`, `a::<T>`: a use tree's head or a turbofish, not a path's end.
        if text.contains("::")
            && !text.ends_with(':')
            && segments
                .first()
                .is_some_and(|f| starts.iter().any(|s| s == f))
        {
            out.push((at, segments));
        }
        k = end.max(k + 1);
    }
    out
}

/// Every `mod name` of the code: its name, and for an inline module (`mod tests { … }`)
/// the span of its body.
fn module_items(code: &str) -> Vec<(String, Option<(usize, usize)>)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = code[from..].find("mod ") {
        let at = from + found;
        from = at + 4;
        let prev = code[..at].chars().last().unwrap_or(' ');
        if is_ident_char(prev) {
            continue;
        }
        let rest = &code[at + 4..];
        let name: String = rest.chars().take_while(|c| is_ident_char(*c)).collect();
        let after_name = rest[name.len()..].trim_start();
        if after_name.starts_with(';') {
            out.push((name, None));
            continue;
        }
        if !after_name.starts_with('{') {
            continue;
        }
        let open = at + 4 + name.len() + (rest[name.len()..].len() - after_name.len());
        let mut depth = 0;
        for (i, c) in code[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        out.push((name, Some((open, open + i))));
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// The spans of the inline modules (`mod tests { … }`): there, `super` is the file's
/// own module.
pub fn inline_modules(code: &str) -> Vec<(usize, usize)> {
    module_items(code)
        .into_iter()
        .filter_map(|(_, span)| span)
        .collect()
}

/// The submodules the code declares in files of their own (`mod name;`).
pub fn declared_modules(code: &str) -> Vec<String> {
    module_items(code)
        .into_iter()
        .filter(|(_, span)| span.is_none())
        .map(|(name, _)| name)
        .collect()
}

/// The macros the code exports at the crate root (`#[macro_export] macro_rules! name`).
pub fn exported_macros(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = code[from..].find("#[macro_export]") {
        let at = from + found + "#[macro_export]".len();
        from = at;
        let rest = &code[at..];
        if let Some(m) = rest.find("macro_rules!") {
            // Only attributes between the export and the macro.
            if rest[..m].trim().chars().all(|c| c != ';' && c != '{') {
                let name: String = rest[m + "macro_rules!".len()..]
                    .trim_start()
                    .chars()
                    .take_while(|c| is_ident_char(*c))
                    .collect();
                out.push(name);
            }
        }
    }
    out
}
