//! Grouping components and strategies: what the default hashes are made of.
//!
//! A port of the `newstyle:2023-01-11` configuration of Sentry's `grouping/strategies/newstyle.py`,
//! `message.py`, `security.py` and `grouping/api.py::_get_variants_from_strategies`:
//!
//! - every strategy turns one interface of the event into a tree of [`Component`]s per *variant*
//!   (`app`: only in-app frames contribute; `system`: all frames; `default`: message and security
//!   reports);
//! - strategies run by score (chained exception 2000 > threads 1900 > stacktrace 1800 > template 1100 > csp 1003 >
//!   hpkp 1002 > expect-staple 1001 > expect-ct 1000 > message 0) and only the first one that
//!   contributes counts; the others are marked non-contributing;
//! - a variant's hash is the MD5 of the contributing leaf values, concatenated in tree order.
//!
//! Config-specific choices of `newstyle:2023-01-11` kept here: the legacy exception sub-component order
//! `[stacktrace, type, (ns-error,) value]`, the "backwards" single-frame JavaScript URL check, context
//! lines for `javascript`, `node`, `python`, `php` and `ruby` only.
//!
//! Stack-trace rules ([`super::enhancers`]): the modifier pass has run over the event before
//! (`hashing::normalize_stacktraces_for_grouping`); the updater pass runs here, per variant.
//!
//! One approximation (hashes could differ from Sentry's, none does on Sentry's corpus):
//! exception-group de-duplication compares a structural rendering of the exception components
//! instead of Python's component `repr`s.

use std::sync::LazyLock;

use md5::{Digest, Md5};
use regex::Regex;
use serde_json::Value;

use super::compat::{collapse_whitespace, get_path, is_truthy, list_at, py_str, str_at};
use super::enhancers::{Enhancements, ExceptionData, FrameViews};
use super::frame::{FrameFields, text, truthy};
use super::functions::behavior_family;
use super::parameterization::normalize_message_for_grouping;
use crate::tree::Fields;

/// Platforms whose context lines are trusted for grouping (config `contextline_platforms`).
const CONTEXTLINE_PLATFORMS: [&str; 5] = ["javascript", "node", "python", "php", "ruby"];

/// One value of a component: a leaf string or a nested component.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Node {
    Leaf(String),
    Child(Component),
}

/// Sentry's `GroupingComponent`: an id, ordered values and whether it contributes to the hash.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Component {
    pub id: &'static str,
    pub values: Vec<Node>,
    pub contributes: bool,
    /// Frames only: the frame's (normalized) `in_app`.
    pub in_app: bool,
}

fn values_contribute(values: &[Node]) -> bool {
    values.iter().any(|value| match value {
        Node::Leaf(_) => true,
        Node::Child(child) => child.contributes,
    })
}

impl Component {
    /// A component whose `contributes` follows its values (any leaf, or any contributing child).
    pub(crate) fn new(id: &'static str, values: Vec<Node>) -> Self {
        let contributes = values_contribute(&values);
        Self { id, values, contributes, in_app: false }
    }

    pub(crate) fn empty(id: &'static str) -> Self {
        Self::new(id, Vec::new())
    }

    pub(crate) fn leaf(id: &'static str, value: impl Into<String>) -> Self {
        Self::new(id, vec![Node::Leaf(value.into())])
    }

    /// `component.update(values=...)`: replaces the values and recomputes `contributes`.
    fn set_leaf(&mut self, value: impl Into<String>) {
        self.values = vec![Node::Leaf(value.into())];
        self.contributes = true;
    }

    /// `iter_values()`: contributing leaves in tree order.
    pub(crate) fn for_each_value<'a>(&'a self, f: &mut dyn FnMut(&'a str)) {
        if !self.contributes {
            return;
        }
        for value in &self.values {
            match value {
                Node::Leaf(s) => f(s),
                Node::Child(child) => child.for_each_value(f),
            }
        }
    }

    /// `get_hash()`: `None` when the component does not contribute.
    pub(crate) fn hash(&self) -> Option<String> {
        if !self.contributes {
            return None;
        }
        let mut hasher = Md5::new();
        self.for_each_value(&mut |value| hasher.update(value.as_bytes()));
        Some(hex::encode(hasher.finalize()))
    }

    /// `iter_subcomponents(id, recursive=True, only_contributing=True)` is non-empty.
    fn has_contributing_descendant(&self, id: &str) -> bool {
        self.values.iter().any(|value| match value {
            Node::Leaf(_) => false,
            Node::Child(child) => {
                child.contributes && (child.id == id || child.has_contributing_descendant(id))
            }
        })
    }

    /// A structural rendering (ids, flags, values) used to tell exception components apart.
    fn render(&self, out: &mut String) {
        out.push_str(self.id);
        out.push(if self.contributes { '+' } else { '-' });
        out.push('[');
        for value in &self.values {
            match value {
                Node::Leaf(s) => {
                    out.push('"');
                    out.push_str(s);
                    out.push('"');
                }
                Node::Child(child) => child.render(out),
            }
            out.push(',');
        }
        out.push(']');
    }
}

