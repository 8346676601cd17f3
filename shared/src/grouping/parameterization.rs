//! Message normalization for grouping (Sentry's `normalize_message_for_grouping`).
//!
//! Used by the message strategy and for exception values: keep the first two non-empty lines (with
//! `...` appended when anything was cut) and replace parameter-like tokens with placeholders, so
//! that "Took 12 ms" and "Took 13 ms" group together while "Dogs are great!" and "Dogs are really
//! great!" do not.
//!
//! The pattern is the single alternation from Sentry's `grouping/strategies/message.py`
//! (2023/24 revision): `<email>`, `<url>`, `<ip>`, `<uuid>`, `<sha1>`, `<md5>`, `<date>`, `<hex>`,
//! `<float>`, `<int>`, `=<quoted_str>` (only the value half of `key='value'` or `key="value"`) and
//! `=<bool>` (`key=True`, `key=false`, …), as at the corpus commit (2024-08). Sentry's newest
//! `parameterization.py` adds more placeholders (hostname, duration, traceparent, kitchen times …);
//! those are deliberately not ported, so messages containing them can hash differently
//! from current Sentry. Alternatives are tried in the same order (leftmost-first, as Python's `re`),
//! and the regex is compiled once.

use std::sync::LazyLock;

use regex::{Captures, Regex};

use super::compat::{py_splitlines, py_strip};

const IPV4_OCTET: &str = r"(25[0-5]|(2[0-4]|1{0,1}[0-9]){0,1}[0-9])";

/// The named alternatives, in Sentry's order; the replacement is `<name>` (`=<quoted_str>` for the
/// last one, which keeps its `=`).
const GROUP_NAMES: [&str; 12] =
    ["email", "url", "ip", "uuid", "sha1", "md5", "date", "hex", "float", "int", "quoted_str", "bool"];

fn pattern() -> String {
    let ipv4 = format!(r"({IPV4_OCTET}\.){{3,3}}{IPV4_OCTET}");
    let ipv6 = [
        r"([0-9a-fA-F]{1,4}:){7,7}[0-9a-fA-F]{1,4}",
        r"([0-9a-fA-F]{1,4}:){1,7}:",
        r"([0-9a-fA-F]{1,4}:){1,6}:[0-9a-fA-F]{1,4}",
        r"([0-9a-fA-F]{1,4}:){1,5}(:[0-9a-fA-F]{1,4}){1,2}",
        r"([0-9a-fA-F]{1,4}:){1,4}(:[0-9a-fA-F]{1,4}){1,3}",
        r"([0-9a-fA-F]{1,4}:){1,3}(:[0-9a-fA-F]{1,4}){1,4}",
        r"([0-9a-fA-F]{1,4}:){1,2}(:[0-9a-fA-F]{1,4}){1,5}",
        r"[0-9a-fA-F]{1,4}:((:[0-9a-fA-F]{1,4}){1,6})",
        r":((:[0-9a-fA-F]{1,4}){1,7}|:)",
        r"fe80:(:[0-9a-fA-F]{0,4}){0,4}%[0-9a-zA-Z]{1,}",
    ]
    .join("|");
    let ip = format!(
        r"(?P<ip>({ipv6}|::(ffff(:0{{1,4}}){{0,1}}:){{0,1}}{ipv4}|([0-9a-fA-F]{{1,4}}:){{1,4}}:{ipv4}\b)|(\b{ipv4}\b))"
    );
    let date = [
        r"(\d{4}-[01]\d-[0-3]\dT[0-2]\d:[0-5]\d:[0-5]\d\.\d+([+-][0-2]\d:[0-5]\d|Z))",
        r"(\d{4}-[01]\d-[0-3]\dT[0-2]\d:[0-5]\d:[0-5]\d([+-][0-2]\d:[0-5]\d|Z))",
        r"(\d{4}-[01]\d-[0-3]\dT[0-2]\d:[0-5]\d([+-][0-2]\d:[0-5]\d|Z))",
    ]
    .join("|");
    let date = format!(
        r"(?P<date>({date})|(\b(?:(Sun|Mon|Tue|Wed|Thu|Fri|Sat)\s+)?(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s+([\d]{{1,2}})\s+([\d]{{2}}:[\d]{{2}}:[\d]{{2}})\s+[\d]{{4}})|(\b(?:(Sun|Mon|Tue|Wed|Thu|Fri|Sat),\s+)?(0[1-9]|[1-2]?[\d]|3[01])\s+(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s+(19[\d]{{2}}|[2-9][\d]{{3}})\s+(2[0-3]|[0-1][\d]):([0-5][\d])(?::(60|[0-5][\d]))?\s+([-\+][\d]{{2}}[0-5][\d]|(?:UT|GMT|(?:E|C|M|P)(?:ST|DT)|[A-IK-Z])))|(datetime.datetime\(.*?\)))"
    );
    [
        r"(?P<email>[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*)".to_owned(),
        r"(?P<url>\b(wss?|https?|ftp)://[^\s/$.?#].[^\s]*)".to_owned(),
        ip,
        r"(?P<uuid>\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b)"
            .to_owned(),
        r"(?P<sha1>\b[0-9a-fA-F]{40}\b)".to_owned(),
        r"(?P<md5>\b[0-9a-fA-F]{32}\b)".to_owned(),
        date,
        r"(?P<hex>\b0[xX][0-9a-fA-F]+\b)".to_owned(),
        r"(?P<float>-\d+\.\d+\b|\b\d+\.\d+\b)".to_owned(),
        r"(?P<int>-\d+\b|\b\d+\b)".to_owned(),
        // The value half of `key='value'` / `key="value"` and `key=True` (Sentry keeps the `=`).
        r#"(?P<quoted_str>='([^']+)'|="([^"]+)")"#.to_owned(),
        r"(?P<bool>=True|=true|=False|=false)".to_owned(),
    ]
    .join("|")
}

