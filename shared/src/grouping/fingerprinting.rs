//! Server-side fingerprinting rules: a project's rules that replace an event's fingerprint (and
//! optionally its title) when they match — Sentry's `grouping/fingerprinting` (the 2024 grammar of the
//! `newstyle:2023-01-11` era), one rule per line:
//!
//! ```text
//! # database outages are one issue
//! error.type:DatabaseUnavailable -> system-down
//! logger:"my.logger" level:error -> {{ logger }}, {{ level }} title="Log error: {{ logger }}"
//! stack.function:"*flush*" app:yes -> flush-errors
//! tags.server_name:"web-*" message:"*timed out*" -> web-timeouts
//! ```
//!
//! Matchers (`!` negates; arguments quoted when they contain spaces): `error.type`/`type`,
//! `error.value`/`value`, `message` (also tested against exception values), `logger`, `level`,
//! `tags.NAME`, `stack.abs_path`/`path`, `stack.module`/`module`, `stack.function`/`function`,
//! `stack.package`/`package`, `app` (a frame's in-app flag), `family` (`native`, `javascript`,
//! `other`, `all`), `sdk` (the SDK's name), `release`. The matchers of one kind must hold for the same
//! thing — all frame matchers for one frame, all exception matchers for one exception — while
//! matchers of different kinds may be satisfied by different parts of the event. The first rule
//! that matches wins; its fingerprint (values, `{{ variables }}`, `{{ default }}`) replaces the
//! event's, and a `title="…"` attribute (with `{{ variables }}`) becomes the event's title.
//!
//! Matching is case-sensitive except `message`, `value`, `level` and the path-like `path`,
//! `package` and `release` (Sentry's `glob_match` flags per matcher). Parsed by hand after Sentry's
//! `parsimonious` grammar; Sentry's built-in rule bases (JavaScript chunk-load errors) are not part of
//! this port.

use serde_json::{Map, Value, json};

use super::compat::{get_path, list_at, str_at};
use super::cursor::Cursor;
use super::frame::{FrameFields, text};
use super::glob::{Glob, GlobMatcher, glob};
use super::hashing::{DEFAULT_FINGERPRINT_VARIABLE, is_default_fingerprint_var, resolve_variable};
use crate::tree::Fields;

/// A fingerprinting rule that does not parse: its 1-based line and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid fingerprinting rule on line {line}: {message}")]
pub struct FingerprintRuleError {
    pub line: usize,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Key {
    Type,
    Value,
    Message,
    Logger,
    Level,
    Path,
    Module,
    Function,
    Package,
    App,
    Family,
    Sdk,
    Release,
    Tag(String),
}

impl Key {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "error.type" | "type" => Key::Type,
            "error.value" | "value" => Key::Value,
            "message" => Key::Message,
            "logger" => Key::Logger,
            "level" => Key::Level,
            "stack.abs_path" | "path" => Key::Path,
            "stack.module" | "module" => Key::Module,
            "stack.function" | "function" => Key::Function,
            "stack.package" | "package" => Key::Package,
            "app" => Key::App,
            "family" => Key::Family,
            "sdk" => Key::Sdk,
            "release" => Key::Release,
            _ => Key::Tag(name.strip_prefix("tags.").filter(|t| !t.is_empty())?.to_owned()),
        })
    }

    /// The part of the event whose values the matcher reads (`match_type`).
    fn kind(&self) -> Kind {
        match self {
            Key::Message => Kind::TopLevel,
            Key::Logger | Key::Level => Kind::LogInfo,
            Key::Type | Key::Value => Kind::Exceptions,
            Key::Tag(_) => Kind::Tags,
            Key::Sdk => Kind::Sdk,
            Key::Family => Kind::Family,
            Key::Release => Kind::Release,
            Key::Path | Key::Module | Key::Function | Key::Package | Key::App => Kind::Frames,
        }
    }

    fn name(&self) -> String {
        match self {
            Key::Type => "type".into(),
            Key::Value => "value".into(),
            Key::Message => "message".into(),
            Key::Logger => "logger".into(),
            Key::Level => "level".into(),
            Key::Path => "path".into(),
            Key::Module => "module".into(),
            Key::Function => "function".into(),
            Key::Package => "package".into(),
            Key::App => "app".into(),
            Key::Family => "family".into(),
            Key::Sdk => "sdk".into(),
            Key::Release => "release".into(),
            Key::Tag(t) => format!("tags.{t}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    TopLevel,
    LogInfo,
    Exceptions,
    Frames,
    Tags,
    Sdk,
    Family,
    Release,
}

#[derive(Clone, Debug)]
enum Test {
    Glob(GlobMatcher),
    /// `family` / `sdk`: one of the comma-separated names, or `all`.
    OneOf(Vec<String>),
    /// `app`: `None` when the argument is not a boolean (never matches, as in Sentry).
    Bool(Option<bool>),
}

#[derive(Clone, Debug)]
struct Matcher {
    key: Key,
    negated: bool,
    pattern: String,
    test: Test,
}

/// One rule: matchers, the fingerprint it sets and its attributes.
#[derive(Clone, Debug)]
pub struct FingerprintRule {
    matchers: Vec<Matcher>,
    pub fingerprint: Vec<String>,
    pub title: Option<String>,
}

/// A project's rules, in order.
#[derive(Clone, Debug, Default)]
pub struct FingerprintingRules {
    rules: Vec<FingerprintRule>,
}

/// One part of the event as the matchers see it (Sentry's `EventDatastore` values).
#[derive(Default)]
struct Values<'a> {
    text: Vec<(&'static str, Option<String>)>,
    app: Option<bool>,
    tags: Option<&'a Value>,
}

impl Values<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.text.iter().find(|(k, _)| *k == key).and_then(|(_, v)| v.as_deref())
    }
}

