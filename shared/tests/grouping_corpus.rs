//! Sentry's own grouping corpus (`../shared/sentry-grouping-corpus/`, read in place, never copied into
//! this repository): 161 inputs of Sentry's `tests/sentry/grouping/grouping_inputs/` with the hashes
//! of the default config `newstyle:2023-01-11` (`test_variants` snapshots). Each input is built as
//! Sentry's test builds it — normalized (our Relay-compatible normalizer), its `_grouping.enhancements`
//! appended to the built-in stack-trace rules as project rules, then hashed — and compared with the
//! snapshot three ways: the primary hash; the `hashes` list (the non-null variant hashes in order,
//! `system` last, duplicates dropped: `get_hashes`); and every variant by name (`app`, `system`,
//! `default`, `fallback`, `custom-fingerprint`), non-contributing (`null`) ones included.
//!
//! The result per platform is printed; the test fails when fewer inputs match than the floors below
//! (a ratchet). The inputs that differ by decision are listed in [`DECIDED`] and in the README. Under
//! CI a missing corpus fails the test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use serde_json::Value;
use shared::grouping::config::GroupingConfig;
use shared::grouping::hashing::calculate_hashes_with;
use shared::ingest::normalize::{NormalizeConfig, normalize_event};

/// Inputs whose primary hash must equal Sentry's (raise as grouping improves).
const PRIMARY_FLOOR: usize = 159;

/// Inputs whose every variant (name and hash, non-contributing ones included) equals Sentry's.
const VARIANT_FLOOR: usize = 159;

/// Inputs that differ by decision, with why (counted apart from the rest).
const DECIDED: &[(&str, &str)] = &[
    (
        "hpkp",
        "HPKP reports: current Relay (the sentry-relay 0.10.1 normalizer our conformance suite runs) no \
         longer knows the `hpkp` interface (invalid_attribute) and browsers stopped sending the reports; \
         the event is grouped as a default event, where Sentry's 2024 test grouped it by salt and hostname",
    ),
    ("expectct", "Expect-CT reports: the same (the header is deprecated and no browser sends them)"),
];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/sentry-grouping-corpus")
}

/// `hash:` of each variant in a `.pysnap` (top-level keys are variant names), in file order.
fn snapshot_variants(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line == "---" || line.is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            current = line.strip_suffix(':').map(str::to_owned);
            continue;
        }
        if let (Some(name), Some(rest)) = (current.as_ref(), line.strip_prefix("  hash: ")) {
            let hash = rest.trim().trim_matches('"');
            out.push((name.clone(), (hash != "null").then(|| hash.to_owned())));
        }
    }
    out
}

/// Sentry's `get_hashes`: non-null variant hashes, `system` last, without duplicates.
fn expected_hashes(variants: &[(String, Option<String>)]) -> Vec<String> {
    let mut ordered: Vec<&(String, Option<String>)> = variants.iter().collect();
    ordered.sort_by_key(|(name, _)| name == "system");
    let mut out: Vec<String> = Vec::new();
    for (_, hash) in ordered {
        if let Some(h) = hash
            && !out.contains(h)
        {
            out.push(h.clone());
        }
    }
    out
}

