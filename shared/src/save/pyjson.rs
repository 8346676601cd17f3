//! JSON written as Sentry's `sentry.utils.json.dumps` writes it (simplejson with separators `,`/`:`
//! and `ensure_ascii`): compact, every character outside printable ASCII escaped as `\uXXXX`
//! (surrogate pairs above the BMP), floats as Python's `repr`, non-finite floats as `null`.
//!
//! Hand-written: `serde_json` has no `ensure_ascii`. [`PyJson`] writes a `serde_json::Value` straight
//! from the tree, in one scan per string, and can take the tree and free it as it is written.

use serde_json::{Map, Number, Value};

use crate::grouping::compat::write_python_float;

/// A JSON document being written into a buffer that grows by a quarter of its length at a time (at
/// least 16 KiB, so a usual record grows at most once, as it would doubling) instead of doubling: a
/// large record (up to 1 MiB) is built while the event's tree is still held, so a doubled buffer —
/// up to twice the record — is what the peak of a large event's request is made of (an Android ANR
/// of 0.7 MiB: a 1 MiB buffer). Large reallocations move pages rather than bytes, so growing more
/// often costs little.
pub(crate) struct PyJson {
    out: Vec<u8>,
}

impl PyJson {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self { out: Vec::with_capacity(capacity) }
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.out
    }

    /// Appends bytes that are JSON already.
    #[inline]
    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        let out = &mut self.out;
        if out.capacity() - out.len() < bytes.len() {
            out.reserve_exact(bytes.len().max(out.len() / 4).max(16 << 10));
        }
        out.extend_from_slice(bytes);
    }

    pub(crate) fn null(&mut self) {
        self.raw(b"null");
    }

    pub(crate) fn bool(&mut self, value: bool) {
        self.raw(if value { b"true" } else { b"false" });
    }

    pub(crate) fn u64(&mut self, value: u64) {
        self.raw(itoa::Buffer::new().format(value).as_bytes());
    }

    fn i64(&mut self, value: i64) {
        self.raw(itoa::Buffer::new().format(value).as_bytes());
    }

    fn f64(&mut self, value: f64) {
        if value.is_finite() {
            // Writing into the buffer cannot fail.
            let _ = write_python_float(self, value);
        } else {
            self.null();
        }
    }

    fn number(&mut self, n: &Number) {
        if let Some(u) = n.as_u64() {
            self.u64(u);
        } else if let Some(i) = n.as_i64() {
            self.i64(i);
        } else {
            // Without `arbitrary_precision` a number is one of the three; `null` keeps the JSON whole.
            self.f64(n.as_f64().unwrap_or(f64::NAN));
        }
    }

    /// A string, quoted and escaped: runs of printable ASCII other than `"` and `\` are copied whole
    /// (found eight bytes at a time); `"`, `\` and the five control characters JSON names get their
    /// short escapes; anything else is `\uXXXX` (lowercase hex, UTF-16 units).
    pub(crate) fn str(&mut self, s: &str) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.raw(b"\"");
        let bytes = s.as_bytes();
        let mut i = 0;
        loop {
            let run = plain_run(&bytes[i..]);
            self.raw(&bytes[i..i + run]);
            i += run;
            // `i` is on a character boundary: it moved past ASCII bytes or whole characters.
            let Some(c) = s[i..].chars().next() else { break };
            let short: &[u8] = match c {
                '"' => b"\\\"",
                '\\' => b"\\\\",
                '\u{8}' => b"\\b",
                '\t' => b"\\t",
                '\n' => b"\\n",
                '\u{c}' => b"\\f",
                '\r' => b"\\r",
                _ => b"",
            };
            if short.is_empty() {
                let mut units = [0u16; 2];
                for &mut unit in c.encode_utf16(&mut units) {
                    let nibble = |shift: u16| HEX[usize::from((unit >> shift) & 0xf)];
                    self.raw(&[b'\\', b'u', nibble(12), nibble(8), nibble(4), nibble(0)]);
                }
            } else {
                self.raw(short);
            }
            i += c.len_utf8();
        }
        self.raw(b"\"");
    }

    /// Writes `value`.
    pub(crate) fn value(&mut self, value: &Value) {
        match value {
            Value::Null => self.null(),
            Value::Bool(b) => self.bool(*b),
            Value::Number(n) => self.number(n),
            Value::String(s) => self.str(s),
            Value::Array(items) => self.array(items, |w, item| w.value(item)),
            Value::Object(map) => self.map(map),
        }
    }

    /// Writes `value`, taking it: each element or entry is freed right after it is written, so a tree
    /// given up to the record is gone by the time the record is complete.
    pub(crate) fn value_taken(&mut self, value: Value) {
        match value {
            Value::Array(items) => self.array(items, Self::value_taken),
            Value::Object(map) => {
                let mut object = self.object();
                for (key, value) in map {
                    object.key(&key).value_taken(value);
                }
                object.end();
            }
            scalar => self.value(&scalar),
        }
    }

    /// An object of `map`'s entries.
    pub(crate) fn map(&mut self, map: &Map<String, Value>) {
        let mut object = self.object();
        for (key, value) in map {
            object.key(key).value(value);
        }
        object.end();
    }

    /// An array of `items`, each written by `each`.
    pub(crate) fn array<T>(
        &mut self,
        items: impl IntoIterator<Item = T>,
        mut each: impl FnMut(&mut Self, T),
    ) {
        self.raw(b"[");
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.raw(b",");
            }
            each(self, item);
        }
        self.raw(b"]");
    }

    /// Opens an object; its entries are written through [`Object::key`], then [`Object::end`].
    pub(crate) fn object(&mut self) -> Object<'_> {
        self.raw(b"{");
        Object { w: self, empty: true }
    }
}

