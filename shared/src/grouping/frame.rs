//! A stack frame's fields as grouping reads them, found in one pass over the frame's map.
//!
//! Grouping reads the same dozen fields of every frame in several places: the stack-trace rules'
//! view of a frame, the frame component, the recursion check, the fingerprinting rules' frame
//! values. Each `frame.get(key)` on a
//! `serde_json` map hashes the key with SipHash, and grouping made ~50 such lookups per frame — a
//! quarter of the grouping step's CPU on a JavaScript exception (BENCHMARKS §3). One scan of the
//! frame's entries, matched by name, finds them all at once (elsewhere a single field is found with
//! [`crate::tree::Fields`], which scans small objects too). Each field is what `frame.get(key)`
//! gives: `None` when the key is absent, the value as it is (`null` included) when present.

use serde_json::Value;

/// A frame's fields by name (`None`: absent). A non-object frame has none.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FrameFields<'a> {
    pub abs_path: Option<&'a Value>,
    pub colno: Option<&'a Value>,
    pub context_line: Option<&'a Value>,
    pub data: Option<&'a Value>,
    pub filename: Option<&'a Value>,
    pub function: Option<&'a Value>,
    pub in_app: Option<&'a Value>,
    pub lineno: Option<&'a Value>,
    pub module: Option<&'a Value>,
    pub package: Option<&'a Value>,
    pub platform: Option<&'a Value>,
    pub raw_function: Option<&'a Value>,
}

impl<'a> FrameFields<'a> {
    /// Reads the fields of `frame` in one pass over its entries.
    pub(crate) fn of(frame: &'a Value) -> Self {
        let mut fields = Self::default();
        let Some(map) = frame.as_object() else {
            return fields;
        };
        for (key, value) in map {
            let slot = match key.as_str() {
                "abs_path" => &mut fields.abs_path,
                "colno" => &mut fields.colno,
                "context_line" => &mut fields.context_line,
                "data" => &mut fields.data,
                "filename" => &mut fields.filename,
                "function" => &mut fields.function,
                "in_app" => &mut fields.in_app,
                "lineno" => &mut fields.lineno,
                "module" => &mut fields.module,
                "package" => &mut fields.package,
                "platform" => &mut fields.platform,
                "raw_function" => &mut fields.raw_function,
                _ => continue,
            };
            *slot = Some(value);
        }
        fields
    }

    /// `in_app` as a boolean (`false` when absent, `null` or not a boolean).
    pub(crate) fn in_app(&self) -> bool {
        self.in_app.and_then(Value::as_bool).unwrap_or(false)
    }
}

/// A field as a string (`None` for absent, `null` and non-strings).
pub(crate) fn text(field: Option<&Value>) -> Option<&str> {
    field.and_then(Value::as_str)
}

/// A field as a non-empty string (Python truthiness of a string field).
pub(crate) fn truthy(field: Option<&Value>) -> Option<&str> {
    text(field).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_what_get_reads() {
        let frame = json!({
            "abs_path": "/a.js", "colno": 3, "context_line": "x()", "data": {"k": 1},
            "filename": "a.js", "function": null, "in_app": true, "lineno": 7, "module": "m",
            "package": "p", "platform": "node", "raw_function": "", "vars": {"ignored": 1}
        });
        let fields = FrameFields::of(&frame);
        let pairs = [
            ("abs_path", fields.abs_path),
            ("colno", fields.colno),
            ("context_line", fields.context_line),
            ("data", fields.data),
            ("filename", fields.filename),
            ("function", fields.function),
            ("in_app", fields.in_app),
            ("lineno", fields.lineno),
            ("module", fields.module),
            ("package", fields.package),
            ("platform", fields.platform),
            ("raw_function", fields.raw_function),
        ];
        for (key, field) in pairs {
            assert_eq!(field, frame.get(key), "{key}");
        }
        assert!(fields.in_app());
        assert_eq!(text(fields.function), None);
        assert_eq!(text(fields.raw_function), Some(""));
        assert_eq!(truthy(fields.raw_function), None);

        let unrelated = json!({"vars": {}});
        let empty = FrameFields::of(&unrelated);
        assert!(empty.abs_path.is_none() && empty.function.is_none() && !empty.in_app());
        assert!(FrameFields::of(&json!("not a frame")).module.is_none());
    }
}
