//! Mutations of an input: bytes (flips, inserts, cuts, splices, dictionary
//! words) and, when the input is JSON, its values (wrong types, extreme
//! numbers, long or odd strings, missing and extra fields).

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::Rng;
use serde_json::{Map, Number, Value};

/// The largest input tried (the broker's default payload limit).
pub const MAX_INPUT: usize = 64 * 1024;

/// Words that mean something to the parsers under test.
const DICTIONARY: &[&str] = &[
    "\"",
    "\\",
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "null",
    "true",
    "false",
    "-1",
    "0",
    "1e999",
    "-9223372036854775809",
    "18446744073709551616",
    "1.5",
    "\\u0000",
    "\\ud800",
    "\u{0}",
    "\u{feff}",
    "\u{10ffff}",
    "é",
    "@@@",
    "|",
    "/",
    "#",
    "+",
    "$",
    "$SYS",
    "p2p",
    "GID_",
    "GID-",
    "R",
    "W",
    "RW",
    "Signature",
    "Token",
    "DeviceCredential",
    "call.start",
    "sync",
    "\"v\":1",
    "\"body\":",
    "\"to\":",
    "\"call_id\":",
    "\"token\":",
    "\r\n",
    " ",
    "\t",
    "%00",
];

/// JSON field names of the envelope, the request bodies and the RTC join.
const FIELDS: &[&str] = &[
    "v",
    "id",
    "type",
    "req",
    "ts",
    "ttl",
    "from",
    "body",
    "to",
    "call_id",
    "kind",
    "media",
    "title",
    "muted",
    "target",
    "appid",
    "channel",
    "channelid",
    "userid",
    "nonce",
    "timestamp",
    "token",
    "client_id",
];

/// One to four stacked mutations of `input` (sometimes spliced with `other`).
pub fn mutate(rng: &mut StdRng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        out = if rng.random_bool(0.4) {
            match serde_json::from_slice::<Value>(&out) {
                Ok(mut v) => {
                    mutate_json(rng, &mut v, 0);
                    serde_json::to_vec(&v).unwrap_or(out)
                }
                Err(_) => mutate_bytes(rng, out, other),
            }
        } else {
            mutate_bytes(rng, out, other)
        };
    }
    out.truncate(MAX_INPUT);
    out
}

fn mutate_bytes(rng: &mut StdRng, mut b: Vec<u8>, other: &[u8]) -> Vec<u8> {
    let at = |rng: &mut StdRng, b: &Vec<u8>| rng.random_range(0..=b.len());
    match rng.random_range(0..9) {
        0 if !b.is_empty() => {
            let i = rng.random_range(0..b.len());
            b[i] ^= 1 << rng.random_range(0..8);
        }
        1 if !b.is_empty() => {
            let i = rng.random_range(0..b.len());
            b[i] = rng.random();
        }
        2 => {
            let i = at(rng, &b);
            let n = rng.random_range(1..=16);
            let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            b.splice(i..i, bytes);
        }
        3 if !b.is_empty() => {
            let i = rng.random_range(0..b.len());
            let j = rng.random_range(i..=b.len().min(i + 64));
            b.drain(i..j);
        }
        4 => b.truncate(at(rng, &b)),
        5 if !b.is_empty() => {
            // Repeat a slice many times: long strings, deep nesting.
            let i = rng.random_range(0..b.len());
            let j = rng.random_range(i..=b.len().min(i + 8));
            let times = *[2usize, 16, 200, 4000].choose(rng).unwrap_or(&2);
            let piece = b[i..j].repeat(times);
            b.splice(i..i, piece);
        }
        6 if !other.is_empty() => {
            let cut = at(rng, &b);
            let from = rng.random_range(0..other.len());
            b.truncate(cut);
            b.extend_from_slice(&other[from..]);
        }
        _ => {
            let word = DICTIONARY.choose(rng).unwrap_or(&"");
            let i = at(rng, &b);
            b.splice(i..i, word.bytes());
        }
    }
    b
}

fn mutate_json(rng: &mut StdRng, v: &mut Value, depth: usize) {
    let descend = depth < 8 && rng.random_bool(0.7);
    match v {
        Value::Object(m) if descend && !m.is_empty() => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let key = keys.choose(rng).cloned().unwrap_or_default();
            match rng.random_range(0..4) {
                0 => {
                    m.remove(&key);
                }
                1 => {
                    let name = FIELDS.choose(rng).unwrap_or(&"x").to_string();
                    m.insert(name, random_value(rng, 0));
                }
                _ => {
                    if let Some(child) = m.get_mut(&key) {
                        mutate_json(rng, child, depth + 1);
                    }
                }
            }
        }
        Value::Array(a) if descend && !a.is_empty() => {
            let i = rng.random_range(0..a.len());
            match rng.random_range(0..3) {
                0 => {
                    a.remove(i);
                }
                1 => {
                    let copy = a[i].clone();
                    let n = *[1usize, 70, 1000].choose(rng).unwrap_or(&1);
                    a.extend(std::iter::repeat_n(copy, n));
                }
                _ => mutate_json(rng, &mut a[i], depth + 1),
            }
        }
        _ => *v = random_value(rng, 0),
    }
}

fn random_value(rng: &mut StdRng, depth: usize) -> Value {
    match rng.random_range(0..9) {
        0 => Value::Null,
        1 => Value::Bool(rng.random()),
        2 => Value::from(
            *[0i64, -1, 1, i64::MIN, i64::MAX, 2]
                .choose(rng)
                .unwrap_or(&0),
        ),
        3 => Number::from_f64(rng.random_range(-1e300..1e300)).map_or(Value::Null, Value::Number),
        4 => Value::String(random_string(rng)),
        5 => Value::String(FIELDS.choose(rng).unwrap_or(&"").to_string()),
        6 if depth < 4 => Value::Array(
            (0..rng.random_range(0..4))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        7 if depth < 4 => {
            let mut m = Map::new();
            for _ in 0..rng.random_range(0..4) {
                let k = FIELDS.choose(rng).unwrap_or(&"x").to_string();
                m.insert(k, random_value(rng, depth + 1));
            }
            Value::Object(m)
        }
        _ => Value::String(
            DICTIONARY
                .choose(rng)
                .unwrap_or(&"")
                .repeat(rng.random_range(1..3)),
        ),
    }
}

fn random_string(rng: &mut StdRng) -> String {
    let len = *[0usize, 1, 7, 64, 65, 128, 129, 300, 5000]
        .choose(rng)
        .unwrap_or(&1);
    let alphabet: &[char] = &[
        'a',
        'Z',
        '0',
        '_',
        '-',
        '.',
        ':',
        '@',
        '/',
        '#',
        '+',
        '|',
        'é',
        '\u{0}',
        '\u{1F600}',
    ];
    (0..len)
        .map(|_| *alphabet.choose(rng).unwrap_or(&'a'))
        .collect()
}