#[test]
fn sentrys_grouping_corpus() {
    let dir = corpus_dir();
    if !dir.join("inputs").is_dir() {
        assert!(!shared::testing::tools_required(), "Sentry's grouping corpus is missing at {dir:?}");
        eprintln!("SKIPPED Sentry's grouping corpus: {dir:?} not found");
        return;
    }
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(dir.join("inputs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    inputs.sort();
    assert_eq!(inputs.len(), 161, "the corpus has 161 inputs");

    // platform → (inputs, primary matches, hash-list matches, every-variant matches)
    let mut per_platform: BTreeMap<String, (usize, usize, usize, usize)> = BTreeMap::new();
    let mut misses = Vec::new();
    let received = Utc.timestamp_opt(1_717_243_200, 0).unwrap();
    for path in &inputs {
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        // Through the ingest parser, as events arrive (it must refuse none of these).
        let input = shared::ingest::parse::parse_event(&std::fs::read(path).unwrap()).unwrap();
        let snap_path = dir.join("expected").join(format!("{}.pysnap", name.replace('-', "_")));
        let snap = std::fs::read_to_string(&snap_path).unwrap_or_else(|e| panic!("{snap_path:?}: {e}"));
        let snapshot = snapshot_variants(&snap);
        let expected = expected_hashes(&snapshot);
        let platform = input.get("platform").and_then(Value::as_str).unwrap_or("(none)").to_owned();
        // Sentry's test appends `_grouping.enhancements` to the built-in rules as project rules.
        let project_rules =
            input.pointer("/_grouping/enhancements").and_then(Value::as_str).unwrap_or("").to_owned();
        let config = GroupingConfig::compile(&project_rules, "")
            .unwrap_or_else(|e| panic!("{name}: project rules: {e}"));
        let (ours, our_variants) = match normalize_event(input, &NormalizeConfig::new(42, received)) {
            Ok(mut event) => {
                let h = calculate_hashes_with(&mut event, &config);
                (h.hashes, h.variants)
            }
            Err(e) => {
                misses.push(format!("{name}: not normalized: {e}"));
                (Vec::new(), Vec::new())
            }
        };
        let entry = per_platform.entry(platform).or_default();
        entry.0 += 1;
        if !ours.is_empty() && ours.first() == expected.first() {
            entry.1 += 1;
        } else if let Some((_, why)) = DECIDED.iter().find(|(n, _)| *n == name) {
            misses.push(format!("{name}: differs by decision: {why}"));
        } else {
            misses.push(format!("{name}: primary {:?} != Sentry's {:?}", ours.first(), expected.first()));
        }
        if ours == expected {
            entry.2 += 1;
        }
        // Every variant of the snapshot (`app`, `system`, `default`, `fallback`,
        // `custom-fingerprint`, null hashes included) against ours, by name.
        let mut theirs: Vec<(String, Option<String>)> = snapshot;
        let mut mine: Vec<(String, Option<String>)> =
            our_variants.into_iter().map(|(n, h)| (n.replace('_', "-"), h)).collect();
        theirs.sort();
        mine.sort();
        if theirs == mine {
            entry.3 += 1;
        } else if !DECIDED.iter().any(|(n, _)| *n == name) {
            misses.push(format!("{name}: variants {mine:?} != Sentry's {theirs:?}"));
        }
    }
    let total: (usize, usize, usize, usize) =
        per_platform.values().fold((0, 0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2, a.3 + b.3));
    use std::io::Write;
    let mut err = std::io::stderr();
    let _ = writeln!(
        err,
        "Sentry's grouping corpus (newstyle:2023-01-11): primary hash / hash list / every variant, per platform"
    );
    for (platform, (n, primary, full, variants)) in &per_platform {
        let _ = writeln!(
            err,
            "  {platform:<12} {primary:>3}/{n:<3} primary   {full:>3}/{n:<3} all hashes   {variants:>3}/{n:<3} every variant"
        );
    }
    let _ = writeln!(
        err,
        "  {:<12} {:>3}/{:<3} primary   {:>3}/{:<3} all hashes   {:>3}/{:<3} every variant",
        "total", total.1, total.0, total.2, total.0, total.3, total.0
    );
    for m in &misses {
        let _ = writeln!(err, "  miss {m}");
    }
    assert!(
        total.3 >= VARIANT_FLOOR,
        "{} of {} inputs match Sentry's in every variant (floor {VARIANT_FLOOR})",
        total.3,
        total.0
    );
    assert!(
        total.1 >= PRIMARY_FLOOR,
        "{} of {} primary hashes match Sentry's (floor {PRIMARY_FLOOR})",
        total.1,
        total.0
    );
}
