//! Dependencies point down only: every module of `src/` sits in one layer of
//! the table in `docs/ARCHITECTURE.md` ("Layers", written there once and
//! read here), and no file names a module of a higher layer. Every path
//! counts, in code and in tests: `crate::…` (use trees included),
//! `super::…`, `self::…` and a child module named bare; comments and string
//! literals do not.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A module path, `["session", "manager"]` for `session::manager`.
type ModPath = Vec<String>;

/// The layers, bottom first: the module paths each one places.
#[derive(Debug)]
struct Layers(Vec<Vec<ModPath>>);

impl Layers {
    /// Reads the "## Layers" section: its table rows are `| n | modules | … |`,
    /// the modules written as code (`` `session::manager` ``), `n` counting
    /// up from 1 at the bottom.
    fn parse(doc: &str) -> Result<Self, String> {
        let section = doc
            .split("\n## ")
            .find(|s| s.starts_with("Layers"))
            .ok_or("docs/ARCHITECTURE.md has no \"## Layers\" section")?;
        let mut layers = Vec::new();
        for row in section.lines().filter(|l| l.starts_with('|')) {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let (Some(number), Some(modules)) = (cells.get(1), cells.get(2)) else {
                continue;
            };
            let Ok(number) = number.parse::<usize>() else {
                continue; // The header and its rule.
            };
            if number != layers.len() + 1 {
                return Err(format!(
                    "layer {number} follows layer {}: number them 1, 2, … bottom first",
                    layers.len()
                ));
            }
            let placed: Vec<ModPath> = modules
                .split('`')
                .skip(1)
                .step_by(2)
                .map(|m| m.split("::").map(str::to_string).collect())
                .collect();
            if placed.is_empty() {
                return Err(format!("layer {number} places no module"));
            }
            layers.push(placed);
        }
        if layers.is_empty() {
            return Err("the Layers section has no table".into());
        }
        Ok(Self(layers))
    }

    /// The layer (1 = bottom) of the longest listed prefix of `path`.
    fn of(&self, path: &[String]) -> Option<usize> {
        self.0
            .iter()
            .enumerate()
            .flat_map(|(i, mods)| mods.iter().map(move |m| (i + 1, m)))
            .filter(|(_, m)| path.starts_with(m))
            .max_by_key(|(_, m)| m.len())
            .map(|(layer, _)| layer)
    }

    fn describe(&self, layer: usize) -> String {
        let names: Vec<String> = self.0[layer - 1].iter().map(|m| m.join("::")).collect();
        format!("layer {layer} ({})", names.join(", "))
    }
}

/// A source file and the module it is, by where it lies: `a/b.rs` and
/// `a/b/mod.rs` are `a::b`. (Files compiled through `#[path]` are mapped
/// by where they lie too; in this crate they all sit under `store/`.)
struct SourceFile {
    path: PathBuf,
    module: ModPath,
}

fn source_files(dir: &Path, module: &[String], out: &mut Vec<SourceFile>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap_or_else(|e| panic!("{e}")).path())
        .collect();
    entries.sort();
    for path in entries {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if path.is_dir() {
            let mut inner = module.to_vec();
            inner.push(name.to_string());
            source_files(&path, &inner, out);
        } else if let Some(stem) = name.strip_suffix(".rs") {
            let mut module = module.to_vec();
            // `lib.rs` is the crate's root, as a `mod.rs` is its folder's.
            let root = module.is_empty() && stem == "lib";
            if stem != "mod" && !root {
                module.push(stem.to_string());
            }
            out.push(SourceFile { path, module });
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
}

/// The tokens of `src` with their line numbers, without comments (doc
/// comments too), string, character and number literals, and lifetimes.
fn tokens(src: &str) -> Vec<(Token, usize)> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    // Skips a "…" body from its opening quote; escapes when not raw.
    let skip_string = |mut i: usize, line: &mut usize, hashes: usize, raw: bool| -> usize {
        i += 1;
        while i < c.len() {
            match c[i] {
                '\\' if !raw => i += 1,
                '\n' => *line += 1,
                '"' if (1..=hashes).all(|h| at(i + h) == '#') => return i + 1 + hashes,
                _ => {}
            }
            i += 1;
        }
        i
    };
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if ch == '"' {
            i = skip_string(i, &mut line, 0, false);
        } else if ch == '\'' {
            if at(i + 1) == '\\' {
                // An escaped character literal: past the escaped
                // character, to its closing quote.
                i += 3;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3; // 'x'
            } else {
                // A lifetime or a label.
                i += 1;
                while at(i).is_alphanumeric() || at(i) == '_' {
                    i += 1;
                }
            }
        } else if ch.is_ascii_digit() {
            while at(i).is_alphanumeric() || at(i) == '_' {
                i += 1;
            }
        } else if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while at(i).is_alphanumeric() || at(i) == '_' {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            let prefix = matches!(word.as_str(), "r" | "b" | "br" | "c" | "cr");
            if prefix && (at(i) == '"' || (word.ends_with('r') && at(i) == '#')) {
                let raw = word.ends_with('r');
                let mut hashes = 0;
                while at(i + hashes) == '#' {
                    hashes += 1;
                }
                if at(i + hashes) == '"' {
                    i = skip_string(i + hashes, &mut line, hashes, raw);
                    continue;
                }
                if word == "r" && hashes == 1 {
                    // A raw identifier, `r#type`: the word after the hash.
                    i += 1;
                    continue;
                }
            }
            if word == "b" && at(i) == '\'' {
                i = if at(i + 1) == '\\' { i + 4 } else { i + 3 };
                while i < c.len() && c[i - 1] != '\'' {
                    i += 1;
                }
                continue;
            }
            out.push((Token::Ident(word), line));
        } else if ch == ':' && at(i + 1) == ':' {
            out.push((Token::PathSep, line));
            i += 2;
        } else {
            out.push((Token::Punct(ch), line));
            i += 1;
        }
    }
    out
}