/// Components keyed by variant name; a leading `!` marks the priority variant (Sentry's `"!app"`),
/// which is ignored when its hash equals a non-priority one's ([`finalize`]).
type Variants = Vec<(&'static str, Component)>;

/// `has_url_origin(path, files_count_as_urls)`.
fn has_url_origin(path: Option<&str>, files_count_as_urls: bool) -> bool {
    match path {
        None | Some("") => false,
        Some(p) if ["http:", "https:", "applewebdata:", "blob:"].iter().any(|s| p.starts_with(s)) => true,
        Some(p) if p.starts_with("file:") => files_count_as_urls,
        Some(_) => false,
    }
}

/// A field of an object as a string (`None` for missing, `null` and non-strings).
fn fs<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    text(object.field(key))
}

/// A field of an object as a non-empty string (Python truthiness).
fn fs_truthy<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    truthy(object.field(key))
}

fn compiled(pattern: &str) -> Option<Regex> {
    Regex::new(pattern).ok()
}

static RUBY_ERB_FUNC: LazyLock<Option<Regex>> = LazyLock::new(|| compiled(r"__\d{4,}_\d{4,}$"));

/// Java code-generation markers replaced by `<auto>` (pattern, replacement), in Sentry's order.
static JAVA_MODULE_MARKERS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        (r"(sun\.reflect\.Generated(?:Serialization)?ConstructorAccessor)\d+", "${1}<auto>"),
        (r"(\$\$[\w_]+?CGLIB\$\$)[a-fA-F0-9]+(_[0-9]+)?", "${1}<auto>"),
        (r"(\$\$_javassist)(?:_seam)?(?:_[0-9]+)?", "${1}<auto>"),
        (r"(\$fn__)\d+", "${1}<auto>"),
        (r"(\$\$?EnhancerBy[\w_]+?\$?\$)[a-fA-F0-9]+(_[0-9]+)?", "${1}<auto>"),
        (r"(\$\$?FastClassBy[\w_]+?\$?\$)[a-fA-F0-9]+(_[0-9]+)?", "${1}<auto>"),
        (r"(\$\$?HibernateProxy\$?\$)\w+(_[0-9]+)?", "${1}<auto>"),
    ]
    .into_iter()
    .filter_map(|(pattern, replacement)| compiled(pattern).map(|re| (re, replacement)))
    .collect()
});

static JAVA_ASSIST: LazyLock<Option<Regex>> =
    LazyLock::new(|| compiled(r"(\$\$_javassist)(?:_seam)?(?:_[0-9]+)?"));

