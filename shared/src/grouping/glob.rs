//! Sentry's glob patterns (`sentry.utils.glob.glob_match`), translated to `regex` once per rule.

use memchr::memmem::Finder;
use regex::Regex;

/// How a pattern is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Glob {
    /// Case-sensitive; `*` is any run of characters.
    Exact,
    /// Case-insensitive; `*` is any run of characters.
    IgnoreCase,
    /// Path-like (`doublestar`, `path_normalize`, case-insensitive): `\` reads as `/`, `*` and `?`
    /// stay within one path segment, `**` crosses segments.
    Path,
}

/// A compiled pattern. Most rule patterns are a literal with wildcards only at its ends
/// (`function:runMicrotasks`, `module:@babel/**`, `path:**/node_modules/**`); those compare as
/// strings (equality, prefix, suffix, substring), the rest through a regular expression — the same
/// answers, at a fraction of the cost on the save path, where every frame meets every rule.
#[derive(Clone, Debug)]
pub(crate) struct GlobMatcher {
    /// Boxed: with its searcher a literal takes ~400 bytes, most rule matchers far fewer.
    fast: Option<Box<Literal>>,
    regex: Regex,
    /// ASCII case-insensitive literal comparison (path-like patterns).
    fold: bool,
}

#[derive(Clone, Debug)]
struct Literal {
    text: String,
    /// A searcher for `text` inside a value, built once: `str::contains` sets its searcher up again
    /// on every call, which cost more than the search on frame-sized values.
    finder: Finder<'static>,
    any_before: bool,
    any_after: bool,
    /// `**/*text*/**`: `text` inside a directory name (a segment with a `/` on both sides).
    in_directory: bool,
}

impl GlobMatcher {
    pub(crate) fn is_match(&self, value: &str) -> bool {
        match &self.fast {
            Some(lit) if !self.fold || value.is_ascii() => lit.matches(value, self.fold),
            _ => self.regex.is_match(value),
        }
    }

    /// Sentry's `path_like_match` on a value already lower-cased (path-like values of frames, made
    /// once per frame): the value matches, or `/` + value does when it does not begin with `/`. A
    /// literal compares byte for byte, each byte once, without building `/` + value.
    pub(crate) fn is_match_path(&self, value: &str) -> bool {
        let slash = !value.starts_with('/');
        match &self.fast {
            Some(lit) => lit.matches_path(value, slash),
            None => self.regex.is_match(value) || (slash && self.regex.is_match(&format!("/{value}"))),
        }
    }

    /// The bytes a value this pattern matches can begin with, when the pattern fixes them: a literal
    /// without a leading wildcard. `None` when it does not (a value of any beginning, or an empty one,
    /// may match). A value that is empty, or begins with no byte of the set, does not match — as
    /// [`GlobMatcher::is_match_path`] answers for a path-like pattern (whose slash form also admits
    /// the byte after a leading `/`), and as [`GlobMatcher::is_match`] answers for the others. Not
    /// for `is_match` on a path-like pattern: that one folds case (`F` would match `foo`).
    pub(crate) fn first_bytes(&self) -> Option<ByteSet> {
        let lit = self.fast.as_deref()?;
        if lit.any_before || lit.in_directory {
            return None;
        }
        let text = lit.text.as_bytes();
        let mut set = ByteSet::default();
        set.insert(*text.first()?);
        if self.fold && text[0] == b'/' {
            // `/` + value matches when the value begins with what follows the `/`. A lone `/` fixes
            // no first byte: `/` matches the empty value, `/**` any value.
            set.insert(*text.get(1)?);
        }
        Some(set)
    }
}

/// A set of bytes (256 bits): the first bytes a pattern admits, or those a stack trace's values begin
/// with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ByteSet([u64; 4]);

impl ByteSet {
    pub(crate) fn insert(&mut self, byte: u8) {
        self.0[usize::from(byte >> 6)] |= 1 << (byte & 63);
    }

