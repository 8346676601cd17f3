//! Rule parsing and application. Matching cases are Sentry's `tests/sentry/grouping/test_enhancer.py`
//! (frames, platforms and expected outcomes taken from Sentry's test).

use serde_json::{Value, json};

use super::*;

#[test]
fn the_builtin_rules_parse() {
    let parsed = Enhancements::parse(NEWSTYLE_2023_01_11).expect("built-in rules parse");
    assert_eq!(parsed.len(), Enhancements::builtin().len());
    assert!(parsed.len() > 250, "{} rules", parsed.len());
}

/// Whether the single rule in `text` matches any of `frames` (`get_matching_frame_actions`).
fn matches(text: &str, frames: Value, platform: &str, exception: Option<Value>) -> bool {
    let rules = Enhancements::parse(text).expect("rule parses");
    let [rule] = rules.rules.as_slice() else { panic!("one rule expected") };
    let exception = exception.as_ref().map(ExceptionData::of).unwrap_or_default();
    let frames: Vec<MatchFrame> = frames
        .as_array()
        .unwrap()
        .iter()
        .map(|f| MatchFrame::of(&FrameFields::of(f), Some(platform)))
        .collect();
    rule.matches_exception(&exception) && (0..frames.len()).any(|i| rule.matches_frame(&frames, i))
}

#[test]
fn path_matching() {
    let rule = "path:**/test.js              +app";
    assert!(matches(
        rule,
        json!([{"abs_path": "http://example.com/foo/test.js", "filename": "/foo/test.js"}]),
        "javascript",
        None
    ));
    assert!(!matches(
        rule,
        json!([{"abs_path": "http://example.com/foo/bar.js", "filename": "/foo/bar.js"}]),
        "javascript",
        None
    ));
    assert!(matches(rule, json!([{"abs_path": "http://example.com/foo/test.js"}]), "javascript", None));
    assert!(!matches(rule, json!([{"filename": "/foo/bar.js"}]), "javascript", None));
    assert!(matches(rule, json!([{"abs_path": "http://example.com/foo/TEST.js"}]), "javascript", None));
}

#[test]
fn family_matching() {
    let js = "family:javascript path:**/test.js              +app";
    let native = "family:native function:std::*                  -app";
    assert!(matches(js, json!([{"abs_path": "http://example.com/foo/TEST.js"}]), "javascript", None));
    assert!(!matches(js, json!([{"abs_path": "http://example.com/foo/TEST.js"}]), "native", None));
    assert!(!matches(
        native,
        json!([{"abs_path": "http://example.com/foo/TEST.js", "function": "std::whatever"}]),
        "javascript",
        None
    ));
    assert!(matches(native, json!([{"function": "std::whatever"}]), "native", None));
}

#[test]
fn app_matching() {
    let yes = "family:javascript path:**/test.js app:yes       +app";
    let no = "family:native path:**/test.c app:no            -group";
    assert!(matches(
        yes,
        json!([{"abs_path": "http://example.com/foo/TEST.js", "in_app": true}]),
        "javascript",
        None
    ));
    assert!(!matches(
        yes,
        json!([{"abs_path": "http://example.com/foo/TEST.js", "in_app": false}]),
        "javascript",
        None
    ));
    assert!(matches(no, json!([{"abs_path": "/test.c", "in_app": false}]), "native", None));
    assert!(!matches(no, json!([{"abs_path": "/test.c", "in_app": true}]), "native", None));
}

#[test]
fn package_matching() {
    let bundled = "family:native package:/var/**/Frameworks/**                  -app";
    let macos = "family:native package:**/*.app/Contents/**                   +app";
    let linux = "family:native package:linux-gate.so                          -app";
    let windows = "family:native package:?:/Windows/**                          -app";
    assert!(matches(
        bundled,
        json!([{"package": "/var/containers/MyApp/Frameworks/libsomething"}]),
        "native",
        None
    ));
    assert!(matches(
        macos,
        json!([{"package": "/Applications/MyStuff.app/Contents/MacOS/MyStuff"}]),
        "native",
        None
    ));
    assert!(matches(linux, json!([{"package": "linux-gate.so"}]), "native", None));
    assert!(matches(windows, json!([{"package": "D:\\Windows\\System32\\kernel32.dll"}]), "native", None));
    assert!(matches(windows, json!([{"package": "d:\\windows\\System32\\kernel32.dll"}]), "native", None));
    assert!(!matches(
        bundled,
        json!([{"package": "/var2/containers/MyApp/Frameworks/libsomething"}]),
        "native",
        None
    ));
    assert!(!matches(bundled, json!([{"package": "/var/containers/MyApp/MacOs/MyApp"}]), "native", None));
    assert!(!matches(bundled, json!([{"package": "/usr/lib/linux-gate.so"}]), "native", None));
}

