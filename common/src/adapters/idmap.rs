//! The loader's client-side id map: for each ID space, every node id read
//! from the node files and the internal id (`id(n)`) the store gave that
//! node. Built while the nodes are written; relationships are resolved
//! through it, so each relationship row finds exactly one start and one end
//! node, or is dangling. A second node with an id already in its ID space is
//! a duplicate, detected here exactly (ids are compared byte for byte, not by
//! hash).
//!
//! Ids are compared as text, as neo4j-admin does with its default
//! `--id-type=string`: a string column and an integer column holding `1`
//! name the same node. ID spaces are independent of each other and of labels.
//!
//! Size: a `hashbrown` table per ID space holds, per node, a 20-byte slot:
//! the id itself when it is at most 11 bytes long (the common case: integer
//! ids up to 11 digits, short codes), else the id's offset in one byte arena
//! where the longer ids of the space are stored one after another (each
//! after its length as a LEB128 varint); and the internal id. With the
//! table's control byte that is 21 bytes a slot, and the table is 7/16 to
//! 7/8 full: 24 to 48 bytes a node, plus the id's length plus one for a long
//! id. One million ids `p0`…`p999999` in one space: 2^21 buckets, 44 bytes
//! a node (`heap_bytes`, checked by a test). The slots of a space are spread
//! over 16 tables, so a table's doubling (old and new slots side by side
//! while it moves them) adds a sixteenth of the map to the peak, not twice
//! the map.
//!
//! Speed: a short id is found in its slot with no second memory access (the
//! arena costs one more cache miss a lookup, which on a table of a million
//! ids is most of a lookup's time); a claim is one probe (find or insert);
//! an integer id becomes its text on the stack ([`IdKey`]), not on the heap;
//! a batch looks its ID space up once ([`IdMap::space`]), not once a row.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use hashbrown::hash_table::Entry;
use hashbrown::HashTable;

use crate::adapters::graph::{NodeRef, Value};

/// Not yet written: claimed by a batch in flight.
const PENDING: NodeRef = NodeRef::MIN;

/// Longest id kept in its slot.
const INLINE: usize = 11;

/// A slot's first key byte when the id is in the arena.
const IN_ARENA: u8 = 0xff;

/// One id and its node. `key`: the id's length (0..=11) and its bytes, or
/// [`IN_ARENA`] and the id's offset in the arena (bytes 4..12, little
/// endian). Byte arrays only, so a slot is 20 bytes with no padding.
#[derive(Debug, Clone, Copy)]
struct Slot {
    key: [u8; 12],
    node: [u8; 8],
}

impl Slot {
    fn node(&self) -> NodeRef {
        NodeRef::from_le_bytes(self.node)
    }

    fn arena_at(&self) -> Option<u64> {
        if self.key[0] != IN_ARENA {
            return None;
        }
        let mut at = [0u8; 8];
        at.copy_from_slice(&self.key[4..12]);
        Some(u64::from_le_bytes(at))
    }

    /// The id this slot holds.
    fn id<'a>(&'a self, arena: &'a [u8]) -> &'a [u8] {
        match self.arena_at() {
            Some(at) => read(arena, at),
            None => &self.key[1..1 + usize::from(self.key[0]).min(INLINE)],
        }
    }
}

/// What a lookup compares slots with: the inline key of a short id, or the
/// id's bytes for a long one.
enum Probe<'a> {
    Inline([u8; 12]),
    Long(&'a [u8]),
}

impl<'a> Probe<'a> {
    fn new(id: &'a [u8]) -> Probe<'a> {
        if id.len() > INLINE {
            return Probe::Long(id);
        }
        let mut key = [0u8; 12];
        key[0] = id.len() as u8;
        key[1..1 + id.len()].copy_from_slice(id);
        Probe::Inline(key)
    }

    fn matches(&self, slot: &Slot, arena: &[u8]) -> bool {
        match self {
            Probe::Inline(key) => slot.key == *key,
            Probe::Long(id) => slot.arena_at().is_some_and(|at| read(arena, at) == *id),
        }
    }
}

/// The id stored at `at`.
fn read(arena: &[u8], at: u64) -> &[u8] {
    let mut len: u64 = 0;
    let mut shift = 0;
    let mut i = usize::try_from(at).unwrap_or(usize::MAX);
    while let Some(&b) = arena.get(i) {
        len |= u64::from(b & 0x7f) << shift;
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let end = i.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
    arena.get(i..end).unwrap_or_default()
}

/// Appends `id` to the arena; returns where it starts.
fn append(arena: &mut Vec<u8>, id: &[u8]) -> u64 {
    let at = arena.len() as u64;
    let mut len = id.len() as u64;
    loop {
        let b = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            arena.push(b);
            break;
        }
        arena.push(b | 0x80);
    }
    arena.extend_from_slice(id);
    at
}

/// Tables an ID space's slots are spread over, by four bits of the id's
/// hash (bits 48..52: neither the bits a table places a slot by, nor the 7
/// top bits of its control byte).
const SHARDS: usize = 16;

fn shard(hash: u64) -> usize {
    ((hash >> 48) as usize) % SHARDS
}

/// The ids of one ID space, in [`SHARDS`] tables: a table doubles when it
/// is 7/8 full and holds the old and the new slots while it moves them, so
/// one table of a million ids would briefly need three times its slots;
/// sixteen grow one after another, and the moment's extra is a sixteenth.
#[derive(Debug, Default)]
pub struct Space {
    arena: Vec<u8>,
    shards: [HashTable<Slot>; SHARDS],
    hasher: RandomState,
}

impl Space {
    /// Claims `id` for a node about to be written: false if the space
    /// already has it (a duplicate). One probe.
    pub fn claim(&mut self, id: &str) -> bool {
        let id = id.as_bytes();
        let Space {
            arena,
            shards,
            hasher,
        } = self;
        let probe = Probe::new(id);
        let hash = hasher.hash_one(id);
        let entry = shards[shard(hash)].entry(
            hash,
            |slot| probe.matches(slot, arena),
            |slot| hasher.hash_one(slot.id(arena)),
        );
        let Entry::Vacant(vacant) = entry else {
            return false;
        };
        let key = match probe {
            Probe::Inline(key) => key,
            Probe::Long(_) => {
                let mut key = [0u8; 12];
                key[0] = IN_ARENA;
                key[4..12].copy_from_slice(&(arena.len() as u64).to_le_bytes());
                key
            }
        };
        vacant.insert(Slot {
            key,
            node: PENDING.to_le_bytes(),
        });
        if key[0] == IN_ARENA {
            append(arena, id);
        }
        true
    }