/// Whether each built-in pattern of this module compiled (see [`super::builtin_patterns`]).
pub(super) fn builtin_patterns() -> [(&'static str, bool); 3] {
    [
        ("strategies::RUBY_ERB_FUNC", RUBY_ERB_FUNC.is_some()),
        ("strategies::JAVA_ASSIST", JAVA_ASSIST.is_some()),
        ("strategies::JAVA_MODULE_MARKERS", JAVA_MODULE_MARKERS.len() == 7),
    ]
}

fn filename_component(abs_path: Option<&str>, filename: Option<&str>, platform: Option<&str>) -> Component {
    let Some(filename) = filename else {
        return Component::empty("filename");
    };
    let basename = filename.rsplit(['/', '\\']).next().unwrap_or(filename).to_lowercase();
    let mut component = Component::leaf("filename", basename.clone());
    if has_url_origin(abs_path, false) || basename == "<anonymous>" || basename == "[native code]" {
        component.contributes = false;
    } else if platform == Some("java")
        && let Some(re) = JAVA_ASSIST.as_ref()
    {
        let cleaned = re.replace_all(&basename, "${1}<auto>");
        if cleaned != basename {
            component.set_leaf(cleaned.into_owned());
        }
    }
    component
}

fn module_component(abs_path: Option<&str>, module: Option<&str>, platform: Option<&str>) -> Component {
    let Some(module) = module else {
        return Component::empty("module");
    };
    let mut component = Component::leaf("module", module);
    if platform == Some("javascript") && module.contains('/') && abs_path.is_some_and(|p| p.ends_with(module))
    {
        component.contributes = false;
    } else if platform == Some("java") {
        if module.contains("$$Lambda$") {
            component.contributes = false;
        }
        if module.starts_with("sun.reflect.GeneratedMethodAccessor") {
            component.set_leaf("sun.reflect.GeneratedMethodAccessor");
        } else if module.starts_with("jdk.internal.reflect.GeneratedMethodAccessor") {
            component.set_leaf("jdk.internal.reflect.GeneratedMethodAccessor");
        } else {
            let mut cleaned = module.to_owned();
            for (re, replacement) in JAVA_MODULE_MARKERS.iter() {
                cleaned = re.replace_all(&cleaned, *replacement).into_owned();
            }
            if cleaned != module {
                component.set_leaf(cleaned);
            }
        }
    }
    component
}

fn function_component(
    function: Option<&str>,
    raw_function: Option<&str>,
    platform: Option<&str>,
    sourcemap_used: bool,
    context_line_available: bool,
) -> Component {
    let function = function.filter(|f| !f.is_empty());
    let raw_function = raw_function.filter(|f| !f.is_empty());
    // C# prefers the raw name; everybody else prefers `function`, which
    // `normalize_stacktraces_for_grouping` has already trimmed on native and C# frames (the original
    // kept in `raw_function`), as Sentry does.
    let func = if platform == Some("csharp") { raw_function.or(function) } else { function.or(raw_function) };
    let Some(func) = func else {
        return Component::empty("function");
    };
    let mut component = Component::leaf("function", func);
    match (platform, behavior_family(platform)) {
        (Some("ruby"), _) => {
            if func.starts_with("block ") {
                component.set_leaf("block");
            } else if let Some(re) = RUBY_ERB_FUNC.as_ref() {
                let cleaned = re.replace(func, "");
                if cleaned != func {
                    component.set_leaf(cleaned.into_owned());
                }
            }
        }
        (Some("php"), _) => {
            if func.starts_with("[Anonymous") || func.starts_with("class@anonymous\u{0}") {
                component.contributes = false;
            }
            if func.starts_with("class@anonymous") {
                let method = func.rsplit("::").next().unwrap_or(func);
                if method != func {
                    component.set_leaf(method);
                }
            }
        }
        (Some("java"), _) if func.starts_with("lambda$") => component.contributes = false,
        (_, "native") if func == "<redacted>" || func == "<unknown>" => component.contributes = false,
        (_, "javascript") => {
            // `Object.foo` / `Foo.foo` → `foo` to unify browsers.
            let short = func.rsplit('.').next().unwrap_or(func);
            if short != func {
                component.set_leaf(short);
            }
            if sourcemap_used && context_line_available {
                component.contributes = false;
            }
        }
        _ => {}
    }
    component
}

fn context_line_component(
    context_line: &str,
    platform: Option<&str>,
    function: Option<&str>,
    abs_path: Option<&str>,
) -> Component {
    let line = collapse_whitespace(context_line);
    if line.is_empty() {
        return Component::empty("context-line");
    }
    let mut component = Component::leaf("context-line", line);
    if context_line.chars().count() > 120
        || (behavior_family(platform) == "javascript"
            && function.is_none_or(str::is_empty)
            && has_url_origin(abs_path, true))
    {
        component.contributes = false;
    }
    component
}

/// The frame component of `frame:v1` (before recursion and in-app handling).
fn frame_component(frame: &FrameFields, event_platform: Option<&str>) -> Component {
    let platform = truthy(frame.platform).or(event_platform);
    let abs_path = text(frame.abs_path);
    let function = text(frame.function);
    let raw_function = text(frame.raw_function);

    let mut filename = filename_component(abs_path, text(frame.filename), platform);
    let module = module_component(abs_path, text(frame.module), platform);
    if module.contributes && filename.contributes {
        filename.contributes = false;
    }
    let context_line = match truthy(frame.context_line) {
        Some(line) if platform.is_some_and(|p| CONTEXTLINE_PLATFORMS.contains(&p)) => {
            Some(context_line_component(line, platform, function, abs_path))
        }
        _ => None,
    };
    let sourcemap_used = frame
        .data
        .filter(|data| is_truthy(data))
        .and_then(|data| data.field("sourcemap"))
        .is_some_and(|sourcemap| !sourcemap.is_null());
    let context_line_available = context_line.as_ref().is_some_and(|c| c.contributes);
    let mut function_component =
        function_component(function, raw_function, platform, sourcemap_used, context_line_available);

    // The frame's `contributes` is computed from its children here; the JavaScript tweaks below
    // change the function child afterwards without recomputing it (as Sentry does).
    let mut contributes = module.contributes
        || filename.contributes
        || function_component.contributes
        || context_line.as_ref().is_some_and(|c| c.contributes);

    if behavior_family(platform) == "javascript" {
        let func = raw_function.filter(|f| !f.is_empty()).or(function).filter(|f| !f.is_empty());
        let func = func.map(|f| f.rsplit('.').next().unwrap_or(f));
        match func {
            None | Some("") => function_component.contributes = false,
            Some(f)
                if ["?", "<anonymous function>", "<anonymous>", "Anonymous function"].contains(&f)
                    || f.ends_with("/<") =>
            {
                function_component.contributes = false;
            }
            Some(_) => {}
        }
        if func == Some("eval")
            || abs_path
                .is_some_and(|p| ["[native code]", "native code", "eval code", "<anonymous>"].contains(&p))
        {
            contributes = false;
        }
    }

    let mut values = vec![Node::Child(module), Node::Child(filename), Node::Child(function_component)];
    if let Some(context_line) = context_line {
        values.push(Node::Child(context_line));
    }
    Component { id: "frame", values, contributes, in_app: frame.in_app() }
}

/// Whether a frame is a recursive repeat of the previous one: these fields all equal (`abs_path`,
/// `package`, `module`, `filename`, `function`, `lineno`, `colno`; absent and `null` alike).
fn is_recursive_frame(frame: &FrameFields, previous: Option<&FrameFields>) -> bool {
    let Some(previous) = previous else {
        return false;
    };
    let same =
        |a: Option<&Value>, b: Option<&Value>| a.filter(|v| !v.is_null()) == b.filter(|v| !v.is_null());
    same(frame.abs_path, previous.abs_path)
        && same(frame.package, previous.package)
        && same(frame.module, previous.module)
        && same(frame.filename, previous.filename)
        && same(frame.function, previous.function)
        && same(frame.lineno, previous.lineno)
        && same(frame.colno, previous.colno)
}

/// What every strategy needs besides the event: its platform and the stack-trace rules.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub platform: Option<&'a str>,
    pub enhancements: &'a Enhancements,
}

