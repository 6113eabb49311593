//! The layering stays: reads the sources of `shared/`, `dispatcher/` and `performer/`,
//! follows every path a file names to the file that defines it, and fails when a module
//! of the library uses one of a later layer (the table in `shared/src/lib.rs`, repeated
//! in [`LAYERS`]) or when files import each other in a circle. Only a file's own inline
//! submodules (`mod tests { … }`) are exempt: a module file and its submodule files are
//! files like any other. The checker's own tests plant violations in scratch trees.

mod graph;
mod reader;

use graph::{Crate, against_layers, circles};
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

/// The three crates of the workspace: (directory, root file).
const CRATES: [(&str, &str); 3] = [
    ("shared", "lib.rs"),
    ("dispatcher", "main.rs"),
    ("performer", "main.rs"),
];

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

/// The circles of the crates under `ws`, as `a ↔ b ↔ c` lines.
fn circles_under(ws: &Path, crates: &[(&str, &str)]) -> Vec<String> {
    crates
        .iter()
        .flat_map(|(dir, root)| circles(&Crate::read(&ws.join(dir), root).graph()))
        .map(|c| {
            c.iter()
                .map(|f| f.strip_prefix(ws).unwrap_or(f).display().to_string())
                .collect::<Vec<_>>()
                .join(" ↔ ")
        })
        .collect()
}

#[test]
fn no_module_imports_in_a_circle() {
    let found = circles_under(&workspace(), &CRATES);
    assert!(
        found.is_empty(),
        "files that import each other in a circle:\n{}",
        found.join("\n")
    );
}

#[test]
fn library_layers_point_one_way() {
    let wrong = against_layers(&Crate::read(&workspace().join("shared"), "lib.rs"), LAYERS);
    assert!(
        wrong.is_empty(),
        "imports against the layers (shared/src/lib.rs):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_layer_of_the_library_is_in_the_map_of_lib_rs() {
    let lib = std::fs::read_to_string(workspace().join("shared/src/lib.rs")).unwrap();
    for (layer, _) in LAYERS {
        assert!(
            lib.contains(&format!("[`{layer}`]")) || lib.contains(&format!("`{layer}`")),
            "shared/src/lib.rs's map does not name the layer `{layer}`"
        );
    }
}

#[test]
fn the_reader_sees_the_paths_it_must_check() {
    let code = reader::code_of(concat!(
        "use crate::a::{b, c::{d as e, self}};\n",
        "// crate::x::y\n",
        "let s = \"crate::q is not code\"; crate::f::g(); super::h::i;\n",
        "let q = '\"'; let r#type = 1; let t = r#\"crate::k\"#; let u = '\\\\';\n",
        "#[serde(default = \"crate::m::n\")] struct S;\n",
        "fn l<'a>(x: &'a str) { crate::o::p(x) }",
    ));
    let mut uses: Vec<(Vec<String>, Option<String>)> = reader::use_paths(&code)
        .into_iter()
        .map(|u| (u.segments, u.bound_as))
        .collect();
    uses.sort();
    let seg = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        uses,
        [
            (seg(&["crate", "a", "b"]), Some("b".into())),
            (seg(&["crate", "a", "c"]), Some("c".into())),
            (seg(&["crate", "a", "c", "d"]), Some("e".into())),
        ]
    );
    let starts = ["crate", "super"].map(String::from);
    let inline: Vec<Vec<String>> = reader::inline_paths(&code, &starts)
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    for wanted in [
        seg(&["crate", "f", "g"]),
        seg(&["super", "h", "i"]),
        seg(&["crate", "m", "n"]),
        seg(&["crate", "o", "p"]),
        seg(&["crate", "k"]),
    ] {
        assert!(
            inline.contains(&wanted),
            "{wanted:?} not seen in {inline:?}"
        );
    }
    for unwanted in ["q", "x", "y"] {
        assert!(
            !inline.iter().any(|p| p.contains(&unwanted.to_string())),
            "`{unwanted}` came from a comment or a plain string: {inline:?}"
        );
    }
}

