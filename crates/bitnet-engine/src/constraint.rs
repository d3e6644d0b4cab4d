//! Constrained decoding: only tokens that keep the output a valid prefix of a JSON value (any
//! JSON object, or a value valid against a JSON Schema) may be sampled.
//!
//! Three parts:
//! - [`Grammar`]: a JSON Schema (the subset listed in [`Grammar::from_schema`]) compiled into
//!   a small graph of value nodes (object with properties in order, array, string, number,
//!   literal set, alternatives). llama.cpp's `json-schema-to-grammar` is the model: required
//!   properties in order, optional ones may be skipped, additional properties after the known
//!   ones, bounded whitespace.
//! - [`Recognizer`]: an incremental pushdown recognizer over bytes. Its state is a small set of
//!   stacks of `Copy` frames (one stack per live alternative of an `anyOf`), so testing a
//!   token is a cheap clone into a reused scratch recognizer and a few byte steps.
//! - [`TokenConstraint`]: the per-sequence hook that [`crate::Decoder`] calls. It first lets
//!   the sampler draw as usual and keeps the draw when allowed (llama.cpp's grammar sampler
//!   does the same: rejection sampling then gives the masked distribution); otherwise it
//!   walks the vocabulary in descending logit order (in growing chunks, so a constrained
//!   position rarely sorts the whole 128k vocabulary), keeps the allowed tokens and draws
//!   again from logits where every other token is `-inf`.
//!
//! Bounds that keep every generation finite and the recognizer small: at most
//! one space, or one newline and [`MAX_WS`] spaces, per gap, integers of at most 16 digits
//! (fraction 16, exponent 2, so every number is a finite double), free object keys of at most 64 characters, nesting depth [`MAX_DEPTH`]. Strings
//! without `maxLength` are unbounded (`max_tokens` bounds them). Once the value is complete
//! the generation ends (no trailing text); a root number ends at end of sequence.

use std::collections::HashMap;
use std::sync::Arc;

use bitnet_tokenizer::Tokenizer;
use serde_json::Value;

/// Most indentation bytes after the one newline a gap between two tokens of JSON may hold, so
/// a model cannot loop on whitespace. llama.cpp allows 20; 8 is enough for 2-space pretty
/// printing four levels deep, and keeps a small model from spending its tokens on
/// indentation (the embedded model took ~75 tokens for the test schema's object with 8,
/// 55-112 with 20).
pub const MAX_WS: u8 = 8;
/// Deepest nesting of values.
pub const MAX_DEPTH: usize = 32;
/// Most live alternatives (stacks) the recognizer keeps.
const MAX_STACKS: usize = 64;
const MAX_INT_DIGITS: u8 = 16;
const MAX_FRAC_DIGITS: u8 = 16;
const MAX_EXP_DIGITS: u8 = 2;
const MAX_FREE_KEY: u32 = 64;
/// Most properties of one object schema (the key matcher keeps a 64-bit mask).
pub const MAX_PROPERTIES: usize = 64;
/// Most tokens a constrained draw considers (in logit order).
const MAX_ALLOWED: usize = 256;

/// A schema the compiler cannot turn into a grammar: unsupported keyword, wrong type, bad
/// `$ref`, ...
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("JSON schema at '{path}': {message}")]
pub struct SchemaError {
    /// JSON pointer of the offending schema (`#` is the root).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

type NodeId = u32;

#[derive(Debug, Clone)]
struct Prop {
    /// The property name as written inside the quotes (JSON-escaped), followed by `"`.
    key: Vec<u8>,
    node: NodeId,
    required: bool,
}

#[derive(Debug, Clone)]
enum Node {
    Object {
        props: Vec<Prop>,
        additional: Option<NodeId>,
    },
    Array {
        items: NodeId,
        min: u32,
        max: u32,
    },
    String {
        min: u32,
        max: u32,
    },
    Number {
        integer: bool,
    },
    /// Exact serialisations (compact JSON), sorted and deduplicated.
    Literal(Vec<Vec<u8>>),
    /// Any of these (flattened at compile time into [`Grammar::alts`]).
    AnyOf(Vec<NodeId>),
}

/// A compiled JSON grammar; see the module doc. Cheap to share (`Arc`).
#[derive(Debug, Clone)]
pub struct Grammar {
    nodes: Vec<Node>,
    /// For each node, the concrete (non-`AnyOf`) nodes a value of it may be.
    alts: Vec<Vec<NodeId>>,
    root: NodeId,
}

/// The key order of every object of a JSON document, by JSON pointer (`""` is the root):
/// `serde_json::Value` keeps keys sorted, so the order a schema's author wrote its
/// `properties` in is read from the text separately ([`key_order`]).
pub type KeyOrder = HashMap<String, Vec<String>>;

/// Reads the key order of every object in the JSON `text` (empty when it is not JSON).
pub fn key_order(text: &[u8]) -> KeyOrder {
    let mut out = KeyOrder::new();
    let mut de = serde_json::Deserializer::from_slice(text);
    let _ = serde::de::DeserializeSeed::deserialize(
        OrderSeed {
            path: String::new(),
            out: &mut out,
        },
        &mut de,
    );
    out
}

struct OrderSeed<'o> {
    path: String,
    out: &'o mut KeyOrder,
}

impl<'de> serde::de::DeserializeSeed<'de> for OrderSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for OrderSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        loop {
            let seed = OrderSeed {
                path: format!("{}/{i}", self.path),
                out: &mut *self.out,
            };
            if seq.next_element_seed(seed)?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys = Vec::new();
        while let Some(k) = map.next_key::<String>()? {
            let seed = OrderSeed {
                path: format!("{}/{}", self.path, escape(&k)),
                out: &mut *self.out,
            };
            map.next_value_seed(seed)?;
            keys.push(k);
        }
        self.out.insert(self.path, keys);
        Ok(())
    }
}

struct Compiler<'a> {
    root: &'a Value,
    /// Key order of the schema's text, and the schema's pointer in that text.
    order: Option<(&'a KeyOrder, &'a str)>,
    nodes: Vec<Node>,
    refs: HashMap<String, NodeId>,
    any: Option<NodeId>,
}

const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "$schema",
    "$id",
    "$comment",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$defs",
    "definitions",
];