fn bool_from_string(s: &str) -> Option<bool> {
    match s.to_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

impl Matcher {
    fn new(key: Key, negated: bool, pattern: String) -> Result<Self, String> {
        let test = match &key {
            Key::Family | Key::Sdk => Test::OneOf(pattern.split(',').map(str::to_owned).collect()),
            Key::App => Test::Bool(bool_from_string(&pattern)),
            Key::Path | Key::Package | Key::Release => Test::Glob(glob(&pattern, Glob::Path)?),
            Key::Message | Key::Level | Key::Value => Test::Glob(glob(&pattern, Glob::IgnoreCase)?),
            _ => Test::Glob(glob(&pattern, Glob::Exact)?),
        };
        Ok(Self { key, negated, pattern, test })
    }

    fn matches(&self, values: &Values) -> bool {
        self.negated ^ self.positive(values)
    }

    /// Sentry's `glob_match` for this matcher; path-like values also match as if absolute.
    fn glob_match(&self, value: Option<&str>) -> bool {
        let (Test::Glob(re), Some(value)) = (&self.test, value) else {
            return false;
        };
        if !matches!(self.key, Key::Path | Key::Package | Key::Release) {
            return re.is_match(value);
        }
        let normalized = value.replace('\\', "/");
        re.is_match(&normalized) || (!value.starts_with('/') && re.is_match(&format!("/{normalized}")))
    }

    fn positive(&self, values: &Values) -> bool {
        match &self.key {
            Key::Path => self.glob_match(values.get("abs_path")) || self.glob_match(values.get("filename")),
            Key::Message => self.glob_match(values.get("message")) || self.glob_match(values.get("value")),
            Key::App => match (&self.test, values.app) {
                (Test::Bool(Some(expected)), Some(app)) => app == *expected,
                _ => false,
            },
            Key::Family | Key::Sdk => {
                let value = values.get(if self.key == Key::Family { "family" } else { "sdk" });
                match (&self.test, value) {
                    (Test::OneOf(names), Some(v)) => names.iter().any(|n| n == "all" || n == v),
                    _ => false,
                }
            }
            Key::Tag(tag) => {
                let value = values.tags.and_then(|tags| {
                    tags.as_array()?.iter().filter_map(Value::as_array).find_map(|pair| {
                        match pair.as_slice() {
                            [Value::String(k), v] if k == tag => {
                                Some(v.as_str().map(|s| s.trim().to_owned()))
                            }
                            _ => None,
                        }
                    })
                });
                self.glob_match(value.flatten().as_deref())
            }
            key => self.glob_match(values.get(match key {
                Key::Type => "type",
                Key::Value => "value",
                Key::Logger => "logger",
                Key::Level => "level",
                Key::Module => "module",
                Key::Function => "function",
                Key::Package => "package",
                _ => "release",
            })),
        }
    }

    /// `FingerprintMatcher.text`.
    fn text(&self) -> String {
        format!("{}{}:\"{}\"", if self.negated { "!" } else { "" }, self.key.name(), self.pattern)
    }
}

impl FingerprintRule {
    /// Sentry's `FingerprintRule.text` (as stored in `_fingerprint_info.matched_rule`).
    pub fn text(&self) -> String {
        let matchers: Vec<String> = self.matchers.iter().map(Matcher::text).collect();
        let attributes = self.title.as_ref().map(|t| format!("title=\"{t}\"")).unwrap_or_default();
        format!("{} -> \"{}\" {}", matchers.join(" "), self.fingerprint.concat(), attributes)
            .trim_end()
            .to_owned()
    }

    /// `FingerprintRule.to_json()`.
    pub fn to_json(&self) -> Value {
        let mut attributes = Map::new();
        if let Some(title) = &self.title {
            attributes.insert("title".into(), json!(title));
        }
        json!({
            "text": self.text(),
            "matchers": self.matchers.iter().map(|m| {
                json!([format!("{}{}", if m.negated { "!" } else { "" }, m.key.name()), m.pattern])
            }).collect::<Vec<_>>(),
            "fingerprint": self.fingerprint,
            "attributes": attributes,
        })
    }

    fn matches(&self, event: &EventValues) -> bool {
        let mut kinds: Vec<Kind> = Vec::new();
        for kind in self.matchers.iter().map(|m| m.key.kind()) {
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        kinds.iter().all(|kind| {
            let matchers: Vec<&Matcher> = self.matchers.iter().filter(|m| m.key.kind() == *kind).collect();
            event.of(*kind).iter().any(|values| matchers.iter().all(|m| m.matches(values)))
        })
    }
}

/// The values of every kind, read from the event once.
struct EventValues<'a> {
    log_info: Vec<Values<'a>>,
    exceptions: Vec<Values<'a>>,
    frames: Vec<Values<'a>>,
    tags: Vec<Values<'a>>,
    sdk: Vec<Values<'a>>,
    family: Vec<Values<'a>>,
    release: Vec<Values<'a>>,
    top_level: Vec<Values<'a>>,
}

fn owned(v: Option<&str>) -> Option<String> {
    v.map(str::to_owned)
}

impl<'a> EventValues<'a> {
    fn read(event: &'a Value) -> Self {
        let truthy = |path: &[&str]| str_at(event, path).filter(|s| !s.is_empty());
        let platform = truthy(&["platform"]);
        let messages: Vec<Values> = truthy(&["logentry", "formatted"])
            .map(|m| Values { text: vec![("message", Some(m.trim().to_owned()))], ..Default::default() })
            .into_iter()
            .collect();
        let mut log = Vec::new();
        if let Some(logger) = truthy(&["logger"]) {
            log.push(("logger", owned(Some(logger))));
        }
        if let Some(level) = truthy(&["level"]) {
            log.push(("level", owned(Some(level))));
        }
        let log_info =
            if log.is_empty() { Vec::new() } else { vec![Values { text: log, ..Default::default() }] };
        let exception_values = || {
            list_at(event, &["exception", "values"]).filter(|e| e.is_object()).map(|e| Values {
                text: vec![
                    ("type", owned(e.field("type").and_then(Value::as_str))),
                    (
                        "value",
                        e.field("value")
                            .and_then(Value::as_str)
                            .filter(|v| !v.is_empty())
                            .map(|v| v.trim().to_owned()),
                    ),
                ],
                ..Default::default()
            })
        };
        let exceptions: Vec<Values> = exception_values().collect();
        let mut top_level: Vec<Values> =
            messages.iter().map(|m| Values { text: m.text.clone(), ..Default::default() }).collect();
        top_level.extend(exception_values());

        // `find_stack_frames`: exceptions, the top-level stack trace, threads.
        let mut stacktraces: Vec<&Value> =
            list_at(event, &["exception", "values"]).filter_map(|e| e.field("stacktrace")).collect();
        stacktraces.extend(get_path(event, &["stacktrace"]));
        stacktraces.extend(list_at(event, &["threads", "values"]).filter_map(|t| t.field("stacktrace")));
        let mut frames = Vec::new();
        for frame in stacktraces.into_iter().flat_map(|s| list_at(s, &["frames"])).filter(|f| f.is_object()) {
            let fields = FrameFields::of(frame);
            let function = super::functions::function_name_for_frame(&fields, platform).into_owned();
            frames.push(Values {
                text: vec![
                    ("function", Some(function)),
                    (
                        "abs_path",
                        owned(
                            text(fields.abs_path).filter(|p| !p.is_empty()).or_else(|| text(fields.filename)),
                        ),
                    ),
                    ("filename", owned(text(fields.filename))),
                    ("module", owned(text(fields.module))),
                    ("package", owned(text(fields.package))),
                ],
                app: fields.in_app.and_then(Value::as_bool),
                tags: None,
            });
        }
        let one = |key: &'static str, value: Option<String>| {
            vec![Values { text: vec![(key, value)], ..Default::default() }]
        };
        let family = super::functions::behavior_family(platform);
        Self {
            log_info,
            exceptions,
            frames,
            tags: vec![Values { tags: get_path(event, &["tags"]), ..Default::default() }],
            sdk: one("sdk", owned(truthy(&["sdk", "name"]))),
            family: one("family", Some(family.to_owned())),
            release: one("release", truthy(&["release"]).map(|r| r.trim().to_owned())),
            top_level,
        }
    }

    fn of(&self, kind: Kind) -> &[Values<'a>] {
        match kind {
            Kind::TopLevel => &self.top_level,
            Kind::LogInfo => &self.log_info,
            Kind::Exceptions => &self.exceptions,
            Kind::Frames => &self.frames,
            Kind::Tags => &self.tags,
            Kind::Sdk => &self.sdk,
            Kind::Family => &self.family,
            Kind::Release => &self.release,
        }
    }
}

