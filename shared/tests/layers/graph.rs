//! A crate's module files and the imports between them: every path a file names
//! (`crate::…`, `$crate::…`, `super::…`, `self::…`, or through a name a `use` bound to a
//! module) is followed, through child modules, `pub use` re-exports and
//! `#[macro_export]` macros, to the file that defines what it names.

use crate::reader::{self, UsePath};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One crate's module tree.
pub struct Crate {
    /// `src/`.
    pub src: PathBuf,
    /// The root file (`lib.rs` or `main.rs`).
    pub root: PathBuf,
    /// Each file's code (comments and string contents removed).
    code: BTreeMap<PathBuf, String>,
    /// Macros exported at the crate root, by name → the file defining them.
    exported: BTreeMap<String, PathBuf>,
}

impl Crate {
    /// Reads every `.rs` file under `dir/src`.
    pub fn read(dir: &Path, root: &str) -> Self {
        let src = dir.join("src");
        let mut code = BTreeMap::new();
        let mut dirs = vec![src.clone()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    let text = std::fs::read_to_string(&p).unwrap();
                    code.insert(p, reader::code_of(&text));
                }
            }
        }
        let exported = code
            .iter()
            .flat_map(|(f, c)| {
                reader::exported_macros(c)
                    .into_iter()
                    .map(|m| (m, f.clone()))
            })
            .collect();
        Self {
            root: src.join(root),
            src,
            code,
            exported,
        }
    }

    /// Every module file.
    pub fn files(&self) -> impl Iterator<Item = &PathBuf> {
        self.code.keys()
    }

    /// The directory a module file's children live in.
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
        .find(|p| self.code.contains_key(p))
    }

    /// The parent module file of `file` (none for the root).
    pub fn parent(&self, file: &Path) -> Option<PathBuf> {
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
            .find(|p| self.code.contains_key(p))
    }

    /// The top-level module a file belongs to (`store` for `src/store/queue.rs`).
    pub fn top(&self, file: &Path) -> Option<String> {
        let rel = file.strip_prefix(&self.src).ok()?;
        let first = rel.components().next()?.as_os_str().to_str()?;
        let first = first.strip_suffix(".rs").unwrap_or(first);
        (!matches!(first, "lib" | "main")).then(|| first.to_string())
    }

    /// A module file's `pub use child::…::Name` re-exports: name → child module.
    fn reexports(&self, file: &Path) -> BTreeMap<String, String> {
        reader::use_paths(&self.code[file])
            .into_iter()
            .filter(|u| u.public && u.segments.len() >= 2)
            .filter(|u| !matches!(u.segments[0].as_str(), "crate" | "super" | "self"))
            .filter_map(|u| Some((u.bound_as?, u.segments[0].clone())))
            .collect()
    }

    /// Follows `segments` from module file `from` to the file that defines what they
    /// name; also says whether every segment was a module (the path names a module).
    fn resolve(&self, from: &Path, segments: &[String]) -> (PathBuf, bool) {
        let mut at = from.to_path_buf();
        for (k, seg) in segments.iter().enumerate() {
            if let Some(child) = self.child(&at, seg) {
                at = child;
            } else if let Some(child) = self
                .reexports(&at)
                .get(seg)
                .and_then(|c| self.child(&at, c))
            {
                return (self.resolve(&child, &segments[k..]).0, false);
            } else if at == self.root
                && let Some(file) = self.exported.get(seg)
            {
                return (file.clone(), false);
            } else {
                return (at, false);
            }
        }
        (at, true)
    }

    /// Where a path starting with `crate`, `super` or `self` begins, at `at` in `file`
    /// (inside an inline module, the first `super` is the file's own module); `None` for
    /// any other start.
    fn start_of<'a>(
        &self,
        file: &Path,
        segments: &'a [String],
        nested: usize,
    ) -> Option<(PathBuf, &'a [String])> {
        let (first, rest) = segments.split_first()?;
        let (mut from, mut rest) = match first.as_str() {
            "crate" => (self.root.clone(), rest),
            "self" => (file.to_path_buf(), rest),
            "super" => (file.to_path_buf(), segments),
            _ => return None,
        };
        let mut nested = nested;
        while let Some(("super", more)) = rest.split_first().map(|(s, m)| (s.as_str(), m)) {
            if nested > 0 {
                nested -= 1;
            } else {
                from = self.parent(&from).unwrap_or_else(|| self.root.clone());
            }
            rest = more;
        }
        Some((from, rest))
    }

    /// Every file `file` names, itself left out.
    pub fn edges(&self, file: &Path) -> BTreeSet<PathBuf> {
        let code = &self.code[file];
        let inline = reader::inline_modules(code);
        let nested = |at: usize| {
            inline
                .iter()
                .filter(|(a, b)| (*a..*b).contains(&at))
                .count()
        };
        let mut targets = BTreeSet::new();
        // Names bound to modules by `use` (and `use crate as root`): paths through them too.
        let mut modules: BTreeMap<String, PathBuf> = BTreeMap::new();
        let uses: Vec<UsePath> = reader::use_paths(code);
        for u in &uses {
            if u.segments.len() == 1 && u.segments[0] == "crate" {
                if let Some(name) = &u.bound_as {
                    modules.insert(name.clone(), self.root.clone());
                }
                continue;
            }
            let (from, rest) = match self.start_of(file, &u.segments, nested(u.at)) {
                Some(start) => start,
                // A path from one of the file's own submodules (`pub use child::Item`).
                None if self.child(file, &u.segments[0]).is_some() => {
                    (file.to_path_buf(), &u.segments[..])
                }
                None => continue,
            };
            let (target, is_module) = self.resolve(&from, rest);
            targets.insert(target.clone());
            if is_module && let Some(name) = &u.bound_as {
                modules.insert(name.clone(), target);
            }
        }
        // The file's own submodules are named by their bare names.
        let children = reader::declared_modules(code);
        for child in &children {
            if let Some(path) = self.child(file, child) {
                modules.entry(child.clone()).or_insert(path);
            }
        }
        let mut starts: Vec<String> = ["crate", "super", "self"].map(String::from).to_vec();
        starts.extend(modules.keys().cloned());
        for (at, segments) in reader::inline_paths(code, &starts) {
            let (from, rest) = match self.start_of(file, &segments, nested(at)) {
                Some(start) => start,
                None => match modules.get(&segments[0]) {
                    Some(module) => (module.clone(), &segments[1..]),
                    None => continue,
                },
            };
            targets.insert(self.resolve(&from, rest).0);
        }
        targets.remove(file);
        targets
    }

    /// The whole import graph of the crate.
    pub fn graph(&self) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
        self.files().map(|f| (f.clone(), self.edges(f))).collect()
    }
}

/// The circles of a graph (strongly connected components of more than one file).
pub fn circles(graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
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

/// The imports of a library crate against its layers: `layers` lists each top-level
/// module with the ones it may use (a module may always use itself; the root declares
/// them all). A top-level module missing from the table is reported too.
pub fn against_layers(krate: &Crate, layers: &[(&str, &[&str])]) -> Vec<String> {
    let allowed: BTreeMap<&str, &[&str]> = layers.iter().copied().collect();
    let mut wrong = Vec::new();
    for (file, targets) in krate.graph() {
        let Some(from) = krate.top(&file) else {
            continue;
        };
        let Some(may) = allowed.get(from.as_str()) else {
            wrong.push(format!(
                "{}: top-level module `{from}` has no layer",
                file.display()
            ));
            continue;
        };
        for t in targets {
            let to = krate.top(&t);
            let fine = match &to {
                Some(to) => to == &from || may.contains(&to.as_str()),
                None => false, // the crate root: what it holds belongs to no layer
            };
            if !fine {
                wrong.push(format!(
                    "{} ({from}) uses {} ({})",
                    file.display(),
                    t.display(),
                    to.as_deref().unwrap_or("the crate root")
                ));
            }
        }
    }
    wrong
}
