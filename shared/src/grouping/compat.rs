//! Python-semantics helpers shared by the grouping modules.
//!
//! Sentry's save step is Python; several of its results depend on Python string and number
//! semantics that differ from Rust's standard library (`str.splitlines()` knows more line breaks than
//! [`str::lines`], `str.isspace()` includes `\x1c`–`\x1f`, `repr(float)` switches to exponent notation
//! at other bounds than `ryu`, `urllib.parse.urlsplit` never fails). This module owns those
//! emulations and the small `serde_json::Value` accessors (`get_path`-style, Python truthiness) the
//! other modules use. Written by hand because no crate offers Python's exact semantics.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use serde_json::Value;

use crate::tree::Fields;

/// `str.isspace()` for one character (Unicode `White_Space` plus the `\x1c`–`\x1f` separators).
pub(crate) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{1c}'..='\u{1f}')
}

/// `str.strip()` without arguments.
pub(crate) fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// `str.split()` without arguments: runs of whitespace separate, empty parts are dropped.
pub(crate) fn py_split_whitespace(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_py_space).filter(|part| !part.is_empty())
}

/// `" ".join(s.split())`: collapses every whitespace run into one space and trims.
pub(crate) fn collapse_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for part in py_split_whitespace(s) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(part);
    }
    out
}

fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r'
            | '\u{0b}'
            | '\u{0c}'
            | '\u{1c}'
            | '\u{1d}'
            | '\u{1e}'
            | '\u{85}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

/// `str.splitlines()` (without `keepends`): every Unicode line boundary Python knows, `\r\n` counted
/// once, no trailing empty line.
pub(crate) fn py_splitlines(s: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if is_line_break(c) {
            lines.push(&s[start..i]);
            let mut end = i + c.len_utf8();
            if c == '\r'
                && let Some(&(j, '\n')) = chars.peek()
            {
                chars.next();
                end = j + 1;
            }
            start = end;
        }
    }
    if start < s.len() {
        lines.push(&s[start..]);
    }
    lines
}

/// First line as `value.splitlines()[0]` (callers only use it on non-empty strings).
pub(crate) fn first_line(s: &str) -> &str {
    py_splitlines(s).first().copied().unwrap_or("")
}

/// Sentry's `truncatechars(value, chars)` (`sentry.utils.strings`), which is also what
/// `sentry.utils.safe.trim` does to strings: longer values keep `chars - 3` characters plus `...`.
pub(crate) fn truncatechars(value: &str, chars: usize) -> Cow<'_, str> {
    if value.chars().count() <= chars {
        return Cow::Borrowed(value);
    }
    let keep = chars.saturating_sub(3);
    let cut = value.char_indices().nth(keep).map_or(value.len(), |(i, _)| i);
    let mut out = String::with_capacity(cut + 3);
    out.push_str(&value[..cut]);
    out.push_str("...");
    Cow::Owned(out)
}

/// `repr(float)` (also what `str()` and `json.dumps` print for a float): shortest round-trip digits,
/// fixed notation for decimal exponents in `-4..16` (with `.0` for integral values), otherwise
/// `d.ddde+XX`. Non-finite values print as Python does (`nan`, `inf`, `-inf`). When two shortest
/// digit strings are exactly equally close (a tie, e.g. `805813012001386.25`), Rust rounds the last
/// digit up where Python rounds half to even; such values are vanishingly rare in timestamps.
pub(crate) fn python_float_repr(value: f64) -> String {
    let mut out = String::with_capacity(24);
    // Writing into a `String` cannot fail.
    let _ = write_python_float(&mut out, value);
    out
}