    /// Records the internal id of a claimed node.
    pub fn set(&mut self, id: &str, node: NodeRef) {
        let id = id.as_bytes();
        let probe = Probe::new(id);
        let hash = self.hasher.hash_one(id);
        let arena = &self.arena;
        if let Some(slot) =
            self.shards[shard(hash)].find_mut(hash, |slot| probe.matches(slot, arena))
        {
            slot.node = node.to_le_bytes();
        }
    }

    /// The internal id of `id`, if that node was written.
    pub fn get(&self, id: &str) -> Option<NodeRef> {
        let id = id.as_bytes();
        let probe = Probe::new(id);
        let hash = self.hasher.hash_one(id);
        self.shards[shard(hash)]
            .find(hash, |slot| probe.matches(slot, &self.arena))
            .map(Slot::node)
            .filter(|n| *n != PENDING)
    }

    fn len(&self) -> usize {
        self.shards.iter().map(HashTable::len).sum()
    }

    fn heap_bytes(&self) -> usize {
        // `capacity` is 7/8 of a table's buckets (a power of two), each a
        // slot and a control byte.
        let buckets: usize = self
            .shards
            .iter()
            .map(|t| match t.capacity() {
                0 => 0,
                c if c < 8 => c + 1,
                c => (c * 8 / 7).next_power_of_two(),
            })
            .sum();
        self.arena.capacity() + buckets * (std::mem::size_of::<Slot>() + 1)
    }
}

/// Every ID space's ids.
#[derive(Debug, Default)]
pub struct IdMap {
    spaces: HashMap<String, Space>,
}

/// An id cell as map key text, without a heap allocation: a string cell as
/// it is, an integer as its decimal text (the same text a string column
/// would hold for it).
#[derive(Debug, Clone, Copy)]
pub enum IdKey<'a> {
    /// A string cell.
    Text(&'a str),
    /// An integer's decimal text: `len` bytes of `digits` (an `i64` has at
    /// most 20 with its sign).
    Int {
        /// Bytes used.
        len: u8,
        /// The text.
        digits: [u8; 20],
    },
}

impl IdKey<'_> {
    /// The id's text.
    pub fn as_str(&self) -> &str {
        match self {
            IdKey::Text(s) => s,
            IdKey::Int { len, digits } => digits
                .get(..usize::from(*len))
                .and_then(|d| std::str::from_utf8(d).ok())
                .unwrap_or_default(),
        }
    }
}

