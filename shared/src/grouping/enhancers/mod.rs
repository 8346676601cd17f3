//! Stack-trace rules ("grouping enhancements"): Sentry's rule language, its built-in rule set of the
//! `newstyle:2023-01-11` config, and project rules appended to it.
//!
//! A rule is matchers followed by actions, one per line (`#` starts a comment):
//!
//! ```text
//! family:native package:/usr/lib/** -app          # frames of system libraries are not in-app
//! [ category:throw ] | category:throw category=internals
//! function:wrapped_view ^-group -group
//! error.type:ValueError stack.module:myapp.* +app
//! family:native max-frames=3
//! ```
//!
//! - **Matchers** (all must match; `!` negates): `path`/`stack.abs_path`, `package`/`stack.package`
//!   (case-insensitive, `\` read as `/`, `*` stays within a path segment, `**` crosses segments),
//!   `function`/`stack.function`, `module`/`stack.module`, `category`, `family`
//!   (`native`, `javascript`, `other`, `all`, comma-separated), `app` (`yes`/`no`), and on the
//!   exception the stack trace belongs to, `error.type`/`type`, `error.value`/`value`,
//!   `error.mechanism`/`mechanism`. A frame matcher in `[ … ] |` before the others applies to the
//!   caller (the frame before), one in `| [ … ]` after them to the callee (the frame after).
//!   Arguments with spaces are quoted (`function:"<unknown>"`).
//! - **Actions**: `+app`/`-app` (in-app), `+group`/`-group` (contributes to grouping), `+prefix`,
//!   `+sentinel`, each optionally on the frames above (`^`, towards the crash) or below (`v`)
//!   instead of the matched one; `category=NAME`; `max-frames=N`, `min-frames=N`,
//!   `invert-stacktrace=yes|no` for the whole stack trace.
//!
//! How they run (Sentry's `Enhancements` as of the 2024 grouping corpus, the Python and Rust
//! implementations agreeing): first the *modifier* rules (`±app`, `category=`) change the frames of
//! each stack trace in the event — rule by rule, every matching frame found before any is changed —
//! and the event keeps the result (`in_app`, `data.category`, `data.orig_in_app`); then, for each
//! grouping variant, the *updater* rules (`±group` and the stack-trace variables) decide which frame
//! components contribute, `max-frames` keeps the frames closest to the crash, and `min-frames`
//! discards a stack trace with too few contributing frames.
//!
//! The rule text is parsed by hand (a line-oriented grammar of a few tokens, where Sentry uses
//! `parsimonious`/`nom`); globs are translated to `regex` patterns the way Sentry's `glob_match`
//! translates them to Python regular expressions.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use serde_json::{Map, Value};

use super::cursor::Cursor;
use super::frame::{FrameFields, text, truthy};
use super::glob::{ByteSet, Glob, GlobMatcher, glob};
use crate::tree::Fields;

/// The built-in rules of `newstyle:2023-01-11` (provenance in the file's header).
const NEWSTYLE_2023_01_11: &str = include_str!("newstyle@2023-01-11.txt");

/// A rule that does not parse: the 1-based line in the text it came from and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid stack trace rule on line {line}: {message}")]
pub struct RuleError {
    pub line: usize,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Path,
    Package,
    Function,
    Module,
    Category,
}

/// The number of [`Field`]s (an index per field), and each of them.
const FIELDS: usize = 5;
const ALL_FIELDS: [Field; FIELDS] =
    [Field::Path, Field::Package, Field::Function, Field::Module, Field::Category];