impl Compiler<'_> {
    fn push(&mut self, n: Node) -> NodeId {
        self.nodes.push(n);
        (self.nodes.len() - 1) as NodeId
    }

    /// Any JSON value.
    fn any(&mut self) -> NodeId {
        if let Some(a) = self.any {
            return a;
        }
        let id = self.push(Node::AnyOf(Vec::new()));
        self.any = Some(id);
        let obj = self.push(Node::Object {
            props: Vec::new(),
            additional: Some(id),
        });
        let arr = self.push(Node::Array {
            items: id,
            min: 0,
            max: u32::MAX,
        });
        let s = self.push(Node::String {
            min: 0,
            max: u32::MAX,
        });
        let n = self.push(Node::Number { integer: false });
        let l = self.push(literals(&["true", "false", "null"]));
        self.nodes[id as usize] = Node::AnyOf(vec![obj, arr, s, n, l]);
        id
    }

    fn err(path: &str, message: impl Into<String>) -> SchemaError {
        SchemaError {
            path: path.to_string(),
            message: message.into(),
        }
    }

    fn count(v: &Value, path: &str, key: &str) -> Result<Option<u32>, SchemaError> {
        match v.get(key) {
            None => Ok(None),
            Some(x) => x
                .as_u64()
                .map(|n| Some(n.min(u32::MAX as u64) as u32))
                .ok_or_else(|| Self::err(path, format!("'{key}' must be a non-negative integer"))),
        }
    }

    fn compile(&mut self, s: &Value, path: &str, depth: usize) -> Result<NodeId, SchemaError> {
        if depth > 64 {
            return Err(Self::err(path, "the schema nests too deeply"));
        }
        let obj = match s {
            Value::Bool(true) => return Ok(self.any()),
            Value::Bool(false) => {
                return Err(Self::err(path, "the schema 'false' accepts no value"));
            }
            Value::Object(o) => o,
            _ => return Err(Self::err(path, "a schema must be an object or a boolean")),
        };
        const KNOWN: &[&str] = &[
            "type",
            "properties",
            "required",
            "additionalProperties",
            "items",
            "enum",
            "const",
            "minItems",
            "maxItems",
            "minLength",
            "maxLength",
            "anyOf",
            "oneOf",
            "$ref",
        ];
        if let Some(k) = obj
            .keys()
            .find(|k| !KNOWN.contains(&k.as_str()) && !ANNOTATIONS.contains(&k.as_str()))
        {
            return Err(Self::err(
                path,
                format!(
                    "unsupported keyword '{k}' (supported: {})",
                    KNOWN.join(", ")
                ),
            ));
        }
        if let Some(r) = obj.get("$ref") {
            let r = r
                .as_str()
                .ok_or_else(|| Self::err(path, "'$ref' must be a string"))?;
            return self.reference(r, path, depth);
        }
        if let Some(c) = obj.get("const") {
            return Ok(self.push(Node::Literal(vec![compact(c)])));
        }
        if let Some(e) = obj.get("enum") {
            let values = e
                .as_array()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| Self::err(path, "'enum' must be a non-empty array"))?;
            if values.len() > u16::MAX as usize {
                return Err(Self::err(path, "'enum' has more than 65535 values"));
            }
            let mut lits: Vec<Vec<u8>> = values.iter().map(compact).collect();
            lits.sort();
            lits.dedup();
            return Ok(self.push(Node::Literal(lits)));
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(list) = obj.get(key) {
                let list = list
                    .as_array()
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| Self::err(path, format!("'{key}' must be a non-empty array")))?;
                let mut alts = Vec::with_capacity(list.len());
                for (i, sub) in list.iter().enumerate() {
                    alts.push(self.compile(sub, &format!("{path}/{key}/{i}"), depth + 1)?);
                }
                return Ok(self.push(Node::AnyOf(alts)));
            }
        }
        let types: Vec<&str> = match obj.get("type") {
            None if obj.contains_key("properties") || obj.contains_key("additionalProperties") => {
                vec!["object"]
            }
            None if obj.contains_key("items") => vec!["array"],
            None => return Ok(self.any()),
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) if !ts.is_empty() => ts
                .iter()
                .map(|t| {
                    t.as_str()
                        .ok_or_else(|| Self::err(path, "'type' entries must be strings"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(Self::err(
                    path,
                    "'type' must be a string or a non-empty array",
                ));
            }
        };
        let mut alts = Vec::with_capacity(types.len());
        for t in types {
            let node = match t {
                "object" => self.object(obj, path, depth)?,
                "array" => {
                    let items = match obj.get("items") {
                        None => self.any(),
                        Some(i) => self.compile(i, &format!("{path}/items"), depth + 1)?,
                    };
                    let min = Self::count(s, path, "minItems")?.unwrap_or(0);
                    let max = Self::count(s, path, "maxItems")?.unwrap_or(u32::MAX);
                    if min > max {
                        return Err(Self::err(path, "'minItems' is larger than 'maxItems'"));
                    }
                    self.push(Node::Array { items, min, max })
                }
                "string" => {
                    let min = Self::count(s, path, "minLength")?.unwrap_or(0);
                    let max = Self::count(s, path, "maxLength")?.unwrap_or(u32::MAX);
                    if min > max {
                        return Err(Self::err(path, "'minLength' is larger than 'maxLength'"));
                    }
                    self.push(Node::String { min, max })
                }
                "number" => self.push(Node::Number { integer: false }),
                "integer" => self.push(Node::Number { integer: true }),
                "boolean" => self.push(literals(&["false", "true"])),
                "null" => self.push(literals(&["null"])),
                other => {
                    return Err(Self::err(
                        path,
                        format!(
                            "unknown type '{other}' (object, array, string, number, integer, \
                             boolean, null)"
                        ),
                    ));
                }
            };
            alts.push(node);
        }
        Ok(if alts.len() == 1 {
            alts[0]
        } else {
            self.push(Node::AnyOf(alts))
        })
    }

    fn object(
        &mut self,
        obj: &serde_json::Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<NodeId, SchemaError> {
        let required: Vec<&str> = match obj.get("required") {
            None => Vec::new(),
            Some(Value::Array(r)) => r
                .iter()
                .map(|x| {
                    x.as_str()
                        .ok_or_else(|| Self::err(path, "'required' entries must be strings"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(Self::err(path, "'required' must be an array of names")),
        };
        let mut props = Vec::new();
        if let Some(p) = obj.get("properties") {
            let p = p
                .as_object()
                .ok_or_else(|| Self::err(path, "'properties' must be an object"))?;
            if p.len() > MAX_PROPERTIES {
                return Err(Self::err(
                    path,
                    format!("more than {MAX_PROPERTIES} properties are not supported"),
                ));
            }
            // The author's order when the text gave it, else the map's (sorted).
            let pointer = format!("{}/properties", path.trim_start_matches('#'));
            let names: Vec<&String> = match self
                .order
                .and_then(|(o, base)| o.get(&format!("{base}{pointer}")))
            {
                Some(keys) if keys.len() == p.len() => keys.iter().collect(),
                _ => p.keys().collect(),
            };
            for name in names {
                let Some(sub) = p.get(name) else { continue };
                let node = self.compile(
                    sub,
                    &format!("{path}/properties/{}", escape(name)),
                    depth + 1,
                )?;
                let mut key = compact(&Value::String(name.clone()));
                key.remove(0); // the opening quote; the closing one ends the key
                props.push(Prop {
                    key,
                    node,
                    required: required.contains(&name.as_str()),
                });
            }
        }
        if let Some(r) = required.iter().find(|r| {
            !props
                .iter()
                .any(|p| p.key[..p.key.len() - 1] == *r.as_bytes())
        }) {
            return Err(Self::err(
                path,
                format!("required property '{r}' is not in 'properties'"),
            ));
        }
        let additional = match obj.get("additionalProperties") {
            None | Some(Value::Bool(true)) => Some(self.any()),
            Some(Value::Bool(false)) => None,
            Some(s) => Some(self.compile(s, &format!("{path}/additionalProperties"), depth + 1)?),
        };
        Ok(self.push(Node::Object { props, additional }))
    }

    fn reference(&mut self, r: &str, path: &str, depth: usize) -> Result<NodeId, SchemaError> {
        if let Some(&id) = self.refs.get(r) {
            return Ok(id);
        }
        let pointer = r
            .strip_prefix('#')
            .filter(|p| p.starts_with("/$defs/") || p.starts_with("/definitions/"))
            .ok_or_else(|| {
                Self::err(
                    path,
                    format!("'$ref' {r} is not supported (only #/$defs/... and #/definitions/...)"),
                )
            })?;
        let target = self
            .root
            .pointer(pointer)
            .ok_or_else(|| Self::err(path, format!("'$ref' {r} points to nothing")))?;
        // Reserve the id first: a recursive schema refers to itself.
        let id = self.push(Node::AnyOf(Vec::new()));
        self.refs.insert(r.to_string(), id);
        let body = self.compile(target, r, depth + 1)?;
        self.nodes[id as usize] = Node::AnyOf(vec![body]);
        Ok(id)
    }
}

/// A key as a JSON pointer segment.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn compact(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

fn literals(l: &[&str]) -> Node {
    let mut v: Vec<Vec<u8>> = l.iter().map(|s| s.as_bytes().to_vec()).collect();
    v.sort();
    Node::Literal(v)
}

impl Grammar {
    /// Any JSON object.
    pub fn any_object() -> Self {
        Self::from_schema(&serde_json::json!({"type": "object"}))
            .expect("the any-object schema compiles")
    }

    /// Compiles a JSON Schema. Supported: `type` (object, array, string, number, integer,
    /// boolean, null, or a list of them), `properties` (generated in the map's order, which is
    /// alphabetical for a `serde_json::Value`: [`Grammar::from_schema_in_order`] keeps the
    /// author's), `required`,
    /// `additionalProperties` (false, true or a schema; additional keys come after the known
    /// ones), `items`, `enum`, `const`, `minItems`, `maxItems`, `minLength`, `maxLength`,
    /// `anyOf`, `oneOf` (treated as `anyOf`), `$ref` to `#/$defs/...` or
    /// `#/definitions/...` (recursion allowed), and annotations (`title`, `description`,
    /// ...). Any other keyword is an error naming it, rather than output that silently
    /// ignores it.
    pub fn from_schema(schema: &Value) -> Result<Self, SchemaError> {
        Self::compile(schema, None)
    }

    /// [`Grammar::from_schema`], with `properties` in the order written in the text the
    /// schema was read from: `order` is that text's [`key_order`], `base` the schema's JSON
    /// pointer in it (`""` when the text is the schema).
    pub fn from_schema_in_order(
        schema: &Value,
        order: &KeyOrder,
        base: &str,
    ) -> Result<Self, SchemaError> {
        Self::compile(schema, Some((order, base)))
    }

    fn compile(schema: &Value, order: Option<(&KeyOrder, &str)>) -> Result<Self, SchemaError> {
        let mut c = Compiler {
            root: schema,
            order,
            nodes: Vec::new(),
            refs: HashMap::new(),
            any: None,
        };
        let root = c.compile(schema, "#", 0)?;
        let nodes = c.nodes;
        let alts = (0..nodes.len())
            .map(|i| {
                let mut out = Vec::new();
                flatten(&nodes, i as NodeId, &mut out, 0);
                out
            })
            .collect();
        Ok(Self { nodes, alts, root })
    }

    /// A fresh recognizer at the start of the value.
    pub fn recognizer(self: &Arc<Self>) -> Recognizer {
        Recognizer {
            g: Arc::clone(self),
            stacks: vec![vec![Frame::Root { done: false, ws: 0 }]],
            next: Vec::new(),
            pool: Vec::new(),
        }
    }
}

fn flatten(nodes: &[Node], id: NodeId, out: &mut Vec<NodeId>, depth: usize) {
    if depth > 32 {
        return; // a $ref cycle without progress: no value
    }
    match &nodes[id as usize] {
        Node::AnyOf(alts) => {
            for &a in alts {
                flatten(nodes, a, out, depth + 1);
            }
        }
        _ => {
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }
}

/// Incremental UTF-8 / JSON string-body state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Str {
    /// 0: plain; 1: after `\`; 2..=5: expecting hex digit 1..4 of `\u`; 6: hex digit 2 after
    /// a leading `d` (no surrogates: serde_json and others refuse a lone one).
    esc: u8,
    /// Continuation bytes still expected, and the range of the next one.
    need: u8,
    lo: u8,
    hi: u8,
    /// Characters so far.
    len: u32,
}

enum StrStep {
    Cont,
    Close,
    Reject,
}

impl Str {
    fn step(&mut self, b: u8, max: u32) -> StrStep {
        if self.need > 0 {
            if b < self.lo || b > self.hi {
                return StrStep::Reject;
            }
            self.need -= 1;
            (self.lo, self.hi) = (0x80, 0xBF);
            return StrStep::Cont;
        }
        match self.esc {
            0 => {}
            1 => {
                self.esc = match b {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => 0,
                    b'u' => 2,
                    _ => return StrStep::Reject,
                };
                return StrStep::Cont;
            }
            _ => {
                if !b.is_ascii_hexdigit() || (self.esc == 6 && !(b'0'..=b'7').contains(&b)) {
                    return StrStep::Reject;
                }
                self.esc = match self.esc {
                    2 if b == b'd' || b == b'D' => 6,
                    6 => 4,
                    5 => 0,
                    e => e + 1,
                };
                return StrStep::Cont;
            }
        }
        if b == b'"' {
            return StrStep::Close;
        }
        let (need, lo, hi) = match b {
            b'\\' => {
                self.esc = 1;
                (0, 0, 0)
            }
            0..=0x1F => return StrStep::Reject,
            0x20..=0x7F => (0, 0, 0),
            0xC2..=0xDF => (1, 0x80, 0xBF),
            0xE0 => (2, 0xA0, 0xBF),
            0xE1..=0xEC | 0xEE..=0xEF => (2, 0x80, 0xBF),
            0xED => (2, 0x80, 0x9F),
            0xF0 => (3, 0x90, 0xBF),
            0xF1..=0xF3 => (3, 0x80, 0xBF),
            0xF4 => (3, 0x80, 0x8F),
            _ => return StrStep::Reject,
        };
        if self.len >= max {
            return StrStep::Reject;
        }
        self.len += 1;
        (self.need, self.lo, self.hi) = (need, lo, hi);
        StrStep::Cont
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ObjPhase {
    Open,
    AfterOpen,
    AfterComma,
    /// Inside a key: candidate known properties (bit i = property i), whether the key is still
    /// a possible free (additional) key, and the bytes so far.
    Key {
        mask: u64,
        all: u64,
        free: bool,
        pos: u16,
        s: Str,
    },
    /// Key read (`prop` = property index, or `u8::MAX` for an additional one).
    AfterKey {
        prop: u8,
    },
    AfterColon {
        prop: u8,
    },
    InValue {
        prop: u8,
    },
    AfterValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArrPhase {
    Open,
    AfterOpen,
    InItem,
    AfterValue,
    AfterComma,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumPhase {
    Start,
    Minus,
    Zero,
    Int,
    FracStart,
    Frac,
    ExpStart,
    ExpSign,
    Exp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    Root {
        done: bool,
        ws: u8,
    },
    Value {
        node: NodeId,
    },
    Obj {
        node: NodeId,
        phase: ObjPhase,
        ws: u8,
        /// Properties before this index are written or skipped.
        next: u8,
    },
    Arr {
        node: NodeId,
        phase: ArrPhase,
        ws: u8,
        count: u32,
    },
    Str {
        node: NodeId,
        open: bool,
        s: Str,
    },
    Num {
        integer: bool,
        phase: NumPhase,
        digits: u8,
    },
    Lit {
        node: NodeId,
        lo: u16,
        hi: u16,
        pos: u16,
    },
}

enum Step {
    /// Byte consumed, frame updated.
    Consumed(Frame),
    /// Frame updated and a child value pushed; the byte goes to the child.
    Push(Frame, NodeId),
    /// The frame is complete; `consumed` says whether the byte was its last, else the byte
    /// goes to the parent.
    Pop {
        consumed: bool,
    },
    Reject,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\t' | b'\r')
}

/// A gap's whitespace byte `c`: a gap is nothing, one space or tab, or one newline followed by
/// at most [`MAX_WS`] spaces or tabs (llama.cpp's `space` rule). `ws` is 0 at the start of
/// the gap, `1 + n` after a newline and `n` indentation bytes, `u8::MAX` once closed.
fn ws_step(ws: &mut u8, c: u8) -> bool {
    *ws = match (*ws, c) {
        (0, b' ' | b'\t') => u8::MAX,
        (0, b'\n') => 1,
        (n @ 1..=MAX_WS, b' ' | b'\t') => n + 1,
        _ => return false,
    };
    true
}

impl Grammar {
    fn initial(&self, node: NodeId) -> Frame {
        match &self.nodes[node as usize] {
            Node::Object { .. } => Frame::Obj {
                node,
                phase: ObjPhase::Open,
                ws: 0,
                next: 0,
            },
            Node::Array { .. } => Frame::Arr {
                node,
                phase: ArrPhase::Open,
                ws: 0,
                count: 0,
            },
            Node::String { .. } => Frame::Str {
                node,
                open: false,
                s: Str::default(),
            },
            Node::Number { integer } => Frame::Num {
                integer: *integer,
                phase: NumPhase::Start,
                digits: 0,
            },
            Node::Literal(l) => Frame::Lit {
                node,
                lo: 0,
                hi: l.len().min(u16::MAX as usize) as u16,
                pos: 0,
            },
            Node::AnyOf(_) => Frame::Value { node },
        }
    }

    /// Whether a value of concrete `node` can start with `b`.
    fn starts(&self, node: NodeId, b: u8) -> bool {
        match &self.nodes[node as usize] {
            Node::Object { .. } => b == b'{',
            Node::Array { .. } => b == b'[',
            Node::String { .. } => b == b'"',
            Node::Number { .. } => b == b'-' || b.is_ascii_digit(),
            Node::Literal(l) => l.iter().any(|c| c.first() == Some(&b)),
            Node::AnyOf(_) => false,
        }
    }

    /// Where the key matcher of an object starts: allowed known properties (from `next` up to
    /// and including the first required one) and whether a free key may come.
    fn key_start(&self, props: &[Prop], additional: bool, next: u8) -> (u64, u64, bool) {
        let mut mask = 0u64;
        let mut required_left = false;
        for (i, p) in props.iter().enumerate().skip(next as usize) {
            mask |= 1 << i;
            if p.required {
                required_left = true;
                break;
            }
        }
        let all = if props.len() >= 64 {
            u64::MAX
        } else {
            (1u64 << props.len()) - 1
        };
        (mask, all, additional && !required_left)
    }

    fn required_left(props: &[Prop], next: u8) -> bool {
        props.iter().skip(next as usize).any(|p| p.required)
    }

    fn step(&self, f: Frame, b: Option<u8>) -> Step {
        use Step::*;
        match f {
            Frame::Root { done, mut ws } => match (done, b) {
                (true, None) => Consumed(f),
                (true, Some(_)) | (false, None) => Reject,
                (false, Some(c)) if is_ws(c) => {
                    if ws_step(&mut ws, c) {
                        Consumed(Frame::Root { done, ws })
                    } else {
                        Reject
                    }
                }
                (false, Some(_)) => Push(Frame::Root { done: false, ws }, self.root),
            },
            Frame::Value { .. } => Reject, // expanded by the caller
            Frame::Obj {
                node,
                phase,
                mut ws,
                next,
            } => {
                let Node::Object { props, additional } = &self.nodes[node as usize] else {
                    return Reject;
                };
                let Some(c) = b else { return Reject };
                let with = |phase, ws| Frame::Obj {
                    node,
                    phase,
                    ws,
                    next,
                };
                match phase {
                    ObjPhase::Open => {
                        if c == b'{' {
                            Consumed(with(ObjPhase::AfterOpen, 0))
                        } else {
                            Reject
                        }
                    }
                    ObjPhase::AfterOpen | ObjPhase::AfterComma => {
                        if is_ws(c) {
                            return if ws_step(&mut ws, c) {
                                Consumed(with(phase, ws))
                            } else {
                                Reject
                            };
                        }
                        if c == b'}'
                            && phase == ObjPhase::AfterOpen
                            && !Self::required_left(props, next)
                        {
                            return Pop { consumed: true };
                        }
                        if c != b'"' {
                            return Reject;
                        }
                        let (mask, all, free) = self.key_start(props, additional.is_some(), next);
                        if mask == 0 && !free {
                            return Reject;
                        }
                        Consumed(with(
                            ObjPhase::Key {
                                mask,
                                all,
                                free,
                                pos: 0,
                                s: Str::default(),
                            },
                            0,
                        ))
                    }
                    ObjPhase::Key {
                        mask,
                        all,
                        mut free,
                        pos,
                        mut s,
                    } => {
                        let p = pos as usize;
                        let keep = |m: u64| {
                            let mut out = 0u64;
                            let mut done = None;
                            let mut bits = m;
                            while bits != 0 {
                                let i = bits.trailing_zeros() as usize;
                                bits &= bits - 1;
                                let k = &props[i].key;
                                if k.get(p) == Some(&c) {
                                    if k.len() == p + 1 {
                                        done = Some(i);
                                    } else {
                                        out |= 1 << i;
                                    }
                                }
                            }
                            (out, done)
                        };
                        let (new_mask, chosen) = keep(mask);
                        let (new_all, any_known) = keep(all);
                        let mut free_closed = false;
                        if free {
                            match s.step(c, MAX_FREE_KEY) {
                                StrStep::Cont => {}
                                StrStep::Close => free_closed = true,
                                StrStep::Reject => free = false,
                            }
                        }
                        if let Some(i) = chosen {
                            return Consumed(with(ObjPhase::AfterKey { prop: i as u8 }, 0));
                        }
                        if free_closed {
                            // A free key must not repeat a known name.
                            return if any_known.is_some() {
                                Reject
                            } else {
                                Consumed(with(ObjPhase::AfterKey { prop: u8::MAX }, 0))
                            };
                        }
                        if new_mask == 0 && !free {
                            return Reject;
                        }
                        Consumed(with(
                            ObjPhase::Key {
                                mask: new_mask,
                                all: new_all,
                                free,
                                pos: pos.saturating_add(1),
                                s,
                            },
                            0,
                        ))
                    }
                    ObjPhase::AfterKey { prop } => {
                        if is_ws(c) {
                            if ws_step(&mut ws, c) {
                                Consumed(with(phase, ws))
                            } else {
                                Reject
                            }
                        } else if c == b':' {
                            Consumed(with(ObjPhase::AfterColon { prop }, 0))
                        } else {
                            Reject
                        }
                    }
                    ObjPhase::AfterColon { prop } => {
                        if is_ws(c) {
                            return if ws_step(&mut ws, c) {
                                Consumed(with(phase, ws))
                            } else {
                                Reject
                            };
                        }
                        let child = if prop == u8::MAX {
                            match additional {
                                Some(a) => *a,
                                None => return Reject,
                            }
                        } else {
                            props[prop as usize].node
                        };
                        Push(with(ObjPhase::InValue { prop }, 0), child)
                    }
                    ObjPhase::InValue { .. } => Reject,
                    ObjPhase::AfterValue => {
                        if is_ws(c) {
                            return if ws_step(&mut ws, c) {
                                Consumed(with(phase, ws))
                            } else {
                                Reject
                            };
                        }
                        match c {
                            b',' => {
                                let (mask, _, free) =
                                    self.key_start(props, additional.is_some(), next);
                                if mask != 0 || free {
                                    Consumed(with(ObjPhase::AfterComma, 0))
                                } else {
                                    Reject
                                }
                            }
                            b'}' if !Self::required_left(props, next) => Pop { consumed: true },
                            _ => Reject,
                        }
                    }
                }
            }
            Frame::Arr {
                node,
                phase,
                mut ws,
                count,
            } => {
                let Node::Array { items, min, max } = &self.nodes[node as usize] else {
                    return Reject;
                };
                let Some(c) = b else { return Reject };
                let with = |phase, ws, count| Frame::Arr {
                    node,
                    phase,
                    ws,
                    count,
                };
                match phase {
                    ArrPhase::Open => {
                        if c == b'[' {
                            Consumed(with(ArrPhase::AfterOpen, 0, 0))
                        } else {
                            Reject
                        }
                    }
                    ArrPhase::AfterOpen | ArrPhase::AfterComma => {
                        if is_ws(c) {
                            return if ws_step(&mut ws, c) {
                                Consumed(with(phase, ws, count))
                            } else {
                                Reject
                            };
                        }
                        if c == b']' && phase == ArrPhase::AfterOpen {
                            return if *min == 0 {
                                Pop { consumed: true }
                            } else {
                                Reject
                            };
                        }
                        if count >= *max {
                            return Reject;
                        }
                        Push(with(ArrPhase::InItem, 0, count), *items)
                    }
                    ArrPhase::InItem => Reject,
                    ArrPhase::AfterValue => {
                        if is_ws(c) {
                            return if ws_step(&mut ws, c) {
                                Consumed(with(phase, ws, count))
                            } else {
                                Reject
                            };
                        }
                        match c {
                            b',' if count < *max => Consumed(with(ArrPhase::AfterComma, 0, count)),
                            b']' if count >= *min => Pop { consumed: true },
                            _ => Reject,
                        }
                    }
                }
            }
            Frame::Str { node, open, mut s } => {
                let Node::String { min, max } = &self.nodes[node as usize] else {
                    return Reject;
                };
                let Some(c) = b else { return Reject };
                if !open {
                    return if c == b'"' {
                        Consumed(Frame::Str {
                            node,
                            open: true,
                            s,
                        })
                    } else {
                        Reject
                    };
                }
                match s.step(c, *max) {
                    StrStep::Cont => Consumed(Frame::Str { node, open, s }),
                    StrStep::Close if s.len >= *min => Pop { consumed: true },
                    _ => Reject,
                }
            }
            Frame::Num {
                integer,
                phase,
                digits,
            } => {
                use NumPhase::*;
                let to = |phase, digits| {
                    Consumed(Frame::Num {
                        integer,
                        phase,
                        digits,
                    })
                };
                let d = b.is_some_and(|c| c.is_ascii_digit());
                let c = b.unwrap_or(0);
                match phase {
                    Start if c == b'-' => to(Minus, 0),
                    Start | Minus if c == b'0' => to(Zero, 1),
                    Start | Minus if d => to(Int, 1),
                    Int if d && digits < MAX_INT_DIGITS => to(Int, digits + 1),
                    Zero | Int if !integer && c == b'.' => to(FracStart, 0),
                    Zero | Int | Frac if !integer && (c == b'e' || c == b'E') => to(ExpStart, 0),
                    FracStart if d => to(Frac, 1),
                    Frac if d && digits < MAX_FRAC_DIGITS => to(Frac, digits + 1),
                    ExpStart if c == b'+' || c == b'-' => to(ExpSign, 0),
                    ExpStart | ExpSign if d => to(Exp, 1),
                    Exp if d && digits < MAX_EXP_DIGITS => to(Exp, digits + 1),
                    Zero | Int | Frac | Exp => Pop { consumed: false },
                    _ => Reject,
                }
            }
            Frame::Lit { node, lo, hi, pos } => {
                let Node::Literal(cands) = &self.nodes[node as usize] else {
                    return Reject;
                };
                let p = pos as usize;
                let complete = cands[lo as usize].len() == p;
                let Some(c) = b else {
                    return if complete {
                        Pop { consumed: false }
                    } else {
                        Reject
                    };
                };
                let range = &cands[lo as usize..hi as usize];
                let first = range.iter().position(|x| x.get(p) == Some(&c));
                match first {
                    Some(i) => {
                        let n = range[i..]
                            .iter()
                            .take_while(|x| x.get(p) == Some(&c))
                            .count();
                        let (nlo, nhi) = (lo + i as u16, lo + (i + n) as u16);
                        if n == 1 && cands[nlo as usize].len() == p + 1 {
                            return Pop { consumed: true };
                        }
                        Consumed(Frame::Lit {
                            node,
                            lo: nlo,
                            hi: nhi,
                            pos: pos + 1,
                        })
                    }
                    None if complete => Pop { consumed: false },
                    None => Reject,
                }
            }
        }
    }

    /// A child value ended: the parent moves on.
    fn child_done(&self, f: Frame) -> Frame {
        match f {
            Frame::Root { ws, .. } => Frame::Root { done: true, ws },
            Frame::Obj {
                node,
                phase: ObjPhase::InValue { prop },
                next,
                ..
            } => {
                let next = if prop == u8::MAX {
                    match &self.nodes[node as usize] {
                        Node::Object { props, .. } => props.len() as u8,
                        _ => next,
                    }
                } else {
                    prop + 1
                };
                Frame::Obj {
                    node,
                    phase: ObjPhase::AfterValue,
                    ws: 0,
                    next,
                }
            }
            Frame::Arr { node, count, .. } => Frame::Arr {
                node,
                phase: ArrPhase::AfterValue,
                ws: 0,
                count: count + 1,
            },
            other => other,
        }
    }
}

type Stack = Vec<Frame>;

/// Feeds `b` (`None`: end of input) to `st`, pushing every surviving stack to `out`.
fn advance(g: &Grammar, mut st: Stack, b: Option<u8>, out: &mut Vec<Stack>, pool: &mut Vec<Stack>) {
    loop {
        let Some(&top) = st.last() else {
            pool.push(st);
            return;
        };
        if let Frame::Value { node } = top {
            let Some(c) = b else {
                pool.push(st);
                return;
            };
            st.pop();
            let alts = &g.alts[node as usize];
            for &a in alts {
                if !g.starts(a, c) {
                    continue;
                }
                let mut clone = pool.pop().unwrap_or_default();
                clone.clear();
                clone.extend_from_slice(&st);
                clone.push(g.initial(a));
                advance(g, clone, b, out, pool);
            }
            pool.push(st);
            return;
        }
        match g.step(top, b) {
            Step::Consumed(f) => {
                *st.last_mut().expect("non-empty") = f;
                out.push(st);
                return;
            }
            Step::Push(f, child) => {
                if st.len() >= MAX_DEPTH {
                    pool.push(st);
                    return;
                }
                *st.last_mut().expect("non-empty") = f;
                st.push(g.initial(child));
            }
            Step::Pop { consumed } => {
                st.pop();
                if let Some(parent) = st.last_mut() {
                    *parent = g.child_done(*parent);
                }
                if consumed {
                    out.push(st);
                    return;
                }
            }
            Step::Reject => {
                pool.push(st);
                return;
            }
        }
    }
}

/// An incremental recognizer of one JSON value; see the module doc.
#[derive(Debug)]
pub struct Recognizer {
    g: Arc<Grammar>,
    stacks: Vec<Stack>,
    next: Vec<Stack>,
    pool: Vec<Stack>,
}

impl Recognizer {
    /// Feeds one byte (`None`: end of input); false when no alternative survives (the state
    /// is then dead: every later feed fails too).
    pub fn feed(&mut self, b: Option<u8>) -> bool {
        let mut next = std::mem::take(&mut self.next);
        for st in self.stacks.drain(..) {
            advance(&self.g, st, b, &mut next, &mut self.pool);
        }
        // Drop duplicate alternatives (anyOf branches that converged) and bound the rest.
        let mut i = 0;
        while i < next.len() {
            if next[..i].contains(&next[i]) || i >= MAX_STACKS {
                let st = next.swap_remove(i);
                self.pool.push(st);
            } else {
                i += 1;
            }
        }
        std::mem::swap(&mut self.stacks, &mut next);
        self.next = next;
        !self.stacks.is_empty()
    }

    /// Feeds bytes; false as soon as one is refused.
    pub fn feed_all(&mut self, bytes: &[u8]) -> bool {
        bytes.iter().all(|&b| self.feed(Some(b)))
    }

    /// Copies `other`'s state into `self`, reusing `self`'s buffers.
    pub fn copy_from(&mut self, other: &Recognizer) {
        if !Arc::ptr_eq(&self.g, &other.g) {
            self.g = Arc::clone(&other.g);
        }
        while self.stacks.len() > other.stacks.len() {
            let st = self.stacks.pop().expect("longer");
            self.pool.push(st);
        }
        for (i, src) in other.stacks.iter().enumerate() {
            if i == self.stacks.len() {
                let st = self.pool.pop().unwrap_or_default();
                self.stacks.push(st);
            }
            let dst = &mut self.stacks[i];
            dst.clear();
            dst.extend_from_slice(src);
        }
    }

    /// Whether the input so far is a complete value (end of input accepted). Allocates: the
    /// decode path tests this on a reused scratch recognizer instead.
    pub fn can_end(&self) -> bool {
        self.stacks.iter().any(|st| {
            let mut out = Vec::new();
            let mut pool = Vec::new();
            advance(&self.g, st.clone(), None, &mut out, &mut pool);
            !out.is_empty()
        })
    }

    /// Whether the value is complete and nothing but the end may follow.
    pub fn is_done(&self) -> bool {
        !self.stacks.is_empty()
            && self
                .stacks
                .iter()
                .all(|st| matches!(st.as_slice(), [Frame::Root { done: true, .. }]))
    }

    /// Whether some alternative is alive.
    pub fn alive(&self) -> bool {
        !self.stacks.is_empty()
    }
}

/// The bytes of every token of a vocabulary (empty for special tokens), built once per
/// model: see [`Tokenizer::token_bytes`].
#[derive(Debug)]
pub struct TokenTexts {
    bytes: Vec<u8>,
    offsets: Vec<u32>,
}

impl TokenTexts {
    /// From the tokenizer's vocabulary.
    pub fn new(tok: &Tokenizer) -> Self {
        Self::from_bytes(tok.token_bytes().into_iter().map(Option::unwrap_or_default))
    }

    /// From each id's bytes (empty: a special token), e.g. for a synthetic vocabulary.
    pub fn from_bytes<B: AsRef<[u8]>>(tokens: impl IntoIterator<Item = B>) -> Self {
        let mut bytes = Vec::new();
        let mut offsets = vec![0u32];
        for t in tokens {
            bytes.extend_from_slice(t.as_ref());
            offsets.push(bytes.len() as u32);
        }
        Self { bytes, offsets }
    }

    /// Token `id`'s bytes (empty for special tokens and ids outside the vocabulary).
    pub fn get(&self, id: u32) -> &[u8] {
        let i = id as usize;
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&a), Some(&b)) => &self.bytes[a as usize..b as usize],
            _ => &[],
        }
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// No ids.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The per-sequence constraint a [`crate::Decoder`] applies; see the module doc.
#[derive(Debug)]
pub struct TokenConstraint {
    texts: Arc<TokenTexts>,
    rec: Recognizer,
    scratch: Recognizer,
    order: Vec<(f32, u32)>,
    masked: Vec<f32>,
    /// Which first bytes the current state accepts (filled at each [`TokenConstraint::mask`]):
    /// most tokens are refused by this table alone, without running the recognizer.
    first_ok: [bool; 256],
    /// Per first-two-bytes verdicts of the current [`TokenConstraint::mask`] (0 unknown,
    /// 1 allowed, 2 refused), filled on demand.
    pairs: Vec<u8>,
    /// Allowed `(logit, id)` found by the current mask.
    hits: Vec<(f32, u32)>,
}

impl TokenConstraint {
    /// A constraint to `grammar` over the tokens `texts` describes.
    pub fn new(grammar: &Arc<Grammar>, texts: Arc<TokenTexts>) -> Self {
        Self {
            rec: grammar.recognizer(),
            scratch: grammar.recognizer(),
            texts,
            order: Vec::new(),
            masked: Vec::new(),
            first_ok: [false; 256],
            pairs: Vec::new(),
            hits: Vec::new(),
        }
    }

    /// The recognizer of the output so far.
    pub fn recognizer(&self) -> &Recognizer {
        &self.rec
    }

    /// Whether `id` may come next; a stop id only when the value is complete.
    pub fn allows(&mut self, id: u32, stop_ids: &[u32]) -> bool {
        allows(&self.rec, &mut self.scratch, &self.texts, stop_ids, id)
    }

    /// Takes a token into the output (a stop id or a refused token leaves the state as is).
    pub fn accept(&mut self, id: u32) {
        let bytes = self.texts.get(id);
        self.scratch.copy_from(&self.rec);
        if !bytes.is_empty() && self.scratch.feed_all(bytes) {
            std::mem::swap(&mut self.rec, &mut self.scratch);
        }
    }

    /// The value is complete: generation should end.
    pub fn is_done(&self) -> bool {
        self.rec.is_done()
    }

    /// `logits` with every token that may not come next at `-inf`: at most `top_k` (`0`: no
    /// limit) and 256 allowed tokens, the most likely ones, and none more than 30 (times the
    /// temperature, when above 1) below the best allowed one (a probability ratio under
    /// e^-30: nothing a draw could pick). `None` when no token is allowed.
    ///
    /// The 320 most likely tokens are tested first, in order (sorted in two chunks: 64, 256);
    /// only when they hold too few allowed ones is the rest of the vocabulary scanned
    /// (unsorted). Tokens are refused by
    /// their first byte, then by their first two, from tables filled once per call, before
    /// the recognizer runs on the whole token: at a structural position (after a key, where
    /// only `:` or whitespace may come) nearly every token of a 128k vocabulary is refused
    /// by a table lookup.
    pub fn mask(
        &mut self,
        logits: &[f32],
        stop_ids: &[u32],
        top_k: usize,
        temperature: f32,
    ) -> Option<&[f32]> {
        let cap = if temperature <= 0.0 {
            1
        } else if top_k > 0 {
            top_k.min(MAX_ALLOWED)
        } else {
            MAX_ALLOWED
        };
        let cutoff = 30.0 * temperature.max(1.0);
        for b in 0..=255u8 {
            self.scratch.copy_from(&self.rec);
            self.first_ok[b as usize] = self.scratch.feed(Some(b));
        }
        self.pairs.clear();
        self.pairs.resize(256 * 256, 0);
        self.masked.clear();
        self.masked.resize(logits.len(), f32::NEG_INFINITY);
        self.order.clear();
        self.order
            .extend(logits.iter().enumerate().map(|(i, &l)| (l, i as u32)));
        let by_desc = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        let mut t = Tester {
            rec: &self.rec,
            scratch: &mut self.scratch,
            texts: &self.texts,
            stop_ids,
            first_ok: &self.first_ok,
            pairs: &mut self.pairs,
        };
        // 1. The most likely tokens, in order, in two chunks (64, then 256).
        self.hits.clear();
        let (mut head, mut chunk) = (0usize, 64usize);
        while head < self.order.len() && head < 320 && self.hits.len() < cap {
            let end = (head + chunk).min(self.order.len());
            if end < self.order.len() {
                self.order[head..].select_nth_unstable_by(end - head - 1, by_desc);
            }
            self.order[head..end].sort_unstable_by(by_desc);
            for &(l, id) in &self.order[head..end] {
                if self.hits.len() >= cap {
                    break;
                }
                if t.allows(id) {
                    self.hits.push((l, id));
                }
            }
            head = end;
            chunk *= 4;
        }
        // 2. Too few: the rest of the vocabulary, unsorted, then the best of what is allowed.
        if self.hits.len() < cap {
            for &(l, id) in &self.order[head..] {
                if t.allows(id) {
                    self.hits.push((l, id));
                }
            }
            if self.hits.len() > cap {
                self.hits.select_nth_unstable_by(cap - 1, by_desc);
                self.hits.truncate(cap);
            }
        }
        let best = self
            .hits
            .iter()
            .map(|h| h.0)
            .fold(f32::NEG_INFINITY, f32::max);
        let mut found = false;
        for &(l, id) in &self.hits {
            if l >= best - cutoff {
                self.masked[id as usize] = l;
                found = true;
            }
        }
        found.then_some(&self.masked[..])
    }

    /// The most likely allowed token of the last [`TokenConstraint::mask`].
    pub fn best_masked(&self) -> Option<u32> {
        let mut best: Option<(f32, u32)> = None;
        for (i, &l) in self.masked.iter().enumerate() {
            if l > f32::NEG_INFINITY && best.is_none_or(|(b, _)| l > b) {
                best = Some((l, i as u32));
            }
        }
        best.map(|(_, i)| i)
    }
}

/// Token tests of one [`TokenConstraint::mask`] call, with its byte tables.
struct Tester<'a> {
    rec: &'a Recognizer,
    scratch: &'a mut Recognizer,
    texts: &'a TokenTexts,
    stop_ids: &'a [u32],
    first_ok: &'a [bool; 256],
    pairs: &'a mut Vec<u8>,
}

impl Tester<'_> {
    fn allows(&mut self, id: u32) -> bool {
        let bytes = self.texts.get(id);
        if bytes.is_empty() || self.stop_ids.contains(&id) {
            return allows(self.rec, self.scratch, self.texts, self.stop_ids, id);
        }
        if !self.first_ok[bytes[0] as usize] {
            return false;
        }
        if bytes.len() == 1 {
            return true;
        }
        let pair = &mut self.pairs[(bytes[0] as usize) << 8 | bytes[1] as usize];
        if *pair == 0 {
            self.scratch.copy_from(self.rec);
            *pair = if self.scratch.feed_all(&bytes[..2]) {
                1
            } else {
                2
            };
        }
        match (*pair, bytes.len()) {
            (2, _) => false,
            (_, 2) => true,
            _ => allows(self.rec, self.scratch, self.texts, self.stop_ids, id),
        }
    }
}

fn allows(
    rec: &Recognizer,
    scratch: &mut Recognizer,
    texts: &TokenTexts,
    stop_ids: &[u32],
    id: u32,
) -> bool {
    if stop_ids.contains(&id) {
        scratch.copy_from(rec);
        return scratch.feed(None);
    }
    let bytes = texts.get(id);
    if bytes.is_empty() {
        return false;
    }
    scratch.copy_from(rec);
    scratch.feed_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn accepts(schema: &Value, text: &str) -> bool {
        let g = Arc::new(Grammar::from_schema(schema).unwrap());
        let mut r = g.recognizer();
        r.feed_all(text.as_bytes()) && r.can_end()
    }

    fn prefix_ok(schema: &Value, text: &str) -> bool {
        let g = Arc::new(Grammar::from_schema(schema).unwrap());
        g.recognizer().feed_all(text.as_bytes())
    }

    #[test]
    fn any_object_accepts_json_objects_and_refuses_the_rest() {
        let obj = json!({"type": "object"});
        for ok in [
            "{}",
            "{\"a\": 1}",
            "{\"a\":[1,2.5e3,-0.1,{\"b\":null}],\"c\":\"x\\n\\u00e9\\\"\",\"d\":true}",
            " {\n  \"k\": \"caf\u{e9} \u{1F600}\"\n}",
        ] {
            assert!(accepts(&obj, ok), "{ok}");
        }
        for bad in [
            "[]",
            "{\"a\" 1}",
            "{\"a\":01}",
            "{\"a\":1,}",
            "{,}",
            "{\"a\":tru}",
            "{\"a\":\"\u{1}\"}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\ud800\"}",
            "{} ",
        ] {
            assert!(!accepts(&obj, bad), "{bad}");
        }
        assert!(prefix_ok(&obj, "{\"a\": [1, {\"b\": \"c"));
        assert!(!prefix_ok(&obj, "{\"a\": ]"));
        // Invalid UTF-8 (a lone continuation byte, an overlong form) is refused.
        let g = Arc::new(Grammar::any_object());
        let mut r = g.recognizer();
        assert!(r.feed_all(b"{\"a\":\""));
        assert!(!r.clone_for_test().feed(Some(0x80)));
        assert!(!r.feed_all(&[0xC0, 0xAF]));
    }

    impl Recognizer {
        fn clone_for_test(&self) -> Recognizer {
            let mut r = self.g.recognizer();
            r.copy_from(self);
            r
        }
    }

    #[test]
    fn properties_follow_the_order_written_in_the_text() {
        let text = br##"{"schema": {"type": "object", "properties": {"zeta": {"type": "integer"},
            "alpha": {"$ref": "#/$defs/o"}}, "required": ["zeta", "alpha"],
            "$defs": {"o": {"properties": {"b": {"const": 1}, "a": {"const": 2}},
            "required": ["b", "a"]}}}}"##;
        let doc: Value = serde_json::from_slice(text).unwrap();
        let order = key_order(text);
        let g = Arc::new(Grammar::from_schema_in_order(&doc["schema"], &order, "/schema").unwrap());
        let ok = |t: &str| {
            let mut r = g.recognizer();
            r.feed_all(t.as_bytes()) && r.can_end()
        };
        assert!(ok(r#"{"zeta": 1, "alpha": {"b": 1, "a": 2}}"#));
        assert!(!ok(r#"{"alpha": {"b": 1, "a": 2}, "zeta": 1}"#));
        assert!(!ok(r#"{"zeta": 1, "alpha": {"a": 2, "b": 1}}"#));
        // Without the text: the map's (sorted) order.
        let sorted = Arc::new(Grammar::from_schema(&doc["schema"]).unwrap());
        let mut r = sorted.recognizer();
        assert!(r.feed_all(br#"{"alpha": {"a": 2, "b": 1}, "zeta": 1}"#) && r.can_end());
    }

    #[test]
    fn whitespace_is_bounded() {
        let obj = json!({"type": "object"});
        let ok = format!("{{\n{}}}", " ".repeat(MAX_WS as usize));
        assert!(accepts(&obj, &ok));
        let bad = format!("{{\n{}}}", " ".repeat(MAX_WS as usize + 1));
        assert!(!accepts(&obj, &bad));
        assert!(accepts(&obj, "{ \"a\": 1 }"));
        for bad in ["{  }", "{\n\n}", "{ \n}", "{\r\n}"] {
            assert!(!accepts(&obj, bad), "{bad:?}");
        }
    }

    fn person() -> Value {
        json!({
            "type": "object",
            "properties": {
                "age": {"type": "integer"},
                "name": {"type": "string", "maxLength": 12, "minLength": 1},
                "tags": {"type": "array", "items": {"enum": ["a", "bb", "c"]}, "maxItems": 3}
            },
            "required": ["name", "age"],
            "additionalProperties": false
        })
    }

    #[test]
    fn schema_object_properties_required_and_limits() {
        let s = person();
        assert!(accepts(&s, r#"{"age": 3, "name": "Ann"}"#));
        assert!(accepts(
            &s,
            r#"{"age":-3,"name":"Ann","tags":["a","bb","a"]}"#
        ));
        assert!(accepts(
            &s,
            r#"{"age": 0, "name": "abcdefghijkl", "tags": []}"#
        ));
        // Missing required, too long, wrong type, not in the enum, too many items, extra key,
        // fraction for an integer, empty name.
        for bad in [
            r#"{"age": 3}"#,
            r#"{"name": "Ann"}"#,
            r#"{"age": 3, "name": "abcdefghijklm"}"#,
            r#"{"age": "3", "name": "Ann"}"#,
            r#"{"age": 3, "name": "Ann", "tags": ["d"]}"#,
            r#"{"age": 3, "name": "Ann", "tags": ["a","a","a","a"]}"#,
            r#"{"age": 3, "name": "Ann", "x": 1}"#,
            r#"{"age": 3.5, "name": "Ann"}"#,
            r#"{"age": 3, "name": ""}"#,
        ] {
            assert!(!accepts(&s, bad), "{bad}");
        }
    }

    #[test]
    fn additional_properties_come_after_known_ones_and_never_repeat_them() {
        let s = json!({
            "type": "object",
            "properties": {"a": {"type": "integer"}},
            "additionalProperties": {"type": "boolean"}
        });
        assert!(accepts(&s, r#"{"a": 1, "b": true, "c": false}"#));
        assert!(accepts(&s, r#"{"b": true}"#));
        assert!(accepts(&s, r#"{"ab": true}"#));
        assert!(!accepts(&s, r#"{"b": 1}"#));
        assert!(!accepts(&s, r#"{"a": 1, "a": 2}"#));
        assert!(!accepts(&s, r#"{"b": true, "a": 1}"#));
    }

    #[test]
    fn type_lists_any_of_refs_and_const() {
        let s = json!({
            "$defs": {
                "node": {
                    "type": "object",
                    "properties": {
                        "v": {"type": ["integer", "null"]},
                        "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}
                    },
                    "required": ["v"]
                }
            },
            "anyOf": [{"$ref": "#/$defs/node"}, {"const": "leaf"}, {"type": "boolean"}]
        });
        assert!(accepts(
            &s,
            r#"{"kids": [{"v": 1}, {"kids": [], "v": null}], "v": 2}"#
        ));
        assert!(accepts(&s, r#""leaf""#));
        assert!(accepts(&s, "false"));
        assert!(!accepts(&s, r#""leaves""#));
        assert!(!accepts(&s, r#"{"v": "x"}"#));
        assert!(accepts(&json!({"type": "number"}), "-12.5e+3"));
        assert!(!accepts(&json!({"type": "number"}), "1."));
        assert!(accepts(
            &json!({"oneOf": [{"type": "string"}, {"type": "integer"}]}),
            "7"
        ));
    }

    #[test]
    fn the_value_is_done_when_its_last_byte_arrives() {
        let g = Arc::new(Grammar::from_schema(&person()).unwrap());
        let mut r = g.recognizer();
        assert!(r.feed_all(br#"{"age": 1, "name": "x""#));
        assert!(!r.is_done() && !r.can_end());
        assert!(r.feed(Some(b'}')));
        assert!(r.is_done() && r.can_end());
        assert!(!r.feed(Some(b' ')));
    }

    #[test]
    fn the_mask_allows_exactly_the_tokens_that_keep_the_output_valid() {
        // Every 1-3 byte token over a small alphabet, plus a stop id (empty text).
        let alphabet = b" \n{}\":a1,";
        let mut tokens: Vec<Vec<u8>> = vec![Vec::new()];
        for &a in alphabet {
            tokens.push(vec![a]);
            for &b in alphabet {
                tokens.push(vec![a, b]);
                tokens.push(vec![a, b, b'"']);
            }
        }
        let texts = Arc::new(TokenTexts::from_bytes(&tokens));
        let g = Arc::new(
            Grammar::from_schema(
                &json!({"type": "object", "properties": {"a": {"type": "integer"}}}),
            )
            .unwrap(),
        );
        let logits: Vec<f32> = (0..tokens.len()).map(|i| (i % 7) as f32).collect();
        let stop = [0u32];
        for prefix in ["", "{", "{\"a\"", "{\"a\": 1", "{\"a\":1}"] {
            let mut c = TokenConstraint::new(&g, Arc::clone(&texts));
            let mut r = g.recognizer();
            assert!(r.feed_all(prefix.as_bytes()));
            c.rec.copy_from(&r);
            let expected: Vec<bool> = (0..tokens.len() as u32)
                .map(|id| {
                    if id == 0 {
                        r.can_end()
                    } else {
                        let mut s = g.recognizer();
                        s.copy_from(&r);
                        s.feed_all(texts.get(id))
                    }
                })
                .collect();
            assert!(
                expected.iter().filter(|&&e| e).count() < MAX_ALLOWED,
                "{prefix}"
            );
            let got: Vec<bool> = match c.mask(&logits, &stop, 0, 1.0) {
                Some(m) => m.iter().map(|l| l.is_finite()).collect(),
                None => vec![false; tokens.len()],
            };
            assert_eq!(got, expected, "after {prefix:?}");
        }
    }

    #[test]
    fn unsupported_keywords_and_bad_refs_are_named() {
        let e = Grammar::from_schema(&json!({"type": "object", "properties": {
            "x": {"type": "string", "pattern": "^a"}}}))
        .unwrap_err();
        assert_eq!(e.path, "#/properties/x");
        assert!(e.message.contains("'pattern'"), "{e}");
        let e = Grammar::from_schema(&json!({"$ref": "#/$defs/missing"})).unwrap_err();
        assert!(e.message.contains("#/$defs/missing"), "{e}");
        let e = Grammar::from_schema(&json!({"type": "text"})).unwrap_err();
        assert!(e.message.contains("'text'"), "{e}");
        let e = Grammar::from_schema(&json!({"type": "object", "required": ["a"]})).unwrap_err();
        assert!(e.message.contains("'a'"), "{e}");
    }
}
