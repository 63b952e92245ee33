//! The layer rule of `src/`, checked by reading the source: imports point down only and
//! no two modules import each other, directly or through others.
//!
//! Layers, lowest first (the same table stands in `src/lib.rs`):
//!
//! | rank | modules |
//! | --- | --- |
//! | 0 | `proto`, `sys` |
//! | 1 | `wire` |
//! | 2 | `conn` |
//! | 3 | `hub`, `metrics` |
//! | 4 | `shard`, `handler`, `listener` |
//! | 5 | `broker` |
//! | 6 | `driver` |
//! | 7 | `config` |
//! | 8 | `server`, `app`, `cli`, `telemetry`, `main` |
//!
//! A module may use modules of its own rank or below. "Module" for the cycle check is a
//! file (`src/proto/close.rs` is `proto::close`, `src/hub/mod.rs` is `hub`); a path is
//! resolved to the longest module prefix that has a file. A parent naming its own
//! descendants (`mod`, `pub use` re-exports) is structure, not a dependency, and test
//! code (`tests.rs` files, a trailing `#[cfg(test)] mod tests`) is not read.
//!
//! What is read: every `crate::…` and `super::…` path outside comments and string
//! literals, `use` trees with braces expanded. [`KNOWN`] (tolerated debt) is empty since
//! issue 13: the test fails on any violation, and on a listed item that no longer
//! occurs, so the list can only shrink.
//!
//! A path through a re-export lands in the file that re-exports it (`super::Shard` in
//! `src/shard/input.rs` is a dependency on `shard`, i.e. `src/shard/mod.rs`), so a file
//! below the application API names its siblings by their own path
//! (`super::state::ShardState`), not through `mod.rs`, which imports the `Handler`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Rank of each top-level module of `src/` (see the module doc).
const LAYERS: &[(&str, u8)] = &[
    ("proto", 0),
    ("sys", 0),
    ("wire", 1),
    ("conn", 2),
    ("hub", 3),
    ("metrics", 3),
    ("shard", 4),
    ("handler", 4),
    ("listener", 4),
    ("broker", 5),
    ("driver", 6),
    ("config", 7),
    ("server", 8),
    ("app", 8),
    ("cli", 8),
    ("telemetry", 8),
    ("main", 8),
];

/// Tolerated violations: upward imports as `"from -> to"` (file modules) and cycles as
/// their sorted members joined by `" <-> "`. Empty: the last one (`handler <-> shard <->
/// shard::context`) went when the application API's values moved to `shard::api` and
/// `ShardState` to `shard::state`, below the context that the `Handler` trait names.
const KNOWN: &[&str] = &[];

fn rank(module: &str) -> u8 {
    let top = module.split("::").next().unwrap_or(module);
    LAYERS
        .iter()
        .find(|(name, _)| *name == top)
        .map(|(_, r)| *r)
        .unwrap_or_else(|| panic!("module `{top}` has no layer: add it to LAYERS and lib.rs"))
}