/// [`python_float_repr`] written into `out`, without allocating.
pub(crate) fn write_python_float<W: fmt::Write>(out: &mut W, value: f64) -> fmt::Result {
    if value.is_nan() {
        return out.write_str("nan");
    }
    if value.is_infinite() {
        return out.write_str(if value > 0.0 { "inf" } else { "-inf" });
    }
    // `{:e}` prints the shortest round-trip digits as `d.ddde[-]x` (at most 17 digits).
    let mut sci = StackStr::default();
    write!(sci, "{value:e}")?;
    let sci = sci.as_str();
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa),
    };
    let mut digits = StackStr::default();
    for part in mantissa.split('.') {
        digits.write_str(part)?;
    }
    let digits = digits.as_str();
    if negative {
        out.write_char('-')?;
    }
    if (-4..16).contains(&exponent) {
        let point = exponent + 1; // digits before the decimal point
        if point <= 0 {
            out.write_str("0.")?;
            for _ in 0..(-point) {
                out.write_char('0')?;
            }
            out.write_str(digits)
        } else {
            let point = usize::try_from(point).unwrap_or(0);
            if digits.len() <= point {
                out.write_str(digits)?;
                for _ in digits.len()..point {
                    out.write_char('0')?;
                }
                out.write_str(".0")
            } else {
                out.write_str(&digits[..point])?;
                out.write_char('.')?;
                out.write_str(&digits[point..])
            }
        }
    } else {
        out.write_str(&digits[..1])?;
        if digits.len() > 1 {
            out.write_char('.')?;
            out.write_str(&digits[1..])?;
        }
        let sign = if exponent < 0 { '-' } else { '+' };
        write!(out, "e{sign}{:02}", exponent.abs())
    }
}

/// A short string on the stack (a float's digits); writing past its 32 bytes is an error.
#[derive(Default)]
struct StackStr {
    bytes: [u8; 32],
    len: usize,
}

impl StackStr {
    fn as_str(&self) -> &str {
        // Only whole `&str`s are written in.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl fmt::Write for StackStr {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// `str(value)` for a JSON scalar as Python would print the decoded value (`None`, `True`, ints,
/// float repr); arrays and objects fall back to compact JSON.
pub(crate) fn py_str(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(s) => Cow::Borrowed(s.as_str()),
        Value::Null => Cow::Borrowed("None"),
        Value::Bool(true) => Cow::Borrowed("True"),
        Value::Bool(false) => Cow::Borrowed("False"),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Cow::Owned(i.to_string()),
            (None, Some(u), _) => Cow::Owned(u.to_string()),
            (None, None, Some(f)) => Cow::Owned(python_float_repr(f)),
            _ => Cow::Owned(n.to_string()),
        },
        other => Cow::Owned(other.to_string()),
    }
}

/// Python truthiness of a decoded JSON value.
pub(crate) fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// One step of Sentry's `get_path`: object key, or array index (negative counts from the end).
fn step<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => map.field(key),
        Value::Array(items) => {
            let index: i64 = key.parse().ok()?;
            let len = i64::try_from(items.len()).ok()?;
            let index = if index < 0 { len + index } else { index };
            usize::try_from(index).ok().and_then(|i| items.get(i))
        }
        _ => None,
    }
}

/// `get_path(data, *path)`: `None` for missing keys, wrong types and JSON `null`.
pub(crate) fn get_path<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut current = value;
    for key in path {
        current = step(current, key)?;
    }
    (!current.is_null()).then_some(current)
}

/// The string at `path`, if it is one.
pub(crate) fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    get_path(value, path).and_then(Value::as_str)
}

/// The string at `path` when it is a non-empty string (Python `x or ...` on a string field).
pub(crate) fn truthy_str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    str_at(value, path).filter(|s| !s.is_empty())
}

/// `get_path(data, *path, filter=True)` for a list: the non-null items (empty when missing).
pub(crate) fn list_at<'a>(value: &'a Value, path: &[&str]) -> impl Iterator<Item = &'a Value> {
    get_path(value, path).and_then(Value::as_array).into_iter().flatten().filter(|item| !item.is_null())
}

/// Result of [`urlsplit`]: Python's `urllib.parse.urlsplit` fields.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct SplitUrl<'a> {
    pub scheme: Cow<'a, str>,
    pub netloc: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub fragment: &'a str,
}