fn ident(tokens: &[(Token, usize)], i: usize) -> Option<&str> {
    match tokens.get(i) {
        Some((Token::Ident(word), _)) => Some(word),
        _ => None,
    }
}

fn is(tokens: &[(Token, usize)], i: usize, token: &Token) -> bool {
    tokens.get(i).is_some_and(|(t, _)| t == token)
}

/// Reads the path or use tree at `i` (just after a `::`), under `prefix`;
/// pushes every full path it names and returns the index after it.
fn tree(tokens: &[(Token, usize)], mut i: usize, prefix: ModPath, out: &mut Vec<ModPath>) -> usize {
    if is(tokens, i, &Token::Punct('{')) {
        i += 1;
        while i < tokens.len() && !is(tokens, i, &Token::Punct('}')) {
            if is(tokens, i, &Token::Punct(',')) {
                i += 1;
            } else {
                let next = tree(tokens, i, prefix.clone(), out);
                // Anything unexpected inside the braces: step over it.
                i = next.max(i + 1);
            }
        }
        return i + 1;
    }
    match ident(tokens, i) {
        Some("self") => {
            out.push(prefix);
            i + 1
        }
        Some(word) => {
            let mut path = prefix;
            path.push(word.to_string());
            if is(tokens, i + 1, &Token::PathSep) {
                return tree(tokens, i + 2, path, out);
            }
            out.push(path);
            if ident(tokens, i + 1) == Some("as") {
                return i + 3;
            }
            i + 1
        }
        // `*`, or a generic argument list (`crate::x::Y::<T>`).
        None => {
            out.push(prefix);
            i + 1
        }
    }
}

/// One reference from a file to a module path, with its line.
struct Reference {
    line: usize,
    from: ModPath,
    to: ModPath,
}