/// `src/a/b.rs` and `src/a/b/mod.rs` → `a::b`; `src/lib.rs` → `` (the crate root).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts.join("::")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments, string and char literals (replaced by spaces), and
/// without a trailing `#[cfg(test)] mod tests`.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'r' && (b[i..].starts_with(b"r\"") || b[i..].starts_with(b"r#")) {
            let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
            if b.get(i + 1 + hashes) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            i += 2 + hashes;
            while i < b.len() && !b[i..].starts_with(&close) {
                i += 1;
            }
            i += close.len();
            out.push(' ');
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(' ');
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            i += 3; // 'x'
            out.push(' ');
        } else if b[i] == b'\'' && b.get(i + 1) == Some(&b'\\') {
            i += 2;
            while i < b.len() && b[i] != b'\'' {
                i += 1;
            }
            i += 1;
            out.push(' ');
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    match out.find("#[cfg(test)]\nmod tests") {
        Some(at) => out[..at].to_string(),
        None => out,
    }
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Expand a `use` tree (`a::{b, c::{d, e}}`) into its paths.
fn expand_use(tree: &str) -> Vec<String> {
    let mut out = Vec::new();
    expand_into("", tree.trim(), &mut out);
    out
}

fn expand_into(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let join = |p: &str, s: &str| {
        if p.is_empty() {
            s.to_string()
        } else {
            format!("{p}::{s}")
        }
    };
    match tree.find('{') {
        Some(open) => {
            let head = tree[..open].trim().trim_end_matches("::");
            let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            let base = join(prefix, head);
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand_into(&base, inner[start..i].trim(), out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            expand_into(&base, inner[start..].trim(), out);
        }
        None if tree.is_empty() => {}
        None => {
            let path = tree.split_whitespace().next().unwrap_or(tree);
            out.push(join(prefix, path.trim_end_matches("::*")));
        }
    }
}

/// Every path this code names that starts at `crate` or `super`, resolved to an
/// absolute path from the crate root (`proto::close::codes`).
fn referenced_paths(module: &str, code: &str) -> Vec<String> {
    let mut raw = Vec::new();
    // `use` statements, braces and all.
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before_ok = rest[..at].chars().last().is_none_or(|c| !is_ident(c));
        let end = rest[at..].find(';').map_or(rest.len(), |e| at + e);
        if before_ok {
            raw.extend(expand_use(&rest[at + 4..end]));
        }
        rest = &rest[end.min(rest.len())..];
        if rest.is_empty() {
            break;
        }
        rest = &rest[1..];
    }
    // Inline paths: `crate::a::b` and `super::a` anywhere in the code.
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(start) {
            let at = from + at;
            from = at + start.len();
            if code[..at]
                .chars()
                .last()
                .is_some_and(|c| is_ident(c) || c == '$')
            {
                continue;
            }
            let path: String = code[at..]
                .chars()
                .take_while(|&c| is_ident(c) || c == ':')
                .collect();
            raw.push(path.trim_end_matches(':').to_string());
        }
    }
    let here: Vec<&str> = if module.is_empty() {
        vec![]
    } else {
        module.split("::").collect()
    };
    raw.into_iter()
        .filter_map(|p| {
            let mut segs: Vec<&str> = p.split("::").filter(|s| !s.is_empty()).collect();
            let mut base: Vec<&str> = match segs.first() {
                Some(&"crate") => {
                    segs.remove(0);
                    vec![]
                }
                Some(&"super") => {
                    let mut b = here.clone();
                    while segs.first() == Some(&"super") {
                        segs.remove(0);
                        b.pop();
                    }
                    b
                }
                _ => return None,
            };
            base.extend(segs.into_iter().filter(|s| *s != "self"));
            Some(base.join("::"))
        })
        .collect()
}

/// The file module a path lands in: its longest prefix that is a module.
fn resolve<'a>(path: &str, modules: &'a BTreeSet<String>) -> Option<&'a String> {
    let segs: Vec<&str> = path.split("::").collect();
    (1..=segs.len())
        .rev()
        .find_map(|n| modules.get(&segs[..n].join("::")))
}

/// The import graph: file module → the file modules it depends on.
fn import_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.retain(|f| f.file_name().is_some_and(|n| n != "tests.rs"));
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| module_of(src, f))
        .filter(|m| !m.is_empty())
        .collect();
    let mut graph = BTreeMap::new();
    for file in &files {
        let module = module_of(src, file);
        if module.is_empty() {
            continue; // lib.rs: the layer map itself
        }
        let code = code_only(&std::fs::read_to_string(file).unwrap());
        let deps: BTreeSet<String> = referenced_paths(&module, &code)
            .iter()
            .filter_map(|p| resolve(p, &modules))
            .filter(|d| **d != module && !d.starts_with(&format!("{module}::")))
            .cloned()
            .collect();
        graph.insert(module, deps);
    }
    graph
}

/// Strongly connected components with more than one member (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        out: Vec<Vec<String>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, v: &'g str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut scc = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    scc.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if scc.len() > 1 {
                    scc.sort();
                    self.out.push(scc);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.out
}

