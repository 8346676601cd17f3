//! Function-name trimming for grouping: a port of Sentry's `sentry/stacktraces/functions.py`
//! (`trim_function_name`, `trim_native_function_name`, `trim_csharp_function_name`).
//!
//! Native symbol names carry return types, argument lists, template arguments, `const` trailers,
//! compiler-specific lambda and anonymous-namespace spellings, Rust hashes and glibc versions; Sentry
//! groups by the bare function name left after removing them, so `int foo<int>(char const*) const`
//! and `foo<long>(int)` fall into one group. C# (Unity) names lose their signature.
//!
//! Written by hand (no crate does Sentry's trimming); the Python works on code points and keeps its
//! quirks (unbalanced brackets drop what follows, Python-style negative indexing when a Swift arrow
//! is the first token), and so does this port, because grouping must give Sentry's hashes.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

use super::frame::{FrameFields, truthy};

/// Sentry's `get_behavior_family_for_platform`: `native`, `javascript` or `other`.
pub fn behavior_family(platform: Option<&str>) -> &'static str {
    match platform {
        Some("objc" | "cocoa" | "swift" | "native" | "c") => "native",
        Some("javascript" | "node") => "javascript",
        _ => "other",
    }
}

/// `get_behavior_family_for_platform(platform) == "native"`.
pub fn is_native_platform(platform: Option<&str>) -> bool {
    behavior_family(platform) == "native"
}

/// Sentry's `get_function_name_for_frame` (what rules match a frame's `function` against): the stored
/// name when a raw one was recorded (it is trimmed already), else the trimmed name; `<unknown>` when
/// the frame has none. `platform` is the event's (a frame's own wins).
pub(crate) fn function_name_for_frame<'a>(frame: &FrameFields<'a>, platform: Option<&str>) -> Cow<'a, str> {
    let frame_platform = truthy(frame.platform).or(platform);
    let name: Cow<'a, str> = match (truthy(frame.raw_function), truthy(frame.function)) {
        (Some(_), function) => Cow::Borrowed(function.unwrap_or("")),
        (None, Some(function)) => match trim_function_name(function, frame_platform) {
            trimmed if trimmed == function => Cow::Borrowed(function),
            trimmed => Cow::Owned(trimmed),
        },
        (None, None) => Cow::Borrowed(""),
    };
    if name.is_empty() { Cow::Borrowed("<unknown>") } else { name }
}

/// `trim_function_name(function, platform)`: the name grouping uses for `function`.
pub fn trim_function_name(function: &str, platform: Option<&str>) -> String {
    if platform == Some("csharp") {
        return function.split(" (").next().unwrap_or(function).to_owned();
    }
    if is_native_platform(platform) {
        return trim_native_function_name(function, platform);
    }
    function.to_owned()
}

fn regex(pattern: &str) -> Option<Regex> {
    Regex::new(pattern).ok()
}

static CPP_TRAILER: LazyLock<Option<Regex>> = LazyLock::new(|| regex(r"(\bconst\b|&)$"));
static RUST_BLANKET: LazyLock<Option<Regex>> = LazyLock::new(|| regex(r"^([A-Z] as )"));
static LAMBDA: LazyLock<Option<Regex>> =
    LazyLock::new(|| regex(r"(?:\{lambda\(.*?\)#\d+\})|(?:\blambda_[a-f0-9]{32}\b)|(?:\$_\d+\b)"));
static ANON_NAMESPACE: LazyLock<Option<Regex>> = LazyLock::new(|| regex(r"\?A0x[a-f0-9]{8}::"));
static RUST_HASH: LazyLock<Option<Regex>> = LazyLock::new(|| regex(r"::h[a-z0-9]{16}$"));
static GNU_VERSION: LazyLock<Option<Regex>> = LazyLock::new(|| regex(r"@@?GLIBC_([0-9.]+)$"));
static WINDECL_HASH: LazyLock<Option<Regex>> = LazyLock::new(|| regex(r"^@?(.*?)@[0-9]+$"));

