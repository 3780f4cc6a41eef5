//! A YAML document as a tree in which every node knows its line and column.
//!
//! The tree is what strict validation works on: every error can point at the line that
//! caused it. Scalars keep their source text, so `5000.00` stays exactly `5000.00` (a money
//! value is never read through a float). Duplicate keys, tags, multiple documents and
//! non-scalar keys are refused here.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// A position in the source, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    fn of(span: &Span) -> Pos {
        Pos { line: span.start.line(), col: span.start.col() + 1 }
    }
}

/// One node of a YAML document.
#[derive(Debug, Clone, PartialEq)]
pub struct Yaml {
    pub value: YamlValue,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum YamlValue {
    /// A scalar with its text. `plain` is false for quoted and block scalars, which are
    /// always strings.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Yaml>),
    /// Keys in source order; each key is a scalar.
    Map(Vec<(Yaml, Yaml)>),
}

/// What a plain scalar means under the YAML 1.2 core schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved<'a> {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(&'a str),
}

impl Yaml {
    /// A null node, for empty documents and absent values.
    pub fn null(pos: Pos) -> Yaml {
        Yaml { value: YamlValue::Scalar { text: String::new(), plain: true }, pos }
    }

    /// The core-schema meaning of a scalar; `None` for sequences and maps.
    pub fn resolve(&self) -> Option<Resolved<'_>> {
        let YamlValue::Scalar { text, plain } = &self.value else { return None };
        if !plain {
            return Some(Resolved::Str(text));
        }
        Some(resolve_plain(text))
    }

    /// A short description for messages: `a map`, `a list`, `the string "abc"`, ...
    pub fn describe(&self) -> String {
        match &self.value {
            YamlValue::Seq(_) => "a list".into(),
            YamlValue::Map(_) => "a map".into(),
            YamlValue::Scalar { text, .. } => match self.resolve() {
                Some(Resolved::Null) => "nothing (null)".into(),
                Some(Resolved::Bool(b)) => format!("the boolean {b}"),
                Some(Resolved::Int(_)) | Some(Resolved::Float(_)) => format!("the number {text}"),
                _ => format!("the string {text:?}"),
            },
        }
    }

    /// Looks up a key in a map node.
    pub fn get(&self, key: &str) -> Option<&Yaml> {
        let YamlValue::Map(entries) = &self.value else { return None };
        entries.iter().find(|(k, _)| k.scalar_text() == Some(key)).map(|(_, v)| v)
    }

    /// Where a key of a map node is written (the key itself, not its value).
    pub fn key_pos(&self, key: &str) -> Option<Pos> {
        let YamlValue::Map(entries) = &self.value else { return None };
        entries.iter().find(|(k, _)| k.scalar_text() == Some(key)).map(|(k, _)| k.pos)
    }

    /// The text of a scalar node; `None` for sequences and maps.
    pub fn scalar_text(&self) -> Option<&str> {
        match &self.value {
            YamlValue::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }
}

fn resolve_plain(text: &str) -> Resolved<'_> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Resolved::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = text.parse::<i128>() {
            return Resolved::Int(n);
        }
    }
    if let Some(hex) = text.strip_prefix("0x") {
        if let Ok(n) = i128::from_str_radix(hex, 16) {
            return Resolved::Int(n);
        }
    }
    if let Some(oct) = text.strip_prefix("0o") {
        if let Ok(n) = i128::from_str_radix(oct, 8) {
            return Resolved::Int(n);
        }
    }
    if is_core_float(digits) {
        if let Ok(f) = text.parse::<f64>() {
            return Resolved::Float(f);
        }
    }
    Resolved::Str(text)
}

/// `( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn is_core_float(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match frac {
        Some(f) => all_digits(int) && all_digits(f) && !(int.is_empty() && f.is_empty()),
        None => !int.is_empty() && all_digits(int),
    };
    let exponent_ok = match exponent {
        Some(e) => {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && all_digits(e)
        }
        None => true,
    };
    mantissa_ok && exponent_ok
}

/// Why a document could not be read as a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeError {
    pub pos: Pos,
    pub message: String,
}

/// Parses one YAML document into a tree. An empty document is a null node.
pub fn parse(text: &str) -> Result<Yaml, TreeError> {
    let mut builder = Builder { parser: Parser::new_from_str(text), anchors: HashMap::new() };
    let mut root = None;
    loop {
        let (event, span) = builder.next()?;
        match event {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::DocumentStart(_) => {
                if root.is_some() {
                    return Err(TreeError {
                        pos: Pos::of(&span),
                        message: "a pipeline config holds one YAML document; found a second one".into(),
                    });
                }
                let (event, span) = builder.next()?;
                root = Some(builder.node(event, span)?);
            }
            Event::StreamEnd => break,
            other => {
                return Err(TreeError { pos: Pos::of(&span), message: format!("unexpected YAML event {other:?}") });
            }
        }
    }
    Ok(root.unwrap_or_else(|| Yaml::null(Pos { line: 1, col: 1 })))
}

