//! Sentry's glob patterns (`sentry.utils.glob.glob_match`), translated to `regex` once per rule.

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

/// `*` any run (within one path segment for [`Glob::Path`], where `**` crosses segments), `?` one
/// character, `[…]`/`[!…]` a class, `\x` the literal `x` (not for paths, whose backslashes are
/// separators); anchored at both ends.
pub(crate) fn glob(pattern: &str, mode: Glob) -> Result<Regex, String> {
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