    pub(crate) fn contains(&self, byte: u8) -> bool {
        self.0[usize::from(byte >> 6)] & (1 << (byte & 63)) != 0
    }

    pub(crate) fn intersects(&self, other: &ByteSet) -> bool {
        self.0.iter().zip(&other.0).any(|(a, b)| a & b != 0)
    }
}

impl Literal {
    fn new(text: &str, any_before: bool, any_after: bool, in_directory: bool) -> Self {
        let finder = Finder::new(text.as_bytes()).into_owned();
        Self { text: text.to_owned(), finder, any_before, any_after, in_directory }
    }

    /// `matches(value) || (slash && matches("/" + value))`, case-sensitive. Whatever the wildcards,
    /// `/` + value matches only where the value itself does, or where the text is `/` followed by
    /// what the value is (no wildcard after) or begins with (one after): that is all the slash form
    /// adds.
    fn matches_path(&self, value: &str, slash: bool) -> bool {
        if self.in_directory {
            // The added leading `/` can open the first segment (a superset of the value's matches).
            return self.in_directory_match(value, slash);
        }
        self.matches(value, false)
            || (slash
                && self
                    .text
                    .strip_prefix('/')
                    .is_some_and(|rest| if self.any_after { value.starts_with(rest) } else { value == rest }))
    }

    /// `**/*text*/**` on `value` (or on `/` + `value` when `slash_before`).
    fn in_directory_match(&self, value: &str, slash_before: bool) -> bool {
        let v = value.as_bytes();
        self.finder
            .find_iter(v)
            .any(|i| (slash_before || v[..i].contains(&b'/')) && v[i + self.text.len()..].contains(&b'/'))
    }

    /// `text` occurs in `value`.
    fn contains(&self, value: &str) -> bool {
        self.finder.find(value.as_bytes()).is_some()
    }

    fn matches(&self, value: &str, fold: bool) -> bool {
        if self.in_directory {
            // (`fold` callers pass ASCII values only; the text is lower-cased.)
            return if fold {
                self.in_directory_match(&value.to_ascii_lowercase(), false)
            } else {
                self.in_directory_match(value, false)
            };
        }
        let (v, t) = (value.as_bytes(), self.text.as_bytes());
        let eq = |a: &[u8], b: &[u8]| if fold { a.eq_ignore_ascii_case(b) } else { a == b };
        match (self.any_before, self.any_after) {
            (false, false) => eq(v, t),
            (false, true) => v.len() >= t.len() && eq(&v[..t.len()], t),
            (true, false) => v.len() >= t.len() && eq(&v[v.len() - t.len()..], t),
            (true, true) if !fold => self.contains(value),
            (true, true) => t.is_empty() || v.windows(t.len()).any(|w| eq(w, t)),
        }
    }
}

/// The literal form of `pattern`, when it is one: no `?`, class or escape, and `*` only at the ends
/// (for paths, only `**` there, since a single `*` stops at `/`).
fn literal(pattern: &str, mode: Glob) -> Option<Literal> {
    if mode == Glob::IgnoreCase || !pattern.is_ascii() {
        return None;
    }
    if mode == Glob::Path
        && let Some(text) = pattern.strip_prefix("**/*").and_then(|p| p.strip_suffix("*/**"))
        && !text.is_empty()
        && !text.contains(['*', '?', '[', '\\', '/'])
    {
        return Some(Literal::new(text, true, true, true));
    }
    let (mut body, mut any_before, mut any_after) = (pattern, false, false);
    if mode == Glob::Path {
        if let Some(rest) = body.strip_prefix("**").filter(|r| !r.starts_with('*')) {
            (body, any_before) = (rest, true);
        }
        if let Some(rest) = body.strip_suffix("**").filter(|r| !r.ends_with('*')) {
            (body, any_after) = (rest, true);
        }
    } else {
        let trimmed = body.trim_start_matches('*');
        any_before = trimmed.len() != body.len();
        body = trimmed;
        let trimmed = body.trim_end_matches('*');
        any_after = trimmed.len() != body.len();
        body = trimmed;
    }
    if body.contains(['*', '?', '[', '\\']) {
        return None;
    }
    Some(Literal::new(body, any_before, any_after, false))
}