/// A scratch library: `files` are (path under `src/`, text).
fn scratch(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("visitas-layers-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (path, text) in files {
        let path = dir.join("src").join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// A library of three layers: `low` may use nothing, `mid` uses `low`, `high` uses both.
const TOY: &[(&str, &[&str])] = &[("low", &[]), ("mid", &["low"]), ("high", &["low", "mid"])];

fn toy(name: &str, low: &str, mid_a: &str) -> PathBuf {
    scratch(
        name,
        &[
            ("lib.rs", "pub mod high;\npub mod low;\npub mod mid;\n"),
            ("low.rs", low),
            ("mid/mod.rs", "pub mod a;\npub mod b;\npub use a::Thing;\n"),
            ("mid/a.rs", mid_a),
            ("mid/b.rs", "pub fn f() {}\n"),
            ("high.rs", "use crate::mid::Thing;\npub fn h(_: Thing) {}\n"),
        ],
    )
}

#[test]
fn the_checker_catches_planted_violations() {
    let clean = toy(
        "clean",
        "pub fn l() {}\n",
        "use crate::low::l;\npub struct Thing;\n",
    );
    assert_eq!(
        against_layers(&Crate::read(&clean, "lib.rs"), TOY),
        Vec::<String>::new()
    );
    assert_eq!(
        circles_under(&clean, &[(".", "lib.rs")]),
        Vec::<String>::new()
    );

    // Each `low.rs` uses `high` (a later layer) in a way a naive reader misses.
    for (case, low) in [
        ("plain", "use crate::high::h;\n"),
        ("inline", "pub fn l() { crate::high::h(todo!()) }\n"),
        (
            "module alias",
            "use crate::high;\npub fn l() { high::h(todo!()) }\n",
        ),
        (
            "crate alias",
            "use crate as root;\npub fn l() { root::high::h(todo!()) }\n",
        ),
        (
            "after a quote char",
            "const Q: char = '\"';\nuse crate::high::h;\n",
        ),
        (
            "after an escaped char",
            "const Q: char = '\\\\';\nuse crate::high::h;\n",
        ),
        (
            "after a raw identifier",
            "pub fn r#type() {}\nuse crate::high::h;\n",
        ),
        (
            "in an attribute string",
            "#[serde(default = \"crate::high::h\")]\npub struct S;\n",
        ),
        (
            "through a re-export",
            "use crate::mid::Thing;\nuse crate::high::h;\n",
        ),
    ] {
        let tree = toy(case, low, "pub struct Thing;\n");
        let wrong = against_layers(&Crate::read(&tree, "lib.rs"), TOY);
        assert!(
            wrong
                .iter()
                .any(|w| w.contains("low.rs (low) uses") && w.contains("high.rs")),
            "{case}: not caught: {wrong:?}"
        );
    }

    // A macro exported at the crate root by `high`, used by `low`.
    let tree = scratch(
        "macro",
        &[
            ("lib.rs", "pub mod high;\npub mod low;\npub mod mid;\n"),
            ("low.rs", "pub fn l() { crate::shout!() }\n"),
            ("mid.rs", "\n"),
            (
                "high.rs",
                "#[macro_export]\nmacro_rules! shout { () => {} }\n",
            ),
        ],
    );
    let wrong = against_layers(&Crate::read(&tree, "lib.rs"), TOY);
    assert!(
        wrong.iter().any(|w| w.contains("low.rs (low) uses")),
        "macro: {wrong:?}"
    );

    // A circle between two submodules, and one between a module file and its submodule.
    let tree = toy("siblings", "\n", "use super::b::f;\npub struct Thing;\n");
    std::fs::write(
        tree.join("src/mid/b.rs"),
        "use super::a::Thing;\npub fn f(_: Thing) {}\n",
    )
    .unwrap();
    let found = circles_under(&tree, &[(".", "lib.rs")]);
    assert!(
        found
            .iter()
            .any(|c| c.contains("a.rs") && c.contains("b.rs")),
        "{found:?}"
    );
    let tree = toy("parent", "\n", "use super::helper;\npub struct Thing;\n");
    std::fs::write(
        tree.join("src/mid/mod.rs"),
        "pub mod a;\npub mod b;\npub use a::Thing;\npub fn helper() {}\n",
    )
    .unwrap();
    let found = circles_under(&tree, &[(".", "lib.rs")]);
    assert!(
        found
            .iter()
            .any(|c| c.contains("mod.rs") && c.contains("a.rs")),
        "{found:?}"
    );

    // A file's inline test module is read like the rest of the file.
    let tree = toy(
        "tests",
        "pub fn l() {}\n#[cfg(test)]\nmod tests {\n    use super::*;\n    use crate::high::h;\n}\n",
        "pub struct Thing;\n",
    );
    let wrong = against_layers(&Crate::read(&tree, "lib.rs"), TOY);
    assert!(
        wrong.iter().any(|w| w.contains("low.rs (low) uses")),
        "an inline test module: {wrong:?}"
    );
}