#[test]
fn exception_type_value_and_mechanism_matching() {
    let frames = || json!([{"function": "foo"}]);
    let zero = "family:other error.type:ZeroDivisionError -app";
    let error = "family:other error.type:*Error -app";
    assert!(!matches(zero, frames(), "python", None));
    assert!(!matches(error, frames(), "python", None));
    assert!(matches(zero, frames(), "python", Some(json!({"type": "ZeroDivisionError"}))));
    assert!(!matches(zero, frames(), "native", Some(json!({"type": "FooError"}))));
    assert!(matches(error, frames(), "python", Some(json!({"type": "ZeroDivisionError"}))));
    assert!(matches(error, frames(), "python", Some(json!({"type": "FooError"}))));

    let foo = "family:other error.value:foo -app";
    let failed = "family:other error.value:Failed* -app";
    assert!(!matches(foo, frames(), "python", None));
    assert!(matches(foo, frames(), "python", Some(json!({"value": "foo"}))));
    assert!(!matches(foo, frames(), "native", Some(json!({"value": "Failed to download"}))));
    assert!(!matches(failed, frames(), "python", Some(json!({"value": "foo"}))));
    assert!(matches(failed, frames(), "python", Some(json!({"value": "Failed to download"}))));

    let mechanism = "family:other error.mechanism:NSError -app";
    assert!(!matches(mechanism, frames(), "python", None));
    assert!(matches(mechanism, frames(), "python", Some(json!({"mechanism": {"type": "NSError"}}))));
    assert!(!matches(mechanism, frames(), "native", Some(json!({"mechanism": {"type": "NSError"}}))));
    assert!(!matches(mechanism, frames(), "python", Some(json!({"mechanism": {"type": "fooerror"}}))));
}

#[test]
fn invalid_rules_name_their_line() {
    // Sentry's `test_parsing_errors`.
    assert!(Enhancements::parse("invalid.message:foo -> bar").is_err());
    let err = Enhancements::parse("# comment\nfunction:foo -group\n\nfunction:bar").unwrap_err();
    assert_eq!(err.line, 4);
    assert!(err.to_string().contains("line 4"), "{err}");
    for bad in [
        "module:foo +frobnicate",
        "unknown:foo -app",
        "app:maybe -app",
        "function:\"unterminated -app",
        "[ function:a ] function:b -app",
    ] {
        assert!(Enhancements::parse(bad).is_err(), "{bad}");
    }
    // The grammar's spellings parse.
    for good in [
        "family:native,javascript stack.function:\"a b\" !app:yes v+app ^-group category=x",
        "[ category:throw ] | category:throw category=internals",
        "category:driver | [ category:driver ] category=internals",
        "[ !category:system ] | category:system | [ !category:system ] category=indirection",
        "family:native max-frames=3 min-frames = 2 invert-stacktrace=yes  # comment",
        "error.type:ValueError error.mechanism:generic stack.module:app.* +app",
    ] {
        assert!(Enhancements::parse(good).is_ok(), "{good}");
    }
}

fn apply(rules: &str, mut frames: Value, platform: &str) -> Value {
    let rules = Enhancements::parse(rules).unwrap();
    rules.apply_modifications(frames.as_array_mut().unwrap(), Some(platform), &ExceptionData::default());
    frames
}

#[test]
fn modifier_rules_set_in_app_and_category_and_record_the_original() {
    let frames = apply(
        "function:a +app\nfunction:b -app\nfunction:c category=throw\nfunction:d ^+app",
        json!([{"function": "a"}, {"function": "b", "in_app": true}, {"function": "c"}, {"function": "d", "in_app": false}, {"function": "e", "in_app": false}]),
        "python",
    );
    assert_eq!(frames[0]["in_app"], true);
    assert_eq!(frames[0]["data"]["orig_in_app"], -1);
    assert_eq!(frames[1]["in_app"], false);
    assert_eq!(frames[1]["data"]["orig_in_app"], 1);
    assert_eq!(frames[2]["data"]["category"], "throw");
    assert_eq!(frames[3]["in_app"], false, "`^` changes the frames after the match, not the match");
    assert_eq!(frames[4]["in_app"], true);
    assert_eq!(frames[4]["data"]["orig_in_app"], 0);
}