/// `stacktrace:v1` as a delegate: the `!app` and `system` stacktrace components of `frames`, with
/// the updater stack-trace rules applied per variant (`assemble_stacktrace_component`).
fn stacktrace_variants(frames: &[Value], ctx: Ctx, exception: &ExceptionData) -> Variants {
    let event_platform = ctx.platform;
    // A non-object frame reads as one without fields.
    let frames: Vec<FrameFields> = frames.iter().map(FrameFields::of).collect();
    let mut base = Vec::with_capacity(frames.len());
    let mut previous = None;
    for frame in &frames {
        let mut component = frame_component(frame, event_platform);
        if is_recursive_frame(frame, previous) {
            component.contributes = false;
        }
        previous = Some(frame);
        base.push(component);
    }

    let views = FrameViews::of(&frames, event_platform);
    let hits = ctx.enhancements.updater_hits(&views, exception);
    let build = |mut components: Vec<Component>, app: bool| -> Component {
        if app {
            for component in &mut components {
                if !component.in_app {
                    component.contributes = false;
                }
            }
        }
        // `handle_js_single_frame_url_origin_backwards`: a lone function-less JavaScript frame is
        // ignored when it *has* a URL origin (a long-standing Sentry bug kept by this config).
        if let ([frame], [component]) = (frames.as_slice(), components.as_mut_slice()) {
            let platform = truthy(frame.platform).or(event_platform);
            if component.contributes
                && behavior_family(platform) == "javascript"
                && truthy(frame.function).is_none()
                && has_url_origin(text(frame.abs_path), true)
            {
                component.contributes = false;
            }
        }
        let mut contributes: Vec<bool> = components.iter().map(|c| c.contributes).collect();
        let rules = hits.apply(&mut contributes);
        for (component, contributes) in components.iter_mut().zip(&contributes) {
            component.contributes = *contributes;
        }
        let contributing = contributes.iter().filter(|c| **c).count();
        let mut stacktrace = Component::new("stacktrace", components.into_iter().map(Node::Child).collect());
        if rules.discards(contributing) {
            stacktrace.contributes = false;
        }
        stacktrace
    };
    let app = build(base.clone(), true);
    let system = build(base, false);
    vec![("!app", app), ("system", system)]
}

/// The frames of a stacktrace value when it has any (`Stacktrace.to_python` needs frames).
fn stacktrace_frames(stacktrace: Option<&Value>) -> Option<&Vec<Value>> {
    stacktrace.and_then(|s| s.field("frames")).and_then(Value::as_array).filter(|frames| !frames.is_empty())
}

/// `single-exception:v1`.
fn single_exception(exception: &Value, ctx: Ctx) -> Variants {
    let mut type_component = match fs_truthy(exception, "type") {
        Some(ty) => Component::leaf("type", ty),
        None => Component::empty("type"),
    };
    let mechanism = exception.field("mechanism").filter(|m| m.is_object());
    let mut ns_error = None;
    if let Some(mechanism) = mechanism {
        if mechanism.field("synthetic").is_some_and(is_truthy) {
            type_component.contributes = false;
        }
        if let Some(ns) = mechanism.field("meta").and_then(|m| m.field("ns_error")).filter(|n| !n.is_null()) {
            let domain = ns.field("domain").map_or("None".into(), py_str).into_owned();
            let code = ns.field("code").map_or("None".into(), py_str).into_owned();
            ns_error = Some(Component::new(
                "ns-error",
                vec![
                    Node::Child(Component::leaf("ns-error-domain", domain)),
                    Node::Child(Component::leaf("ns-error-code", code)),
                ],
            ));
        }
    }
    let stacktraces = match stacktrace_frames(exception.field("stacktrace")) {
        Some(frames) => stacktrace_variants(frames, ctx, &ExceptionData::of(exception)),
        None => vec![("!app", Component::empty("stacktrace"))],
    };
    let normalized_value =
        fs(exception, "value").map(normalize_message_for_grouping).filter(|value| !value.is_empty());

    stacktraces
        .into_iter()
        .map(|(key, stacktrace)| {
            let mut value = match &normalized_value {
                Some(v) => Component::leaf("value", v.clone()),
                None => Component::empty("value"),
            };
            if stacktrace.contributes && value.contributes {
                value.contributes = false;
            }
            if ns_error.as_ref().is_some_and(|ns| ns.contributes) && value.contributes {
                value.contributes = false;
            }
            // `use_legacy_exception_subcomponent_order` (newstyle:2023-01-11).
            let mut values = vec![Node::Child(stacktrace), Node::Child(type_component.clone())];
            if let Some(ns) = &ns_error {
                values.push(Node::Child(ns.clone()));
            }
            values.push(Node::Child(value));
            (key, Component::new("exception", values))
        })
        .collect()
}

fn mechanism_u64(exception: &Value, key: &str) -> Option<u64> {
    exception.field("mechanism").and_then(|m| m.field(key)).and_then(Value::as_u64)
}