/// Compiles a pattern (see [`glob_regex`]), with the literal fast path when it applies.
pub(crate) fn glob(pattern: &str, mode: Glob) -> Result<GlobMatcher, String> {
    let regex = glob_regex(pattern, mode)?;
    let normalized =
        if mode == Glob::Path { pattern.to_lowercase().replace('\\', "/") } else { pattern.to_owned() };
    Ok(GlobMatcher { fast: literal(&normalized, mode).map(Box::new), regex, fold: mode == Glob::Path })
}

/// `*` any run (within one path segment for [`Glob::Path`], where `**` crosses segments), `?` one
/// character, `[…]`/`[!…]` a class, `\x` the literal `x` (not for paths, whose backslashes are
/// separators); anchored at both ends.
fn glob_regex(pattern: &str, mode: Glob) -> Result<Regex, String> {
    let path_like = mode == Glob::Path;
    let pattern = if path_like { pattern.to_lowercase().replace('\\', "/") } else { pattern.to_owned() };
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::from(if mode == Glob::Exact { "(?s)^" } else { "(?si)^" });
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '\\' if i < chars.len() => {
                out.push_str(&regex::escape(&chars[i].to_string()));
                i += 1;
            }
            '*' if path_like && chars.get(i) == Some(&'*') => {
                out.push_str(".*");
                i += 1;
            }
            '*' if path_like => out.push_str("[^/]*"),
            '*' => out.push_str(".*"),
            '?' if path_like => out.push_str("[^/]"),
            '?' => out.push('.'),
            '[' => {
                let mut j = i;
                if chars.get(j) == Some(&'!') {
                    j += 1;
                }
                if chars.get(j) == Some(&']') {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j >= chars.len() {
                    out.push_str(r"\[");
                } else {
                    let mut class: Vec<char> = chars[i..j].to_vec();
                    i = j + 1;
                    out.push('[');
                    if class.first() == Some(&'!') {
                        out.push('^');
                        class.remove(0);
                    } else if class.first() == Some(&'^') {
                        out.push_str(r"\^");
                        class.remove(0);
                    }
                    for ch in class {
                        if matches!(ch, '[' | ']' | '\\' | '&' | '~') {
                            out.push('\\');
                        }
                        out.push(ch);
                    }
                    out.push(']');
                }
            }
            other => out.push_str(&regex::escape(&other.to_string())),
        }
    }
    out.push('$');
    Regex::new(&out).map_err(|e| format!("invalid pattern `{pattern}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each literal pattern against the regex it stands for (directly and in the path-like form), and
    /// its first bytes against every value it matches.
    #[test]
    fn literal_patterns_answer_as_their_regex() {
        let values = [
            "",
            "a",
            "f",
            "fo",
            "oo",
            "foo",
            "Foo",
            "foobar",
            "barfoo",
            "xfoo",
            "xfooy",
            "/",
            "//",
            "/foo",
            "/foobar",
            "/Foo/bar",
            "usr",
            "/usr/lib/x",
            "/usr/lib",
            "usr/lib",
            "usr/lib/x",
            "a/node_modules/b",
            "node_modules/b",
            "node_modules/x",
            "/A/NODE_MODULES/b",
            "a/x-newrelic-y/b",
            "newrelic/b",
            "a/newrelic",
            "/newrelic/",
            "a/NewRelic/b",
            "lib/x",
            "/lib",
            "runMicrotasks",
            "@babel/core",
            "x@babel/",
            "package:sentry/x",
            "ümlaut/foo",
        ];
        let mut keyed = Vec::new();
        for (pattern, mode) in [
            ("foo", Glob::Exact),
            ("Foo", Glob::Exact),
            ("foo*", Glob::Exact),
            ("*foo", Glob::Exact),
            ("**foo**", Glob::Exact),
            ("*", Glob::Exact),
            ("f?o", Glob::Exact),
            ("runMicrotasks", Glob::Exact),
            ("@babel/**", Glob::Exact),
            ("/usr/lib/**", Glob::Path),
            ("usr/lib/**", Glob::Path),
            ("**/node_modules/**", Glob::Path),
            ("**", Glob::Path),
            ("/", Glob::Path),
            ("/**", Glob::Path),
            ("/USR/**", Glob::Path),
            ("/USR/lib/**", Glob::Path),
            ("/usr/lib", Glob::Path),
            ("**/b", Glob::Path),
            ("/node_modules/**", Glob::Path),
            ("**/*newrelic*/**", Glob::Path),
            ("**/*lib*/**", Glob::Path),
            ("*/lib", Glob::Path),
            ("package:sentry/**", Glob::Path),
            ("foo", Glob::IgnoreCase),
        ] {
            let m = glob(pattern, mode).unwrap();
            let first_bytes = m.first_bytes();
            if first_bytes.is_some() {
                keyed.push(pattern);
            }
            for v in values {
                assert_eq!(m.is_match(v), m.regex.is_match(v), "{pattern} {mode:?} on {v:?}");
                if mode == Glob::Path && v == v.to_lowercase() {
                    let path_like =
                        m.regex.is_match(v) || (!v.starts_with('/') && m.regex.is_match(&format!("/{v}")));
                    assert_eq!(m.is_match_path(v), path_like, "{pattern} path-like on {v:?}");
                }
                if let Some(set) = first_bytes {
                    // A path pattern is compared with `is_match_path` on lower-cased values.
                    let v = if mode == Glob::Path { v.to_lowercase() } else { v.to_owned() };
                    let matched = if mode == Glob::Path { m.is_match_path(&v) } else { m.is_match(&v) };
                    let admitted = v.as_bytes().first().is_some_and(|b| set.contains(*b));
                    assert!(
                        admitted || !matched,
                        "{pattern} matches {v:?}, whose first byte is not in its set"
                    );
                }
            }
        }
        assert_eq!(
            keyed,
            [
                "foo",
                "Foo",
                "foo*",
                "runMicrotasks",
                "@babel/**",
                "/usr/lib/**",
                "usr/lib/**",
                "/USR/**",
                "/USR/lib/**",
                "/usr/lib",
                "/node_modules/**",
                "package:sentry/**"
            ],
            "the literals without a leading wildcard (and more than a `/`) have a set"
        );
        let set = glob("/usr/**", Glob::Path).unwrap().first_bytes().unwrap();
        assert!(set.contains(b'/') && set.contains(b'u') && !set.contains(b'x'));
        assert!(glob("**/node_modules/**", Glob::Path).unwrap().fast.is_some());
        assert!(glob("*/lib", Glob::Path).unwrap().fast.is_none(), "a single * stops at /");
    }

    #[test]
    fn globs_translate_as_sentrys_glob_match() {
        let m = |p: &str, mode, v: &str| glob(p, mode).unwrap().is_match(v);
        assert!(m("foo*", Glob::Exact, "foo/bar"));
        assert!(!m("foo*", Glob::Exact, "Foo"));
        assert!(m("foo*", Glob::IgnoreCase, "FOO/bar"));
        assert!(!m("/usr/*", Glob::Path, "/usr/lib/x"));
        assert!(m("/usr/**", Glob::Path, "/usr/lib/x"));
        assert!(m("**.app/contents/**", Glob::Path, "/applications/foo.app/contents/macos/foo"));
        assert!(m("?:/windows/**", Glob::Path, "d:/windows/system32/kernel32.dll"));
        assert!(m("?[[]KSCrash*", Glob::Exact, "-[KSCrashFoo bar]"));
        assert!(m(r"*::\{dtor\}", Glob::Exact, "Foo::{dtor}"));
        assert!(m("[!a]b", Glob::Exact, "cb") && !m("[!a]b", Glob::Exact, "ab"));
        assert!(m("a[", Glob::Exact, "a["));
    }
}