#[test]
fn a_rule_finds_every_match_before_it_changes_any_frame() {
    // Sentry's default `[ category:throw ] | category:throw category=internals`: with three throw
    // frames in a row, the second and the third (each called by a throw frame *before* the rule
    // ran) become internals.
    let frames = apply(
        "function:abort category=throw\n[ category:throw ] | category:throw category=internals",
        json!([{"function": "abort"}, {"function": "abort"}, {"function": "abort"}]),
        "native",
    );
    let categories: Vec<&str> =
        frames.as_array().unwrap().iter().map(|f| f["data"]["category"].as_str().unwrap()).collect();
    assert_eq!(categories, ["throw", "internals", "internals"]);
}

#[test]
fn keyed_rules_match_what_their_matchers_match() {
    // Each rule below is keyed by the first byte its literal admits: a category set earlier in the
    // same pass, a path that matches only as if absolute, a module beginning with the key's byte
    // and one beginning otherwise.
    let rules = "function:c category=throw\ncategory:throw +app\npath:/src/** +app\nmodule:java.* +app";
    for rule in Enhancements::parse(rules).unwrap().rules.iter().skip(1) {
        assert!(rule.key.is_some(), "{rule:?}");
    }
    let frames = apply(
        rules,
        json!([
            {"function": "c"},
            {"function": "x", "abs_path": "src/app.py"},
            {"function": "y", "module": "java.util"},
            {"function": "z", "module": "kotlin.java.x"},
            {"function": "w", "module": "javax.crypto"}
        ]),
        "java",
    );
    assert_eq!(frames[0]["in_app"], true, "category:throw sees the category the first rule set");
    assert_eq!(frames[1]["in_app"], true, "/src/** matches src/app.py as if absolute");
    assert_eq!(frames[2]["in_app"], true);
    assert_eq!(frames[3].get("in_app"), None, "a module beginning otherwise is not tried");
    assert_eq!(frames[4].get("in_app"), None, "begins with the key's byte, but java.* does not match it");
    // No frame begins with a byte the rule admits: the rule is skipped, nothing changes.
    let frames = apply("module:java.* +app", json!([{"function": "z", "module": "kotlin.x"}]), "java");
    assert_eq!(frames[0].get("in_app"), None);
}

fn contributions(rules: &str, frames: Value, start: &[bool]) -> (Vec<bool>, StacktraceRules) {
    let rules = Enhancements::parse(rules).unwrap();
    let frames: Vec<FrameFields> = frames.as_array().unwrap().iter().map(FrameFields::of).collect();
    let mut contributes = start.to_vec();
    let state = rules.update_contributions(
        &mut contributes,
        &FrameViews::of(&frames, Some("native")),
        &ExceptionData::default(),
    );
    (contributes, state)
}

#[test]
fn updater_rules_ignore_ranges_and_trim_to_max_frames() {
    let frames =
        json!([{"function": "main"}, {"function": "run"}, {"function": "handler"}, {"function": "crash"}]);
    let (c, _) = contributions("function:run v-group", frames.clone(), &[true; 4]);
    assert_eq!(c, [false, true, true, true], "`v` ignores the frames below (the callers)");
    let (c, _) = contributions("function:handler ^-group -group", frames.clone(), &[true; 4]);
    assert_eq!(c, [true, true, false, false], "`^` ignores the frames above (towards the crash)");
    let (c, _) = contributions("function:main +group", frames.clone(), &[false, true, true, true]);
    assert_eq!(c, [true; 4]);
    let (c, state) = contributions("family:native max-frames=2", frames.clone(), &[true; 4]);
    assert_eq!(c, [false, false, true, true], "the frames closest to the crash are kept");
    assert_eq!(state.max_frames, 2);
    let (_, state) = contributions("family:native min-frames=3", frames, &[true, false, false, true]);
    assert!(state.discards(2) && !state.discards(3) && !state.discards(0));
}

#[test]
fn project_rules_run_after_the_builtin_ones() {
    let rules = Enhancements::with_project_rules("family:native function:std::* +app").unwrap();
    assert_eq!(rules.len(), Enhancements::builtin().len() + 1);
    let mut frames = json!([{"function": "std::foo"}]);
    rules.apply_modifications(frames.as_array_mut().unwrap(), Some("native"), &ExceptionData::default());
    assert_eq!(frames[0]["in_app"], true, "the built-in `function:std::* -app` is overridden");
    let err = Enhancements::with_project_rules("function:ok +app\nfunction -app").unwrap_err();
    assert_eq!(err.line, 2);
}