impl std::fmt::Write for PyJson {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.raw(s.as_bytes());
        Ok(())
    }
}

/// An object being written.
pub(crate) struct Object<'w> {
    w: &'w mut PyJson,
    empty: bool,
}

impl Object<'_> {
    /// Writes the next key; its value is written into what this returns.
    pub(crate) fn key(&mut self, key: &str) -> &mut PyJson {
        if !self.empty {
            self.w.raw(b",");
        }
        self.empty = false;
        self.w.str(key);
        self.w.raw(b":");
        self.w
    }

    pub(crate) fn end(self) {
        self.w.raw(b"}");
    }
}

/// How many bytes at the start of `bytes` a JSON string takes as they are: printable ASCII
/// (`' '..='~'`) other than `"` and `\`. Looked at eight at a time, as a little-endian word `w`: a
/// byte below 0x20 sets its high bit in `(w - 0x2020…) & !w`, a byte of 0x7f or above sets it in
/// `w + 0x0101…` or in `w`, and a `"` or `\` is a zero byte of `w ^ 0x2222…` or `w ^ 0x5c5c…`
/// (flagged by `(x - 0x0101…) & !x`). Carries and borrows run only towards later bytes and only out
/// of bytes that are flagged themselves, so the first such byte of a word is always flagged; a
/// flagged word is then counted byte by byte.
fn plain_run(bytes: &[u8]) -> usize {
    const fn lanes(byte: u8) -> u64 {
        u64::from_le_bytes([byte; 8])
    }
    const fn zero_byte(x: u64) -> u64 {
        x.wrapping_sub(lanes(0x01)) & !x
    }
    let mut i = 0;
    for chunk in bytes.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let flags = (w.wrapping_sub(lanes(0x20)) & !w)
            | w.wrapping_add(lanes(0x01))
            | w
            | zero_byte(w ^ lanes(b'"'))
            | zero_byte(w ^ lanes(b'\\'));
        if flags & lanes(0x80) != 0 {
            break;
        }
        i += 8;
    }
    i + bytes[i..].iter().take_while(|b| is_plain(**b)).count()
}

fn is_plain(b: u8) -> bool {
    (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\'
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn written(value: &Value) -> String {
        let mut w = PyJson::with_capacity(0);
        w.value(value);
        String::from_utf8(w.into_bytes()).unwrap()
    }

    #[test]
    fn writes_like_simplejson_with_ensure_ascii() {
        let value = json!({
            "a": "foô\u{1F600}\u{7f}",
            "b": 1e16,
            "c": 1717243200.0,
            "d": [1, true, null, -3, 18446744073709551615u64],
            "e": "\"q\" \\ \u{8}\t\n\u{c}\r\u{1}\u{1f} é",
            "": {},
            "f": [],
        });
        assert_eq!(
            written(&value),
            r#"{"a":"fo\u00f4\ud83d\ude00\u007f","b":1e+16,"c":1717243200.0,"d":[1,true,null,-3,18446744073709551615],"e":"\"q\" \\ \b\t\n\f\r\u0001\u001f \u00e9","":{},"f":[]}"#
        );
    }

    #[test]
    fn taken_and_borrowed_write_the_same() {
        let value = json!({"x": [{"y": "z\u{e9}"}, 1.5, [null]], "w": {"v": false}});
        let mut w = PyJson::with_capacity(0);
        w.value_taken(value.clone());
        assert_eq!(String::from_utf8(w.into_bytes()).unwrap(), written(&value));
    }

    #[test]
    fn strings_read_back_as_written() {
        // Every character class around every position of a word, read back by serde_json.
        let samples =
            ["a", "\"", "\\", "\u{0}", "\u{1f}", "\u{7f}", "\u{80}", "\u{7ff}", "\u{ffff}", "\u{10ffff}"];
        for sample in samples {
            for pos in 0..18 {
                let s = format!("{}{sample}{}", "x".repeat(pos), "y".repeat(17 - pos));
                let text = written(&Value::String(s.clone()));
                assert!(text.is_ascii(), "{text}");
                assert_eq!(serde_json::from_str::<String>(&text).unwrap(), s);
            }
        }
    }

    #[test]
    fn plain_runs_end_at_the_first_byte_to_escape() {
        // Every byte value at every position of a 20-byte run (two words and a tail), and after an
        // 0xff (whose carry would spill into the next byte of its word).
        for b in 0..=255u8 {
            for pos in 0..20 {
                let mut bytes = vec![b'a'; 20];
                bytes[pos] = b;
                assert_eq!(plain_run(&bytes), if is_plain(b) { 20 } else { pos }, "{b:#x} at {pos}");
                if pos > 0 {
                    bytes[pos - 1] = 0xff;
                    assert_eq!(plain_run(&bytes), pos - 1, "{b:#x} after 0xff at {pos}");
                }
            }
        }
        assert_eq!(plain_run(b""), 0);
        assert_eq!(plain_run(b"~ ~ ~ ~ ~ ~"), 11);
    }
}
