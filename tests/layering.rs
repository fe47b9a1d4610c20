//! The layering of `src`, checked: every path a file names (`use crate::..`,
//! `super::..`, a child module, or a full path in code) is resolved to the
//! file that defines it, and the graph of files must
//! - never point from a lower layer to a higher one
//!   (`engine` <- `analysis` <- `store` <- `ui` | `cli`; `ui` and `cli` are
//!   peers and do not see each other), and
//! - hold no circle, inside a layer or across.
//!
//! A `mod` declaration is not an import (a parent owns its children); a
//! parent's `pub use child::X` re-export is one edge like any other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layer rank of each top-level module; a file may name only files of a
/// lower rank or its own top-level module.
const LAYERS: [(&str, u8); 7] = [
    ("engine", 0),
    ("analysis", 1),
    ("remote", 1),
    ("store", 2),
    ("train", 3),
    ("ui", 4),
    ("cli", 4),
];

/// A module path (`["engine", "model", "llama"]`) and the file it lives in.
struct Module {
    path: Vec<String>,
    file: PathBuf,
}

fn modules(src: &Path) -> Vec<Module> {
    let mut out = Vec::new();
    walk(src, src, &mut out);
    out
}

fn walk(src: &Path, dir: &Path, out: &mut Vec<Module>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            walk(src, &p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let rel = p.strip_prefix(src).unwrap();
            let mut path: Vec<String> = rel
                .iter()
                .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            if path
                .last()
                .is_some_and(|l| l == "mod" || l == "lib" || l == "main")
            {
                path.pop();
            }
            out.push(Module { path, file: p });
        }
    }
}

/// The source with comments, string and char literals blanked, so that a path
/// inside a doc comment or a message is not read as an import.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
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
        } else if b[i] == b'r'
            && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#'))
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
        {
            // A raw string: r"..", r#".."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push(b[i] as char);
                i += 1;
                continue;
            }
            j += 1;
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            while j < b.len() && !b[j..].starts_with(&close) {
                j += 1;
            }
            i = j + close.len();
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            let lit_end = if b.get(i + 1) == Some(&b'\\') {
                b[i + 2..]
                    .iter()
                    .position(|&c| c == b'\'')
                    .map(|p| i + 2 + p)
            } else if b.get(i + 2) == Some(&b'\'') {
                Some(i + 2)
            } else {
                // A multi-byte char: find the closing quote within 5 bytes.
                b[i + 1..b.len().min(i + 6)]
                    .iter()
                    .position(|&c| c == b'\'')
                    .map(|p| i + 1 + p)
                    .filter(|&e| {
                        !text.is_char_boundary(i + 1) || text[i + 1..e].chars().count() == 1
                    })
            };
            match lit_end {
                Some(e) => {
                    out.push_str("' '");
                    i = e + 1;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The file's code split by inline module (`mod tests { .. }`), each with
/// its module path, so that `super::` inside one names the file itself.
fn inline_modules(code: &str, here: &[String]) -> Vec<(Vec<String>, String)> {
    let mut outer = String::new();
    let mut inner = Vec::new();
    let mut rest = code;
    while let Some(at) = find_word(rest, "mod") {
        let after = &rest[at + 3..];
        let ident_len = after
            .trim_start()
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(0);
        let ws = after.len() - after.trim_start().len();
        let ident = &after[ws..ws + ident_len];
        let tail = after[ws + ident_len..].trim_start();
        if ident.is_empty() || !tail.starts_with('{') {
            outer.push_str(&rest[..at + 3]);
            rest = after;
            continue;
        }
        let open = rest.len() - tail.len();
        let mut depth = 0;
        let mut close = rest.len();
        for (i, c) in rest[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        close = open + i;
                        break;
                    }
                }
                _ => {}
            }
        }
        outer.push_str(&rest[..at]);
        let mut path = here.to_vec();
        path.push(ident.to_string());
        inner.extend(inline_modules(&rest[open + 1..close], &path));
        rest = &rest[(close + 1).min(rest.len())..];
    }
    outer.push_str(rest);
    let mut out = vec![(here.to_vec(), outer)];
    out.extend(inner);
    out
}

/// Expands a `use` tree (`crate::a::{b, c::{d, e}}`) into its paths.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else {
        return vec![tree];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap()];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| expand(p).into_iter().map(move |q| format!("{prefix}{q}")))
        .collect()
}

/// Every path in the code that may name another module of the crate.
fn named_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    // `use` trees (with their braces).
    let mut rest = code;
    while let Some(pos) = find_word(rest, "use") {
        let after = &rest[pos + 3..];
        let end = after.find(';').unwrap_or(after.len());
        out.extend(expand(after[..end].trim()));
        rest = &after[end..];
    }
    // Full paths in code: `crate::x::y`, `super::x`, `self::x`.
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(p) = code[from..].find(start) {
            let at = from + p;
            from = at + start.len();
            if at > 0 {
                let prev = code.as_bytes()[at - 1];
                if prev.is_ascii_alphanumeric() || prev == b'_' || prev == b':' {
                    continue;
                }
            }
            let len = code[at..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(code.len() - at);
            out.push(code[at..at + len].trim_end_matches(':').to_string());
        }
    }
    out
}