/// `filter_exceptions_for_exception_groups` (RFC 0079): indices of the exceptions to group by, and
/// the `main_exception_id` to record when a single distinct top-level exception remains.
fn filter_exception_groups(
    event: &Value,
    exceptions: &[&Value],
    components: &[Variants],
) -> (Vec<usize>, Option<u64>) {
    let all: Vec<usize> = (0..exceptions.len()).collect();
    if exceptions.len() <= 1 {
        return (all, None);
    }
    if str_at(event, &["platform"]) == Some("python")
        && str_at(event, &["sdk", "version"]).is_some_and(|v| v.starts_with('3'))
    {
        return (all, None);
    }

    #[derive(Default)]
    struct TreeNode {
        exception: Option<usize>,
        children: Vec<usize>,
    }
    let mut tree: std::collections::BTreeMap<u64, TreeNode> = Default::default();
    let mut seen = std::collections::BTreeSet::new();
    for (index, exception) in exceptions.iter().enumerate().rev() {
        let id = mechanism_u64(exception, "exception_id");
        let parent = mechanism_u64(exception, "parent_id");
        match id {
            Some(id) if Some(id) != parent && seen.insert(id) => {
                tree.entry(id).or_default().exception = Some(index);
                if let Some(parent) = parent {
                    tree.entry(parent).or_default().children.push(index);
                }
            }
            _ => return (all, None),
        }
    }
    let children_of = |index: usize| -> &[usize] {
        mechanism_u64(exceptions[index], "exception_id")
            .and_then(|id| tree.get(&id))
            .map_or(&[], |node| node.children.as_slice())
    };
    let is_group = |index: usize| {
        exceptions[index]
            .field("mechanism")
            .and_then(|m| m.field("is_exception_group"))
            .is_some_and(is_truthy)
    };

    let Some(root) = tree.get(&0).and_then(|node| node.exception) else {
        return (all, None);
    };
    // Top-level exceptions: descend through exception groups (cycles fall back to the full list,
    // as Sentry's recursion error does).
    let mut top_level = Vec::new();
    let mut stack = vec![(root, 0usize)];
    while let Some((index, depth)) = stack.pop() {
        if depth > exceptions.len() {
            return (all, None);
        }
        if is_group(index) {
            for child in children_of(index).iter().rev() {
                stack.push((*child, depth + 1));
            }
        } else {
            top_level.push(index);
        }
    }
    if top_level.is_empty() {
        // No top-level exception (every child is a group, or the chain below the root is a cycle that
        // does not reach it): the 2024 code (the corpus' commit) then keeps the root alone — its empty
        // list of distinct exceptions plus the root. (Newer Sentry returns the whole list instead.)
        return (vec![root], None);
    }
    let type_key =
        |index: usize| py_str(exceptions[index].field("type").unwrap_or(&Value::Null)).into_owned();
    top_level.sort_by_key(|index| std::cmp::Reverse(type_key(*index)));

    let render = |index: usize| {
        let mut out = String::new();
        for (key, component) in &components[index] {
            out.push_str(key);
            component.render(&mut out);
        }
        out
    };
    let mut distinct: Vec<usize> = Vec::new();
    let mut last_key: Option<String> = None;
    for index in top_level {
        let key = render(index);
        if last_key.as_ref() != Some(&key) {
            distinct.push(index);
            last_key = Some(key);
        }
    }
    if let [main] = distinct.as_slice() {
        let main_id = mechanism_u64(exceptions[*main], "exception_id");
        let mut path = vec![*main];
        let mut current = *main;
        while let Some(first) = children_of(current).first() {
            if path.len() > exceptions.len() {
                return (all, None);
            }
            path.push(*first);
            current = *first;
        }
        return (path, main_id);
    }
    distinct.push(root);
    (distinct, None)
}

const REACT_ERRORS_WITH_CAUSE: [&str; 2] = [
    "There was an error during concurrent rendering but React was able to recover by instead synchronously rendering the entire root.",
    "There was an error while hydrating but React was able to recover by instead client rendering from the nearest Suspense boundary.",
];

/// `_maybe_override_main_exception_id`: React 19 cause errors and wrapped RxJava exceptions.
fn override_main_exception_id(exceptions: &[&Value]) -> Option<u64> {
    let (first, last) = (exceptions.first()?, exceptions.last()?);
    if fs(first, "type") == Some("Error")
        && fs(first, "value").is_some_and(|v| REACT_ERRORS_WITH_CAUSE.contains(&v))
        && last.field("mechanism").and_then(|m| m.field("source")).and_then(Value::as_str) == Some("cause")
        && let Some(id) = mechanism_u64(last, "exception_id")
    {
        return Some(id);
    }
    const RXJAVA_TYPES: [&str; 3] =
        ["OnErrorNotImplementedException", "CompositeException", "UndeliverableException"];
    let rx = exceptions.iter().find(|e| {
        fs(e, "module") == Some("io.reactivex.rxjava3.exceptions")
            && fs(e, "type").is_some_and(|t| RXJAVA_TYPES.contains(&t))
            && e.field("mechanism").and_then(|m| m.field("type")).and_then(Value::as_str)
                == Some("UncaughtExceptionHandler")
    })?;
    let rx_id = mechanism_u64(rx, "exception_id")?;
    exceptions
        .iter()
        .find(|e| mechanism_u64(e, "parent_id") == Some(rx_id) && mechanism_u64(e, "exception_id").is_some())
        .and_then(|e| mechanism_u64(e, "exception_id"))
}