/// Whether each built-in pattern of this module compiled (see [`super::builtin_patterns`]).
pub(super) fn builtin_patterns() -> [(&'static str, bool); 7] {
    [
        ("functions::CPP_TRAILER", CPP_TRAILER.is_some()),
        ("functions::RUST_BLANKET", RUST_BLANKET.is_some()),
        ("functions::LAMBDA", LAMBDA.is_some()),
        ("functions::ANON_NAMESPACE", ANON_NAMESPACE.is_some()),
        ("functions::RUST_HASH", RUST_HASH.is_some()),
        ("functions::GNU_VERSION", GNU_VERSION.is_some()),
        ("functions::WINDECL_HASH", WINDECL_HASH.is_some()),
    ]
}

const ANON_NAMESPACE_MARK: &str = "〔anonymousnamespace〕";

/// `replace_enclosed_string`: replaces each outermost `start … end` span with what `replacement`
/// gives for its inside and its start offset (in code points). Unbalanced ends behave as in Python.
fn replace_enclosed_string(
    s: &str,
    start: char,
    end: char,
    replacement: &dyn Fn(&str, usize) -> String,
) -> String {
    if !s.contains(start) {
        return s.to_owned();
    }
    let chars: Vec<char> = s.chars().collect();
    let mut depth: i64 = 0;
    let mut out = String::with_capacity(s.len());
    let mut pair_start = 0usize;
    for (idx, &c) in chars.iter().enumerate() {
        if c == start {
            if depth == 0 {
                pair_start = idx;
            }
            depth += 1;
        } else if c == end {
            depth -= 1;
            if depth == 0 {
                let inner: String = chars[pair_start + 1..idx].iter().collect();
                out.push_str(&replacement(&inner, pair_start));
            }
        } else if depth == 0 {
            out.push(c);
        }
    }
    out
}

fn closing(c: char) -> Option<char> {
    match c {
        '(' => Some(')'),
        '{' => Some('}'),
        '[' => Some(']'),
        '<' => Some('>'),
        _ => None,
    }
}

/// `split_func_tokens`: splits on whitespace outside of brackets.
fn split_func_tokens(s: &str) -> Vec<String> {
    if !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || "({<[".contains(c)) {
        return vec![s.to_owned()];
    }
    let chars: Vec<char> = s.chars().collect();
    let mut tokens: Vec<String> = Vec::new();
    let mut buf: Vec<String> = Vec::new();
    let mut stack: Vec<char> = Vec::new();
    let mut end = 0usize;
    for (idx, &c) in chars.iter().enumerate() {
        if let Some(close) = closing(c) {
            stack.push(close);
        } else if stack.last() == Some(&c) {
            stack.pop();
            if stack.is_empty() {
                buf.push(chars[end..=idx].iter().collect());
                end = idx + 1;
            }
        } else if stack.is_empty() {
            if c.is_whitespace() {
                if !buf.is_empty() {
                    tokens.push(buf.concat());
                }
                buf.clear();
            } else {
                buf.push(chars[end..=idx].iter().collect());
            }
            end = idx + 1;
        }
    }
    if !buf.is_empty() {
        tokens.push(buf.concat());
    }
    tokens
}

/// Python's `seq[i]` with negative indexes counting from the end.
fn py_index(tokens: &[String], i: i64) -> Option<&String> {
    let len = i64::try_from(tokens.len()).ok()?;
    let i = if i < 0 { i + len } else { i };
    usize::try_from(i).ok().and_then(|i| tokens.get(i))
}

fn process_generics(value: &str, start: usize) -> String {
    let lambda_at_start = LAMBDA.as_ref().and_then(|re| re.find(value)).is_some_and(|m| m.start() == 0);
    if value == "lambda" || lambda_at_start {
        return format!("<{value}>");
    }
    if start > 0 {
        return "<T>".to_owned();
    }
    let value = match RUST_BLANKET.as_ref() {
        Some(re) => re.replace(value, "").into_owned(),
        None => value.to_owned(),
    };
    let value = replace_enclosed_string(&value, '<', '>', &process_generics);
    value.split(" as ").next().unwrap_or("").to_owned()
}

