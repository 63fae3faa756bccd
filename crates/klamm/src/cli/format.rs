//! The record format language shared by `topic consume` (formatting) and `topic produce`
//! (parsing stdin lines): `%k` key, `%v` value, `%t` topic, `%p` partition, `%o` offset,
//! `%d` timestamp (ms), `%h` headers (`k=v,k2=v2`), `%%` a percent sign, and the escapes
//! `\n`, `\t`, `\\`.

use anyhow::{bail, Result};
use bytes::Bytes;
use klamm_client::records::{ConsumedRecord, ProducerRecord};
use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(String),
    Field(char),
}

/// A compiled format string.
#[derive(Debug, Clone)]
pub struct RecordFormat {
    tokens: Vec<Token>,
}

const FIELDS: &str = "kvtpodh";

impl RecordFormat {
    pub fn parse(format: &str) -> Result<RecordFormat> {
        let mut tokens = Vec::new();
        let mut literal = String::new();
        let mut chars = format.chars();
        while let Some(c) = chars.next() {
            match c {
                '%' => match chars.next() {
                    Some('%') => literal.push('%'),
                    Some(f) if FIELDS.contains(f) => {
                        if !literal.is_empty() {
                            tokens.push(Token::Literal(std::mem::take(&mut literal)));
                        }
                        tokens.push(Token::Field(f));
                    }
                    Some(f) => {
                        bail!("unknown field %{f} in format {format:?} (use %k %v %t %p %o %d %h)")
                    }
                    None => bail!("format {format:?} ends with a lone %"),
                },
                '\\' => match chars.next() {
                    Some('n') => literal.push('\n'),
                    Some('t') => literal.push('\t'),
                    Some('\\') => literal.push('\\'),
                    Some(other) => {
                        literal.push('\\');
                        literal.push(other);
                    }
                    None => literal.push('\\'),
                },
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            tokens.push(Token::Literal(literal));
        }
        Ok(RecordFormat { tokens })
    }

    /// Formats one consumed record.
    pub fn format(&self, topic: &str, r: &ConsumedRecord, out: &mut Vec<u8>) {
        for token in &self.tokens {
            match token {
                Token::Literal(s) => out.extend_from_slice(s.as_bytes()),
                Token::Field('k') => out.extend_from_slice(r.key.as_deref().unwrap_or_default()),
                Token::Field('v') => out.extend_from_slice(r.value.as_deref().unwrap_or_default()),
                Token::Field('t') => out.extend_from_slice(topic.as_bytes()),
                Token::Field('p') => out.extend_from_slice(r.partition.to_string().as_bytes()),
                Token::Field('o') => out.extend_from_slice(r.offset.to_string().as_bytes()),
                Token::Field('d') => out.extend_from_slice(r.timestamp_ms.to_string().as_bytes()),
                Token::Field('h') => {
                    for (i, (k, v)) in r.headers.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(k.as_bytes());
                        out.push(b'=');
                        out.extend_from_slice(v.as_deref().unwrap_or_default());
                    }
                }
                Token::Field(_) => {}
            }
        }
    }

    /// Parses one input line (without its newline) into a record. Each field extends to the
    /// first occurrence of the literal that follows it; the last field takes the rest.
    /// Returns the record and the partition given by `%p`, if any.
    pub fn parse_line(&self, line: &str) -> Result<(ProducerRecord, Option<i32>)> {
        let mut record = ProducerRecord::default();
        let mut partition = None;
        let mut rest = line;
        let tokens: Vec<&Token> = self
            .tokens
            .iter()
            .filter(|t| **t != Token::Literal("\n".into()))
            .collect();
        for (i, token) in tokens.iter().enumerate() {
            match token {
                Token::Literal(s) => {
                    let Some(after) = rest.strip_prefix(s.as_str()) else {
                        bail!("line {line:?} does not match the format: expected {s:?}");
                    };
                    rest = after;
                }
                Token::Field(f) => {
                    let value = match tokens.get(i + 1) {
                        Some(Token::Literal(delim)) => {
                            let Some(at) = rest.find(delim.as_str()) else {
                                bail!("line {line:?} does not match the format: no {delim:?} after %{f}");
                            };
                            let (value, after) = rest.split_at(at);
                            rest = after;
                            value
                        }
                        _ => std::mem::take(&mut rest),
                    };
                    match f {
                        'k' => record.key = Some(Bytes::copy_from_slice(value.as_bytes())),
                        'v' => record.value = Some(Bytes::copy_from_slice(value.as_bytes())),
                        'h' => record.headers.extend(parse_headers(value)?),
                        'p' => {
                            partition = Some(value.trim().parse().map_err(|_| {
                                anyhow::anyhow!("%p: {value:?} is not a partition number")
                            })?)
                        }
                        'd' => {
                            record.timestamp_ms = value.trim().parse().map_err(|_| {
                                anyhow::anyhow!("%d: {value:?} is not a timestamp in ms")
                            })?
                        }
                        other => {
                            bail!("%{other} cannot be set when producing (use %k %v %h %p %d)")
                        }
                    }
                }
            }
        }
        Ok((record, partition))
    }
}

