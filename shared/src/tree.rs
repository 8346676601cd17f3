//! Lookups by key in the event tree: how ingest, grouping and the save pipeline find an object's
//! field (grouping's frames are read in one pass of their own, `grouping::frame`; a few places
//! still index a map with `map[key]` to write into it).
//!
//! The tree is `serde_json::Value`, whose objects (with `preserve_order`) are an `IndexMap` keyed
//! with SipHash: every `get` hashes the key before it probes. Nearly every object in an event is
//! small (a frame, a context, the user, the SDK; the event itself has 10–30 fields), and for those a
//! scan of the entries in order, which compares lengths and first bytes before the rest, finds a key
//! 2–3× faster than hashing it, hit or miss (`postflow bench lookups`, `BENCHMARKS.md` §3). Larger
//! objects (`modules`, `extra`, big `tags` or `data` maps) keep the hashed lookup, where the scan
//! would grow with the size.
//!
//! A field is found the same either way: a map holds each key once (a key sent twice keeps its last
//! value), so the first entry with the key is the only one.

use serde_json::{Map, Value};

/// Objects up to this many entries are scanned; larger ones are looked up by hash. The samples'
/// objects all have 32 or fewer (`postflow bench lookups`: 2.1× faster over those of 9–32); in a
/// separate measurement over synthetic objects out of cache, a scan of 28 entries was still 1.8×
/// faster than the hash. Past that the scan grows with the object and the hash does not.
pub const SCAN_MAX: usize = 32;

/// Field lookups on an object, or on a value that may be one.
pub trait Fields {
    /// The value under `key`, if this is an object that has it.
    fn field(&self, key: &str) -> Option<&Value>;
    /// The value under `key`, mutably.
    fn field_mut(&mut self, key: &str) -> Option<&mut Value>;
    /// Whether this is an object that has `key` (whatever its value, `null` included).
    fn has_field(&self, key: &str) -> bool {
        self.field(key).is_some()
    }
}

/// Not inlined: one copy of each scan serves the ~150 lookups. Inlined into each of them, the scans
/// made save-event's binary 52 KB larger (against its 8 MB budget) for 1.3 % fewer instructions.
impl Fields for Map<String, Value> {
    #[inline(never)]
    fn field(&self, key: &str) -> Option<&Value> {
        if self.len() <= SCAN_MAX {
            self.iter().find_map(|(k, v)| same_key(k, key).then_some(v))
        } else {
            self.get(key)
        }
    }

    #[inline(never)]
    fn field_mut(&mut self, key: &str) -> Option<&mut Value> {
        if self.len() <= SCAN_MAX {
            self.iter_mut().find_map(|(k, v)| same_key(k, key).then_some(v))
        } else {
            self.get_mut(key)
        }
    }
}

/// `a == b`, with the first bytes compared before the call that compares the rest: an object's
/// keys of one length mostly differ there (`user`, `tags`, `dist`; `release`, `modules`), and the
/// call costs more than the scan's step (`bench lookups`: 11.3–12.0 → 10.2–10.4 ns on objects of
/// 9–32 entries).
#[inline]
fn same_key(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.as_bytes().first() == b.as_bytes().first() && a == b
}

impl Fields for Value {
    #[inline]
    fn field(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(map) => map.field(key),
            _ => None,
        }
    }

    #[inline]
    fn field_mut(&mut self, key: &str) -> Option<&mut Value> {
        match self {
            Value::Object(map) => map.field_mut(key),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Both sides of the threshold find what `get` finds, hits and misses, and `field_mut` reaches
    /// the same entry.
    #[test]
    fn finds_what_get_finds_on_both_sides_of_the_threshold() {
        for n in [0, 1, 2, SCAN_MAX - 1, SCAN_MAX, SCAN_MAX + 1, 3 * SCAN_MAX] {
            let mut map: Map<String, Value> = (0..n).map(|i| (format!("k{i}"), json!(i))).collect();
            for key in
                (0..n + 2).map(|i| format!("k{i}")).chain(["".to_owned(), "k".to_owned(), "K0".to_owned()])
            {
                assert_eq!(map.field(&key), map.get(&key), "n={n} key={key}");
                assert_eq!(map.has_field(&key), map.contains_key(&key), "n={n} key={key}");
            }
            if n > 0 {
                let last = format!("k{}", n - 1);
                *map.field_mut(&last).expect("present") = json!("changed");
                assert_eq!(map.get(&last), Some(&json!("changed")), "n={n}");
            }
            assert_eq!(map.field_mut("absent"), None);
        }
    }

    #[test]
    fn keys_match_whole_and_non_objects_have_no_fields() {
        for value in [json!(null), json!("a"), json!(["a"]), json!(1)] {
            assert_eq!(value.field("a"), None);
            assert!(!value.has_field("0"));
        }
        let keys = json!({"": 0, "ab": 1, "ba": 2, "aa": 3, "a": 4});
        for (key, n) in [("", 0), ("ab", 1), ("ba", 2), ("aa", 3), ("a", 4)] {
            assert_eq!(keys.field(key), Some(&json!(n)), "{key}");
        }
        assert_eq!(keys.field("bb"), None);
        let mut object = json!({"a": null});
        assert_eq!(object.field("a"), Some(&Value::Null));
        assert!(object.has_field("a"));
        assert_eq!(object.field_mut("a"), Some(&mut Value::Null));
    }
}