/// `chained-exception:v1`: per-exception components, exception groups filtered, concatenated per
/// variant in chain order. Returns the variants and a `main_exception_id` to write into the event.
fn chained_exception(event: &Value, ctx: Ctx) -> (Variants, Option<u64>) {
    let exceptions: Vec<&Value> =
        list_at(event, &["exception", "values"]).filter(|e| e.is_object()).collect();
    let mut components: Vec<Variants> = exceptions.iter().map(|e| single_exception(e, ctx)).collect();
    let (selected, mut main_exception_id) = filter_exception_groups(event, &exceptions, &components);
    if let [only] = selected.as_slice() {
        return (std::mem::take(&mut components[*only]), main_exception_id);
    }
    let chain: Vec<&Value> = selected.iter().map(|i| exceptions[*i]).collect();
    if let Some(id) = override_main_exception_id(&chain).filter(|id| *id != 0) {
        main_exception_id = Some(id);
    }
    let mut by_variant: Vec<(&'static str, Vec<Node>)> = Vec::new();
    for index in selected {
        for (key, component) in std::mem::take(&mut components[index]) {
            match by_variant.iter_mut().find(|(k, _)| *k == key) {
                Some((_, list)) => list.push(Node::Child(component)),
                None => by_variant.push((key, vec![Node::Child(component)])),
            }
        }
    }
    let variants = by_variant
        .into_iter()
        .map(|(key, values)| (key, Component::new("chained-exception", values)))
        .collect();
    (variants, main_exception_id)
}

/// `threads:v1`: the single crashed thread, else the single current thread, else the only thread.
fn threads(event: &Value, ctx: Ctx) -> Variants {
    let threads: Vec<&Value> = list_at(event, &["threads", "values"]).filter(|t| t.is_object()).collect();
    let pick = |flag: Option<&str>| -> Vec<&Value> {
        threads.iter().copied().filter(|t| flag.is_none_or(|f| t.field(f).is_some_and(is_truthy))).collect()
    };
    for flag in [Some("crashed"), Some("current"), None] {
        if let [thread] = pick(flag).as_slice() {
            return match stacktrace_frames(thread.field("stacktrace")) {
                Some(frames) => stacktrace_variants(frames, ctx, &ExceptionData::default())
                    .into_iter()
                    .map(|(key, stacktrace)| (key, Component::new("threads", vec![Node::Child(stacktrace)])))
                    .collect(),
                None => vec![("app", Component::empty("threads"))],
            };
        }
    }
    vec![("app", Component::empty("threads"))]
}

/// `normalized_blocked_uri` / `_normalize_uri` of Sentry's CSP interface.
pub(crate) fn normalize_csp_uri(value: &str) -> String {
    if value.is_empty() || value == "'self'" || value == "self" {
        return "'self'".to_owned();
    }
    if !value.contains(':') {
        return super::compat::urlunsplit_scheme_netloc(value, "");
    }
    let split = super::compat::urlsplit(value);
    if split.scheme == "http" || split.scheme == "https" {
        return split.netloc.to_owned();
    }
    super::compat::urlunsplit_scheme_netloc(&split.scheme, split.netloc)
}

/// The CSP `effective_directive`, derived from `violated_directive` when missing (Relay's rule).
pub(crate) fn csp_effective_directive(csp: &Value) -> Option<&str> {
    fs_truthy(csp, "effective_directive")
        .or_else(|| fs(csp, "violated_directive").and_then(|v| v.split_whitespace().next()))
}

/// `csp:v1`.
fn csp(csp: &Value) -> Component {
    let directive = csp_effective_directive(csp).unwrap_or("");
    let uri = normalize_csp_uri(fs(csp, "blocked_uri").unwrap_or(""));
    let violated = fs_truthy(csp, "violated_directive");
    let local_violation = match violated {
        Some(violated) if directive == "script-src" && uri == "'self'" => {
            if violated.contains("'unsafe-inline'") {
                Some("unsafe-inline")
            } else if violated.contains("'unsafe-eval'") {
                Some("unsafe-eval")
            } else {
                None
            }
        }
        _ => None,
    };
    let (violation, uri) = match local_violation {
        Some(kind) => {
            let mut uri = Component::leaf("uri", uri);
            uri.contributes = false;
            (Component::leaf("violation", format!("'{kind}'")), uri)
        }
        None => (Component::empty("violation"), Component::leaf("uri", uri)),
    };
    Component::new(
        "csp",
        vec![Node::Child(Component::leaf("salt", directive)), Node::Child(violation), Node::Child(uri)],
    )
}

/// `hpkp:v1`, `expect-ct:v1`, `expect-staple:v1`.
fn security_report(id: &'static str, report: &Value) -> Component {
    Component::new(
        id,
        vec![
            Node::Child(Component::leaf("salt", id)),
            Node::Child(Component::leaf("hostname", fs(report, "hostname").unwrap_or(""))),
        ],
    )
}

/// `template:v1`: the template's file name (its basename) and context line; a missing one is an
/// empty component that does not contribute.
fn template_component(template: &Value) -> Component {
    let filename = match fs(template, "filename") {
        Some(f) => Component::leaf("filename", f.rsplit('/').next().unwrap_or(f)),
        None => Component::empty("filename"),
    };
    let context_line = match fs(template, "context_line") {
        Some(line) => Component::leaf("context-line", line),
        None => Component::empty("context-line"),
    };
    Component::new("template", vec![Node::Child(filename), Node::Child(context_line)])
}

/// `message:v1` with message normalization: the template (`logentry.message`) else `formatted`.
fn message(event: &Value) -> Option<Component> {
    let logentry = get_path(event, &["logentry"])?;
    let raw = fs_truthy(logentry, "message").or_else(|| fs_truthy(logentry, "formatted"))?;
    Some(Component::leaf("message", normalize_message_for_grouping(raw)))
}

/// `Strategy.get_grouping_components`: strips the `!` priority marker, drops a non-priority variant
/// whose hash equals a priority one, and optionally applies `remove_non_stacktrace_variants`.
fn finalize(variants: Variants, remove_non_stacktrace: bool) -> Vec<(&'static str, Component)> {
    let mut out: Vec<(&'static str, Component, bool)> = variants
        .into_iter()
        .map(|(key, component)| (key.trim_start_matches('!'), component, key.starts_with('!')))
        .collect();
    // The priority variant (`!app`) is ignored when its hash equals another variant's (Sentry's hint
    // "ignored because hash matches system variant"): the other one keeps the hash.
    let other_hashes: Vec<String> = out
        .iter()
        .filter(|(_, c, priority)| !priority && c.contributes)
        .filter_map(|(_, c, _)| c.hash())
        .collect();
    for (_, component, priority) in &mut out {
        if *priority && component.contributes && component.hash().is_some_and(|h| other_hashes.contains(&h)) {
            component.contributes = false;
        }
    }
    if remove_non_stacktrace && out.len() > 1 {
        let with_stacktrace: Vec<bool> =
            out.iter().map(|(_, c, _)| c.has_contributing_descendant("stacktrace")).collect();
        if with_stacktrace.iter().any(|b| *b) {
            for ((_, component, _), has) in out.iter_mut().zip(with_stacktrace) {
                if !has {
                    component.contributes = false;
                }
            }
        }
    }
    out.into_iter().map(|(name, component, _)| (name, component)).collect()
}

/// The outcome of running every strategy over an event.
pub(crate) struct StrategyVariants {
    /// Root components per variant name (`app`, `system`, `default`), in first-appearance order.
    pub variants: Vec<(&'static str, Component)>,
    /// Set by exception-group handling; Sentry writes it into the event.
    pub main_exception_id: Option<u64>,
}

/// `_get_variants_from_strategies`: runs the strategies by score; the first contributing one wins.
pub(crate) fn variants_from_strategies(event: &Value, enhancements: &Enhancements) -> StrategyVariants {
    let event_platform = str_at(event, &["platform"]).filter(|p| !p.is_empty());
    let ctx = Ctx { platform: event_platform, enhancements };
    let mut main_exception_id = None;
    let mut results: Vec<(&'static str, Vec<(&'static str, Component)>)> = Vec::new();

    if get_path(event, &["exception"]).is_some() {
        let (variants, main) = chained_exception(event, ctx);
        main_exception_id = main;
        results.push(("exception", finalize(variants, true)));
    }
    if list_at(event, &["threads", "values"]).next().is_some() {
        results.push(("threads", finalize(threads(event, ctx), true)));
    }
    // A top-level stack trace is an interface even with no frames (its variants exist and contribute
    // nothing, as in Sentry's `frame-empty-list` case).
    let top_level_frames =
        get_path(event, &["stacktrace"]).and_then(|s| s.field("frames")).and_then(Value::as_array);
    if let Some(frames) = top_level_frames {
        results.push((
            "stacktrace",
            finalize(stacktrace_variants(frames, ctx, &ExceptionData::default()), true),
        ));
    }
    // `template:v1` (score 1100): before the security reports.
    if let Some(template) = get_path(event, &["template"]).filter(|t| t.is_object()) {
        results.push(("template", finalize(vec![("default", template_component(template))], false)));
    }
    for (key, id) in
        [("csp", "csp"), ("hpkp", "hpkp"), ("expectstaple", "expect-staple"), ("expectct", "expect-ct")]
    {
        if let Some(report) = get_path(event, &[key]).filter(|r| r.is_object()) {
            let component = if key == "csp" { csp(report) } else { security_report(id, report) };
            results.push((id, finalize(vec![("default", component)], false)));
        }
    }
    if let Some(component) = message(event) {
        results.push(("message", finalize(vec![("default", component)], false)));
    }

    let mut winner: Option<&'static str> = None;
    let mut by_variant: Vec<(&'static str, Vec<Node>)> = Vec::new();
    for (strategy, components) in results {
        for (name, mut component) in components {
            if component.contributes {
                match winner {
                    None => winner = Some(strategy),
                    Some(w) if w != strategy => component.contributes = false,
                    Some(_) => {}
                }
            }
            match by_variant.iter_mut().find(|(n, _)| *n == name) {
                Some((_, list)) => list.push(Node::Child(component)),
                None => by_variant.push((name, vec![Node::Child(component)])),
            }
        }
    }
    let variants =
        by_variant.into_iter().map(|(name, values)| (name, Component::new(name, values))).collect();
    StrategyVariants { variants, main_exception_id }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn values_of(component: &Component) -> Vec<String> {
        let mut out = Vec::new();
        component.for_each_value(&mut |v| out.push(v.to_owned()));
        out
    }

    #[test]
    fn regexes_compile() {
        assert!(builtin_patterns().iter().all(|(_, ok)| *ok));
    }

    #[test]
    fn frame_uses_module_over_filename_and_context_line_for_python() {
        let frame = json!({"module": "app.views", "filename": "app/views.py", "function": "index",
            "context_line": "    return   1 / 0", "in_app": true});
        let component = frame_component(&FrameFields::of(&frame), Some("python"));
        assert_eq!(values_of(&component), ["app.views", "index", "return 1 / 0"]);
    }

    #[test]
    fn frame_filename_basename_lowercased_and_urls_ignored() {
        let frame = json!({"filename": "C:\\Src\\App.PY", "function": "f"});
        assert_eq!(values_of(&frame_component(&FrameFields::of(&frame), Some("other"))), ["app.py", "f"]);
        let frame = json!({"filename": "app.js", "abs_path": "https://x.example/app.js", "function": "f"});
        assert_eq!(values_of(&frame_component(&FrameFields::of(&frame), Some("javascript"))), ["f"]);
    }

    #[test]
    fn javascript_function_names_are_trimmed_and_anonymous_ignored() {
        let frame = json!({"filename": "app.js", "abs_path": "/srv/app.js", "function": "Object.foo"});
        assert_eq!(
            values_of(&frame_component(&FrameFields::of(&frame), Some("javascript"))),
            ["app.js", "foo"]
        );
        let frame = json!({"filename": "app.js", "abs_path": "/srv/app.js", "function": "?"});
        assert_eq!(values_of(&frame_component(&FrameFields::of(&frame), Some("javascript"))), ["app.js"]);
        let frame = json!({"filename": "app.js", "abs_path": "/srv/app.js", "function": "<anonymous>"});
        assert_eq!(values_of(&frame_component(&FrameFields::of(&frame), Some("node"))), ["app.js"]);
        let frame = json!({"filename": "[native code]", "abs_path": "[native code]", "function": "forEach"});
        assert!(!frame_component(&FrameFields::of(&frame), Some("javascript")).contributes);
    }

    #[test]
    fn context_line_only_for_trusted_platforms_and_short_lines() {
        let frame = json!({"function": "f", "context_line": "x = 1"});
        assert_eq!(values_of(&frame_component(&FrameFields::of(&frame), Some("java"))), ["f"]);
        let long = "x".repeat(121);
        let frame = json!({"function": "f", "context_line": long});
        assert_eq!(values_of(&frame_component(&FrameFields::of(&frame), Some("python"))), ["f"]);
    }

    #[test]
    fn platform_function_cleanup() {
        let frame = json!({"function": "block in foo"});
        assert_eq!(values_of(&frame_component(&FrameFields::of(&frame), Some("ruby"))), ["block"]);
        let frame = json!({"function": "_app_views_foo_erb__1234567_12345678"});
        assert_eq!(
            values_of(&frame_component(&FrameFields::of(&frame), Some("ruby"))),
            ["_app_views_foo_erb"]
        );
        let frame = json!({"function": "lambda$main$0", "module": "com.example.App"});
        assert_eq!(values_of(&frame_component(&FrameFields::of(&frame), Some("java"))), ["com.example.App"]);
        let frame = json!({"module": "com.example.Foo$$EnhancerByGuice$$ae46b1bf", "function": "run"});
        assert_eq!(
            values_of(&frame_component(&FrameFields::of(&frame), Some("java"))),
            ["com.example.Foo$$EnhancerByGuice$$<auto>", "run"]
        );
    }

    #[test]
    fn csp_uri_normalization() {
        assert_eq!(normalize_csp_uri("http://example.com"), "example.com");
        assert_eq!(normalize_csp_uri(""), "'self'");
        assert_eq!(normalize_csp_uri("self"), "'self'");
        assert_eq!(normalize_csp_uri("data"), "data:");
        assert_eq!(normalize_csp_uri("blob:http://example.com/1"), "blob:");
    }

    #[test]
    fn recursion_ignores_repeated_frames() {
        let frame = json!({"function": "f", "filename": "a.py", "lineno": 3, "in_app": true});
        let ctx = Ctx { platform: Some("other"), enhancements: Enhancements::builtin() };
        let variants =
            stacktrace_variants(&[frame.clone(), frame.clone(), frame], ctx, &ExceptionData::default());
        let (_, app) = &variants[0];
        let contributing: Vec<bool> =
            app.values.iter().map(|v| matches!(v, Node::Child(c) if c.contributes)).collect();
        assert_eq!(contributing, [true, false, false]);
    }
}
