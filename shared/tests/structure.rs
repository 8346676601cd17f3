//! The house rule that dependencies point one way: the domain (`src/domain/`) and the ports
//! (`src/ports.rs`) use nothing of the storage, the adapters, the HTTP layer or its error type — the
//! types a port takes and returns are the domain's, and `error.rs` maps domain errors to HTTP. A source
//! scan (comments and doc links are not dependencies, so comment lines are skipped).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

const FORBIDDEN: &[&str] = &[
    "crate::storage",
    "crate::adapters",
    "crate::http",
    "crate::error::ApiError",
    "lambda_http",
    "aws_sdk_",
    "super::super::storage",
    "super::super::adapters",
    "super::super::http",
];

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

#[test]
fn domain_and_ports_depend_on_no_outer_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.join("ports.rs")];
    rust_files(&src.join("domain"), &mut files);
    assert!(files.len() > 5, "{files:?}");
    let mut violations = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for needle in FORBIDDEN {
                if code.contains(needle) {
                    violations.push(format!("{}:{}: {}", file.display(), n + 1, code));
                }
            }
        }
    }
    assert!(violations.is_empty(), "the domain/ports use an outer layer:\n{}", violations.join("\n"));
}

/// The scan itself catches a use of an outer layer (so the test above cannot pass by reading nothing).
#[test]
fn the_scan_sees_a_violation() {
    let line = "use crate::storage::enroll::Enrollment;";
    assert!(FORBIDDEN.iter().any(|n| line.contains(n)));
}

/// The key schema is documented in one place: every key prefix (`"XXX#`) the crate or the invariant
/// checker builds or matches appears in the table of `storage/mod.rs`.
#[test]
fn every_key_prefix_is_in_the_key_schema_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let table = std::fs::read_to_string(root.join("src/storage/mod.rs")).unwrap();
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.push(root.join("../src/invariants.rs"));
    let mut prefixes = std::collections::BTreeSet::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let bytes = text.as_bytes();
        for (i, _) in text.match_indices('"') {
            let rest = &bytes[i + 1..];
            let n = rest.iter().take_while(|b| b.is_ascii_uppercase() || **b == b'_').count();
            if n >= 2 && rest.get(n) == Some(&b'#') {
                prefixes.insert(String::from_utf8(rest[..=n].to_vec()).unwrap());
            }
        }
    }
    assert!(prefixes.len() > 15, "{prefixes:?}");
    let missing: Vec<_> = prefixes.iter().filter(|p| !table.contains(&format!("`{p}"))).collect();
    assert!(
        missing.is_empty(),
        "key prefixes missing from the key schema table in storage/mod.rs: {missing:?}"
    );
}

/// Keys are spelled and read back in one place: outside `storage/keys.rs` (and tests), no code of
/// the crate or the invariant checker writes a key prefix (`"XXX#`) itself.
#[test]
fn keys_are_spelled_only_in_storage_keys() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.push(root.join("../src/invariants.rs"));
    let mut spelled = Vec::new();
    for file in files.iter().filter(|f| !f.ends_with("storage/keys.rs") && !f.ends_with("tests.rs")) {
        let text = std::fs::read_to_string(file).unwrap();
        // Test modules (fixtures build raw items on purpose) are not scanned.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let bytes = code.as_bytes();
        for (i, _) in code.match_indices('"') {
            let rest = &bytes[i + 1..];
            let n = rest.iter().take_while(|b| b.is_ascii_uppercase() || **b == b'_').count();
            if n >= 2 && rest.get(n) == Some(&b'#') {
                spelled.push(format!("{}: {}", file.display(), String::from_utf8_lossy(&rest[..=n])));
            }
        }
    }
    assert!(spelled.is_empty(), "keys spelled outside storage/keys.rs: {spelled:#?}");
}
