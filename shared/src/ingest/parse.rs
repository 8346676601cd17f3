//! Parsing an event payload into a `serde_json::Value` whose size follows what is kept, not what was
//! sent.
//!
//! A JSON tree costs about 72 bytes per value (`serde_json::Value` with `preserve_order`), so a
//! payload of small values — `[0,0,0,…]`, 2 bytes each — would take ~36 times its size once parsed.
//! Two rules bound that while the payload is parsed, before anything is built:
//!
//! * **`extra` is trimmed as it is parsed**, exactly as Relay's databag trimming
//!   (`relay-event-normalization`'s `TrimmingProcessor`, run by the store normalizer) trims it
//!   afterwards: every value of `extra` is a bag of its own with a budget of 16,384 bytes by Relay's
//!   size estimate (a value's compact JSON length — a string's raw UTF-8 length plus 2, a container
//!   2 without its children, `null` 0 — plus 1 per value); a bag keeps values in order (object keys
//!   in sorted order) until its budget is spent, trims the string it is in to the budget left (in
//!   characters, ending in `...`), and writes a container five levels down as its JSON text (keys
//!   sorted), trimmed like a string. What falls past a budget is skipped, never built. The
//!   conformance test compares the result with Relay's own on the `extra_*` cases.
//! * **The tree may take at most [`TREE_BYTES_PER_BYTE`] bytes per byte of payload** (at least
//!   [`MIN_TREE_BYTES`]), counted as it is built: a value costs its `Value` (72 bytes) plus a
//!   string's length, an object entry its key's `String` and hash slot plus the key's length, and
//!   what is held only while the tree is built counts until it is freed — the scratch list an object
//!   is gathered in (an object is built from it, so a large one is briefly there twice), the unused
//!   room of an array (grown by a quarter at a time), a bag's raw entries and their sort. Real
//!   events take 3–6 bytes per byte (Sentry's grouping corpus; the densest, an Android ANR with every
//!   thread's stack, 6.2), so only a payload built to be dense is refused — with a 413, before it takes the memory. Relay would
//!   accept such a payload and keep it whole; see the README's deliberate differences.
//!
//! Object keys of a bag are gathered with their raw JSON text borrowed from the payload (no copy)
//! and sorted before their values are parsed; that list is the only transient cost beyond the tree.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};

/// Bytes of parsed tree a payload may take per byte of its JSON (everything built counts, trimmed bags
/// too).
pub const TREE_BYTES_PER_BYTE: usize = 8;
/// Bytes of parsed tree any payload may take, however small: 4 MiB (a bag of 8,192 numbers, trimmed
/// from any length, takes 0.6 MiB; the limit must not refuse what trimming keeps for a small event).
pub const MIN_TREE_BYTES: usize = 4 << 20;
/// Entries a scratch list keeps room for between objects (a larger one is freed once used).
const SCRATCH_KEPT: usize = 256;
/// What one value costs in the tree: the `Value` itself (a string adds its length).
const VALUE_COST: usize = std::mem::size_of::<Value>();
/// What an object entry costs beyond its value: the key's `String` (plus its length) and the map's
/// hash and index.
const ENTRY_COST: usize = std::mem::size_of::<String>() + 16;
/// Relay's budget for one value of `extra` (`ExtraValue`: `max_bytes = 16384`).
pub const EXTRA_BAG_BYTES: usize = 16_384;
/// The level below a value of `extra` (the value itself is level 0) at which a container is written
/// as its JSON text (Relay's `max_depth = 7` as its processing states count levels).
pub const EXTRA_BAG_TEXT_LEVEL: usize = 5;

/// Why a payload was not parsed.
#[derive(Debug)]
pub enum ParseError {
    /// Not JSON.
    Json(serde_json::Error),
    /// Its tree would take more than [`tree_limit`] bytes.
    TooDense {
        /// The limit for this payload, in bytes of tree.
        limit: usize,
    },
}

/// Bytes of parsed tree a payload of `len` bytes may take.
pub fn tree_limit(len: usize) -> usize {
    len.saturating_mul(TREE_BYTES_PER_BYTE).max(MIN_TREE_BYTES)
}