impl std::ops::Deref for IdKey<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for IdKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An id cell as map key text; an error for a value that cannot be an id.
pub fn id_key(v: Value<'_>) -> Result<IdKey<'_>, String> {
    match v {
        Value::Str(s) => Ok(IdKey::Text(s)),
        Value::Int(i) => {
            let mut buffer = itoa::Buffer::new();
            let text = buffer.format(i).as_bytes();
            let mut digits = [0u8; 20];
            digits[..text.len()].copy_from_slice(text);
            Ok(IdKey::Int {
                len: text.len() as u8,
                digits,
            })
        }
        Value::Null => Err("is empty".into()),
        Value::Float(f) => Err(format!("holds the float {f}; ids are strings or integers")),
        Value::Bool(b) => Err(format!(
            "holds the boolean {b}; ids are strings or integers"
        )),
        Value::Cell(_) => {
            Err("holds an array, temporal value or point; ids are strings or integers".into())
        }
    }
}

impl IdMap {
    /// The ids of `space`, if it has any.
    pub fn space(&self, space: &str) -> Option<&Space> {
        self.spaces.get(space)
    }

    /// The ids of `space`, created empty on first use.
    pub fn space_mut(&mut self, space: &str) -> &mut Space {
        self.spaces.entry(space.to_owned()).or_default()
    }

    /// Claims `id` in `space` (see [`Space::claim`]).
    pub fn claim(&mut self, space: &str, id: &str) -> bool {
        self.space_mut(space).claim(id)
    }

    /// Records the internal id of a claimed node.
    pub fn set(&mut self, space: &str, id: &str, node: NodeRef) {
        if let Some(s) = self.spaces.get_mut(space) {
            s.set(id, node);
        }
    }

    /// The internal id of `id` in `space`, if that node was written.
    pub fn get(&self, space: &str, id: &str) -> Option<NodeRef> {
        self.spaces.get(space)?.get(id)
    }

    /// Ids held, over all spaces.
    pub fn len(&self) -> usize {
        self.spaces.values().map(Space::len).sum()
    }

    /// No id recorded yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held by the tables (buckets) and arenas (capacity).
    pub fn heap_bytes(&self) -> usize {
        self.spaces.values().map(Space::heap_bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_per_space_and_exact() {
        let mut m = IdMap::default();
        assert!(m.claim("User", "x"));
        assert!(m.claim("Admin", "x"), "spaces are independent");
        assert!(!m.claim("User", "x"), "a duplicate");
        assert!(m.claim("User", "X"), "case matters");
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn only_written_nodes_resolve() {
        let mut m = IdMap::default();
        m.claim("P", "a");
        assert_eq!(m.get("P", "a"), None, "claimed, not yet written");
        m.set("P", "a", 0);
        assert_eq!(m.get("P", "a"), Some(0));
        assert_eq!(m.get("Q", "a"), None);
        assert_eq!(m.get("P", "b"), None);
        m.set("P", "never claimed", 5);
        assert_eq!(m.get("P", "never claimed"), None);
    }

    #[test]
    fn ids_compare_as_text() {
        assert_eq!(id_key(Value::Int(17)).unwrap().as_str(), "17");
        assert_eq!(id_key(Value::Str("17")).unwrap().as_str(), "17");
        for i in [0, -1, i64::MIN, i64::MAX, 10_000_000_000] {
            assert_eq!(id_key(Value::Int(i)).unwrap().as_str(), i.to_string());
        }
        let mut m = IdMap::default();
        assert!(m.claim("S", &id_key(Value::Int(-42)).unwrap()));
        assert!(!m.claim("S", "-42"), "an integer and its text are one id");
        assert!(id_key(Value::Float(1.5)).unwrap_err().contains("float"));
        assert!(id_key(Value::Null).is_err());
    }

    #[test]
    fn ids_of_any_length_round_trip_through_the_arena() {
        let mut m = IdMap::default();
        let long = "x".repeat(300);
        // Around the inline limit (11 bytes), ids that differ only in
        // trailing NULs or length, and bytes that look like the arena marker.
        let ids = [
            "",
            "a",
            &long,
            "ü日本",
            "a\u{0}b",
            "a\u{0}",
            "a\u{0}\u{0}",
            "12345678901",
            "123456789012",
            "1234567890123",
            "\u{7f}ÿÿÿÿÿ",
            "\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}",
            "\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}",
        ];
        for (i, id) in ids.iter().enumerate() {
            assert!(m.claim("S", id), "{id:?}");
            m.set("S", id, i as NodeRef);
        }
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(m.get("S", id), Some(i as NodeRef), "{id:?}");
            assert!(!m.claim("S", id));
        }
        assert_eq!(m.get("S", "x"), None);
    }

    #[test]
    fn long_and_short_ids_survive_the_table_growing() {
        let mut m = IdMap::default();
        let id = |i: i64| {
            if i % 3 == 0 {
                format!("customer-0000-{i:012}")
            } else {
                format!("c{i}")
            }
        };
        let n = 200_000;
        for i in 0..n {
            assert!(m.claim("C", &id(i)));
            m.set("C", &id(i), i);
        }
        for i in 0..n {
            assert_eq!(m.get("C", &id(i)), Some(i), "{}", id(i));
            assert!(!m.claim("C", &id(i)), "{} again", id(i));
        }
        assert_eq!(m.get("C", &id(n)), None);
        assert_eq!(m.len(), n as usize);
    }

    #[test]
    fn a_million_ids_stay_exact_and_compact() {
        let mut m = IdMap::default();
        let n = 1_000_000;
        for i in 0..n {
            let id = format!("p{i}");
            assert!(m.claim("Person", &id));
            m.set("Person", &id, i);
        }
        for i in (0..n).step_by(997) {
            assert_eq!(m.get("Person", &format!("p{i}")), Some(i));
        }
        assert!(!m.claim("Person", "p999999"));
        assert_eq!(m.get("Person", "p1000000"), None);
        let per_node = m.heap_bytes() as f64 / n as f64;
        assert_eq!(std::mem::size_of::<Slot>(), 20);
        // 2^21 buckets of 21 bytes for a million ids, no arena.
        assert!(per_node < 45.0, "{per_node} bytes a node");
    }
}