/// `k=v,k2=v2` (a header without `=` has a null value).
pub fn parse_headers(text: &str) -> Result<Vec<(String, Option<Bytes>)>> {
    Ok(text
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|h| match h.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(Bytes::copy_from_slice(v.as_bytes()))),
            None => (h.to_string(), None),
        })
        .collect())
}

/// One consumed record as a JSON object. Keys, values and header values are strings when
/// they are UTF-8; otherwise the field is named `<field>_base64` and holds base64.
pub fn record_json(topic: &str, r: &ConsumedRecord) -> Value {
    let mut object = json!({
        "topic": topic,
        "partition": r.partition,
        "offset": r.offset,
        "timestamp": r.timestamp_ms,
        "timestamp_type": if r.log_append_time { "LogAppendTime" } else { "CreateTime" },
    });
    let map = object.as_object_mut().expect("object");
    put_bytes(map, "key", r.key.as_deref());
    put_bytes(map, "value", r.value.as_deref());
    let mut headers = serde_json::Map::new();
    for (k, v) in &r.headers {
        put_bytes(&mut headers, k, v.as_deref());
    }
    map.insert("headers".into(), Value::Object(headers));
    object
}

fn put_bytes(map: &mut serde_json::Map<String, Value>, name: &str, bytes: Option<&[u8]>) {
    match bytes.map(std::str::from_utf8) {
        None => {
            map.insert(name.into(), Value::Null);
        }
        Some(Ok(s)) => {
            map.insert(name.into(), s.into());
        }
        Some(Err(_)) => {
            map.insert(
                format!("{name}_base64"),
                base64(bytes.unwrap_or_default()).into(),
            );
        }
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ConsumedRecord {
        ConsumedRecord {
            partition: 2,
            offset: 7,
            timestamp_ms: 1000,
            log_append_time: false,
            key: Some(Bytes::from_static(b"k1")),
            value: Some(Bytes::from_static(b"hello")),
            headers: vec![("a".into(), Some(Bytes::from_static(b"1")))],
        }
    }

    #[test]
    fn formats_every_field() {
        let f = RecordFormat::parse("%t/%p@%o %d %k=%v [%h] 100%%\\n").unwrap();
        let mut out = Vec::new();
        f.format("orders", &record(), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "orders/2@7 1000 k1=hello [a=1] 100%\n"
        );
        assert!(RecordFormat::parse("%x").is_err());
    }

    #[test]
    fn parses_lines() {
        let f = RecordFormat::parse("%k %v\\n").unwrap();
        let (r, p) = f.parse_line("user1 hello world").unwrap();
        assert_eq!(r.key.as_deref(), Some(&b"user1"[..]));
        assert_eq!(r.value.as_deref(), Some(&b"hello world"[..]));
        assert_eq!(p, None);
        let f = RecordFormat::parse("%p|%h|%v").unwrap();
        let (r, p) = f.parse_line("3|a=1,b=2|v").unwrap();
        assert_eq!((p, r.headers.len()), (Some(3), 2));
        assert!(f.parse_line("no delimiters").is_err());
        assert!(RecordFormat::parse("%o").unwrap().parse_line("1").is_err());
    }

    #[test]
    fn json_falls_back_to_base64() {
        let mut r = record();
        r.value = Some(Bytes::from_static(&[0xff, 0x00, 0x41]));
        let v = record_json("t", &r);
        assert_eq!(v["value_base64"], "/wBB");
        assert_eq!(v["key"], "k1");
        assert_eq!(v["headers"]["a"], "1");
        assert_eq!(base64(b"ab"), "YWI=");
    }
}

/// Where to start reading, or where to move a group: `start`, `end`, `N` (an offset),
/// `+N`, `-N`, `@TS` (the first offset whose timestamp is at or after TS ms).
/// `topic consume` reads `+N`/`-N` as N after the start / N before the end; `group seek`
/// reads them as a shift of the committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Start,
    End,
    At(i64),
    Plus(i64),
    Minus(i64),
    Timestamp(i64),
}

impl std::str::FromStr for OffsetSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<OffsetSpec, String> {
        let number = |n: &str| {
            n.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| format!("{s:?}: expected start, end, N, +N, -N or @TIMESTAMP_MS"))
        };
        Ok(match s {
            "start" | "beginning" | "earliest" => OffsetSpec::Start,
            "end" | "latest" => OffsetSpec::End,
            _ if s.starts_with('+') => OffsetSpec::Plus(number(&s[1..])?),
            _ if s.starts_with('-') => OffsetSpec::Minus(number(&s[1..])?),
            _ if s.starts_with('@') => OffsetSpec::Timestamp(number(&s[1..])?),
            _ => OffsetSpec::At(number(s)?),
        })
    }
}

#[cfg(test)]
mod offset_tests {
    use super::OffsetSpec::{self, *};

    #[test]
    fn offset_language() {
        let p = |s: &str| s.parse::<OffsetSpec>();
        assert_eq!(p("start"), Ok(Start));
        assert_eq!(p("end"), Ok(End));
        assert_eq!(p("42"), Ok(At(42)));
        assert_eq!(p("+3"), Ok(Plus(3)));
        assert_eq!(p("-3"), Ok(Minus(3)));
        assert_eq!(p("@1700000000000"), Ok(Timestamp(1_700_000_000_000)));
        assert!(p("x").is_err() && p("+").is_err() && p("@-1").is_err());
    }
}