impl Field {
    /// Compared as a path (lower-cased, `/` separators, also as if absolute): `path`, `package`.
    fn is_path_like(self) -> bool {
        matches!(self, Field::Path | Field::Package)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Offset {
    Caller,
    Callee,
    Same,
}

#[derive(Clone, Debug)]
enum FrameTest {
    Field { field: Field, pattern: GlobMatcher },
    Family { native: bool, javascript: bool, other: bool },
    InApp(bool),
}

#[derive(Clone, Debug)]
struct FrameMatcher {
    negated: bool,
    offset: Offset,
    test: FrameTest,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ExceptionField {
    Type,
    Value,
    Mechanism,
}

#[derive(Clone, Debug)]
struct ExceptionMatcher {
    negated: bool,
    field: ExceptionField,
    pattern: GlobMatcher,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flag {
    App,
    Group,
    Prefix,
    Sentinel,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Range {
    /// `^`: the frames after the matched one (towards the crash).
    Up,
    /// `v`: the frames before it.
    Down,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Action {
    Flag { flag: Flag, on: bool, range: Option<Range> },
    Category(String),
    MaxFrames(usize),
    MinFrames(usize),
    InvertStacktrace(bool),
}

impl Action {
    /// Changes the frames themselves (`±app`, `category=`).
    fn is_modifier(&self) -> bool {
        matches!(self, Action::Flag { flag: Flag::App, .. } | Action::Category(_))
    }

    /// Changes the grouping components or the stack trace's variables (all but `category=`).
    fn is_updater(&self) -> bool {
        !matches!(self, Action::Category(_))
    }
}

/// One parsed rule line.
#[derive(Clone, Debug)]
pub struct Rule {
    frame_matchers: Vec<FrameMatcher>,
    exception_matchers: Vec<ExceptionMatcher>,
    actions: Vec<Action>,
    /// The frame families the rule can match at all (its positive `family:` matchers on the frame
    /// itself; every family when it has none): most built-in rules are native-only, and a stack
    /// trace without native frames skips them without looking at a frame.
    families: u8,
    /// The rule has a positive `category:` matcher on the frame itself, so it cannot match a stack
    /// trace without categorized frames.
    needs_category: bool,
    /// A field of the frame itself that a positive matcher wants to begin with one of these bytes
    /// (its pattern a literal without a leading wildcard, as most built-in rules are: `module:java.*`,
    /// `function:nextTick`): a frame whose value begins otherwise is not tried, and a stack trace
    /// where no frame's does is skipped, without running the matchers.
    key: Option<(Field, ByteSet)>,
    /// It takes part in the modifier pass (an action that changes frames) and/or the updater pass
    /// (an action on contributions or the stack trace), decided once at parse time.
    modifier: bool,
    updater: bool,
}

const NATIVE: u8 = 1;
const JAVASCRIPT: u8 = 2;
const OTHER: u8 = 4;
const ALL_FAMILIES: u8 = NATIVE | JAVASCRIPT | OTHER;

fn family_bit(family: &str) -> u8 {
    match family {
        "native" => NATIVE,
        "javascript" => JAVASCRIPT,
        _ => OTHER,
    }
}

/// An ordered rule set: the built-in base followed by a project's own rules.
#[derive(Clone, Debug, Default)]
pub struct Enhancements {
    rules: Vec<Rule>,
}

static DEFAULT: LazyLock<Arc<Enhancements>> = LazyLock::new(|| {
    // The built-in file is part of this crate and covered by tests; a parse failure there is a
    // build defect, answered with no rules rather than a panic in a handler.
    Arc::new(Enhancements::parse(NEWSTYLE_2023_01_11).unwrap_or_default())
});

/// Whether the built-in rules parse, their globs compiled (see [`super::builtin_patterns`]).
pub(crate) fn builtin_rules_parse() -> bool {
    Enhancements::parse(NEWSTYLE_2023_01_11).is_ok()
}

impl Enhancements {
    /// The built-in rules of the default grouping config.
    pub fn builtin() -> &'static Enhancements {
        &DEFAULT
    }

    /// [`Enhancements::builtin`], shared (one parsed copy per process).
    pub fn shared_builtin() -> Arc<Enhancements> {
        DEFAULT.clone()
    }

    /// Parses rule text (one rule per line; blank lines and `#` comments skipped).
    pub fn parse(text: &str) -> Result<Self, RuleError> {
        let mut rules = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let rule = parse_rule(line).map_err(|message| RuleError { line: index + 1, message })?;
            rules.push(rule);
        }
        Ok(Self { rules })
    }

    /// The built-in rules followed by `project_rules` (Sentry appends a project's stack-trace rules
    /// to its base, so they run last and win).
    pub fn with_project_rules(project_rules: &str) -> Result<Self, RuleError> {
        let mut rules = Self::builtin().rules.clone();
        rules.extend(Self::parse(project_rules)?.rules);
        Ok(Self { rules })
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The modifier pass over one stack trace's frames (`apply_modifications_to_frame`): sets
    /// `in_app` (recording `data.orig_in_app` as Sentry's `set_in_app` does) and `data.category`.
    /// Non-object frames are skipped, as Sentry filters `None` frames out.
    pub fn apply_modifications(
        &self,
        frames: &mut [Value],
        platform: Option<&str>,
        exception: &ExceptionData,
    ) {
        let positions: Vec<usize> = (0..frames.len()).filter(|i| frames[*i].is_object()).collect();
        if positions.is_empty() {
            return;
        }
        // The views borrow the frames; what the rules change is written to the frames afterwards, in
        // order (the views carry the changes the later rules see).
        let mut writes: Vec<(usize, Write<'_>)> = Vec::new();
        {
            let mut views: Vec<MatchFrame> =
                positions.iter().map(|i| MatchFrame::of(&FrameFields::of(&frames[*i]), platform)).collect();
            let mut summary = Summary::of(&views);
            let mut matching = Vec::new();
            for rule in self.rules.iter().filter(|r| r.modifier) {
                if !rule.can_match(&summary) || !rule.matches_exception(exception) {
                    continue;
                }
                matching.extend((0..views.len()).filter(|idx| rule.matches_frame(&views, *idx)));
                for idx in matching.drain(..) {
                    for action in &rule.actions {
                        match action {
                            Action::Flag { flag: Flag::App, on, range } => {
                                for j in range_indices(*range, idx, views.len()) {
                                    writes.push((positions[j], Write::InApp(*on)));
                                    views[j].in_app = *on;
                                }
                            }
                            Action::Category(category) => {
                                writes.push((positions[idx], Write::Category(category)));
                                views[idx].category = Some(Cow::Borrowed(category.as_str()));
                                summary.categorized(category);
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        for (position, write) in writes {
            let Some(frame) = frames[position].as_object_mut() else { continue };
            match write {
                Write::InApp(on) => set_in_app(frame, on),
                Write::Category(category) => {
                    if let Some(data) = frame_data(frame) {
                        data.insert("category".to_owned(), Value::String(category.to_owned()));
                    }
                }
            }
        }
    }

    /// The updater pass for one variant's frame components (`assemble_stacktrace_component`):
    /// `contributes[i]` is the component of `frames[i]`, updated in place. Returns what the rules
    /// decided for the whole stack trace.
    #[cfg(test)]
    pub(crate) fn update_contributions(
        &self,
        contributes: &mut [bool],
        frames: &FrameViews,
        exception: &ExceptionData,
    ) -> StacktraceRules {
        self.updater_hits(frames, exception).apply(contributes)
    }

    /// Which updater rules match which frames of one stack trace, in rule order: found once and
    /// applied to each variant (matching does not depend on the components).
    pub(crate) fn updater_hits(&self, frames: &FrameViews, exception: &ExceptionData) -> UpdaterHits<'_> {
        let views = &frames.0;
        let summary = Summary::of(views);
        let mut hits = Vec::new();
        for rule in self.rules.iter().filter(|r| r.updater) {
            if !rule.can_match(&summary) || !rule.matches_exception(exception) {
                continue;
            }
            hits.extend(
                (0..views.len()).filter(|idx| rule.matches_frame(views, *idx)).map(|idx| (rule, idx)),
            );
        }
        UpdaterHits { hits }
    }
}

/// The matches of [`Enhancements::updater_hits`].
pub(crate) struct UpdaterHits<'r> {
    hits: Vec<(&'r Rule, usize)>,
}

impl UpdaterHits<'_> {
    /// Applies the matched rules to one variant's components, then `max-frames`.
    pub(crate) fn apply(&self, contributes: &mut [bool]) -> StacktraceRules {
        let mut state = StacktraceRules::default();
        for (rule, idx) in &self.hits {
            for action in &rule.actions {
                match action {
                    Action::Flag { flag: Flag::Group, on, range } => {
                        for j in range_indices(*range, *idx, contributes.len()) {
                            contributes[j] = *on;
                        }
                    }
                    Action::MaxFrames(n) => state.max_frames = *n,
                    Action::MinFrames(n) => state.min_frames = *n,
                    // Only the display order of Sentry's grouping info: nothing to keep for hashing.
                    Action::InvertStacktrace(_) => {}
                    _ => {}
                }
            }
        }
        if state.max_frames > 0 {
            let mut counted = 0;
            for c in contributes.iter_mut().rev().filter(|c| **c) {
                counted += 1;
                if counted > state.max_frames {
                    *c = false;
                }
            }
        }
        state
    }
}

/// The stack-trace variables the rules set (`StacktraceState`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StacktraceRules {
    pub max_frames: usize,
    pub min_frames: usize,
}

impl StacktraceRules {
    /// `min-frames`: a stack trace with some, but fewer than `min_frames`, contributing frames is
    /// discarded.
    pub fn discards(&self, contributing_frames: usize) -> bool {
        self.min_frames > 0 && contributing_frames > 0 && contributing_frames < self.min_frames
    }
}

/// The exception a stack trace belongs to, as the `error.*` matchers see it (all `None` for
/// thread and top-level stack traces, which match as `<unknown>`).
#[derive(Clone, Debug, Default)]
pub struct ExceptionData {
    pub ty: Option<String>,
    pub value: Option<String>,
    pub mechanism: Option<String>,
}

impl ExceptionData {
    pub fn of(exception: &Value) -> Self {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        Self {
            ty: text(exception.field("type")),
            value: text(exception.field("value")),
            mechanism: text(exception.field("mechanism").and_then(|m| m.field("type"))),
        }
    }
}

fn range_indices(range: Option<Range>, idx: usize, len: usize) -> std::ops::Range<usize> {
    match range {
        None => idx..(idx + 1).min(len),
        Some(Range::Up) => (idx + 1).min(len)..len,
        Some(Range::Down) => 0..idx,
    }
}

/// Sentry's `set_in_app`: records the first original value (`-1` for none) in `data.orig_in_app`.
pub(crate) fn set_in_app(frame: &mut Map<String, Value>, value: bool) {
    let current = frame.field("in_app").and_then(Value::as_bool);
    if current == Some(value) {
        return;
    }
    let orig = match current {
        Some(b) => i64::from(b),
        None => -1,
    };
    if let Some(data) = frame_data(frame) {
        data.entry("orig_in_app").or_insert(Value::from(orig));
    }
    frame.insert("in_app".to_owned(), Value::Bool(value));
}

/// The frame's `data` object, created when missing or `null` (`None` when it is something else).
/// A created one has room for the two keys grouping writes (`orig_in_app`, `category`) and no more:
/// one per frame of every stack trace.
fn frame_data(frame: &mut Map<String, Value>) -> Option<&mut Map<String, Value>> {
    let data = frame.entry("data").or_insert_with(|| Value::Object(Map::with_capacity(2)));
    if data.is_null() {
        *data = Value::Object(Map::with_capacity(2));
    }
    data.as_object_mut()
}

/// What [`Rule::can_match`] checks of a stack trace before looking at its frames: the frame families
/// present (bits), whether any frame is categorized, and the bytes each keyed field's values begin with.
struct Summary {
    families: u8,
    any_category: bool,
    first_bytes: [ByteSet; FIELDS],
}

impl Summary {
    fn of(views: &[MatchFrame]) -> Self {
        let mut summary =
            Self { families: 0, any_category: false, first_bytes: [ByteSet::default(); FIELDS] };
        for view in views {
            summary.families |= family_bit(view.family);
            summary.any_category |= view.category.is_some();
            for field in ALL_FIELDS {
                if let Some(byte) = view.first_byte(field) {
                    summary.first_bytes[field as usize].insert(byte);
                }
            }
        }
        summary
    }

    /// A frame got the category `category` (the modifier pass).
    fn categorized(&mut self, category: &str) {
        self.any_category = true;
        if let Some(byte) = category.as_bytes().first() {
            self.first_bytes[Field::Category as usize].insert(*byte);
        }
    }
}

/// A change the modifier pass makes to a frame.
enum Write<'r> {
    InApp(bool),
    Category(&'r str),
}

/// The frames of one stack trace as the matchers read them, built once for both variants.
pub(crate) struct FrameViews<'a>(Vec<MatchFrame<'a>>);

impl<'a> FrameViews<'a> {
    pub(crate) fn of(frames: &[FrameFields<'a>], platform: Option<&'a str>) -> Self {
        Self(frames.iter().map(|f| MatchFrame::of(f, platform)).collect())
    }
}

/// The frame values the matchers read (`create_match_frame`), borrowed from the frame where they
/// need no change.
#[derive(Clone, Debug)]
struct MatchFrame<'a> {
    family: &'static str,
    function: Cow<'a, str>,
    module: Option<&'a str>,
    package: Option<PathValue<'a>>,
    path: Option<PathValue<'a>>,
    category: Option<Cow<'a, str>>,
    in_app: bool,
}

/// A path-like value, lower-cased with `/` separators (borrowed when it already is). Path matchers
/// also match it as if absolute (`/` + value, `path_like_match`), which literal patterns check
/// without building that string.
#[derive(Clone, Debug)]
struct PathValue<'a> {
    value: Cow<'a, str>,
}

impl<'a> PathValue<'a> {
    fn new(raw: &'a str) -> Self {
        let value = if raw.chars().any(|c| c == '\\' || c.is_uppercase()) {
            Cow::Owned(raw.to_lowercase().replace('\\', "/"))
        } else {
            Cow::Borrowed(raw)
        };
        Self { value }
    }
}

impl<'a> MatchFrame<'a> {
    /// The first byte of `field`'s value as the matchers compare it (a path-like value lower-cased).
    fn first_byte(&self, field: Field) -> Option<u8> {
        self.field(field).and_then(|v| v.as_bytes().first().copied())
    }

    /// `field`'s value as the matchers compare it (a path-like value lower-cased).
    fn field(&self, field: Field) -> Option<&str> {
        match field {
            Field::Function => Some(self.function.as_ref()),
            Field::Module => self.module,
            Field::Category => self.category.as_deref(),
            Field::Path => self.path.as_ref().map(|p| p.value.as_ref()),
            Field::Package => self.package.as_ref().map(|p| p.value.as_ref()),
        }
    }

    fn of(frame: &FrameFields<'a>, platform: Option<&'a str>) -> Self {
        Self {
            family: super::functions::behavior_family(truthy(frame.platform).or(platform)),
            function: super::functions::function_name_for_frame(frame, platform),
            module: text(frame.module),
            package: text(frame.package).map(PathValue::new),
            path: truthy(frame.abs_path).or_else(|| text(frame.filename)).map(PathValue::new),
            category: frame.data.and_then(|d| d.field("category")).and_then(Value::as_str).map(Cow::Borrowed),
            in_app: frame.in_app(),
        }
    }
}

impl Rule {
    /// A cheap pre-check: whether any frame of a stack trace with this summary (its families,
    /// categorized frames or not, the first bytes of its fields' values) could match.
    fn can_match(&self, summary: &Summary) -> bool {
        self.families & summary.families != 0
            && (summary.any_category || !self.needs_category)
            && self.key.is_none_or(|(field, bytes)| bytes.intersects(&summary.first_bytes[field as usize]))
    }

    fn matches_exception(&self, exception: &ExceptionData) -> bool {
        self.exception_matchers.iter().all(|m| {
            let value = match m.field {
                ExceptionField::Type => exception.ty.as_deref(),
                ExceptionField::Value => exception.value.as_deref(),
                ExceptionField::Mechanism => exception.mechanism.as_deref(),
            };
            let value = value.filter(|v| !v.is_empty()).unwrap_or("<unknown>");
            m.negated ^ m.pattern.is_match(value)
        })
    }

    fn matches_frame(&self, frames: &[MatchFrame], idx: usize) -> bool {
        if let Some((field, bytes)) = &self.key
            && !frames[idx].first_byte(*field).is_some_and(|b| bytes.contains(b))
        {
            return false;
        }
        self.frame_matchers.iter().all(|m| {
            let target = match m.offset {
                Offset::Same => Some(idx),
                Offset::Caller => idx.checked_sub(1),
                Offset::Callee => Some(idx + 1),
            };
            match target.and_then(|i| frames.get(i)) {
                // Caller/callee matchers need the neighbour to exist, negated or not.
                None => false,
                Some(frame) => m.negated ^ m.test.matches(frame),
            }
        })
    }
}

impl FrameTest {
    fn matches(&self, frame: &MatchFrame) -> bool {
        match self {
            FrameTest::Field { field, pattern } => frame.field(*field).is_some_and(|v| {
                if field.is_path_like() { pattern.is_match_path(v) } else { pattern.is_match(v) }
            }),
            FrameTest::Family { native, javascript, other } => match frame.family {
                "native" => *native,
                "javascript" => *javascript,
                _ => *other,
            },
            FrameTest::InApp(expected) => frame.in_app == *expected,
        }
    }
}

fn at_end_or_comment(cur: &Cursor) -> bool {
    matches!(cur.peek(), None | Some('#'))
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

enum Parsed {
    Frame(FrameMatcher),
    Exception(ExceptionMatcher),
}

/// `[!]type:argument` at the cursor; `None` (cursor restored) when there is none.
fn parse_matcher(cur: &mut Cursor, offset: Offset) -> Result<Option<Parsed>, String> {
    let start = cur.pos;
    cur.skip_whitespace();
    let negated = cur.eat('!');
    let kind = if cur.eat('"') {
        let k = cur.take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-' | ' '));
        if !cur.eat('"') {
            cur.pos = start;
            return Ok(None);
        }
        k
    } else {
        cur.take_while(is_ident)
    };
    if kind.is_empty() || !cur.eat(':') {
        cur.pos = start;
        return Ok(None);
    }
    let argument = if cur.eat('"') {
        let a = cur.take_while(|c| c != '"');
        if a.is_empty() || !cur.eat('"') {
            return Err(format!("unterminated or empty quoted argument of `{kind}`"));
        }
        a
    } else {
        cur.take_while(|c| !c.is_whitespace())
    };
    if argument.is_empty() {
        return Err(format!("matcher `{kind}` needs an argument"));
    }
    let argument = argument.replace("\\\\", "\\");
    let field = |field: Field| -> Result<Option<Parsed>, String> {
        Ok(Some(Parsed::Frame(FrameMatcher {
            negated,
            offset,
            test: FrameTest::Field {
                field,
                pattern: glob(&argument, if field.is_path_like() { Glob::Path } else { Glob::Exact })?,
            },
        })))
    };
    let exception = |field: ExceptionField| -> Result<Option<Parsed>, String> {
        if offset != Offset::Same {
            return Err(format!("`{kind}` matches the exception and cannot apply to a caller or callee"));
        }
        Ok(Some(Parsed::Exception(ExceptionMatcher {
            negated,
            field,
            pattern: glob(&argument, Glob::Exact)?,
        })))
    };
    match kind.as_str() {
        "path" | "stack.abs_path" => field(Field::Path),
        "package" | "stack.package" => field(Field::Package),
        "function" | "stack.function" => field(Field::Function),
        "module" | "stack.module" => field(Field::Module),
        "category" => field(Field::Category),
        "family" => {
            let (mut native, mut javascript, mut other) = (false, false, false);
            for f in argument.split(',') {
                match f {
                    "native" => native = true,
                    "javascript" => javascript = true,
                    "other" => other = true,
                    "all" => (native, javascript, other) = (true, true, true),
                    _ => {}
                }
            }
            Ok(Some(Parsed::Frame(FrameMatcher {
                negated,
                offset,
                test: FrameTest::Family { native, javascript, other },
            })))
        }
        "app" => {
            let expected =
                parse_bool(&argument).ok_or_else(|| format!("invalid value for `app`: `{argument}`"))?;
            Ok(Some(Parsed::Frame(FrameMatcher { negated, offset, test: FrameTest::InApp(expected) })))
        }
        "error.type" | "type" => exception(ExceptionField::Type),
        "error.value" | "value" => exception(ExceptionField::Value),
        "error.mechanism" | "mechanism" => exception(ExceptionField::Mechanism),
        other => Err(format!("unknown matcher `{other}`")),
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "yes" | "true" => Some(true),
        "0" | "no" | "false" => Some(false),
        _ => None,
    }
}

/// `[ matcher ] |` or `| [ matcher ]` at the cursor (after `open`).
fn parse_neighbour(cur: &mut Cursor, offset: Offset) -> Result<FrameMatcher, String> {
    match parse_matcher(cur, offset)? {
        Some(Parsed::Frame(m)) => {
            cur.skip_whitespace();
            if !cur.eat(']') {
                return Err("expected `]` after a caller/callee matcher".to_owned());
            }
            Ok(m)
        }
        Some(Parsed::Exception(_)) | None => Err("expected a frame matcher inside `[ ]`".to_owned()),
    }
}

fn parse_action(cur: &mut Cursor) -> Result<Action, String> {
    for (name, make) in [("max-frames", 0u8), ("min-frames", 1), ("invert-stacktrace", 2), ("category", 3)] {
        if !cur.starts_with(name) {
            continue;
        }
        let save = cur.pos;
        cur.pos += name.chars().count();
        cur.skip_whitespace();
        if !cur.eat('=') {
            cur.pos = save;
            continue;
        }
        cur.skip_whitespace();
        return match make {
            0 | 1 => {
                let digits = cur.take_while(|c| c.is_ascii_digit());
                let n: usize = digits.parse().map_err(|_| format!("`{name}` needs a number"))?;
                Ok(if make == 0 { Action::MaxFrames(n) } else { Action::MinFrames(n) })
            }
            2 => {
                let word = cur.take_while(|c| c.is_ascii_alphanumeric());
                parse_bool(&word)
                    .map(Action::InvertStacktrace)
                    .ok_or_else(|| format!("invalid value for `invert-stacktrace`: `{word}`"))
            }
            _ => {
                let category = cur.take_while(is_ident);
                if category.is_empty() {
                    return Err("`category` needs a name".to_owned());
                }
                Ok(Action::Category(category))
            }
        };
    }
    let range = if cur.eat('^') {
        Some(Range::Up)
    } else if cur.peek() == Some('v') && matches!(cur.chars.get(cur.pos + 1), Some('+' | '-')) {
        cur.pos += 1;
        Some(Range::Down)
    } else {
        None
    };
    let on = if cur.eat('+') {
        true
    } else if cur.eat('-') {
        false
    } else {
        return Err(format!("expected an action at `{}`", cur.rest()));
    };
    for (name, flag) in
        [("group", Flag::Group), ("app", Flag::App), ("prefix", Flag::Prefix), ("sentinel", Flag::Sentinel)]
    {
        if cur.starts_with(name) {
            cur.pos += name.len();
            return Ok(Action::Flag { flag, on, range });
        }
    }
    Err(format!("unknown action at `{}`", cur.rest()))
}

fn parse_rule(line: &str) -> Result<Rule, String> {
    let mut cur = Cursor::new(line);
    let mut frame_matchers = Vec::new();
    let mut exception_matchers = Vec::new();

    cur.skip_whitespace();
    if cur.eat('[') {
        cur.skip_whitespace();
        frame_matchers.push(parse_neighbour(&mut cur, Offset::Caller)?);
        cur.skip_whitespace();
        if !cur.eat('|') {
            return Err("expected `|` after a caller matcher `[ … ]`".to_owned());
        }
    }
    let mut own = 0;
    while let Some(parsed) = parse_matcher(&mut cur, Offset::Same)? {
        own += 1;
        match parsed {
            Parsed::Frame(m) => frame_matchers.push(m),
            Parsed::Exception(m) => exception_matchers.push(m),
        }
    }
    if own == 0 {
        return Err("a rule starts with at least one matcher".to_owned());
    }
    let save = cur.pos;
    cur.skip_whitespace();
    if cur.eat('|') {
        cur.skip_whitespace();
        if !cur.eat('[') {
            return Err("expected `[` after `|`".to_owned());
        }
        frame_matchers.push(parse_neighbour(&mut cur, Offset::Callee)?);
    } else {
        cur.pos = save;
    }

    let mut actions = Vec::new();
    loop {
        cur.skip_whitespace();
        if at_end_or_comment(&cur) {
            break;
        }
        actions.push(parse_action(&mut cur)?);
    }
    if actions.is_empty() {
        return Err("a rule needs at least one action".to_owned());
    }
    let mut families = ALL_FAMILIES;
    let mut needs_category = false;
    let mut key = None;
    for m in frame_matchers.iter().filter(|m| m.offset == Offset::Same && !m.negated) {
        match &m.test {
            FrameTest::Family { native, javascript, other } => {
                let bits = (if *native { NATIVE } else { 0 })
                    | (if *javascript { JAVASCRIPT } else { 0 })
                    | (if *other { OTHER } else { 0 });
                families &= bits;
            }
            FrameTest::Field { field, pattern } => {
                needs_category |= *field == Field::Category;
                if key.is_none() {
                    key = pattern.first_bytes().map(|bytes| (*field, bytes));
                }
            }
            FrameTest::InApp(_) => {}
        }
    }
    let modifier = actions.iter().any(Action::is_modifier);
    let updater = actions.iter().any(Action::is_updater);
    Ok(Rule { frame_matchers, exception_matchers, actions, families, needs_category, key, modifier, updater })
}

#[cfg(test)]
mod tests;