/// Every module path `file` names. `children` are the modules with a file
/// of their own, to resolve a child module named bare (`manager::X`).
fn references(file: &SourceFile, src: &str, children: &BTreeSet<ModPath>) -> Vec<Reference> {
    let tokens = tokens(src);
    let mut found = Vec::new();
    // Inline modules (`mod tests { … }`) open: name and brace depth.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut pending_mod: Option<String> = None;
    let mut i = 0;
    while i < tokens.len() {
        let (token, line) = &tokens[i];
        let mut current = file.module.clone();
        current.extend(inline.iter().map(|(name, _)| name.clone()));
        match token {
            Token::Punct('{') => {
                depth += 1;
                if let Some(name) = pending_mod.take() {
                    inline.push((name, depth));
                }
                i += 1;
                continue;
            }
            Token::Punct('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth -= 1;
                i += 1;
                continue;
            }
            _ => {}
        }
        if ident(&tokens, i) == Some("mod") {
            if let Some(name) = ident(&tokens, i + 1)
                && is(&tokens, i + 2, &Token::Punct('{'))
            {
                pending_mod = Some(name.to_string());
            }
            i += 2;
            continue;
        }
        // Not a path's start: after `::`, or a method (`.name::<T>()`).
        let starts_path = i == 0
            || !(is(&tokens, i - 1, &Token::PathSep) || is(&tokens, i - 1, &Token::Punct('.')));
        let Some(word) = ident(&tokens, i) else {
            i += 1;
            continue;
        };
        if !starts_path || !is(&tokens, i + 1, &Token::PathSep) {
            i += 1;
            continue;
        }
        let (base, rest) = match word {
            "crate" => (Vec::new(), i + 2),
            "self" => (current.clone(), i + 2),
            "super" => {
                let mut base = current.clone();
                let mut j = i;
                while ident(&tokens, j) == Some("super") && is(&tokens, j + 1, &Token::PathSep) {
                    base.pop();
                    j += 2;
                }
                (base, j)
            }
            _ => {
                // A child of this module, or (in an inline module, which
                // reaches them through `use super::*`) of the file's.
                let child = |parent: &[String]| {
                    let mut path = parent.to_vec();
                    path.push(word.to_string());
                    children.contains(&path).then_some(path)
                };
                match child(&current).or_else(|| child(&file.module)) {
                    Some(path) => path
                        .split_last()
                        .map_or((Vec::new(), i), |(_, parent)| (parent.to_vec(), i)),
                    None => {
                        i += 1;
                        continue;
                    }
                }
            }
        };
        let mut paths = Vec::new();
        i = tree(&tokens, rest, base, &mut paths);
        found.extend(paths.into_iter().map(|to| Reference {
            line: *line,
            from: current.clone(),
            to,
        }));
    }
    found
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn layers() -> Layers {
    let doc_path = manifest_dir().join("../../docs/ARCHITECTURE.md");
    let doc = std::fs::read_to_string(&doc_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", doc_path.display()));
    Layers::parse(&doc).unwrap_or_else(|e| panic!("{e}"))
}

/// Every file's module and references, the crate roots left out: `lib.rs`
/// only declares the modules, and `main.rs` is the binary, which reaches
/// the library as `wagate::`, never through `crate::`.
fn crate_files() -> Vec<SourceFile> {
    let src = manifest_dir().join("src");
    let mut files = Vec::new();
    source_files(&src, &[], &mut files);
    files.retain(|f| !f.module.is_empty() && f.module != ["main"]);
    files
}

fn check(layers: &Layers, files: &[SourceFile], read: impl Fn(&Path) -> String) -> Vec<String> {
    let modules: BTreeSet<ModPath> = files.iter().map(|f| f.module.clone()).collect();
    let mut problems = Vec::new();
    for placed in layers.0.iter().flatten() {
        if !modules.contains(placed) {
            problems.push(format!(
                "the Layers table places `{}`, which is no module",
                placed.join("::")
            ));
        }
    }
    let root = manifest_dir();
    for file in files {
        let shown = file
            .path
            .strip_prefix(&root)
            .unwrap_or(&file.path)
            .display();
        let Some(own) = layers.of(&file.module) else {
            problems.push(format!(
                "{shown}: module `{}` is in no layer of the Layers table",
                file.module.join("::")
            ));
            continue;
        };
        for reference in references(file, &read(&file.path), &modules) {
            let from = layers.of(&reference.from).unwrap_or(own);
            match layers.of(&reference.to) {
                Some(to) if to > from => problems.push(format!(
                    "{shown}:{}: `{}` in {} names `{}` in {}, above it",
                    reference.line,
                    reference.from.join("::"),
                    layers.describe(from),
                    reference.to.join("::"),
                    layers.describe(to),
                )),
                Some(_) => {}
                None => problems.push(format!(
                    "{shown}:{}: names `crate::{}`, which no layer places",
                    reference.line,
                    reference.to.join("::"),
                )),
            }
        }
    }
    problems
}

#[test]
fn dependencies_point_down_only() {
    let problems = check(&layers(), &crate_files(), |path| {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    });
    let mut report = String::new();
    for problem in &problems {
        let _ = writeln!(report, "{problem}");
    }
    assert!(
        problems.is_empty(),
        "{} problem(s) with the layer order of docs/ARCHITECTURE.md:\n{report}",
        problems.len()
    );
}

/// The reader itself: every form of path, and what it must not read.
#[test]
fn every_form_of_path_is_read_and_comments_and_strings_are_not() {
    let layers = Layers(vec![
        vec![vec!["low".to_string()]],
        vec![vec!["mid".to_string()]],
        vec![vec!["high".to_string()], vec!["mid".into(), "top".into()]],
    ]);
    let file = |module: &[&str]| SourceFile {
        path: PathBuf::from(format!("{}.rs", module.join("/"))),
        module: module.iter().map(|s| s.to_string()).collect(),
    };
    let files = vec![
        file(&["low"]),
        file(&["mid"]),
        file(&["mid", "top"]),
        file(&["mid", "inner"]),
        file(&["high"]),
    ];
    let sources = |path: &Path| -> String {
        match path.to_str() {
            Some("mid.rs") => [
                "// use crate::high;",
                "/// [`crate::high::X`]",
                "/* crate::high /* nested */ crate::high */",
                "const S: &str = \"crate::high::X\";",
                "const R: &str = r#\"crate::high\"#;",
                "fn f<'a>(c: char) -> &'a str { let _ = 'x'; let _ = '\\''; \"\" }",
                "use crate::{low, high::{A, b::C as D}};",
                "pub use top::Thing;",
                "mod tests { use super::top::X; }",
                "fn g() { crate::high::go(); }",
            ]
            .join("\n"),
            Some("mid/inner.rs") => "use super::super::high::Y;\nuse super::top;\n".into(),
            _ => String::new(),
        }
    };
    let problems = check(&layers, &files, sources);
    let lines: Vec<String> = problems
        .iter()
        .filter_map(|p| {
            p.split_once(": `")
                .map(|(at, _)| at.rsplit('/').next().unwrap_or(at).to_string())
        })
        .collect();
    assert_eq!(
        lines,
        [
            "mid.rs:7",  // high::A
            "mid.rs:7",  // high::b::C
            "mid.rs:8",  // a child module named bare
            "mid.rs:9",  // super:: from an inline module
            "mid.rs:10", // an inline path
            "inner.rs:1",
            "inner.rs:2",
        ],
        "{problems:#?}"
    );
}
