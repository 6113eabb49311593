//! The layering stays: reads the sources of `shared/`, `dispatcher/` and `performer/`,
//! resolves every `crate::`/`super::` path (in `use` trees and inline, re-exports
//! followed to the file that defines the item) to the file it names, and fails when a
//! module of the library uses one of a later layer (the table in `shared/src/lib.rs`)
//! or when files import each other in a circle. A module's own submodules may use it
//! back (the exemption for a file's own submodules); every other circle fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The library's layers, in order: each may use itself and the ones its row names.
const LAYERS: &[(&str, &[&str])] = &[
    ("types", &[]),
    ("feed", &["types"]),
    ("local", &["types", "feed"]),
    ("store", &["types", "feed", "local"]),
    ("source", &["types", "local"]),
    ("config", &["types", "feed", "local", "store", "source"]),
    (
        "observe",
        &["types", "feed", "local", "store", "source", "config"],
    ),
    ("fixtures", &["types", "feed"]),
];

/// One crate's module tree: every module file, and what each names.
struct Crate {
    /// `src/`.
    src: PathBuf,
    /// The root file (`lib.rs` or `main.rs`).
    root: PathBuf,
}

impl Crate {
    fn new(dir: &Path, root: &str) -> Self {
        let src = dir.join("src");
        Self {
            root: src.join(root),
            src,
        }
    }

    /// Every `.rs` file under `src/`.
    fn files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut dirs = vec![self.src.clone()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    }

    /// The directory a module file's children live in: `a/mod.rs` and `lib.rs` → their
    /// own folder; `a.rs` → `a/`.
    fn children_dir(&self, file: &Path) -> PathBuf {
        let name = file.file_stem().unwrap().to_str().unwrap();
        if file == self.root || name == "mod" {
            file.parent().unwrap().to_path_buf()
        } else {
            file.with_extension("")
        }
    }

    /// The file of child module `name` of module file `file`, if it exists.
    fn child(&self, file: &Path, name: &str) -> Option<PathBuf> {
        let dir = self.children_dir(file);
        [
            dir.join(format!("{name}.rs")),
            dir.join(name).join("mod.rs"),
        ]
        .into_iter()
        .find(|p| p.is_file())
    }

    /// The parent module file of `file` (none for the root).
    fn parent(&self, file: &Path) -> Option<PathBuf> {
        if file == self.root {
            return None;
        }
        let name = file.file_stem().unwrap().to_str().unwrap();
        let dir = file.parent().unwrap();
        let dir = if name == "mod" { dir.parent()? } else { dir };
        if dir == self.src {
            return Some(self.root.clone());
        }
        let dir_name = dir.file_name().unwrap().to_str().unwrap();
        let up = dir.parent().unwrap();
        [up.join(format!("{dir_name}.rs")), dir.join("mod.rs")]
            .into_iter()
            .find(|p| p.is_file())
    }

    /// The top-level module a file belongs to (`store` for `src/store/queue.rs`).
    fn top(&self, file: &Path) -> Option<String> {
        let rel = file.strip_prefix(&self.src).ok()?;
        let first = rel.components().next()?.as_os_str().to_str()?;
        let first = first.strip_suffix(".rs").unwrap_or(first);
        (!matches!(first, "lib" | "main")).then(|| first.to_string())
    }

    /// Follows `segments` from module file `from` to the file that defines what they
    /// name, through child modules and `pub use` re-exports.
    fn resolve(&self, from: &Path, segments: &[String]) -> PathBuf {
        let mut at = from.to_path_buf();
        for seg in segments {
            if let Some(child) = self.child(&at, seg) {
                at = child;
            } else if let Some(child) = reexports(&at).get(seg).and_then(|c| self.child(&at, c)) {
                at = child;
            } else {
                break;
            }
        }
        at
    }
}

/// A module file's `pub use child::{A, B}` re-exports: name → child module.
fn reexports(file: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for path in use_paths(&code_of(file), true) {
        if path.len() >= 2 && path[0] != "crate" && path[0] != "super" && path[0] != "self" {
            out.insert(path.last().unwrap().clone(), path[0].clone());
        }
    }
    out
}