/// Every violation of the rule in `graph`, as the strings [`KNOWN`] lists.
fn violations(graph: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (from, deps) in graph {
        for to in deps {
            if rank(to) > rank(from) {
                found.insert(format!("{from} -> {to}"));
            }
        }
    }
    for scc in cycles(graph) {
        found.insert(scc.join(" <-> "));
    }
    found
}

fn check(src: &Path) -> Result<(), String> {
    let found = violations(&import_graph(src));
    let known: BTreeSet<String> = KNOWN.iter().map(|s| s.to_string()).collect();
    let new: Vec<_> = found.difference(&known).collect();
    let gone: Vec<_> = known.difference(&found).collect();
    let mut msg = String::new();
    if !new.is_empty() {
        msg += &format!(
            "imports against the layer order (see tests/layering.rs):\n  {}\n",
            new.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  ")
        );
    }
    if !gone.is_empty() {
        msg += &format!(
            "fixed, remove from KNOWN:\n  {}\n",
            gone.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  ")
        );
    }
    if msg.is_empty() {
        Ok(())
    } else {
        Err(msg)
    }
}

#[test]
fn imports_point_down_and_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    if let Err(msg) = check(&src) {
        panic!("{msg}");
    }
}

/// The load generator (`loadtest/`, its own crate, no layer table): no import cycle
/// between its modules either.
#[test]
fn load_generator_has_no_import_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("loadtest/src");
    let found = cycles(&import_graph(&src));
    assert!(
        found.is_empty(),
        "import cycles in loadtest/src: {}",
        found
            .iter()
            .map(|c| c.join(" <-> "))
            .collect::<Vec<_>>()
            .join("; ")
    );
}

/// The command line is the top layer's business: no module below it names clap.
#[test]
fn clap_lives_in_the_cli_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| {
            let m = module_of(&src, f);
            !(m == "cli" || m.starts_with("cli::") || m == "main")
        })
        .filter(|f| code_only(&std::fs::read_to_string(f).unwrap()).contains("clap"))
        .map(|f| f.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "clap outside src/cli*: {offenders:?}");
}

/// The checker itself: it must see an upward import, a cycle, grouped `use` trees,
/// `super::` paths and inline paths, and must not see paths in comments or strings.
#[test]
fn the_checker_catches_injected_violations() {
    let dir = std::env::temp_dir().join(format!("ringcast-layering-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let write = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("lib.rs", "pub mod proto; pub mod conn; pub mod hub;");
    write("proto/mod.rs", "pub mod close;\npub mod error;\n");
    // A cycle inside proto, one side through a grouped use, the other through super::.
    write("proto/close.rs", "use crate::proto::{error::E, frame};\n");
    write("proto/error.rs", "pub fn f() { super::close::g() }\n");
    // conn is below hub: an inline upward path.
    write(
        "conn/mod.rs",
        "// crate::hub::X in a comment is fine\nfn f() { let s = \"crate::hub::Y\"; crate::hub::Z::new(); }\n",
    );
    write("hub/mod.rs", "use crate::conn::Connection;\n");
    // Test code may reach up: it is not read.
    write(
        "proto/mask.rs",
        "pub fn m() {}\n#[cfg(test)]\nmod tests { use crate::hub::X; }\n",
    );
    write("proto/frame/tests.rs", "use crate::hub::Y;\n");
    let found = violations(&import_graph(&dir));
    let _ = std::fs::remove_dir_all(&dir);
    let expected: BTreeSet<String> = [
        "conn -> hub",
        "conn <-> hub",
        "proto::close <-> proto::error",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(found, expected);
}

#[test]
fn use_trees_expand() {
    assert_eq!(
        expand_use("crate::a::{b, c::{d, e as f}, g::*}"),
        vec![
            "crate::a::b",
            "crate::a::c::d",
            "crate::a::c::e",
            "crate::a::g"
        ]
    );
}