/// `urllib.parse.urlsplit` without its `ValueError`s (Sentry's span strategy documents a "best effort"
/// result for invalid URLs such as an unclosed `[`).
pub(crate) fn urlsplit(url: &str) -> SplitUrl<'_> {
    let url = url.trim_start_matches(|c: char| c <= ' ');
    let mut rest = url;
    let mut scheme = Cow::Borrowed("");
    if let Some(i) = url.find(':') {
        let candidate = &url[..i];
        let valid = i > 0
            && candidate.starts_with(|c: char| c.is_ascii_alphabetic())
            && candidate.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if valid {
            scheme = if candidate.bytes().any(|b| b.is_ascii_uppercase()) {
                Cow::Owned(candidate.to_ascii_lowercase())
            } else {
                Cow::Borrowed(candidate)
            };
            rest = &url[i + 1..];
        }
    }
    let mut netloc = "";
    if let Some(after) = rest.strip_prefix("//") {
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        netloc = &after[..end];
        rest = &after[end..];
    }
    let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    SplitUrl { scheme, netloc, path, query, fragment }
}

/// Schemes `urlunsplit` writes with `//` (Python's `urllib.parse.uses_netloc`).
const USES_NETLOC: &[&str] = &[
    "", "ftp", "http", "gopher", "nntp", "telnet", "imap", "wais", "file", "mms", "https", "shttp", "snews",
    "prospero", "rtsp", "rtspu", "rsync", "svn", "svn+ssh", "sftp", "nfs", "git", "git+ssh", "ws", "wss",
];

/// `urlunsplit((scheme, netloc, "", None, None))`.
pub(crate) fn urlunsplit_scheme_netloc(scheme: &str, netloc: &str) -> String {
    let mut url = String::new();
    if !netloc.is_empty() || (!scheme.is_empty() && USES_NETLOC.contains(&scheme)) {
        url.push_str("//");
        url.push_str(netloc);
    }
    if !scheme.is_empty() {
        url = format!("{scheme}:{url}");
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitlines_matches_python() {
        assert_eq!(py_splitlines(""), Vec::<&str>::new());
        assert_eq!(py_splitlines("\n"), vec![""]);
        assert_eq!(py_splitlines("a\r\nb\rc\nd\u{2028}e\x0bf\n"), vec!["a", "b", "c", "d", "e", "f"]);
        assert_eq!(py_splitlines("a\n\nb"), vec!["a", "", "b"]);
    }

    #[test]
    fn strip_and_split_match_python() {
        assert_eq!(py_strip("\x1c a b \u{3000}"), "a b");
        assert_eq!(collapse_whitespace("  if  x:\t\treturn  "), "if x: return");
    }

    #[test]
    fn truncatechars_appends_three_dots() {
        assert_eq!(truncatechars("abcdef", 6), "abcdef");
        assert_eq!(truncatechars("abcdefg", 6), "abc...");
        assert_eq!(truncatechars("ääääääää", 5), "ää...");
    }

    #[test]
    fn float_repr_matches_python() {
        for (value, expected) in [
            (1717243200.0, "1717243200.0"),
            (1795677132.808546, "1795677132.808546"),
            (0.5, "0.5"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (0.0, "0.0"),
            (-1.0, "-1.0"),
            (-0.0, "-0.0"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (5e-324, "5e-324"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
        ] {
            assert_eq!(python_float_repr(value), expected, "{value}");
        }
    }

    #[test]
    fn urlsplit_matches_python() {
        let u = urlsplit("https://sentry.io/api/0/projects/?all=1#x");
        assert_eq!(
            (u.scheme.as_ref(), u.netloc, u.path, u.query, u.fragment),
            ("https", "sentry.io", "/api/0/projects/", "all=1", "x")
        );
        let u = urlsplit("https://[this-is-not-a-valid-url?query");
        assert_eq!((u.netloc, u.path, u.query), ("[this-is-not-a-valid-url", "", "query"));
        let u = urlsplit("data");
        assert_eq!((u.scheme.as_ref(), u.path), ("", "data"));
        assert_eq!(urlunsplit_scheme_netloc("data", ""), "data:");
        assert_eq!(urlunsplit_scheme_netloc("file", ""), "file://");
    }

    #[test]
    fn get_path_supports_negative_indexes_and_null() {
        let v = serde_json::json!({"a": {"b": [1, null, {"c": "x"}]}});
        assert_eq!(str_at(&v, &["a", "b", "-1", "c"]), Some("x"));
        assert_eq!(get_path(&v, &["a", "b", "1"]), None);
        assert_eq!(list_at(&v, &["a", "b"]).count(), 2);
    }
}