/// Parses an event payload: `extra` trimmed as Relay trims it, a tree of at most [`tree_limit`] bytes.
pub fn parse_event(payload: &[u8]) -> Result<Value, ParseError> {
    // Read as bytes, serde_json checks each string's UTF-8 on its own; read as a `str`, not again.
    // One check of the whole payload (std's, a word at a time over ASCII) costs less. A payload
    // that is not UTF-8 is read as bytes, so that it fails where and as it did.
    match std::str::from_utf8(payload) {
        Ok(text) => parse_with(serde_json::Deserializer::from_str(text), payload.len()),
        Err(_) => parse_with(serde_json::Deserializer::from_slice(payload), payload.len()),
    }
}

fn parse_with<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
    len: usize,
) -> Result<Value, ParseError> {
    let limit = tree_limit(len);
    let budget = Budget::new(limit);
    let event = ValueSeed { budget: &budget, role: Role::Event };
    let parsed = event.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(value) => Ok(value),
        Err(_) if budget.exceeded.get() => Err(ParseError::TooDense { limit }),
        Err(e) => Err(ParseError::Json(e)),
    }
}

/// The tree bytes still allowed (`exceeded` tells a refusal from a syntax error), and the scratch
/// lists objects are gathered in before they are built at their exact size (a map grown entry by
/// entry holds up to twice the room it needs: ~40 % of a real event's tree).
struct Budget {
    left: Cell<usize>,
    exceeded: Cell<bool>,
    scratch: RefCell<Vec<Vec<(String, Value)>>>,
}

impl Budget {
    fn new(limit: usize) -> Self {
        Self { left: Cell::new(limit), exceeded: Cell::new(false), scratch: RefCell::new(Vec::new()) }
    }

    /// Builds an object from the entries `fill` gathers (into a scratch list, with
    /// [`Budget::room_for_one`]), at its exact size plus room for the entries `room` says will be added
    /// to it later, when the budget still has that room (the room is counted as built entries; without
    /// it the object is built at its exact size, never refused). The scratch list is charged to the
    /// budget while it is held: when the object is built, its entries are in both for a moment.
    fn object<E>(
        &self,
        fill: impl FnOnce(&mut Vec<(String, Value)>) -> Result<(), E>,
        room: impl FnOnce(&[(String, Value)]) -> usize,
    ) -> Result<Map<String, Value>, E> {
        let mut entries = self.scratch.borrow_mut().pop().unwrap_or_default();
        let out = fill(&mut entries).map(|()| {
            let room = room(&entries);
            let room = match self.left.get().checked_sub(room * (ENTRY_COST + VALUE_COST)) {
                Some(left) if room > 0 => {
                    self.left.set(left);
                    room
                }
                _ => 0,
            };
            let mut out = Map::with_capacity(entries.len() + room);
            out.extend(entries.drain(..));
            out
        });
        entries.clear();
        if entries.capacity() <= SCRATCH_KEPT {
            // Kept for the next object, and still counted.
            self.scratch.borrow_mut().push(entries);
        } else {
            self.release(entries.capacity() * std::mem::size_of::<(String, Value)>());
        }
        out
    }

    /// Makes room in `list` for one more item, a quarter more at a time (never doubled), taking the
    /// room it adds from the budget (`size_of::<T>()` an item).
    fn room_for_one<T, E: de::Error>(&self, list: &mut Vec<T>) -> Result<(), E> {
        if list.len() == list.capacity() {
            let add = list.len() / 4 + 4;
            self.take_bytes(add * std::mem::size_of::<T>())?;
            list.reserve_exact(add);
        }
        Ok(())
    }

    /// Pushes a built value onto an array: into room already taken, so its own `Value` is given back.
    fn push<E: de::Error>(&self, items: &mut Vec<Value>, item: Value) -> Result<(), E> {
        self.room_for_one(items)?;
        items.push(item);
        self.release(VALUE_COST);
        Ok(())
    }

    /// A complete array, cut to its size (the room it no longer holds given back).
    fn array(&self, mut items: Vec<Value>) -> Value {
        self.release((items.capacity() - items.len()) * VALUE_COST);
        items.shrink_to_fit();
        Value::Array(items)
    }

    /// Gives back `bytes` no longer held (a scratch list freed, room cut off).
    fn release(&self, bytes: usize) {
        self.left.set(self.left.get() + bytes);
    }