struct Builder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: HashMap<usize, Yaml>,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), TreeError> {
        match self.parser.next_event() {
            Some(Ok(pair)) => Ok(pair),
            Some(Err(e)) => Err(TreeError {
                pos: Pos { line: e.marker().line(), col: e.marker().col() + 1 },
                message: format!("this is not valid YAML: {}", e.info()),
            }),
            None => Err(TreeError { pos: Pos::default(), message: "unexpected end of YAML".into() }),
        }
    }

    fn node(&mut self, event: Event<'a>, span: Span) -> Result<Yaml, TreeError> {
        let pos = Pos::of(&span);
        let refuse_tag = |tag: &Option<_>| -> Result<(), TreeError> {
            match tag {
                Some(_) => {
                    Err(TreeError { pos, message: "YAML tags (`!name`) are not supported in a pipeline config".into() })
                }
                None => Ok(()),
            }
        };
        let (node, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                refuse_tag(&tag)?;
                let plain = style == ScalarStyle::Plain;
                (Yaml { value: YamlValue::Scalar { text: text.into_owned(), plain }, pos }, anchor)
            }
            Event::SequenceStart(anchor, tag) => {
                refuse_tag(&tag)?;
                let mut items = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(event, span)?);
                }
                (Yaml { value: YamlValue::Seq(items), pos }, anchor)
            }
            Event::MappingStart(anchor, tag) => {
                refuse_tag(&tag)?;
                let mut entries: Vec<(Yaml, Yaml)> = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::MappingEnd) {
                        break;
                    }
                    let key = self.node(event, span)?;
                    let Some(key_text) = key.scalar_text() else {
                        return Err(TreeError { pos: key.pos, message: "a map key must be a plain string".into() });
                    };
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.scalar_text() == Some(key_text)) {
                        return Err(TreeError {
                            pos: key.pos,
                            message: format!("duplicate key `{key_text}` (first given at line {})", first.pos.line),
                        });
                    }
                    let (event, span) = self.next()?;
                    let value = self.node(event, span)?;
                    entries.push((key, value));
                }
                (Yaml { value: YamlValue::Map(entries), pos }, anchor)
            }
            Event::Alias(id) => {
                let target = self.anchors.get(&id).cloned().ok_or_else(|| TreeError {
                    pos,
                    message: "this alias names an anchor that is not defined before it".into(),
                })?;
                return Ok(Yaml { pos, ..target });
            }
            other => return Err(TreeError { pos, message: format!("unexpected YAML event {other:?}") }),
        };
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_keep_text_and_position() {
        let doc = parse("a: 5000.00\nb:\n  - 'x'\n  - 7\n").unwrap();
        let a = doc.get("a").unwrap();
        assert_eq!(a.scalar_text(), Some("5000.00"));
        assert_eq!(a.pos, Pos { line: 1, col: 4 });
        assert_eq!(a.resolve(), Some(Resolved::Float(5000.0)));
        let YamlValue::Seq(items) = &doc.get("b").unwrap().value else { panic!() };
        assert_eq!(items[0].resolve(), Some(Resolved::Str("x")));
        assert_eq!(items[1].resolve(), Some(Resolved::Int(7)));
        assert_eq!(items[1].pos.line, 4);
    }

    #[test]
    fn duplicate_key_is_refused_with_both_lines() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.pos.line, 3);
        assert!(err.message.contains("first given at line 1"), "{}", err.message);
    }

    #[test]
    fn quoted_numbers_stay_strings_and_core_schema_resolves_plain_ones() {
        let doc = parse("a: '12'\nb: 0x1f\nc: yes\nd: ~\ne: 1e3\n").unwrap();
        assert_eq!(doc.get("a").unwrap().resolve(), Some(Resolved::Str("12")));
        assert_eq!(doc.get("b").unwrap().resolve(), Some(Resolved::Int(31)));
        assert_eq!(doc.get("c").unwrap().resolve(), Some(Resolved::Str("yes")));
        assert_eq!(doc.get("d").unwrap().resolve(), Some(Resolved::Null));
        assert_eq!(doc.get("e").unwrap().resolve(), Some(Resolved::Float(1000.0)));
    }

    #[test]
    fn syntax_error_has_a_line() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.pos.line >= 1);
        assert!(err.message.contains("not valid YAML"));
    }

    #[test]
    fn aliases_copy_their_anchor() {
        let doc = parse("a: &x {k: 1}\nb: *x\n").unwrap();
        assert_eq!(doc.get("b").unwrap().get("k").unwrap().resolve(), Some(Resolved::Int(1)));
    }
}