fn find_word(s: &str, w: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(p) = s[from..].find(w) {
        let at = from + p;
        let before_ok = at == 0 || !(b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_');
        let after = b.get(at + w.len()).copied().unwrap_or(b' ');
        if before_ok && after.is_ascii_whitespace() {
            return Some(at);
        }
        from = at + w.len();
    }
    None
}

/// The module a path names, as the longest prefix that is a file module.
fn resolve(
    path: &str,
    here: &[String],
    children: &BTreeSet<String>,
    known: &BTreeSet<Vec<String>>,
) -> Option<Vec<String>> {
    let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut abs: Vec<String> = match segs.first()? {
        &"crate" => Vec::new(),
        &"super" | &"self" => {
            let mut m = here.to_vec();
            let mut i = 0;
            while i < segs.len() && (segs[i] == "super" || segs[i] == "self") {
                if segs[i] == "super" {
                    m.pop()?;
                }
                i += 1;
            }
            m.extend(segs[i..].iter().map(|s| s.to_string()));
            return longest(m, known);
        }
        first if children.contains(*first) => here.to_vec(),
        _ => return None,
    };
    let skip = usize::from(segs[0] == "crate");
    abs.extend(segs[skip..].iter().map(|s| s.to_string()));
    longest(abs, known)
}

fn longest(mut m: Vec<String>, known: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    while !m.is_empty() {
        if known.contains(&m) {
            return Some(m);
        }
        m.pop();
    }
    None
}

fn layer(m: &[String]) -> Option<u8> {
    let top = m.first()?;
    LAYERS.iter().find(|(n, _)| n == top).map(|&(_, r)| r)
}

/// The file graph: module -> the modules it names (itself left out).
fn graph() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    let known: BTreeSet<Vec<String>> = mods.iter().map(|m| m.path.clone()).collect();
    let mut g = BTreeMap::new();
    for m in &mods {
        let code = code_only(&std::fs::read_to_string(&m.file).unwrap());
        // Child modules this file declares (`mod x;`), usable as bare `x::`.
        let children: BTreeSet<String> = known
            .iter()
            .filter(|k| k.len() == m.path.len() + 1 && k.starts_with(&m.path))
            .map(|k| k.last().unwrap().clone())
            .collect();
        let mut to = BTreeSet::new();
        for (here, code) in inline_modules(&code, &m.path) {
            for p in named_paths(&code) {
                if let Some(t) = resolve(&p, &here, &children, &known)
                    && t != m.path
                    && !t.is_empty()
                {
                    to.insert(t);
                }
            }
        }
        g.insert(m.path.clone(), to);
    }
    g
}

fn name(m: &[String]) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

#[test]
fn no_module_imports_a_layer_above_it() {
    let mut wrong = Vec::new();
    for (from, tos) in graph() {
        let Some(lf) = layer(&from) else { continue };
        for to in tos {
            let Some(lt) = layer(&to) else { continue };
            if from[0] != to[0] && lt >= lf {
                wrong.push(format!("{} -> {}", name(&from), name(&to)));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports from a layer above (or a peer):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_import_circles() {
    let g = graph();
    // Tarjan's strongly connected components; any of more than one file is a circle.
    struct T<'a> {
        g: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        stack: Vec<&'a Vec<String>>,
        on: BTreeSet<&'a Vec<String>>,
        next: usize,
        circles: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a Vec<String>) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        for w in &t.g[v] {
            if !t.g.contains_key(w) {
                continue;
            }
            let w = t.g.get_key_value(w).unwrap().0;
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = t.stack.pop().unwrap();
                t.on.remove(w);
                comp.push(name(w));
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.circles.push(comp);
            }
        }
    }
    let mut t = T {
        g: &g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        circles: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    let report: Vec<String> = t.circles.iter().map(|c| c.join(" <-> ")).collect();
    assert!(
        report.is_empty(),
        "modules that import each other in a circle:\n{}",
        report.join("\n")
    );
}

#[test]
fn the_checker_sees_imports() {
    // The checker itself: it must find known edges, or the tests above pass
    // for a wrong reason.
    let g = graph();
    let handle = vec!["engine".to_string(), "handle".to_string()];
    assert!(
        g[&handle]
            .iter()
            .any(|m| m.first().is_some_and(|f| f == "engine"))
    );
    let ui_app: Vec<String> = vec!["ui".into(), "app".into()];
    assert!(
        g[&ui_app]
            .iter()
            .any(|m| m == &vec!["engine".to_string(), "handle".to_string()])
    );
    assert_eq!(
        expand("crate::a::{b, c::{d, e}}"),
        vec!["crate::a::b", "crate::a::c::d", "crate::a::c::e"]
    );
    assert_eq!(
        code_only("let s = \"crate::x\"; // crate::y\nuse crate::z;"),
        "let s = \"\"; \nuse crate::z;"
    );
}

/// Inside `ui`: shared pieces (state, layout, text, fields, theme, keymap,
/// editor, widgets) < views (state and update) < panes (drawing) < app
/// (composition and routing) < draw (the screen, from the app) < the event
/// loop. A file
/// may name only files of its own rank or below; the views and panes never
/// see the app.
fn ui_rank(m: &[String]) -> Option<u8> {
    if m.first().map(String::as_str) != Some("ui") {
        return None;
    }
    Some(match m.get(1).map(String::as_str) {
        None => 6, // ui/mod.rs: the entry point, above everything
        Some("views") => 1,
        Some("panes") => 2,
        Some("app") => 3,
        Some("draw") => 4,
        Some("effects" | "event_loop" | "terminal" | "encoder" | "training") => 5,
        Some(_) => 0,
    })
}

#[test]
fn views_and_panes_never_see_the_app() {
    let mut wrong = Vec::new();
    for (from, tos) in graph() {
        let Some(rf) = ui_rank(&from) else { continue };
        for to in tos {
            let Some(rt) = ui_rank(&to) else { continue };
            if rt > rf {
                wrong.push(format!("{} -> {}", name(&from), name(&to)));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "ui files naming a ui layer above them:\n{}",
        wrong.join("\n")
    );
}