    /// One value without heap data of its own (a number, a boolean, `null`, an empty container).
    fn take<E: de::Error>(&self) -> Result<(), E> {
        self.take_bytes(VALUE_COST)
    }

    fn take_bytes<E: de::Error>(&self, bytes: usize) -> Result<(), E> {
        match self.left.get().checked_sub(bytes) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => {
                self.exceeded.set(true);
                Err(E::custom("event takes too much memory for its size"))
            }
        }
    }
}

/// Where a value stands, for the two places that are parsed differently.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The event: its `extra` is [`Role::Extra`].
    Event,
    /// `extra`: an object whose every value is a bag of its own ([`BagSeed`]); anything else is parsed
    /// as is and left to normalization.
    Extra,
    /// The array under a `frames` key (a stack trace's frames): its objects are [`Role::Frame`]s.
    Frames,
    /// A stack frame: built with room for the keys grouping adds to every frame ([`FRAME_ADDED_KEYS`]),
    /// so that a map is not regrown (to twice its size) per frame: an Android ANR's thousands of frames
    /// took 1.2 MiB of regrown maps per MiB of event without it.
    Frame,
    /// Any other value.
    Plain,
}

/// The keys grouping sets on a frame that lacks them (`in_app`, and `data.orig_in_app`; see
/// `grouping::enhancers`).
const FRAME_ADDED_KEYS: [&str; 2] = ["in_app", "data"];

/// A JSON value in its [`Role`], each value built taking from the budget.
#[derive(Clone, Copy)]
struct ValueSeed<'b> {
    budget: &'b Budget,
    role: Role,
}

impl<'b> ValueSeed<'b> {
    fn plain(budget: &'b Budget) -> Self {
        Self { budget, role: Role::Plain }
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.budget.take()?;
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.budget.take()?;
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.budget.take()?;
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.budget.take()?;
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.budget.take_bytes(VALUE_COST + v.len())?;
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.budget.take_bytes(VALUE_COST + v.len())?;
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.budget.take()?;
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.budget.take()?;
        let element = Self {
            budget: self.budget,
            role: if self.role == Role::Frames { Role::Frame } else { Role::Plain },
        };
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(element)? {
            self.budget.push(&mut items, item)?;
        }
        Ok(self.budget.array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.budget.take()?;
        let role = self.role;
        let out = self.budget.object(
            |entries| {
                while let Some(key) = map.next_key::<String>()? {
                    self.budget.take_bytes(ENTRY_COST + key.len())?;
                    let value = match role {
                        Role::Event if key == "extra" => {
                            map.next_value_seed(Self { budget: self.budget, role: Role::Extra })?
                        }
                        Role::Extra => {
                            let left = Cell::new(EXTRA_BAG_BYTES);
                            map.next_value_seed(BagSeed { budget: self.budget, level: 0, left: &left })?
                        }
                        _ if key == "frames" => {
                            map.next_value_seed(Self { budget: self.budget, role: Role::Frames })?
                        }
                        _ => map.next_value_seed(Self::plain(self.budget))?,
                    };
                    self.budget.room_for_one(entries)?;
                    entries.push((key, value));
                }
                Ok(())
            },
            |entries| match role {
                Role::Frame => {
                    FRAME_ADDED_KEYS.iter().filter(|k| !entries.iter().any(|(key, _)| key == *k)).count()
                }
                _ => 0,
            },
        )?;
        Ok(Value::Object(out))
    }
}

/// A value inside a bag at `level`, with the bag's bytes `left` (Relay's `size_remaining`).
#[derive(Clone, Copy)]
struct BagSeed<'b> {
    budget: &'b Budget,
    level: usize,
    left: &'b Cell<usize>,
}

impl BagSeed<'_> {
    /// Relay's `after_process`: a value spends its flat size plus one.
    fn spend(&self, flat_size: usize) {
        self.left.set(self.left.get().saturating_sub(flat_size + 1));
    }

    fn string<E: de::Error>(self, mut s: String) -> Result<Value, E> {
        trim_string(&mut s, self.left.get());
        self.budget.take_bytes(VALUE_COST + s.len())?;
        self.spend(s.len() + 2);
        Ok(Value::String(s))
    }

    fn scalar<E: de::Error>(self, value: Value, flat_size: usize) -> Result<Value, E> {
        self.budget.take()?;
        self.spend(flat_size);
        Ok(value)
    }

    fn child(self) -> Self {
        Self { level: self.level + 1, ..self }
    }

    /// A container at [`EXTRA_BAG_TEXT_LEVEL`]: its JSON text (keys sorted), as a string of the bag.
    fn as_text<E: de::Error>(self, mut value: Value) -> Result<Value, E> {
        value.sort_all_objects();
        self.string(value.to_string())
    }
}