impl FingerprintingRules {
    pub fn parse(text: &str) -> Result<Self, FingerprintRuleError> {
        let mut rules = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let trimmed = line.trim_start_matches(' ');
            if trimmed.trim().is_empty() || trimmed.starts_with('#') {
                continue;
            }
            rules.push(
                parse_rule(trimmed).map_err(|message| FingerprintRuleError { line: index + 1, message })?,
            );
        }
        Ok(Self { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// The first rule that matches the (normalized, stack-trace-normalized) event.
    pub fn matching_rule(&self, event: &Value) -> Option<&FingerprintRule> {
        if self.rules.is_empty() {
            return None;
        }
        let values = EventValues::read(event);
        self.rules.iter().find(|rule| rule.matches(&values))
    }
}

/// `apply_server_fingerprinting`: records the client's non-default fingerprint in
/// `_fingerprint_info.client_fingerprint`, and when a rule matches, replaces `fingerprint`, sets the
/// expanded `title` attribute as the event's `title`, and records the rule in
/// `_fingerprint_info.matched_rule`.
pub fn apply_server_fingerprinting(event: &mut Value, rules: &FingerprintingRules) {
    let mut info = Map::new();
    let client: Vec<Value> =
        get_path(event, &["fingerprint"]).and_then(Value::as_array).cloned().unwrap_or_default();
    let client_is_default =
        matches!(client.as_slice(), [Value::String(only)] if is_default_fingerprint_var(only));
    if !client.is_empty() && !client_is_default {
        info.insert("client_fingerprint".into(), Value::Array(client));
    }
    if let Some(rule) = rules.matching_rule(event) {
        let title = rule.title.as_ref().map(|t| expand_title_template(t, event));
        let matched = rule.to_json();
        let fingerprint = rule.fingerprint.clone();
        if let Some(data) = event.as_object_mut() {
            if let Some(title) = title {
                data.insert("title".into(), Value::String(title));
            }
            data.insert("fingerprint".into(), json!(fingerprint));
        }
        info.insert("matched_rule".into(), matched);
    }
    if !info.is_empty()
        && let Some(data) = event.as_object_mut()
    {
        data.insert("_fingerprint_info".into(), Value::Object(info));
    }
}

/// `expand_title_template`: `{{ variable }}`s resolved as fingerprint variables; unknown ones kept.
pub fn expand_title_template(template: &str, event: &Value) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let Some(end) = after.find("}}") else {
            out.push_str(after);
            return out;
        };
        let whole = &after[..end + 2];
        let inner = whole[2..whole.len() - 2].trim();
        match (!inner.is_empty() && !inner.contains(char::is_whitespace))
            .then(|| resolve_variable(inner, event))
            .flatten()
        {
            Some(value) => out.push_str(&value),
            None => out.push_str(whole),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn is_key(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

fn parse_rule(line: &str) -> Result<FingerprintRule, String> {
    let mut cur = Cursor::new(line.trim_end_matches(['\r', '\n']));
    let mut matchers = Vec::new();
    loop {
        let start = cur.pos;
        cur.skip_spaces();
        let negated = cur.eat_str("!");
        let name = if cur.peek() == Some('"') {
            let save = cur.pos;
            cur.pos += 1;
            let name = cur.take_while(|c| is_key(c) || c == ':');
            if name.is_empty() || !cur.eat_str("\"") {
                cur.pos = save;
                String::new()
            } else {
                name.trim_start_matches('!').to_owned()
            }
        } else {
            cur.take_while(is_key)
        };
        if name.is_empty() || !cur.eat_str(":") {
            cur.pos = start;
            break;
        }
        let argument = match cur.quoted()? {
            Some(q) => q,
            None => cur.take_while(|c| !c.is_whitespace()),
        };
        if argument.is_empty() {
            return Err(format!("matcher `{name}` needs an argument"));
        }
        let key = Key::parse(&name).ok_or_else(|| format!("unknown matcher `{name}`"))?;
        matchers.push(Matcher::new(key, negated, argument)?);
    }
    if matchers.is_empty() {
        return Err("a rule starts with at least one matcher".into());
    }
    cur.skip_spaces();
    if !cur.eat_str("->") {
        return Err("expected `->` after the matchers".into());
    }
    let mut fingerprint = Vec::new();
    let mut title = None;
    loop {
        cur.skip_spaces();
        if cur.peek().is_none() {
            break;
        }
        // `key="value"` attribute, a quoted value, or an unquoted one (`{{ var }}` or no spaces,
        // braces or commas).
        let save = cur.pos;
        let key = cur.take_while(is_key);
        if !key.is_empty() && cur.eat_str("=") {
            let Some(value) = cur.quoted()? else {
                return Err(format!("attribute `{key}` needs a quoted value"));
            };
            if key != "title" {
                return Err(format!("unknown attribute `{key}`"));
            }
            title = Some(value);
        } else {
            cur.pos = save;
            let value = if let Some(q) = cur.quoted()? {
                q
            } else if cur.peek() == Some('{') && cur.chars.get(cur.pos + 1) == Some(&'{') {
                let rest = cur.rest();
                let end = rest.find("}}").ok_or("unterminated `{{` variable")?;
                let var: String = rest[..end + 2].to_owned();
                let inner = var[2..var.len() - 2].trim();
                if inner.is_empty() || inner.contains(char::is_whitespace) {
                    return Err(format!("invalid variable `{var}`"));
                }
                cur.pos += var.chars().count();
                var
            } else {
                let v = cur.take_while(|c| !c.is_whitespace() && c != '{' && c != ',');
                if v.is_empty() {
                    return Err(format!("unexpected `{}` in the fingerprint", cur.peek().unwrap_or(' ')));
                }
                v
            };
            fingerprint.push(if is_default_fingerprint_var(&value) {
                DEFAULT_FINGERPRINT_VARIABLE.to_owned()
            } else {
                value
            });
        }
        cur.skip_spaces();
        cur.eat_str(",");
    }
    if fingerprint.is_empty() {
        return Err("a rule needs a fingerprint after `->`".into());
    }
    Ok(FingerprintRule { matchers, fingerprint, title })
}

#[cfg(test)]
mod tests;