/// The file's code without comments and string literals (what is left can be searched
/// for paths).
fn code_of(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let (b, mut out, mut i) = (text.as_bytes(), String::new(), 0);
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i += 2;
            while i < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' || (b[i] == b'r' && matches!(b.get(i + 1), Some(b'"' | b'#'))) {
            // A string literal (raw or not): skipped whole.
            let raw = b[i] == b'r';
            let mut hashes = 0;
            if raw {
                i += 1;
                while b[i] == b'#' {
                    hashes += 1;
                    i += 1;
                }
            }
            i += 1;
            loop {
                if i >= b.len() {
                    break;
                }
                if !raw && b[i] == b'\\' {
                    i += 2;
                    continue;
                }
                if b[i] == b'"' && b[i + 1..].iter().take(hashes).all(|c| *c == b'#') {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
            out.push_str("\"\"");
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            i += 3; // a char literal
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// Every path a file's `use` items name, braces expanded (`pub use` only with `public`).
fn use_paths(code: &str, public: bool) -> Vec<Vec<String>> {
    located_use_paths(code, public)
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

/// [`use_paths`], each with where its `use` item starts.
fn located_use_paths(code: &str, public: bool) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let mut rest = code;
    let mut offset = 0;
    while let Some(at) = rest.find("use ") {
        let before = &rest[..at];
        let starts_item = before
            .chars()
            .last()
            .is_none_or(|c| c.is_whitespace() || c == ';' || c == '{' || c == '}' || c == ')');
        let is_pub = before.trim_end().ends_with("pub") || before.trim_end().ends_with(')');
        let after = &rest[at + 4..];
        let Some(end) = after.find(';') else { break };
        if starts_item && (!public || is_pub) {
            // Spaces dropped, but a rename's `as` kept as `@`.
            let tree: String = after[..end]
                .split_whitespace()
                .map(|w| if w == "as" { "@" } else { w })
                .collect();
            let mut paths = Vec::new();
            expand(&tree, &mut Vec::new(), &mut paths);
            out.extend(paths.into_iter().map(|p| (offset + at, p)));
        }
        offset += at + 4 + end;
        rest = &after[end..];
    }
    out
}

/// Expands one use tree (`a::{b, c::d}`) under `prefix`.
fn expand(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = tree[..open]
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let inner = &tree[open + 1..tree.rfind('}').unwrap()];
        let n = prefix.len();
        prefix.extend(head);
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
        let mut path = prefix.clone();
        for seg in tree.split("::") {
            let seg = seg.split('@').next().unwrap();
            if seg != "self" && seg != "*" {
                path.push(seg.to_string());
            }
        }
        out.push(path);
    }
}

/// Every `crate::…`, `$crate::…` and `super::…` path written inline in the code.
fn inline_paths(code: &str) -> Vec<Vec<String>> {
    located_inline_paths(code)
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

/// [`inline_paths`], each with where it is written.
fn located_inline_paths(code: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(start) {
            let at = from + at;
            from = at + start.len();
            let prev = bytes.get(at.wrapping_sub(1)).copied().unwrap_or(b' ');
            if prev.is_ascii_alphanumeric() || prev == b'_' {
                continue;
            }
            let path: Vec<String> = code[at..]
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap()
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            out.push((at, path));
        }
    }
    out
}

/// The spans of the inline modules (`mod tests { … }`) of a file's code: there,
/// `super` is the file's own module.
fn inline_modules(code: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("mod ") {
        let at = from + at;
        from = at + 4;
        let prev = code
            .as_bytes()
            .get(at.wrapping_sub(1))
            .copied()
            .unwrap_or(b' ');
        if prev.is_ascii_alphanumeric() || prev == b'_' {
            continue;
        }
        let rest = &code[at + 4..];
        let name_end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let after_name = rest[name_end..].trim_start();
        if !after_name.starts_with('{') {
            continue; // `mod name;`: a file of its own
        }
        let open = at + 4 + name_end + (rest[name_end..].len() - after_name.len());
        let mut depth = 0;
        for (i, c) in code[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        spans.push((open, open + i));
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    spans
}

/// Every file a file names (itself and its own descendants left out).
fn edges(krate: &Crate, file: &Path) -> BTreeSet<PathBuf> {
    let code = code_of(file);
    let inline = inline_modules(&code);
    let mut targets = BTreeSet::new();
    let paths = located_use_paths(&code, false)
        .into_iter()
        .chain(located_inline_paths(&code));
    for (at, path) in paths {
        let Some((first, rest)) = path.split_first() else {
            continue;
        };
        let mut from = match first.as_str() {
            "crate" => krate.root.clone(),
            "super" => file.to_path_buf(),
            _ => continue,
        };
        let mut rest = if first == "super" { &path[..] } else { rest };
        // Inside an inline module, the first `super` is this file's own module.
        let mut nested = inline
            .iter()
            .filter(|(a, b)| (*a..*b).contains(&at))
            .count();
        while let Some(("super", more)) = rest.split_first().map(|(s, m)| (s.as_str(), m)) {
            if nested > 0 {
                nested -= 1;
            } else {
                from = krate.parent(&from).unwrap_or_else(|| krate.root.clone());
            }
            rest = more;
        }
        let target = krate.resolve(&from, rest);
        if target != file && !is_descendant(krate, &target, file) {
            targets.insert(target);
        }
    }
    targets
}

/// Whether `file` is a submodule (at any depth) of module file `ancestor`.
fn is_descendant(krate: &Crate, file: &Path, ancestor: &Path) -> bool {
    let mut at = krate.parent(file);
    while let Some(p) = at {
        if p == ancestor {
            return true;
        }
        at = krate.parent(&p);
    }
    false
}

/// The circles of a graph (strongly connected components of more than one file).
fn circles(graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    // Kosaraju: order by finish time, then walk the reversed graph.
    fn visit<'a>(
        n: &'a PathBuf,
        g: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        seen: &mut BTreeSet<&'a PathBuf>,
        order: &mut Vec<&'a PathBuf>,
    ) {
        if !seen.insert(n) {
            return;
        }
        for m in g.get(n).into_iter().flatten() {
            visit(m, g, seen, order);
        }
        order.push(n);
    }
    let (mut seen, mut order) = (BTreeSet::new(), Vec::new());
    for n in graph.keys() {
        visit(n, graph, &mut seen, &mut order);
    }
    let mut reversed: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for (a, bs) in graph {
        for b in bs {
            reversed.entry(b.clone()).or_default().insert(a.clone());
        }
    }
    let (mut assigned, mut out) = (BTreeSet::new(), Vec::new());
    for n in order.into_iter().rev() {
        if assigned.contains(n) {
            continue;
        }
        let (mut component, mut stack) = (Vec::new(), vec![n.clone()]);
        while let Some(m) = stack.pop() {
            if !assigned.insert(m.clone()) {
                continue;
            }
            stack.extend(reversed.get(&m).into_iter().flatten().cloned());
            component.push(m);
        }
        if component.len() > 1 {
            component.sort();
            out.push(component);
        }
    }
    out
}

fn workspace() -> PathBuf {
    match std::env::var_os("VISITAS_LAYERS_ROOT") {
        // Another checkout, to show what the test finds there.
        Some(root) => PathBuf::from(root),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf(),
    }
}

fn graph_of(krate: &Crate) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    krate
        .files()
        .into_iter()
        .map(|f| {
            let e = edges(krate, &f);
            (f, e)
        })
        .collect()
}

fn shown(ws: &Path, files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| f.strip_prefix(ws).unwrap_or(f).display().to_string())
        .collect::<Vec<_>>()
        .join(" ↔ ")
}

#[test]
fn no_module_imports_in_a_circle() {
    let ws = workspace();
    let mut found = Vec::new();
    for (dir, root) in [
        ("shared", "lib.rs"),
        ("dispatcher", "main.rs"),
        ("performer", "main.rs"),
    ] {
        let krate = Crate::new(&ws.join(dir), root);
        found.extend(circles(&graph_of(&krate)).iter().map(|c| shown(&ws, c)));
    }
    assert!(
        found.is_empty(),
        "files that import each other in a circle:\n{}",
        found.join("\n")
    );
}

#[test]
fn library_layers_point_one_way() {
    let ws = workspace();
    let krate = Crate::new(&ws.join("shared"), "lib.rs");
    let allowed: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let mut wrong = Vec::new();
    for (file, targets) in graph_of(&krate) {
        let Some(from) = krate.top(&file) else {
            continue; // lib.rs declares every layer
        };
        let may = allowed.get(from.as_str()).unwrap_or_else(|| {
            panic!("{}: a top-level module missing from LAYERS", file.display())
        });
        for t in targets {
            let Some(to) = krate.top(&t) else { continue };
            if to != from && !may.contains(&to.as_str()) {
                wrong.push(format!(
                    "{} ({from}) uses {} ({to})",
                    file.strip_prefix(&ws).unwrap().display(),
                    t.strip_prefix(&ws).unwrap().display()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers (shared/src/lib.rs):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_reader_sees_the_paths_it_must_check() {
    // The parser itself: a use tree with braces, renames and self, inline paths,
    // and paths inside strings or comments ignored.
    let code = code_of_text(
        "use crate::a::{b, c::{d as e, self}};\n// crate::x::y\nlet s = \"crate::q\"; crate::f::g(); super::h::i;",
    );
    let mut uses = use_paths(&code, false);
    uses.sort();
    assert_eq!(
        uses,
        [
            vec!["crate", "a", "b"],
            vec!["crate", "a", "c"],
            vec!["crate", "a", "c", "d"]
        ]
    );
    let inline = inline_paths(&code);
    assert!(inline.contains(&vec!["crate".into(), "f".into(), "g".into()]));
    assert!(inline.contains(&vec!["super".into(), "h".into(), "i".into()]));
    assert!(
        !inline
            .iter()
            .any(|p| p.contains(&"q".to_string()) || p.contains(&"x".to_string()))
    );
}

fn code_of_text(text: &str) -> String {
    let path = std::env::temp_dir().join(format!("visitas-layers-{}.rs", std::process::id()));
    std::fs::write(&path, text).unwrap();
    let code = code_of(&path);
    let _ = std::fs::remove_file(&path);
    code
}