/// Compiled once; `None` only if the constant pattern failed to compile (a unit test guards that).
static PARAMETERIZATION_RE: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(&pattern()).ok());

/// Whether the built-in pattern of this module compiled (see [`super::builtin_patterns`]).
pub(super) fn builtin_patterns() -> [(&'static str, bool); 1] {
    [("parameterization::PARAMETERIZATION_RE", PARAMETERIZATION_RE.is_some())]
}

fn placeholder(caps: &Captures<'_>) -> &'static str {
    for name in GROUP_NAMES {
        if caps.name(name).is_some() {
            return match name {
                "email" => "<email>",
                "url" => "<url>",
                "ip" => "<ip>",
                "uuid" => "<uuid>",
                "sha1" => "<sha1>",
                "md5" => "<md5>",
                "date" => "<date>",
                "hex" => "<hex>",
                "float" => "<float>",
                "int" => "<int>",
                "bool" => "=<bool>",
                _ => "=<quoted_str>",
            };
        }
    }
    ""
}

/// Sentry's `normalize_message_for_grouping`: first two non-empty lines (plus `...` when the text was
/// cut) with event-specific values replaced by placeholders.
pub fn normalize_message_for_grouping(message: &str) -> String {
    let mut trimmed = String::with_capacity(message.len());
    for (i, line) in
        py_splitlines(message).into_iter().filter(|l| !py_strip(l).is_empty()).take(2).enumerate()
    {
        if i > 0 {
            trimmed.push('\n');
        }
        trimmed.push_str(line);
    }
    if trimmed != message {
        trimmed.push_str("...");
    }
    match PARAMETERIZATION_RE.as_ref() {
        Some(re) => re.replace_all(&trimmed, |caps: &Captures<'_>| placeholder(caps)).into_owned(),
        None => trimmed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_compiles() {
        assert!(PARAMETERIZATION_RE.is_some(), "{:?}", Regex::new(&pattern()).err());
    }

    /// Rows of Sentry's `test_parameterization.py::standard_cases` that the message.py pattern covers,
    /// checked bare and with prefix/suffix as Sentry's test does.
    #[test]
    fn test_default_parameterization() {
        let cases = [
            ("maisey@dogsaregreat.com", "<email>"),
            ("maisey.thedog@dogsaregreat.com", "<email>"),
            ("maisey+thedog@dogsaregreat.com", "<email>"),
            ("http://dogsaregreat.com", "<url>"),
            ("http://dogs.squirrelchasers.net", "<url>"),
            ("http://dogsaregreat.com/adopt/dont/shop.js?command=sit&trick=spin", "<url>"),
            ("http://dogsaregreat.com/adopt/dont/shop.html#shelters", "<url>"),
            ("http://localhost:8000", "<url>"),
            ("http://11.21.12.31:12", "<url>"),
            ("11.21.12.31", "<ip>"),
            ("::1", "<ip>"),
            ("1121:0c03:1231:130d:0000:16da:0908:da07", "<ip>"),
            ("7c1811ed-e98f-4c9c-a9f9-58c757ff494f", "<uuid>"),
            ("bea691f2-2e25-4bec-6838-e0c44b03d60a/7c1811ed-e98f-4c9c-a9f9-58c757ff494f", "<uuid>/<uuid>"),
            ("5fc35719b9cf96ec602dbc748ff31c587a46961d", "<sha1>"),
            ("0751007cd28df267e8e051b51f918c60", "<md5>"),
            ("2006-01-02T15:04:05Z", "<date>"),
            ("2006-01-02T15:04:05.999999999Z", "<date>"),
            ("Mon, 02 Jan 2006 15:04:05 MST", "<date>"),
            ("Mon, 02 Jan 2006 15:04:05 -0700", "<date>"),
            ("datetime.datetime(2025, 6, 24, 18, 33, 0, 447640)", "<date>"),
            ("0x9af8c3be", "<hex>"),
            ("0xDEADBEEF", "<hex>"),
            ("0.23", "<float>"),
            ("23", "<int>"),
            ("-23", "<int>"),
            ("0:17502", "<int>:<int>"),
            ("value:-17502", "value:<int>"),
            ("{\"msg\" => \"(#239323)", "{\"msg\" => \"(#<int>)"),
            // The 2023/24 pattern has no look-behind, so a dash before digits is part of the number and
            // the first matching IPv6 alternative wins (Sentry's newest parameterizer differs here).
            ("415-908", "<int><int>"),
            ("::ffff:192.168.1.1", "<ip>.<float>.<int>"),
            ("b='1'", "b=<quoted_str>"),
            ("b = '1'", "b = '<int>'"),
            ("key1='Some_str123'", "key1=<quoted_str>"),
            ("key5=\"double-quoted\"", "key5=<quoted_str>"),
            ("a='x-y z'", "a=<quoted_str>"),
            ("flag=False", "flag=<bool>"),
            ("flag=true", "flag=<bool>"),
            ("is True", "is True"),
            ("A quick brown fox", "A quick brown fox"),
            ("0.0.0.0:80", "<ip>:<int>"),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize_message_for_grouping(input), expected, "{input}");
            assert_eq!(
                normalize_message_for_grouping(&format!("prefix {input}")),
                format!("prefix {expected}")
            );
            assert_eq!(
                normalize_message_for_grouping(&format!("{input} suffix")),
                format!("{expected} suffix")
            );
        }
    }

    #[test]
    fn keeps_two_non_empty_lines() {
        assert_eq!(normalize_message_for_grouping("one\n\n  \ntwo\nthree"), "one\ntwo...");
        assert_eq!(normalize_message_for_grouping("one\ntwo"), "one\ntwo");
        assert_eq!(normalize_message_for_grouping("foo"), "foo");
        assert_eq!(normalize_message_for_grouping(""), "");
    }

    #[test]
    fn numbers_are_replaced() {
        assert_eq!(normalize_message_for_grouping("Took 12 ms for job 4"), "Took <int> ms for job <int>");
        assert_eq!(
            normalize_message_for_grouping("Took 12 ms for job 4"),
            normalize_message_for_grouping("Took 99 ms for job 123456")
        );
    }
}