/// `trim_native_function_name(function, platform)` with lambda normalization on.
pub(crate) fn trim_native_function_name(function: &str, platform: Option<&str>) -> String {
    if function == "<redacted>" || function == "<unknown>" {
        return function.to_owned();
    }
    let original = function;
    let function = function.trim();
    // Objective-C selectors stay as they are.
    if function.starts_with('[') || function.starts_with("+[") || function.starts_with("-[") {
        return function.to_owned();
    }

    // `[clone .foo]` annotations of cloned/split functions go away.
    let mut function = replace_enclosed_string(function, '[', ']', &|value, _| {
        if value.starts_with("clone .") { String::new() } else { format!("[{value}]") }
    })
    .trim_end()
    .to_owned();

    // C++ trailers (`const`, `&`).
    if let Some(re) = CPP_TRAILER.as_ref() {
        while let Some(m) = re.find(&function) {
            function = function[..m.start()].trim_end().to_owned();
        }
    }

    // Operators that would upset bracket balancing get placeholder characters.
    let mut function = function
        .replace("operator<<", "operator⟨⟨")
        .replace("operator<", "operator⟨")
        .replace("operator()", "operator◯")
        .replace("operator->", "operator⟿")
        .replace(" -> ", " ⟿ ")
        .replace("`anonymous namespace'", ANON_NAMESPACE_MARK);

    // Compiler-specific lambda names become `lambda`.
    if (function.contains("lambda") || function.contains("$_"))
        && let Some(re) = LAMBDA.as_ref()
    {
        function = re.replace_all(&function, "lambda").into_owned();
    }
    // MSVC's hashed anonymous namespaces of inline functions.
    if function.contains("?A0x")
        && let Some(re) = ANON_NAMESPACE.as_ref()
    {
        function = re.replace_all(&function, format!("{ANON_NAMESPACE_MARK}::").as_str()).into_owned();
    }

    // Argument lists go away.
    let function = replace_enclosed_string(&function, '(', ')', &|value, _| {
        let value = value.trim();
        if value == "anonymous namespace" || value == "operator" {
            format!("({value})")
        } else {
            String::new()
        }
    });

    // Generic arguments become `<T>` (Rust's `<Foo as Bar>::baz` keeps the type).
    let function = replace_enclosed_string(&function, '<', '>', &process_generics);

    let is_thunk = function.contains("thunk for ");
    let mut tokens = split_func_tokens(&function);

    // MSVC puts a space between a generic operator's name and its generics.
    if tokens.len() > 1 && tokens.last().is_some_and(|t| t == "<T>") {
        tokens.pop();
        if let Some(last) = tokens.last_mut() {
            last.push_str(" <T>");
        }
    }

    let func_token: Option<String> = if function.contains("initialization expression of")
        && let Some(last_of) = tokens.iter().rposition(|t| t == "of")
    {
        // Swift initializer expressions.
        let mut token = tokens.get(last_of + 1).cloned().unwrap_or_default();
        if token == "static" {
            token = tokens.get(last_of + 2).cloned().unwrap_or_default();
        }
        if let Some(stripped) = token.strip_prefix(':') {
            token = stripped.to_owned();
        }
        Some(format!("initializer expression of {token}"))
    } else if tokens.is_empty() {
        None
    } else {
        // The token left of the last `->` (Swift's return marker), else the last token.
        match tokens.iter().rposition(|t| t == "⟿").and_then(|i| i64::try_from(i).ok()) {
            Some(arrow) => {
                let mut token = py_index(&tokens, arrow - 1).cloned();
                if token.as_deref() == Some("throws") {
                    token = py_index(&tokens, arrow - 2).cloned();
                }
                token.or_else(|| tokens.last().cloned())
            }
            None => tokens.last().cloned(),
        }
    };

    let mut function = match func_token.filter(|t| !t.is_empty()) {
        Some(token) => {
            let token = if token.starts_with('@') && matches!(platform, Some("cocoa" | "swift")) {
                // A Swift attribute instead of a name: an anonymous function.
                format!("{}closure", if is_thunk { "thunk for " } else { "" })
            } else if token != "closure" && tokens.iter().any(|t| t == "closure") {
                format!("closure in {token}")
            } else {
                token
            };
            token
                .replace('⟨', "<")
                .replace('◯', "()")
                .replace('⟿', "->")
                .replace(ANON_NAMESPACE_MARK, "`anonymous namespace'")
        }
        None => original.to_owned(),
    };

    if function.contains("::h")
        && let Some(re) = RUST_HASH.as_ref()
    {
        function = re.replace(&function, "").into_owned();
    }
    if function.contains("@GLIBC_")
        && let Some(re) = GNU_VERSION.as_ref()
    {
        function = re.replace(&function, "").into_owned();
    }
    if function.contains('@')
        && let Some(re) = WINDECL_HASH.as_ref()
    {
        function = re.replace(&function, "${1}").into_owned();
    }
    function
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sentry's `tests/sentry/stacktraces/test_functions.py` (`test_trim_native_function_name`,
    /// `test_trim_cocoa_function_name`, `test_trim_function_name_cocoa`): inputs and expected names
    /// from Sentry's test. Left out: its IL2CPP `_m<hash>` cases, added to Sentry after the 2024
    /// trimming this module ports (the grouping corpus's era).
    #[test]
    fn native_names_are_trimmed_as_sentrys_tests_expect() {
        let native = [
            ("function", "function"),
            ("namespace::Class::function", "namespace::Class::function"),
            (" const ", " const "),
            (" namespace::const ", "namespace::"),
            ("namespace::function::h9de5fbebc1652d47", "namespace::function"),
            ("?A0xc3a0617d::crash", "`anonymous namespace'::crash"),
            (
                "Scaleform::GFx::AS3::IMEManager::DispatchEvent(char const *,char const *,char const *)",
                "Scaleform::GFx::AS3::IMEManager::DispatchEvent",
            ),
            (
                "static unsigned int Scaleform::GFx::AS3::IMEManager::DispatchEvent(char const *,char const *,char const *) const",
                "Scaleform::GFx::AS3::IMEManager::DispatchEvent",
            ),
            (
                "<actix_web::pipeline::Pipeline<S, H> as actix_web::server::handler::HttpHandlerTask>::poll_io",
                "actix_web::pipeline::Pipeline<T>::poll_io",
            ),
            ("+[FLFoo barBaz]", "+[FLFoo barBaz]"),
            ("-[FLFoo barBaz]", "-[FLFoo barBaz]"),
            (
                "<tokio_current_thread::scheduler::Scheduled<'a, U>>::tick",
                "tokio_current_thread::scheduler::Scheduled<T>::tick",
            ),
            (
                "tokio::runtime::current_thread::runtime::Runtime::enter::{{closure}}::{{closure}}",
                "tokio::runtime::current_thread::runtime::Runtime::enter::{{closure}}::{{closure}}",
            ),
            (
                "<std::panic::AssertUnwindSafe<F> as core::ops::function::FnOnce<()>>::call_once",
                "std::panic::AssertUnwindSafe<T>::call_once",
            ),
            (
                "static <NoType> std::panicking::begin_panic<str*>(struct str*, struct (str*, u32, u32) *)",
                "std::panicking::begin_panic<T>",
            ),
            (
                "(anonymous namespace)::StupidFunction<std::vector<std::string>>(int)",
                "(anonymous namespace)::StupidFunction<T>",
            ),
            ("static unsigned int _foo_function (uint32_t,uint32_t) const", "_foo_function"),
            (
                "v8::internal::operator<<(std::__1::basic_ostream<char, std::__1::char_traits<char> >&, v8::internal::MaybeObjectBrief const&)",
                "v8::internal::operator<<",
            ),
            (
                "unsigned int mynamespace::MyClass::operator()(std::__1::basic_ostream<char, std::__1::char_traits<char> >&, v8::internal::MaybeObjectBrief const&)",
                "mynamespace::MyClass::operator()",
            ),
            (
                "std::basic_ostream<char, std::char_traits<char> >& std::operator<< <std::char_traits<char> >(std::basic_ostream<char, std::char_traits<char> >&, char)",
                "std::operator<< <T>",
            ),
            (
                "<actix::contextimpl::ContextFut<A, C> as futures::future::Future>::poll::h9de5fbebc1652d47",
                "actix::contextimpl::ContextFut<T>::poll",
            ),
            ("<T as core::convert::Into<U>>::into", "core::convert::Into<T>::into"),
            ("ThreadStartWhatever@16", "ThreadStartWhatever"),
            ("@ThreadStartWhatever@16", "ThreadStartWhatever"),
            ("@objc ViewController.causeCrash(Any) -> ()", "ViewController.causeCrash"),
            ("ViewController.causeCrash(Any) -> ()", "ViewController.causeCrash"),
            ("@objc ViewController.causeCrash(Any, Foo -> Bar) -> SomeObject", "ViewController.causeCrash"),
            ("main::$_0", "main::lambda"),
            ("main::$_42", "main::lambda"),
            ("main::{lambda(int)#1}", "main::lambda"),
            ("main::{lambda()#42}", "main::lambda"),
            ("lambda_7156c3ceaa11256748687ab67e3ef4cd", "lambda"),
            ("<lambda_7156c3ceaa11256748687ab67e3ef4cd>::operator()", "<lambda>::operator()"),
            ("trigger_crash_a(int*) [clone .constprop.0]", "trigger_crash_a"),
            ("ShellCorona::screenInvariants() const [clone .cold]", "ShellCorona::screenInvariants"),
            (
                "std::__1::unique_ptr<X,std::default_delete<X> >::operator->",
                "std::__1::unique_ptr<T>::operator->",
            ),
            ("pthread_cond_timedwait@@GLIBC_2.3.2", "pthread_cond_timedwait"),
            ("glob64@GLIBC_2.2", "glob64"),
            (
                "static Namespace.ThrowingFunction() throws -> Namespace.ExitValue?",
                "Namespace.ThrowingFunction",
            ),
            (
                "closure #1 @Swift.MainActor () -> () in static Foo.CallFunction(args: [Swift.String]) -> ()",
                "closure in Foo.CallFunction",
            ),
            ("closure #1 () -> () in Bar.PostTask(() -> ()) -> ()", "closure in Bar.PostTask"),
            (
                "variable initialization expression of static Namespace.Class.var : Namespace.Parent",
                "initializer expression of Namespace.Class.var",
            ),
            ("(anonymous namespace)::foo(int)", "(anonymous namespace)::foo"),
            ("foo::bar::foo(int)", "foo::bar::foo"),
        ];
        for (input, expected) in native {
            assert_eq!(trim_function_name(input, Some("native")), expected, "{input}");
        }
        let cocoa = [
            ("thunk for @escaping @callee_guaranteed () -> ()", "thunk for closure"),
            (
                "specialized thunk for @callee_guaranteed (@guaranteed [T1]) -> (@owned [T2])",
                "thunk for closure",
            ),
            (
                "partial apply for thunk for @callee_guaranteed () -> (@error @owned Error)",
                "thunk for closure",
            ),
            ("closure #1 (T1) in foo(bar: T2)", "closure in foo"),
            ("partial apply for closure #1 () in closure #2 (T1) in f1(_: T2, arg: T3)", "closure in f1"),
        ];
        for (input, expected) in cocoa {
            assert_eq!(trim_function_name(input, Some("cocoa")), expected, "{input}");
        }
        assert_eq!(trim_function_name("+[foo:(bar)]", Some("objc")), "+[foo:(bar)]");
    }

    #[test]
    fn enclosed_strings_and_tokens_as_sentrys_tests_expect() {
        assert_eq!(
            replace_enclosed_string("foo::bar<Blah, Blah<Blah, Blah>>", '<', '>', &|_, _| "<T>".into()),
            "foo::bar<T>"
        );
        assert_eq!(
            replace_enclosed_string(
                "(anonymous namespace)::foo::bar(unsigned int, int)",
                '(',
                ')',
                &|v, start| {
                    if start == 0 {
                        assert_eq!(v, "anonymous namespace");
                        "(new value)".into()
                    } else {
                        "()".into()
                    }
                }
            ),
            "(new value)::foo::bar()"
        );
        let tokens = |s: &str| split_func_tokens(s);
        assert_eq!(tokens("foo bar baz"), ["foo", "bar", "baz"]);
        assert_eq!(tokens("foo (enclosed bar) baz"), ["foo", "(enclosed bar)", "baz"]);
        assert_eq!(tokens("foo(enclosed bar)baz {moar stuff}"), ["foo(enclosed bar)baz", "{moar stuff}"]);
        assert_eq!(tokens("foo bar [baz (blah)]"), ["foo", "bar", "[baz (blah)]"]);
    }

    #[test]
    fn csharp_loses_its_signature_and_others_are_kept() {
        assert_eq!(
            trim_function_name("UnityEngine.Events.InvokableCall.Invoke ()", Some("csharp")),
            "UnityEngine.Events.InvokableCall.Invoke"
        );
        assert_eq!(trim_function_name("foo<int>(bar)", Some("python")), "foo<int>(bar)");
    }
}