impl<'de> DeserializeSeed<'de> for BagSeed<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for BagSeed<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.scalar(Value::Bool(v), if v { 4 } else { 5 })
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.scalar(Value::Number(v.into()), display_len(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.scalar(Value::Number(v.into()), display_len(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        // Relay sizes a float by Rust's `Display` (`1.0` counts as `1`).
        self.scalar(Number::from_f64(v).map_or(Value::Null, Value::Number), display_len(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.string(v.to_owned())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.string(v)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.scalar(Value::Null, 0)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        if self.level >= EXTRA_BAG_TEXT_LEVEL {
            let whole = ValueSeed::plain(self.budget).visit_seq(seq)?;
            return self.as_text(whole);
        }
        self.budget.take()?;
        let mut items = Vec::new();
        loop {
            if self.left.get() == 0 {
                // Relay drops the rest of the array here; skip it without building it.
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                break;
            }
            match seq.next_element_seed(self.child())? {
                Some(item) => self.budget.push(&mut items, item)?,
                None => break,
            }
        }
        self.spend(2);
        Ok(self.budget.array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        if self.level >= EXTRA_BAG_TEXT_LEVEL {
            let whole = ValueSeed::plain(self.budget).visit_map(map)?;
            return self.as_text(whole);
        }
        self.budget.take()?;
        // Relay's objects are sorted maps (the last of equal keys wins): gather the raw entries, sort
        // them, keep the last of each key, then parse the values in that order while the budget lasts.
        // The raw list (and the sort's buffer, at most its length) is charged while it is held.
        let mut raw: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::new();
        let mut owned_keys = 0;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            self.budget.room_for_one(&mut raw)?;
            if let Cow::Owned(key) = &key {
                self.budget.take_bytes(key.len())?;
                owned_keys += key.len();
            }
            raw.push((key, map.next_value::<&'de RawValue>()?));
        }
        // The list's room is taken already (`room_for_one`); the sort's buffer is at most as much again.
        let raw_bytes = raw.capacity() * std::mem::size_of::<(Cow<'de, str>, &'de RawValue)>();
        self.budget.take_bytes(raw_bytes)?;
        raw.reverse();
        raw.sort_by(|a, b| a.0.cmp(&b.0)); // stable: the last sent of equal keys comes first
        self.budget.release(raw_bytes);
        raw.dedup_by(|later, kept| later.0 == kept.0);
        let out = self.budget.object(
            |entries| {
                for (key, value) in raw.drain(..) {
                    if self.left.get() == 0 {
                        break;
                    }
                    let mut de = serde_json::Deserializer::from_str(value.get());
                    self.budget.take_bytes(ENTRY_COST + key.len())?;
                    let value = self.child().deserialize(&mut de).map_err(de::Error::custom)?;
                    self.budget.room_for_one(entries)?;
                    entries.push((key.into_owned(), value));
                }
                Ok(())
            },
            |_| 0,
        );
        self.budget.release(raw_bytes + owned_keys);
        let out = out?;
        self.spend(2);
        Ok(Value::Object(out))
    }
}

/// An object key, borrowed from the payload when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// Relay's `trim_string`: a string of more than `max_chars` characters keeps its first
/// `max_chars - 3` and ends in `...`.
fn trim_string(s: &mut String, max_chars: usize) {
    if s.chars().count() <= max_chars {
        return;
    }
    let keep = max_chars.saturating_sub(3);
    let cut = s.char_indices().nth(keep).map_or(s.len(), |(i, _)| i);
    s.truncate(cut);
    s.push_str("...");
}

/// Characters of `v`'s `Display`, counted without building the string.
fn display_len(v: impl fmt::Display) -> usize {
    struct Count(usize);
    impl fmt::Write for Count {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to a counter cannot fail.
    let _ = fmt::write(&mut count, format_args!("{v}"));
    count.0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    /// Tree bytes `payload` takes by the parser's count.
    fn spent(payload: &Value) -> usize {
        let budget = Budget::new(usize::MAX / 2);
        let text = payload.to_string();
        let mut de = serde_json::Deserializer::from_str(&text);
        let parsed = ValueSeed { budget: &budget, role: Role::Event }.deserialize(&mut de).unwrap();
        assert_eq!(&parsed, payload);
        usize::MAX / 2 - budget.left.get()
    }

    /// A stack frame is built with room for the keys grouping adds (`in_app`, `data`) that it lacks,
    /// and the room is counted as built entries; other objects, and frames near the limit, get none.
    #[test]
    fn frames_get_room_for_the_keys_grouping_adds() {
        let slot = ENTRY_COST + VALUE_COST;
        let frames =
            |frame: Value| json!({ "exception": { "values": [{ "stacktrace": { "frames": [frame] } }] } });
        let other =
            |frame: Value| json!({ "exception": { "values": [{ "stacktrace": { "framez": [frame] } }] } });
        let bare = json!({ "function": "f" });
        let complete = json!({ "function": "f", "in_app": true, "data": {} });
        assert_eq!(spent(&frames(bare.clone())), spent(&other(bare.clone())) + 2 * slot);
        assert_eq!(
            spent(&frames(json!({"function": "f", "in_app": false}))),
            spent(&other(json!({"function": "f", "in_app": false}))) + slot
        );
        assert_eq!(spent(&frames(complete.clone())), spent(&other(complete)));
        // `threads` stack traces too; a `frames` key anywhere outside `extra`.
        let threads = json!({ "threads": { "values": [{ "stacktrace": { "frames": [bare.clone(), bare.clone()] } }] } });
        let plain = json!({ "threads": { "values": [{ "stacktrace": { "framez": [bare.clone(), bare.clone()] } }] } });
        assert_eq!(spent(&threads), spent(&plain) + 4 * slot);
        // Room never causes a refusal: a budget with too little left builds the frame at its size.
        let budget = Budget::new(0);
        let built = budget.object::<()>(
            |e| {
                e.push(("function".into(), Value::Null));
                Ok(())
            },
            |_| 2,
        );
        assert_eq!(built.unwrap().len(), 1);
        assert!(!budget.exceeded.get());
    }

    /// What is held while a tree is built counts until it is freed: an object's scratch list (a large
    /// object is briefly in it and in its map), an array's unused room (given back when it is cut to
    /// size).
    #[test]
    fn what_is_held_while_building_counts() {
        let entries =
            |n: usize| -> Map<String, Value> { (0..n).map(|i| (format!("m{i:05}"), json!("1"))).collect() };
        // 30,000 entries: 3.6 MB of tree, under MIN_TREE_BYTES (4.2 MB) on its own, over it with the
        // 2.9 MB scratch list it is built from …
        let one = json!({ "modules": entries(30_000) }).to_string();
        assert!(one.len() * TREE_BYTES_PER_BYTE < MIN_TREE_BYTES);
        assert!(matches!(parse_event(one.as_bytes()), Err(ParseError::TooDense { .. })));
        // … while the same entries as ten objects of 3,000 fit.
        let split: Map<String, Value> =
            (0..10).map(|i| (format!("o{i}"), Value::Object(entries(3_000)))).collect();
        assert!(parse_event(json!({ "modules": split }).to_string().as_bytes()).is_ok());
        // An array's room is given back once it is complete: what stays counted is its items.
        let items = spent(&json!({ "a": vec![0; 10_000] })) - spent(&json!({ "a": [] }));
        assert_eq!(items, 10_000 * VALUE_COST);
    }

    fn extra(value: Value) -> Value {
        let payload = json!({ "extra": { "a": value } }).to_string();
        parse_event(payload.as_bytes()).unwrap()["extra"]["a"].take()
    }

    fn kept(item: Value) -> usize {
        extra(Value::Array(vec![item; 40_000])).as_array().unwrap().len()
    }

    /// Items of `[v, v, …]` kept in a bag of 16,384 bytes, as Relay 0.10.1 keeps them (probed with
    /// `sentry_relay.processing.StoreNormalizer`, trimming on).
    #[test]
    fn a_bag_keeps_what_relay_keeps() {
        let cases = [
            (json!(0), 8192),
            (json!(10), 5462),
            (json!(-5), 5462),
            (json!(1.0), 8192),
            (json!(0.1), 4096),
            (json!(123_456.789), 1490),
            (json!(1e20), 745),
            (json!(9_223_372_036_854_775_813_u64), 820),
            (json!(true), 3277),
            (json!(null), 16384),
            (json!("ab"), 3277),
            (json!("a\"b"), 2731),
            (json!("é"), 3277),
            (json!(""), 5462),
            (json!([]), 5462),
            (json!({}), 5462),
            (json!({"k": 1}), 3277),
            (json!([1, 2]), 2341),
        ];
        for (item, want) in cases {
            assert_eq!(kept(item.clone()), want, "{item}");
        }
        // The last of [0,0,0] items is cut short: 1,821 kept, the last as [0,0].
        let nested = extra(Value::Array(vec![json!([0, 0, 0]); 20_000]));
        let nested = nested.as_array().unwrap();
        assert_eq!((nested.len(), &nested[1820]), (1821, &json!([0, 0])));
    }

    #[test]
    fn objects_keep_their_first_keys_in_sorted_order() {
        let object: Map<String, Value> = (0..20_000).rev().map(|i| (format!("k{i:05}"), json!(0))).collect();
        let kept = extra(Value::Object(object));
        let mut keys: Vec<&String> = kept.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!((keys.len(), keys[0].as_str(), keys[8191].as_str()), (8192, "k00000", "k08191"));
        // The last of equal keys wins, as in a sorted map.
        let dup = parse_event(br#"{"extra":{"a":{"x":1,"x":2}}}"#).unwrap();
        assert_eq!(dup["extra"]["a"], json!({"x": 2}));
    }

    #[test]
    fn strings_are_cut_to_what_the_bag_has_left() {
        let two = extra(json!(["x".repeat(10_000), "y".repeat(10_000)]));
        assert_eq!(two[0].as_str().unwrap().len(), 10_000);
        let second = two[1].as_str().unwrap();
        assert_eq!((second.chars().count(), &second[second.len() - 5..]), (6381, "yy..."));
        assert_eq!(extra(json!([1, "y".repeat(20_000)]))[1].as_str().unwrap().len(), 16_382);
        assert_eq!(extra(json!("é".repeat(20_000))).as_str().unwrap().chars().count(), 16_384);
        assert_eq!(extra(json!("x".repeat(16_384))).as_str().unwrap().len(), 16_384);
    }

    #[test]
    fn containers_five_levels_down_become_their_json_text() {
        assert_eq!(
            extra(json!({"b": {"c": {"d": {"e": {"f": [1, {"z": 2, "y": 1}]}}}}})),
            json!({"b": {"c": {"d": {"e": {"f": "[1,{\"y\":1,\"z\":2}]"}}}}})
        );
        assert_eq!(extra(json!([[[[[[[1]]]]]]])), json!([[[[["[[1]]"]]]]]));
        assert_eq!(
            extra(json!({"b": {"c": {"d": {"e": {"f": 1}}}}})),
            json!({"b": {"c": {"d": {"e": {"f": 1}}}}})
        );
    }

    #[test]
    fn each_value_of_extra_is_a_bag_of_its_own() {
        let payload = json!({"extra": {"a": vec![0; 20_000], "b": vec![0; 20_000], "c": 1}}).to_string();
        let event = parse_event(payload.as_bytes()).unwrap();
        assert_eq!(event["extra"]["a"].as_array().unwrap().len(), 8192);
        assert_eq!(event["extra"]["b"].as_array().unwrap().len(), 8192);
        assert_eq!(event["extra"]["c"], json!(1));
    }

    #[test]
    fn everything_but_extra_is_parsed_as_sent_within_the_tree_limit() {
        let payload = json!({"message": "m", "tags": {"a": "b"}, "x": [1, 2.5, null, true]}).to_string();
        assert_eq!(
            parse_event(payload.as_bytes()).unwrap(),
            serde_json::from_str::<Value>(&payload).unwrap()
        );
        // A dense payload outside `extra` is refused once its tree would take more than 6 bytes per byte.
        let dense = json!({ "fingerprint": vec![0; 100_000] }).to_string();
        assert!(
            matches!(parse_event(dense.as_bytes()), Err(ParseError::TooDense { limit }) if limit == MIN_TREE_BYTES)
        );
        let dense = json!({ "fingerprint": vec![0; 1_000_000] }).to_string();
        assert!(
            matches!(parse_event(dense.as_bytes()), Err(ParseError::TooDense { limit }) if limit == dense.len() * TREE_BYTES_PER_BYTE)
        );
        // Many bags trimmed to their budget are dense too.
        let bags: Map<String, Value> = (0..64).map(|i| (format!("k{i}"), json!(vec![0; 8192]))).collect();
        let bags = json!({ "extra": bags }).to_string();
        assert!(matches!(parse_event(bags.as_bytes()), Err(ParseError::TooDense { .. })));
        // … while the same numbers in `extra` are trimmed and kept.
        let bag = json!({ "extra": { "a": vec![0; 100_000] } }).to_string();
        assert_eq!(parse_event(bag.as_bytes()).unwrap()["extra"]["a"].as_array().unwrap().len(), 8192);
        // Small payloads may be dense up to MIN_TREE_BYTES.
        let small = json!({ "fingerprint": vec![0; 30_000] }).to_string();
        assert!(parse_event(small.as_bytes()).is_ok());
    }

    #[test]
    fn deep_nesting_is_a_syntax_error_in_a_bag_too() {
        // serde_json's depth limit (128) holds for the raw values a bag re-parses as well.
        let deep = format!(
            r#"{{"extra":{{"a":{{"b":{{"c":{{"d":{{"e":{}{}}}}}}}}}}}}}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert!(matches!(parse_event(deep.as_bytes()), Err(ParseError::Json(_))));
        let deep = format!(r#"{{"extra":{{"a":{}{}}}}}"#, "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(parse_event(deep.as_bytes()), Err(ParseError::Json(_))));
        let fine = format!(r#"{{"extra":{{"a":{}{}}}}}"#, "[".repeat(100), "]".repeat(100));
        assert!(parse_event(fine.as_bytes()).is_ok());
    }

    /// A payload is read as a `str` when it is UTF-8 and as bytes when not: the tree is the same;
    /// invalid UTF-8 fails where serde_json's own reading of the bytes fails, with its message (in a
    /// string, outside one, in a bag's raw text), and passes where that reading skips it unread.
    #[test]
    fn utf8_is_checked_once_and_failures_stay_where_they_were() {
        let text = r#"{"message":"naïve ✓ \u00e9","extra":{"k":{"z":"ü","a":["日本"]}},"tags":[["a","ß"]]}"#;
        let tree = parse_event(text.as_bytes()).unwrap();
        assert_eq!(tree["message"], json!("naïve ✓ é"));
        assert_eq!(tree["extra"]["k"], json!({"a": ["日本"], "z": "ü"}));
        assert_eq!(tree["tags"], json!([["a", "ß"]]));
        for bad in [
            &b"{\"message\":\"a\xff\"}"[..],
            b"{\"message\":\"ok\"}\xc3",
            b"{\"extra\":{\"k\":{\"z\":\"\xe6\x97\"}}}",
            // Valid UTF-8 read as a `str`: a byte-order mark is refused as reading bytes refuses it.
            b"\xef\xbb\xbf{}",
        ] {
            let Err(ParseError::Json(ours)) = parse_event(bad) else { panic!("{bad:?} parsed") };
            let theirs = serde_json::from_slice::<Value>(bad).unwrap_err();
            assert_eq!(ours.to_string(), theirs.to_string(), "{bad:?}");
        }
        // The rest of an array a bag has no bytes left for is skipped unread, invalid UTF-8 and all.
        let mut skipped = format!(r#"{{"extra":{{"a":["{}","#, "x".repeat(EXTRA_BAG_BYTES)).into_bytes();
        skipped.extend_from_slice(b"\"\xff\"]}}");
        let tree = parse_event(&skipped).unwrap();
        assert_eq!(tree["extra"]["a"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn syntax_errors_and_non_objects_are_told_apart() {
        assert!(matches!(parse_event(b"{\"a\":"), Err(ParseError::Json(_))));
        assert!(matches!(parse_event(b"{} x"), Err(ParseError::Json(_))));
        assert_eq!(parse_event(b"[1]").unwrap(), json!([1]));
        assert_eq!(parse_event(b"\"s\"").unwrap(), json!("s"));
    }
}
