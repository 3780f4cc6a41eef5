//! Conditions: the filter language of the database observer.
//!
//! When a row of a watched PostgreSQL table is inserted, updated or deleted, the observer holds two
//! images of the row: `before` (the row as it was; there is none for an INSERT) and `after` (the row
//! as it is now; there is none for a DELETE). A pipeline may attach a *condition* to the observer;
//! only the changes for which the condition holds are passed on. For example:
//!
//! ```text
//! changed_to(status, 'paid') && after.total >= 100
//! before.status == 'pending' || !(after.customer == 'acme')
//! changed(total) && (after.total > 99.50 || after.priority == true)
//! after.meta.tier != null
//! ```
//!
//! The condition is checked once when the pipeline starts, so a mistake in it stops the start with a
//! message that gives the column (the 1-based position, in characters, within the whole condition
//! text; a line break counts as one character) and says what was expected and what was found.
//!
//! # Fields
//!
//! `before.<column>` and `after.<column>` read a column of the old or new row image. Further
//! `.name` segments walk into JSON objects, e.g. `after.meta.tier` reads the key `tier` of the
//! object held in the column `meta`. Names are made of ASCII letters, digits and `_` and do not start
//! with a digit. Arrays cannot be indexed.
//!
//! A field whose image does not exist (`before` on INSERT, `after` on DELETE), whose column or key
//! is absent, or whose path walks through something that is not an object has the value `null`.
//!
//! A name on its own, such as `status`, is not a field: write `after.status` or `before.status`.
//!
//! # Literals
//!
//! * text in single quotes: `'paid'`, `'année'`. Inside, write a quote twice: `'it''s'`. There
//!   are no other escapes; any character, a line break included, stands for itself.
//! * numbers: `100`, `-3`, `99.50` (digits with an optional leading `-` and an optional decimal
//!   part; no exponent, no leading `+`, no `.5`).
//! * `true`, `false` and `null`, in lower case.
//!
//! # Comparisons
//!
//! `==`, `!=`, `<`, `<=`, `>`, `>=` compare two operands (fields, literals or functions). There is
//! no conversion between types:
//!
//! * `==` holds when both sides have the same JSON value. Numbers compare by value, so `99.5` equals
//!   `99.50` and a column holding `100` equals `100.0`. Text never equals a number: `'100' == 100`
//!   does not hold. `null == null` holds, so `after.col == null` tests for a null or missing value.
//!   Objects and arrays are equal when their members are, numbers again compared by value.
//! * `!=` holds exactly when `==` does not (so `after.code != 7` holds when `code` is the text `'7'`).
//! * `<`, `<=`, `>`, `>=` compare a number with a number, or text with text (byte by byte, which for
//!   UTF-8 is code point order: `'B' < 'a'`). Any other pair, in particular anything involving
//!   `null`, does not hold: with a missing `after.total`, both `after.total > 5` and
//!   `after.total <= 5` are false.
//!
//! Two whole numbers compare exactly; as soon as one side has a decimal part both are compared as
//! 64-bit floating point numbers.
//!
//! Comparisons cannot be chained (`1 < after.n < 5` is an error: write `1 < after.n && after.n < 5`)
//! and a parenthesised condition cannot be compared.
//!
//! # Functions
//!
//! Functions take a column path *without* `before.` or `after.` (`status`, `meta.tier`):
//!
//! * `changed(col)`: `before.col != after.col`. On INSERT this holds when `after.col` is not null,
//!   on DELETE when `before.col` is not null.
//! * `changed_to(col, value)`: `changed(col) && after.col == value`.
//! * `changed_from(col, value)`: `changed(col) && before.col == value`.
//!
//! `value` must be a literal. Function names are lower case.
//!
//! # Combining
//!
//! `!` (not) binds tightest, then `&&` (and), then `||` (or): `a || b && !c` means
//! `a || (b && (!c))`. Parentheses group. `&&` and `||` stop as soon as the result is known.
//! Parentheses and `!` may be nested at most 64 levels deep.
//!
//! Where a condition is expected without a comparison (`after.archived && changed(status)`), a
//! function, `true`, `false` or a field may stand alone. A field alone holds only when its value is
//! JSON `true`; any other value (`false`, `null`, text, a number, ...) counts as false, without an
//! error, so `!after.archived` holds when `archived` is `false`, null, missing or not a boolean. A
//! number, text or `null` literal alone is rejected when the condition is parsed.
//!
//! Whitespace (spaces, tabs, line breaks) may appear freely between the parts of a condition.

use std::cmp::Ordering;
use std::fmt;

use serde_json::{Map, Number, Value};

/// How many `(` and `!` may be open at once. Parsing and evaluation recurse once per level, so this
/// bound keeps a hostile condition from exhausting the stack.
const MAX_DEPTH: usize = 64;

/// The description of an operand, used when nothing more specific can be said.
const OPERAND_EXPECTED: &str = "expected a field `before.…` or `after.…`, a literal or a function";

/// Longest token text quoted verbatim in an error message; longer ones are cut with `…`.
const MAX_QUOTED_CHARS: usize = 40;

// ---------------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------------

/// A parsed condition, ready to be evaluated against row images. See the module documentation for
/// the language.
pub struct Condition {
    text: String,
    expr: Expr,
    /// First path segments of all fields and function arguments, deduplicated, in source order.
    columns: Vec<String>,
}

impl Condition {
    /// Parses `text`. The error says where (1-based column, counted in characters, and the offending token) and what
    /// was expected.
    pub fn parse(text: &str) -> Result<Condition, ParseError> {
        let mut parser = Parser::new(text);
        let expr = parser.parse_condition()?;
        Ok(Condition { text: text.to_owned(), expr, columns: parser.columns })
    }

    /// Evaluates over the images (None: the image does not exist).
    pub fn eval(&self, before: Option<&Value>, after: Option<&Value>) -> bool {
        Images { before, after }.test(&self.expr)
    }

    /// Every column the condition reads (first path segment of each field and function argument), deduplicated, in
    /// first-appearance order: lets the caller check them against the table's columns at startup.
    pub fn columns(&self) -> Vec<&str> {
        self.columns.iter().map(String::as_str).collect()
    }

    /// The source text.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Condition").field(&self.text).finish()
    }
}

/// Why a condition could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based position, in characters, of the offending token within the condition text (one past the last
    /// character when the problem is the end of the text).
    pub column: usize,
    /// What was expected and what was found.
    pub message: String,
}

impl ParseError {
    fn new(column: usize, message: impl Into<String>) -> ParseError {
        ParseError { column, message: message.into() }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at column {}: {}", self.column, self.message)
    }
}

impl std::error::Error for ParseError {}

// ---------------------------------------------------------------------------------------------------
// Syntax tree
// ---------------------------------------------------------------------------------------------------

/// A compiled condition. `||` and `&&` chains are flat lists, so only `(` and `!` add depth.
enum Expr {
    /// `a || b || ...`: at least two members.
    Any(Vec<Expr>),
    /// `a && b && ...`: at least two members.
    All(Vec<Expr>),
    Not(Box<Expr>),
    Compare(Operand, CmpOp, Operand),
    /// An operand standing alone: holds when its value is boolean `true`.
    Truth(Operand),
}

enum Operand {
    Field(Field),
    Literal(Literal),
    Call(Call),
}

/// A column path, split at parse time: `meta.tier` is `["meta", "tier"]`.
type Path = Box<[Box<str>]>;

struct Field {
    image: Image,
    path: Path,
}

#[derive(Clone, Copy)]
enum Image {
    Before,
    After,
}

enum Literal {
    Null,
    Bool(bool),
    Number(Num),
    Text(Box<str>),
}

enum Call {
    Changed(Path),
    ChangedTo(Path, Literal),
    ChangedFrom(Path, Literal),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Func {
    Changed,
    ChangedTo,
    ChangedFrom,
}

impl Func {
    fn named(name: &str) -> Option<Func> {
        match name {
            "changed" => Some(Func::Changed),
            "changed_to" => Some(Func::ChangedTo),
            "changed_from" => Some(Func::ChangedFrom),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A number, kept exact while it is whole. Every JSON integer (`i64` or `u64`) fits in `Int`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    fn of_json(n: &Number) -> Num {
        if let Some(i) = n.as_i64() {
            Num::Int(i.into())
        } else if let Some(u) = n.as_u64() {
            Num::Int(u.into())
        } else {
            // Without serde_json's `arbitrary_precision` every other number is an f64.
            Num::Float(n.as_f64().unwrap_or(f64::NAN))
        }
    }

    fn to_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    /// Exact for two whole numbers, floating point otherwise.
    fn compare(self, other: Num) -> Option<Ordering> {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
            _ => self.to_f64().partial_cmp(&other.to_f64()),
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------------

/// A value seen during evaluation. It borrows from the images or from the condition, so evaluating
/// allocates nothing.
#[derive(Clone, Copy)]
enum Val<'a> {
    Null,
    Bool(bool),
    Num(Num),
    Text(&'a str),
    Array(&'a [Value]),
    Object(&'a Map<String, Value>),
}

impl<'a> Val<'a> {
    fn of_json(value: &'a Value) -> Val<'a> {
        match value {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => Val::Num(Num::of_json(n)),
            Value::String(s) => Val::Text(s),
            Value::Array(items) => Val::Array(items),
            Value::Object(map) => Val::Object(map),
        }
    }
}

impl Literal {
    fn value(&self) -> Val<'_> {
        match self {
            Literal::Null => Val::Null,
            Literal::Bool(b) => Val::Bool(*b),
            Literal::Number(n) => Val::Num(*n),
            Literal::Text(t) => Val::Text(t),
        }
    }
}

/// The language's `==`: same type and same value, numbers by value, containers member by member.
fn val_eq(a: &Val<'_>, b: &Val<'_>) -> bool {
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Num(x), Val::Num(y)) => x.compare(*y) == Some(Ordering::Equal),
        (Val::Text(x), Val::Text(y)) => x == y,
        (Val::Array(x), Val::Array(y)) => x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| json_eq(p, q)),
        (Val::Object(x), Val::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(key, p)| y.get(key).is_some_and(|q| json_eq(p, q)))
        }
        _ => false,
    }
}

fn json_eq(a: &Value, b: &Value) -> bool {
    val_eq(&Val::of_json(a), &Val::of_json(b))
}

/// The order used by `<`, `<=`, `>`, `>=`: numbers with numbers, text with text; `None` otherwise.
fn val_order(a: &Val<'_>, b: &Val<'_>) -> Option<Ordering> {
    match (a, b) {
        (Val::Num(x), Val::Num(y)) => x.compare(*y),
        // `str`'s order is the order of its UTF-8 bytes.
        (Val::Text(x), Val::Text(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

impl CmpOp {
    fn apply(self, a: &Val<'_>, b: &Val<'_>) -> bool {
        match self {
            CmpOp::Eq => val_eq(a, b),
            CmpOp::Ne => !val_eq(a, b),
            CmpOp::Lt => val_order(a, b) == Some(Ordering::Less),
            CmpOp::Le => matches!(val_order(a, b), Some(Ordering::Less | Ordering::Equal)),
            CmpOp::Gt => val_order(a, b) == Some(Ordering::Greater),
            CmpOp::Ge => matches!(val_order(a, b), Some(Ordering::Greater | Ordering::Equal)),
        }
    }
}

/// The value at `path` in `image`; `null` when the image, a key or an intermediate object is missing.
fn lookup<'v>(image: Option<&'v Value>, path: &[Box<str>]) -> Val<'v> {
    let Some(mut current) = image else {
        return Val::Null;
    };
    for segment in path {
        match current.as_object().and_then(|map| map.get(&**segment)) {
            Some(next) => current = next,
            None => return Val::Null,
        }
    }
    Val::of_json(current)
}

/// The two row images of one change.
struct Images<'v> {
    before: Option<&'v Value>,
    after: Option<&'v Value>,
}

impl<'v> Images<'v> {
    fn test(&self, expr: &Expr) -> bool {
        match expr {
            Expr::Any(members) => members.iter().any(|e| self.test(e)),
            Expr::All(members) => members.iter().all(|e| self.test(e)),
            Expr::Not(inner) => !self.test(inner),
            Expr::Compare(lhs, op, rhs) => {
                note_leaf();
                op.apply(&self.value(lhs), &self.value(rhs))
            }
            Expr::Truth(operand) => {
                note_leaf();
                matches!(self.value(operand), Val::Bool(true))
            }
        }
    }

    fn value<'a>(&self, operand: &'a Operand) -> Val<'a>
    where
        'v: 'a,
    {
        match operand {
            Operand::Field(field) => {
                let image = match field.image {
                    Image::Before => self.before,
                    Image::After => self.after,
                };
                lookup(image, &field.path)
            }
            Operand::Literal(literal) => literal.value(),
            Operand::Call(call) => Val::Bool(self.call(call)),
        }
    }

    fn call(&self, call: &Call) -> bool {
        let path = match call {
            Call::Changed(path) | Call::ChangedTo(path, _) | Call::ChangedFrom(path, _) => path,
        };
        let old = lookup(self.before, path);
        let new = lookup(self.after, path);
        if val_eq(&old, &new) {
            return false;
        }
        match call {
            Call::Changed(_) => true,
            Call::ChangedTo(_, wanted) => val_eq(&new, &wanted.value()),
            Call::ChangedFrom(_, wanted) => val_eq(&old, &wanted.value()),
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Comparisons and lone operands evaluated on this thread; lets the tests observe short-circuiting.
    static LEAVES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[inline]
fn note_leaf() {
    #[cfg(test)]
    LEAVES.with(|n| n.set(n.get() + 1));
}

// ---------------------------------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------------------------------

struct Token {
    kind: Tok,
    /// 1-based character position of the first character.
    column: usize,
    /// Byte range in the source.
    start: usize,
    end: usize,
}

enum Tok {
    /// `[A-Za-z_][A-Za-z0-9_]*`; the text is read back from the source.
    Ident,
    /// A text literal, quotes removed and `''` undoubled.
    Text(Box<str>),
    Number(Num),
    LParen,
    RParen,
    Comma,
    Dot,
    Not,
    And,
    Or,
    Cmp(CmpOp),
    End,
    /// A lexical error. The token list stops here; the parser reports the error only when it reaches
    /// this point, so an earlier syntax error is reported first.
    Error(ParseError),
}

struct Lexer<'s> {
    src: &'s str,
    /// Byte offset of the next character.
    pos: usize,
    /// 1-based character position of the next character.
    column: usize,
}

/// Splits `src` into tokens, ending with `End` or `Error`.
fn lex(src: &str) -> Vec<Token> {
    let mut lexer = Lexer { src, pos: 0, column: 1 };
    let mut tokens = Vec::new();
    loop {
        let start = lexer.skip_whitespace();
        let column = lexer.column;
        match lexer.token(column) {
            Ok(kind) => {
                let last = matches!(kind, Tok::End);
                tokens.push(Token { kind, column, start, end: lexer.pos });
                if last {
                    return tokens;
                }
            }
            Err(error) => {
                tokens.push(Token { kind: Tok::Error(error), column, start, end: lexer.pos });
                return tokens;
            }
        }
    }
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.src[self.pos..].chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        self.column += 1;
        Some(c)
    }

    /// Consumes `c` if it is next.
    fn eat(&mut self, c: char) -> bool {
        let found = self.peek() == Some(c);
        if found {
            self.bump();
        }
        found
    }

    fn bump_while(&mut self, keep: impl Fn(char) -> bool) {
        while self.peek().is_some_and(&keep) {
            self.bump();
        }
    }

    /// Skips whitespace and returns the byte offset of what follows.
    fn skip_whitespace(&mut self) -> usize {
        self.bump_while(char::is_whitespace);
        self.pos
    }

    /// Reads one token starting at `column`.
    fn token(&mut self, column: usize) -> Result<Tok, ParseError> {
        let start = self.pos;
        let Some(c) = self.bump() else {
            return Ok(Tok::End);
        };
        let kind = match c {
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            ',' => Tok::Comma,
            '.' => Tok::Dot,
            '!' if self.eat('=') => Tok::Cmp(CmpOp::Ne),
            '!' => Tok::Not,
            '&' if self.eat('&') => Tok::And,
            '&' => return Err(ParseError::new(column, "a single `&` is not an operator; write `&&`")),
            '|' if self.eat('|') => Tok::Or,
            '|' => return Err(ParseError::new(column, "a single `|` is not an operator; write `||`")),
            '=' if self.eat('=') => Tok::Cmp(CmpOp::Eq),
            '=' => return Err(ParseError::new(column, "`=` is not an operator; write `==`")),
            '<' if self.eat('=') => Tok::Cmp(CmpOp::Le),
            '<' if self.peek() == Some('>') => {
                return Err(ParseError::new(column, "`<>` is not an operator; write `!=`"));
            }
            '<' => Tok::Cmp(CmpOp::Lt),
            '>' if self.eat('=') => Tok::Cmp(CmpOp::Ge),
            '>' => Tok::Cmp(CmpOp::Gt),
            '\'' => self.text(column)?,
            '"' => {
                return Err(ParseError::new(
                    column,
                    "`\"` is not allowed; text is written in single quotes, e.g. `'paid'`",
                ));
            }
            '-' | '0'..='9' => self.number(c, start, column)?,
            c if c == '_' || c.is_ascii_alphabetic() => {
                self.bump_while(|c| c == '_' || c.is_ascii_alphanumeric());
                Tok::Ident
            }
            c => {
                let hint = if c.is_alphabetic() { " (names use only ASCII letters, digits and `_`)" } else { "" };
                return Err(ParseError::new(column, format!("unexpected character `{}`{hint}", c.escape_debug())));
            }
        };
        Ok(kind)
    }

    /// Reads the rest of a text literal whose opening quote, at `column`, was just consumed.
    fn text(&mut self, column: usize) -> Result<Tok, ParseError> {
        let mut text = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(ParseError::new(
                        column,
                        format!("unterminated text literal starting at column {column}"),
                    ));
                }
                Some('\'') if self.eat('\'') => text.push('\''),
                Some('\'') => return Ok(Tok::Text(text.into_boxed_str())),
                Some(c) => text.push(c),
            }
        }
    }

    /// Reads the rest of a number whose first character `first` (a digit or `-`), at byte `start` and
    /// `column`, was just consumed.
    fn number(&mut self, first: char, start: usize, column: usize) -> Result<Tok, ParseError> {
        if first == '-' && !self.peek().is_some_and(|c| c.is_ascii_digit()) {
            return Err(ParseError::new(
                column,
                "`-` must be directly followed by a digit: only number literals can be negative",
            ));
        }
        self.bump_while(|c| c.is_ascii_digit());
        let mut whole = true;
        if self.peek() == Some('.') && self.peek_second().is_some_and(|c| c.is_ascii_digit()) {
            whole = false;
            self.bump();
            self.bump_while(|c| c.is_ascii_digit());
        }
        // A number glued to letters, `_` or another `.` (`1e3`, `12px`, `1.2.3`, `5.`) is malformed
        // as a whole rather than silently split into two tokens.
        if self.peek().is_some_and(|c| c == '_' || c == '.' || c.is_alphanumeric()) {
            self.bump_while(|c| c == '_' || c == '.' || c.is_alphanumeric());
            return Err(ParseError::new(
                column,
                format!(
                    "malformed number `{}`; numbers are digits with an optional leading `-` and decimal part, \
                     e.g. `-3` or `99.50`",
                    shorten(&self.src[start..self.pos])
                ),
            ));
        }
        let text = &self.src[start..self.pos];
        let int = if whole { text.parse::<i128>().ok().map(Num::Int) } else { None };
        let num = int.or_else(|| text.parse::<f64>().ok().filter(|f| f.is_finite()).map(Num::Float));
        match num {
            Some(num) => Ok(Tok::Number(num)),
            None => Err(ParseError::new(column, format!("number `{}` is out of range", shorten(text)))),
        }
    }
}

/// `text` itself, or its first `MAX_QUOTED_CHARS` characters followed by `…`.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// A hint for a word that looks like an attempt at an operator or a keyword.
fn word_hint(word: &str) -> Option<String> {
    let lower = word.to_ascii_lowercase();
    match lower.as_str() {
        "and" => Some(format!("write `&&` instead of `{word}`")),
        "or" => Some(format!("write `||` instead of `{word}`")),
        "not" => Some(format!("write `!` instead of `{word}`")),
        "true" | "false" | "null" | "before" | "after" if lower != word => {
            Some(format!("keywords are lower case: write `{lower}`"))
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------------

/// Recursive descent over the token list. Every `found …` message goes through `unexpected`, which
/// turns a pending lexical error into the reported one.
struct Parser<'s> {
    src: &'s str,
    tokens: Vec<Token>,
    /// Index of the current token; never moves past `End` or `Error`.
    pos: usize,
    /// Number of `(` and `!` currently open.
    depth: usize,
    columns: Vec<String>,
}

impl<'s> Parser<'s> {
    fn new(src: &'s str) -> Parser<'s> {
        Parser { src, tokens: lex(src), pos: 0, depth: 0, columns: Vec::new() }
    }

    fn kind(&self) -> &Tok {
        &self.tokens[self.pos].kind
    }

    fn kind_at(&self, index: usize) -> Option<&Tok> {
        self.tokens.get(index).map(|t| &t.kind)
    }

    fn column(&self) -> usize {
        self.tokens[self.pos].column
    }

    /// Moves past the current token; only called once it has been matched, so never on `End` or `Error`.
    fn bump(&mut self) {
        self.pos += 1;
    }

    /// Source text of token `index`.
    fn slice(&self, index: usize) -> &'s str {
        let src: &'s str = self.src;
        let token = &self.tokens[index];
        &src[token.start..token.end]
    }

    /// The current token's text if it is an identifier.
    fn word(&self) -> Option<&'s str> {
        matches!(self.kind(), Tok::Ident).then(|| self.slice(self.pos))
    }

    /// The identifier at `index` joined with the `.name` segments that follow it: `after.meta.tier`.
    fn path_text(&self, index: usize) -> String {
        let mut text = self.slice(index).to_owned();
        let mut i = index + 1;
        while matches!(self.kind_at(i), Some(Tok::Dot)) && matches!(self.kind_at(i + 1), Some(Tok::Ident)) {
            text.push('.');
            text.push_str(self.slice(i + 1));
            i += 2;
        }
        text
    }

    /// How the current token is shown after "found".
    fn found(&self) -> String {
        match self.kind() {
            Tok::End => "end of input".to_owned(),
            Tok::Ident => format!("`{}`", shorten(&self.path_text(self.pos))),
            _ => format!("`{}`", shorten(self.slice(self.pos))),
        }
    }

    /// "`expected`; found X (hint)" at the current token, or the lexical error waiting there.
    fn unexpected(&self, expected: &str, hint: Option<&str>) -> ParseError {
        if let Tok::Error(error) = self.kind() {
            return error.clone();
        }
        let mut message = format!("{expected}; found {}", self.found());
        if let Some(hint) = hint {
            message.push_str(" (");
            message.push_str(hint);
            message.push(')');
        }
        ParseError::new(self.column(), message)
    }

    /// Opens one level of `(` or `!` at `column`.
    fn enter(&mut self, column: usize) -> Result<(), ParseError> {
        if self.depth == MAX_DEPTH {
            return Err(ParseError::new(
                column,
                format!("nested too deeply: more than {MAX_DEPTH} levels of `(` and `!`"),
            ));
        }
        self.depth += 1;
        Ok(())
    }

    fn note_column(&mut self, name: &str) {
        if !self.columns.iter().any(|c| c == name) {
            self.columns.push(name.to_owned());
        }
    }

    /// The whole condition.
    fn parse_condition(&mut self) -> Result<Expr, ParseError> {
        if matches!(self.kind(), Tok::End) {
            return Err(ParseError::new(1, "empty condition"));
        }
        let expr = self.parse_or()?;
        match self.kind() {
            Tok::End => Ok(expr),
            Tok::RParen => Err(ParseError::new(self.column(), "unmatched `)`: no `(` is open here")),
            _ => {
                let hint = self.trailing_hint();
                Err(self.unexpected("expected end of condition", hint.as_deref()))
            }
        }
    }

    /// A hint for a token left over after a complete condition.
    fn trailing_hint(&self) -> Option<String> {
        const JOIN: &str = "join conditions with `&&` or `||`";
        match self.kind() {
            Tok::Ident => {
                let word = self.slice(self.pos);
                word_hint(word).or_else(|| {
                    (matches!(word, "before" | "after") || Func::named(word).is_some()).then(|| JOIN.to_owned())
                })
            }
            Tok::LParen | Tok::Not => Some(JOIN.to_owned()),
            _ => None,
        }
    }

    /// `or := and ('||' and)*`
    fn parse_or(&mut self) -> Result<Expr, ParseError> {
        let first = self.parse_and()?;
        if !matches!(self.kind(), Tok::Or) {
            return Ok(first);
        }
        let mut members = vec![first];
        while matches!(self.kind(), Tok::Or) {
            self.bump();
            members.push(self.parse_and()?);
        }
        Ok(Expr::Any(members))
    }

    /// `and := unary ('&&' unary)*`
    fn parse_and(&mut self) -> Result<Expr, ParseError> {
        let first = self.parse_unary()?;
        if !matches!(self.kind(), Tok::And) {
            return Ok(first);
        }
        let mut members = vec![first];
        while matches!(self.kind(), Tok::And) {
            self.bump();
            members.push(self.parse_unary()?);
        }
        Ok(Expr::All(members))
    }

    /// `unary := '!' unary | primary`
    fn parse_unary(&mut self) -> Result<Expr, ParseError> {
        if !matches!(self.kind(), Tok::Not) {
            return self.parse_primary();
        }
        self.enter(self.column())?;
        self.bump();
        let inner = self.parse_unary()?;
        self.depth -= 1;
        Ok(Expr::Not(Box::new(inner)))
    }

    /// `primary := '(' expr ')' | comparison_or_value`
    fn parse_primary(&mut self) -> Result<Expr, ParseError> {
        if !matches!(self.kind(), Tok::LParen) {
            return self.parse_comparison();
        }
        let open = self.column();
        self.enter(open)?;
        self.bump();
        let inner = self.parse_or()?;
        if !matches!(self.kind(), Tok::RParen) {
            return Err(self.unexpected(&format!("expected `)` to close the `(` at column {open}"), None));
        }
        self.bump();
        self.depth -= 1;
        if let Tok::Cmp(_) = self.kind() {
            return Err(ParseError::new(
                self.column(),
                format!(
                    "{} cannot follow a parenthesised condition: a comparison takes a field, a literal or a function \
                     on each side",
                    self.found()
                ),
            ));
        }
        Ok(inner)
    }

    /// `comparison_or_value := operand (cmp operand)?`
    fn parse_comparison(&mut self) -> Result<Expr, ParseError> {
        let first = self.pos;
        let lhs = self.parse_operand()?;
        let Tok::Cmp(op) = *self.kind() else {
            return match lhs {
                Operand::Literal(Literal::Null | Literal::Number(_) | Literal::Text(_)) => Err(self.unexpected(
                    &format!("expected a comparison operator after `{}`", shorten(self.slice(first))),
                    Some("a literal alone is not a condition"),
                )),
                _ => Ok(Expr::Truth(lhs)),
            };
        };
        self.bump();
        let rhs = self.parse_operand()?;
        if let Tok::Cmp(_) = self.kind() {
            return Err(ParseError::new(
                self.column(),
                format!("comparisons cannot be chained; found {} (join comparisons with `&&`)", self.found()),
            ));
        }
        Ok(Expr::Compare(lhs, op, rhs))
    }

    /// A field, a literal or a function call.
    fn parse_operand(&mut self) -> Result<Operand, ParseError> {
        let operand = match self.kind() {
            Tok::Text(text) => Operand::Literal(Literal::Text(text.clone())),
            Tok::Number(n) => Operand::Literal(Literal::Number(*n)),
            Tok::Ident => match self.slice(self.pos) {
                "before" | "after" => return self.parse_field().map(Operand::Field),
                "true" => Operand::Literal(Literal::Bool(true)),
                "false" => Operand::Literal(Literal::Bool(false)),
                "null" => Operand::Literal(Literal::Null),
                word if Func::named(word).is_some() || matches!(self.kind_at(self.pos + 1), Some(Tok::LParen)) => {
                    return self.parse_call().map(Operand::Call);
                }
                _ => return Err(self.bare_word()),
            },
            _ => {
                let expected = match self.previous_operator() {
                    Some(op) => format!("expected an operand after `{op}`"),
                    None => OPERAND_EXPECTED.to_owned(),
                };
                return Err(self.unexpected(&expected, None));
            }
        };
        self.bump();
        Ok(operand)
    }

    /// The text of the previous token if it is one after which an operand must follow.
    fn previous_operator(&self) -> Option<&'s str> {
        let previous = self.pos.checked_sub(1)?;
        matches!(self.tokens[previous].kind, Tok::And | Tok::Or | Tok::Not | Tok::LParen | Tok::Cmp(_))
            .then(|| self.slice(previous))
    }

    /// The error for an identifier where an operand belongs that is not a field, keyword or function.
    fn bare_word(&self) -> ParseError {
        let word = self.slice(self.pos);
        let path = self.path_text(self.pos);
        let single = path == word;
        let comparing = self.pos > 0 && matches!(self.tokens[self.pos - 1].kind, Tok::Cmp(_));
        let hint = word_hint(word).unwrap_or_else(|| {
            if comparing && single {
                format!("write `'{word}'` for text or `after.{word}` for a field")
            } else {
                format!("write `after.{path}` or `before.{path}`")
            }
        });
        let expected = match self.previous_operator() {
            Some(op) if comparing => format!("expected an operand after `{op}`"),
            _ => OPERAND_EXPECTED.to_owned(),
        };
        ParseError::new(self.column(), format!("{expected}; found `{}` ({hint})", shorten(&path)))
    }

    /// `before.<path>` or `after.<path>`; the current token is `before` or `after`.
    fn parse_field(&mut self) -> Result<Field, ParseError> {
        let word = self.slice(self.pos);
        let image = if word == "before" { Image::Before } else { Image::After };
        self.bump();
        if !matches!(self.kind(), Tok::Dot) {
            return Err(self.unexpected(&format!("expected `.` and a column name after `{word}`"), None));
        }
        self.bump();
        let path = self.parse_path(&format!("expected a column name after `{word}.`"), word)?;
        Ok(Field { image, path })
    }

    /// `name ('.' name)*`. `first_expected` describes the first name; `prefix` is what precedes the
    /// path in the source (`after`, or empty), for messages.
    fn parse_path(&mut self, first_expected: &str, prefix: &str) -> Result<Path, ParseError> {
        let Some(first) = self.word() else {
            return Err(self.unexpected(first_expected, None));
        };
        self.bump();
        self.note_column(first);
        let mut path: Vec<Box<str>> = vec![first.into()];
        while matches!(self.kind(), Tok::Dot) {
            self.bump();
            let Some(name) = self.word() else {
                let mut shown = prefix.to_owned();
                for segment in &path {
                    if !shown.is_empty() {
                        shown.push('.');
                    }
                    shown.push_str(segment);
                }
                return Err(self.unexpected(&format!("expected a name after `{shown}.`"), None));
            };
            self.bump();
            path.push(name.into());
        }
        Ok(path.into_boxed_slice())
    }

    /// `name '(' path (',' literal)? ')'`; the current token is the name.
    fn parse_call(&mut self) -> Result<Call, ParseError> {
        let name = self.slice(self.pos);
        let Some(func) = Func::named(name) else {
            let lower = name.to_ascii_lowercase();
            let hint = match Func::named(&lower) {
                Some(_) => format!(" (names are case-sensitive: write `{lower}`)"),
                None => String::new(),
            };
            return Err(ParseError::new(
                self.column(),
                format!("unknown function `{name}`; expected changed, changed_to or changed_from{hint}"),
            ));
        };
        self.bump();
        if !matches!(self.kind(), Tok::LParen) {
            return Err(self.unexpected(&format!("expected `(` after the function name `{name}`"), None));
        }
        let open = self.column();
        self.bump();
        self.reject_image_prefix(name)?;
        let path = self.parse_path(&format!("expected a column name as the first argument of `{name}`"), "")?;
        let call = match func {
            Func::Changed => Call::Changed(path),
            Func::ChangedTo => Call::ChangedTo(path, self.parse_literal_argument(name)?),
            Func::ChangedFrom => Call::ChangedFrom(path, self.parse_literal_argument(name)?),
        };
        if !matches!(self.kind(), Tok::RParen) {
            let hint =
                (func == Func::Changed && matches!(self.kind(), Tok::Comma)).then_some("`changed` takes one column");
            return Err(self.unexpected(&format!("expected `)` to close the `(` of `{name}` at column {open}"), hint));
        }
        self.bump();
        Ok(call)
    }

    /// Function arguments name a column, not a field: `changed(after.status)` is refused with a hint.
    fn reject_image_prefix(&self, name: &str) -> Result<(), ParseError> {
        let prefixed = matches!(self.word(), Some("before" | "after"))
            && matches!(self.kind_at(self.pos + 1), Some(Tok::Dot))
            && matches!(self.kind_at(self.pos + 2), Some(Tok::Ident));
        if !prefixed {
            return Ok(());
        }
        let path = self.path_text(self.pos);
        let bare = &path[self.slice(self.pos).len() + 1..];
        Err(ParseError::new(
            self.column(),
            format!(
                "the column argument of `{name}` is written without `before.` or `after.`: write `{bare}`, not `{path}`"
            ),
        ))
    }

    /// `',' literal`: the second argument of `changed_to` / `changed_from`.
    fn parse_literal_argument(&mut self, name: &str) -> Result<Literal, ParseError> {
        if !matches!(self.kind(), Tok::Comma) {
            return Err(self.unexpected(&format!("expected `,` and a literal after the column of `{name}`"), None));
        }
        self.bump();
        let literal = match self.kind() {
            Tok::Text(text) => Literal::Text(text.clone()),
            Tok::Number(n) => Literal::Number(*n),
            Tok::Ident => match self.slice(self.pos) {
                "true" => Literal::Bool(true),
                "false" => Literal::Bool(false),
                "null" => Literal::Null,
                word => {
                    let single = self.path_text(self.pos) == word && !matches!(word, "before" | "after");
                    let hint = word_hint(word).or_else(|| single.then(|| format!("text is quoted: write `'{word}'`")));
                    return Err(self.unexpected(
                        &format!("expected a literal as the second argument of `{name}`"),
                        hint.as_deref(),
                    ));
                }
            },
            _ => {
                return Err(self.unexpected(&format!("expected a literal as the second argument of `{name}`"), None));
            }
        };
        self.bump();
        Ok(literal)
    }
}

// ---------------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Condition {
        Condition::parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
    }

    /// Evaluates `text` on an UPDATE with both images.
    fn update(text: &str, before: Value, after: Value) -> bool {
        parse(text).eval(Some(&before), Some(&after))
    }

    /// Evaluates `text` with only an `after` image (an UPDATE whose `before` does not matter).
    fn on(text: &str, after: Value) -> bool {
        parse(text).eval(Some(&json!({})), Some(&after))
    }

    fn insert(text: &str, after: Value) -> bool {
        parse(text).eval(None, Some(&after))
    }

    fn delete(text: &str, before: Value) -> bool {
        parse(text).eval(Some(&before), None)
    }

    fn error(text: &str) -> ParseError {
        match Condition::parse(text) {
            Ok(c) => panic!("{text:?} should not parse, got {c:?}"),
            Err(e) => e,
        }
    }

    /// Asserts the exact error of `text`.
    fn assert_error(text: &str, column: usize, message: &str) {
        assert_eq!(error(text), ParseError { column, message: message.to_owned() }, "for {text:?}");
    }

    fn leaves_during(f: impl FnOnce()) -> usize {
        LEAVES.with(|n| n.set(0));
        f();
        LEAVES.with(|n| n.get())
    }

    // ----- the examples from the documentation ------------------------------------------------------

    #[test]
    fn documented_examples() {
        let paid = parse("changed_to(status, 'paid') && after.total >= 100");
        let b = json!({"status": "pending", "total": 150});
        assert!(paid.eval(Some(&b), Some(&json!({"status": "paid", "total": 150}))));
        assert!(!paid.eval(Some(&b), Some(&json!({"status": "paid", "total": 50}))));
        assert!(!paid.eval(Some(&json!({"status": "paid"})), Some(&json!({"status": "paid", "total": 150}))));

        let c = parse("before.status == 'pending' || !(after.customer == 'acme')");
        assert!(c.eval(Some(&json!({"status": "pending"})), Some(&json!({"customer": "acme"}))));
        assert!(c.eval(Some(&json!({"status": "new"})), Some(&json!({"customer": "zeta"}))));
        assert!(!c.eval(Some(&json!({"status": "new"})), Some(&json!({"customer": "acme"}))));

        let c = parse("changed(total) && (after.total > 99.50 || after.priority == true)");
        assert!(c.eval(Some(&json!({"total": 1})), Some(&json!({"total": 99.51}))));
        assert!(c.eval(Some(&json!({"total": 1})), Some(&json!({"total": 2, "priority": true}))));
        assert!(!c.eval(Some(&json!({"total": 1})), Some(&json!({"total": 99.5}))));
        assert!(!c.eval(Some(&json!({"total": 120})), Some(&json!({"total": 120, "priority": true}))));

        let c = parse("after.meta.tier != null");
        assert!(c.eval(None, Some(&json!({"meta": {"tier": "gold"}}))));
        assert!(!c.eval(None, Some(&json!({"meta": {}}))));
        assert!(!c.eval(None, Some(&json!({"meta": {"tier": null}}))));
    }

    // ----- comparison operators ----------------------------------------------------------------------

    #[test]
    fn equality_of_text() {
        assert!(on("after.status == 'paid'", json!({"status": "paid"})));
        assert!(!on("after.status == 'paid'", json!({"status": "Paid"})));
        assert!(on("after.status != 'paid'", json!({"status": "open"})));
        assert!(!on("after.status != 'paid'", json!({"status": "paid"})));
        assert!(on("'paid' == after.status", json!({"status": "paid"})));
    }

    #[test]
    fn ordering_of_numbers() {
        let row = json!({"n": 10});
        for (text, expected) in [
            ("after.n < 11", true),
            ("after.n < 10", false),
            ("after.n <= 10", true),
            ("after.n <= 9.99", false),
            ("after.n > 9", true),
            ("after.n > 10", false),
            ("after.n >= 10", true),
            ("after.n >= 10.01", false),
            ("after.n > -3", true),
            ("-3 < after.n", true),
            ("after.n == 10", true),
            ("after.n != 10", false),
        ] {
            assert_eq!(on(text, row.clone()), expected, "{text}");
        }
        assert!(on("after.x < -2.5", json!({"x": -3})));
        assert!(on("after.a < after.b", json!({"a": 1.5, "b": 2})));
    }

    #[test]
    fn ordering_of_text_is_by_bytes() {
        assert!(on("after.s < 'b'", json!({"s": "abc"})));
        assert!(on("after.s >= 'abc'", json!({"s": "abc"})));
        assert!(on("after.s <= 'abc'", json!({"s": "abc"})));
        assert!(on("after.s > 'ab'", json!({"s": "abc"})));
        assert!(on("'B' < 'a'", json!({})), "upper case sorts before lower case");
        assert!(on("after.s > 'z'", json!({"s": "é"})), "non-ASCII sorts after ASCII");
        assert!(on("after.s < '9'", json!({"s": "10"})), "text compares as text, not as numbers");
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(on("after.total == 99.50", json!({"total": 99.5})));
        assert!(on("99.5 == 99.50", json!({})));
        assert!(on("after.total == 100.0", json!({"total": 100})));
        assert!(on("after.total == 100", json!({"total": 100.0})));
        assert!(on("after.total == -0", json!({"total": 0})));
        assert!(on("after.a == after.b", json!({"a": 7, "b": 7.0})));
        assert!(!on("after.total == 100", json!({"total": 100.5})));
        assert!(on("after.total != 100", json!({"total": 100.5})));
        assert!(on("after.big == 18446744073709551615", json!({"big": u64::MAX})));
        assert!(on("after.neg == -9223372036854775808", json!({"neg": i64::MIN})));
    }

    #[test]
    fn large_integers_compare_exactly() {
        // 2^53 + 1 and 2^53 are the same f64; as whole numbers they differ.
        let (b, a) = (json!({"id": 9_007_199_254_740_993_u64}), json!({"id": 9_007_199_254_740_992_u64}));
        assert!(update("changed(id)", b.clone(), a.clone()));
        assert!(update("before.id > after.id", b.clone(), a.clone()));
        assert!(!update("after.id == 9007199254740993", b, a));
    }

    #[test]
    fn text_never_equals_a_number() {
        let row = json!({"code": "100", "n": 100});
        assert!(!on("after.code == 100", row.clone()));
        assert!(on("after.code != 100", row.clone()));
        assert!(!on("after.n == '100'", row.clone()));
        assert!(!on("'100' == 100", row.clone()));
        for op in ["<", "<=", ">", ">="] {
            assert!(!on(&format!("after.code {op} 100"), row.clone()), "text {op} number");
            assert!(!on(&format!("after.n {op} '100'"), row.clone()), "number {op} text");
        }
    }

    #[test]
    fn other_types_never_mix() {
        let row = json!({"flag": true, "zero": 0, "empty": "", "list": [1], "obj": {"a": 1}});
        assert!(!on("after.flag == 1", row.clone()));
        assert!(!on("after.zero == false", row.clone()));
        assert!(!on("after.empty == null", row.clone()));
        assert!(!on("after.flag < 2", row.clone()));
        assert!(!on("after.list == 1", row.clone()));
        assert!(!on("after.obj == 'x'", row.clone()));
        assert!(!on("true < false", row.clone()), "booleans are not ordered");
        assert!(!on("true >= true", row.clone()), "booleans are not ordered");
        assert!(on("true == true", row.clone()));
        assert!(on("false != true", row));
    }

    #[test]
    fn null_semantics() {
        let row = json!({"gone": null, "n": 5});
        assert!(on("after.gone == null", row.clone()));
        assert!(on("after.missing == null", row.clone()));
        assert!(on("null == null", row.clone()));
        assert!(on("after.gone == after.missing", row.clone()));
        assert!(!on("after.gone != null", row.clone()));
        assert!(on("after.n != null", row.clone()));
        for op in ["<", "<=", ">", ">="] {
            assert!(!on(&format!("after.gone {op} 5"), row.clone()), "null {op} number");
            assert!(!on(&format!("after.n {op} null"), row.clone()), "number {op} null");
            assert!(!on(&format!("null {op} null"), row.clone()), "null {op} null");
        }
    }

    #[test]
    fn containers_compare_member_by_member() {
        let b = json!({"tags": ["a", 1], "meta": {"x": 1, "y": [2.0]}});
        assert!(!update("changed(tags)", b.clone(), json!({"tags": ["a", 1.0], "meta": {"y": [2], "x": 1.0}})));
        assert!(!update("changed(meta)", b.clone(), json!({"tags": ["a", 1.0], "meta": {"y": [2], "x": 1.0}})));
        assert!(update("changed(tags)", b.clone(), json!({"tags": ["a"]})));
        assert!(update("changed(meta)", b.clone(), json!({"meta": {"x": 1, "y": [2], "z": null}})));
        assert!(update("changed(meta)", b.clone(), json!({"meta": {"x": 1, "z": [2]}})));
        assert!(update("before.tags == before.tags", b.clone(), json!({})));
        assert!(!update("before.tags == before.meta", b, json!({})));
    }

    // ----- lone operands -----------------------------------------------------------------------------

    #[test]
    fn lone_operands_must_be_true() {
        let row = json!({"yes": true, "no": false, "text": "true", "one": 1, "nil": null, "obj": {}});
        assert!(on("after.yes", row.clone()));
        assert!(!on("after.no", row.clone()));
        assert!(!on("after.text", row.clone()), "the text 'true' is not true");
        assert!(!on("after.one", row.clone()));
        assert!(!on("after.nil", row.clone()));
        assert!(!on("after.missing", row.clone()));
        assert!(!on("after.obj", row.clone()));
        assert!(on("true", row.clone()));
        assert!(!on("false", row.clone()));
        // `!` of a non-boolean is therefore true.
        assert!(on("!after.text", row.clone()));
        assert!(on("!after.missing", row.clone()));
        assert!(!on("!after.yes", row));
    }

    #[test]
    fn functions_are_boolean_operands() {
        let (b, a) = (json!({"s": 1}), json!({"s": 2}));
        assert!(update("changed(s) == true", b.clone(), a.clone()));
        assert!(!update("changed(s) == false", b.clone(), a.clone()));
        assert!(update("changed(s) != changed(t)", b.clone(), a.clone()));
        assert!(!update("changed(s) == 1", b, a));
    }

    // ----- functions ---------------------------------------------------------------------------------

    #[test]
    fn changed_on_update() {
        assert!(update("changed(status)", json!({"status": "a"}), json!({"status": "b"})));
        assert!(!update("changed(status)", json!({"status": "a"}), json!({"status": "a"})));
        assert!(!update("changed(total)", json!({"total": 5}), json!({"total": 5.0})));
        assert!(update("changed(total)", json!({"total": 5}), json!({"total": "5"})));
        assert!(update("changed(status)", json!({"status": null}), json!({"status": "a"})));
        assert!(update("changed(status)", json!({}), json!({"status": "a"})));
        assert!(!update("changed(status)", json!({"status": null}), json!({})));
        assert!(update("changed(meta.tier)", json!({"meta": {"tier": 1}}), json!({"meta": {"tier": 2}})));
        assert!(!update("changed(meta.tier)", json!({"meta": {"tier": 1, "x": 1}}), json!({"meta": {"tier": 1}})));
    }

    #[test]
    fn changed_to_and_changed_from() {
        let (b, a) = (json!({"status": "pending", "n": 1}), json!({"status": "paid", "n": 2}));
        assert!(update("changed_to(status, 'paid')", b.clone(), a.clone()));
        assert!(!update("changed_to(status, 'pending')", b.clone(), a.clone()));
        assert!(update("changed_from(status, 'pending')", b.clone(), a.clone()));
        assert!(!update("changed_from(status, 'paid')", b.clone(), a.clone()));
        assert!(update("changed_to(n, 2.0)", b.clone(), a.clone()));
        assert!(!update("changed_to(n, '2')", b.clone(), a.clone()));
        assert!(update("changed_from(n, 1)", b.clone(), a.clone()));
        // Unchanged value: neither holds even though the value matches.
        assert!(!update("changed_to(status, 'paid')", a.clone(), a.clone()));
        assert!(!update("changed_from(status, 'paid')", a.clone(), a.clone()));
        assert!(update("changed_to(flag, true)", json!({"flag": false}), json!({"flag": true})));
        assert!(update("changed_to(flag, null)", json!({"flag": false}), json!({})));
        assert!(update("changed_from(flag, null)", json!({}), json!({"flag": false})));
        assert!(update("changed_to(x, -3)", json!({}), json!({"x": -3})));
    }

    #[test]
    fn insert_has_no_before_image() {
        let row = json!({"status": "new", "nothing": null});
        assert!(insert("changed(status)", row.clone()));
        assert!(!insert("changed(nothing)", row.clone()));
        assert!(!insert("changed(missing)", row.clone()));
        assert!(insert("changed_to(status, 'new')", row.clone()));
        assert!(insert("changed_from(status, null)", row.clone()));
        assert!(!insert("changed_from(status, 'new')", row.clone()));
        assert!(insert("before.status == null", row.clone()));
        assert!(insert("before.meta.deep == null", row.clone()));
        assert!(!insert("before.status != null", row.clone()));
        assert!(!insert("before.status", row.clone()));
        assert!(insert("after.status == 'new'", row));
    }

    #[test]
    fn delete_has_no_after_image() {
        let row = json!({"status": "old", "nothing": null});
        assert!(delete("changed(status)", row.clone()));
        assert!(!delete("changed(nothing)", row.clone()));
        assert!(delete("changed_from(status, 'old')", row.clone()));
        assert!(delete("changed_to(status, null)", row.clone()));
        assert!(!delete("changed_to(status, 'old')", row.clone()));
        assert!(delete("after.status == null", row.clone()));
        assert!(!delete("after.status > 'a'", row.clone()));
        assert!(delete("before.status == 'old'", row));
    }

    #[test]
    fn no_images_at_all() {
        let c = parse("changed(x) || after.x == null && before.x == null");
        assert!(c.eval(None, None));
        assert!(!parse("changed(x)").eval(None, None));
    }

    // ----- paths -------------------------------------------------------------------------------------

    #[test]
    fn nested_paths() {
        let row = json!({"meta": {"tier": "gold", "limits": {"max": 3}}, "name": "x", "list": [{"a": 1}]});
        assert!(on("after.meta.tier == 'gold'", row.clone()));
        assert!(on("after.meta.limits.max >= 3", row.clone()));
        assert!(on("after.meta.nope == null", row.clone()));
        assert!(on("after.meta.limits.max.deeper == null", row.clone()), "walking into a number gives null");
        assert!(on("after.name.length == null", row.clone()), "walking into text gives null");
        assert!(on("after.list.a == null", row.clone()), "arrays are not walked");
        assert!(on("after.meta != null", row.clone()));
        // Keywords and function names are fine as later segments.
        assert!(on("after.meta.true == 1", json!({"meta": {"true": 1}})));
        assert!(on("after.changed == 1", json!({"changed": 1})));
        assert!(on("after.after.before == 1", json!({"after": {"before": 1}})));
        assert!(on("after._x1 == 1", json!({"_x1": 1})));
    }

    #[test]
    fn images_that_are_not_objects_give_null() {
        let c = parse("after.x == null && before.x == null");
        assert!(c.eval(Some(&Value::Null), Some(&json!([1, 2]))));
        assert!(c.eval(Some(&json!("text")), Some(&json!(3))));
    }

    // ----- boolean operators -------------------------------------------------------------------------

    #[test]
    fn and_or_not() {
        for (text, expected) in [
            ("true && true", true),
            ("true && false", false),
            ("false && true", false),
            ("false || false", false),
            ("false || true", true),
            ("true || false", true),
            ("!true", false),
            ("!false", true),
            ("!!true", true),
            ("!!!true", false),
            ("true && true && true && false", false),
            ("false || false || false || true", true),
        ] {
            assert_eq!(on(text, json!({})), expected, "{text}");
        }
    }

    #[test]
    fn precedence() {
        // `&&` binds tighter than `||`, on either side.
        assert!(on("true || false && false", json!({})));
        assert!(on("false && false || true", json!({})));
        assert!(!on("(true || false) && false", json!({})));
        // `!` binds tighter than `&&`, `||` and applies to a whole comparison.
        assert!(!on("!false && false", json!({})));
        assert!(on("!(false && false)", json!({})));
        assert!(on("!true || true", json!({})));
        assert!(on("!after.n == 1", json!({"n": 2})), "`!` negates the comparison `after.n == 1`");
        assert!(!on("!after.n == 1", json!({"n": 1})));
        // Comparisons bind tighter than `&&`.
        assert!(on("after.a == 1 && after.b == 2 || after.c == 3", json!({"c": 3})));
        assert!(!on("after.a == 1 && (after.b == 2 || after.c == 3)", json!({"c": 3})));
    }

    #[test]
    fn short_circuit() {
        let row = json!({"a": 1});
        let c = parse("false && (after.a == 1 || after.a == 2)");
        assert_eq!(leaves_during(|| assert!(!c.eval(None, Some(&row)))), 1);
        let c = parse("after.a == 1 || after.a == 2 || after.a == 3");
        assert_eq!(leaves_during(|| assert!(c.eval(None, Some(&row)))), 1);
        let c = parse("after.a == 2 || after.a == 1 || after.a == 3");
        assert_eq!(leaves_during(|| assert!(c.eval(None, Some(&row)))), 2);
        let c = parse("after.a == 1 && after.a == 2 && after.a == 3");
        assert_eq!(leaves_during(|| assert!(!c.eval(None, Some(&row)))), 2);
        let c = parse("!(true || after.a == 1)");
        assert_eq!(leaves_during(|| assert!(!c.eval(None, Some(&row)))), 1);
    }

    // ----- lexical details ---------------------------------------------------------------------------

    #[test]
    fn whitespace_is_free() {
        let c = parse("\n\tchanged_to ( status ,\n 'paid' )\r\n&&after . total>=100&&!(after.x==1)  ");
        assert!(c.eval(Some(&json!({})), Some(&json!({"status": "paid", "total": 100}))));
        assert!(on("after.n>=-3", json!({"n": -3})));
        assert!(on("after.n==1||false", json!({"n": 1})));
    }

    #[test]
    fn text_literals() {
        assert!(on("after.s == 'it''s'", json!({"s": "it's"})));
        assert!(on("after.s == ''''", json!({"s": "'"})));
        assert!(on("after.s == ''", json!({"s": ""})));
        assert!(on("after.s == 'a && b || !(c)'", json!({"s": "a && b || !(c)"})));
        assert!(on("after.s == 'année 😀 \"q\" \\n'", json!({"s": "année 😀 \"q\" \\n"})));
        assert!(on("after.s == 'two\nlines'", json!({"s": "two\nlines"})));
    }

    #[test]
    fn number_literals() {
        assert!(on("after.n == 007", json!({"n": 7})));
        assert!(on("after.n == -0.25", json!({"n": -0.25})));
        assert!(on("after.n == 123456789012345678901234567890", json!({"n": 1.2345678901234568e29})));
    }

    // ----- metadata ----------------------------------------------------------------------------------

    #[test]
    fn columns_are_deduplicated_in_order() {
        let c = parse(
            "changed_to(status, 'paid') && after.total >= before.total || after.meta.tier == 'x' \
             || !changed(status) || changed_from(meta.x, 1) || after.z",
        );
        assert_eq!(c.columns(), vec!["status", "total", "meta", "z"]);
        assert_eq!(parse("true").columns(), Vec::<&str>::new());
        assert_eq!(parse("after.b == before.a").columns(), vec!["b", "a"]);
    }

    #[test]
    fn text_and_debug() {
        let text = " after.x == 'y' ";
        let c = parse(text);
        assert_eq!(c.text(), text);
        assert_eq!(format!("{c:?}"), "Condition(\" after.x == 'y' \")");
    }

    #[test]
    fn parse_error_display_and_error_trait() {
        let e = error("after.x ==");
        assert_eq!(e.to_string(), "at column 11: expected an operand after `==`; found end of input");
        let boxed: Box<dyn std::error::Error> = Box::new(e);
        assert!(boxed.to_string().starts_with("at column 11"));
    }

    // ----- errors: the listed messages ---------------------------------------------------------------

    #[test]
    fn error_unclosed_paren() {
        assert_error("!  (after.ok", 13, "expected `)` to close the `(` at column 4; found end of input");
        assert_error("(after.a == 1 foo", 15, "expected `)` to close the `(` at column 1; found `foo`");
    }

    #[test]
    fn error_missing_operand_after_operator() {
        assert_error("after.x == && true", 12, "expected an operand after `==`; found `&&`");
        assert_error("after.x && ", 12, "expected an operand after `&&`; found end of input");
        assert_error("true || )", 9, "expected an operand after `||`; found `)`");
        assert_error("!", 2, "expected an operand after `!`; found end of input");
        assert_error("()", 2, "expected an operand after `(`; found `)`");
        assert_error("&& true", 1, "expected a field `before.…` or `after.…`, a literal or a function; found `&&`");
    }

    #[test]
    fn error_unknown_function() {
        assert_error(
            "after.a == 1 && chnaged(x)",
            17,
            "unknown function `chnaged`; expected changed, changed_to or changed_from",
        );
        assert_error(
            "Changed(x)",
            1,
            "unknown function `Changed`; expected changed, changed_to or changed_from \
             (names are case-sensitive: write `changed`)",
        );
    }

    #[test]
    fn error_unterminated_text() {
        assert_error("after.a == 'abc", 12, "unterminated text literal starting at column 12");
        assert_error("after.a == 'it''", 12, "unterminated text literal starting at column 12");
    }

    #[test]
    fn error_literal_argument() {
        assert_error(
            "changed_to(status, after.status)",
            20,
            "expected a literal as the second argument of `changed_to`; found `after.status`",
        );
        assert_error(
            "changed_from(status, paid)",
            22,
            "expected a literal as the second argument of `changed_from`; found `paid` \
             (text is quoted: write `'paid'`)",
        );
        assert_error(
            "changed_to(status, )",
            20,
            "expected a literal as the second argument of `changed_to`; found `)`",
        );
    }

    #[test]
    fn error_single_ampersand_and_bar() {
        assert_error("after.a & after.b", 9, "a single `&` is not an operator; write `&&`");
        assert_error("after.a | after.b", 9, "a single `|` is not an operator; write `||`");
    }

    #[test]
    fn error_single_equals() {
        assert_error("after.a = 1", 9, "`=` is not an operator; write `==`");
        assert_error("after.a === 1", 11, "`=` is not an operator; write `==`");
        assert_error("after.a <> 1", 9, "`<>` is not an operator; write `!=`");
    }

    #[test]
    fn error_trailing_input() {
        assert_error("after.a == 1 foo", 14, "expected end of condition; found `foo`");
        assert_error(
            "after.a == 1 after.b == 2",
            14,
            "expected end of condition; found `after.b` (join conditions with `&&` or `||`)",
        );
        assert_error(
            "after.a == 1 and true",
            14,
            "expected end of condition; found `and` (write `&&` instead of `and`)",
        );
        assert_error("true)", 5, "unmatched `)`: no `(` is open here");
    }

    #[test]
    fn error_empty() {
        assert_error("", 1, "empty condition");
        assert_error(" \t\n ", 1, "empty condition");
    }

    #[test]
    fn error_nesting_depth() {
        let ok = format!("{}true{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(on(&ok, json!({})));
        let deep = format!("{}true{}", "(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
        assert_error(&deep, MAX_DEPTH + 1, "nested too deeply: more than 64 levels of `(` and `!`");
        let nots = format!("{}true", "!".repeat(MAX_DEPTH));
        assert!(on(&nots, json!({})));
        assert_error(
            &format!("{}true", "!".repeat(MAX_DEPTH + 1)),
            MAX_DEPTH + 1,
            "nested too deeply: more than 64 levels of `(` and `!`",
        );
        // `(` and `!` count together; siblings do not add up.
        let mixed = format!("{}true{}", "!(".repeat(32), ")".repeat(32));
        assert!(on(&mixed, json!({})));
        assert_eq!(error(&format!("{}true{}", "!(".repeat(33), ")".repeat(33))).column, 65);
        let wide = vec!["(((true)))"; 1000].join(" && ");
        assert!(on(&wide, json!({})));
    }

    #[test]
    fn hostile_inputs_do_not_overflow() {
        for text in ["(".repeat(100_000), "!".repeat(100_000), "!(".repeat(50_000), ")".repeat(100_000)] {
            assert!(Condition::parse(&text).is_err());
        }
        let long_chain = vec!["after.a == 1"; 20_000].join(" && ");
        assert!(on(&long_chain, json!({"a": 1})));
        let long_or = vec!["after.a == 2"; 20_000].join(" || ");
        assert!(!on(&long_or, json!({"a": 1})));
    }

    #[test]
    fn error_bare_identifier() {
        assert_error(
            "status == 'paid'",
            1,
            "expected a field `before.…` or `after.…`, a literal or a function; found `status` \
             (write `after.status` or `before.status`)",
        );
        assert_error(
            "true && meta.tier == 1",
            9,
            "expected a field `before.…` or `after.…`, a literal or a function; found `meta.tier` \
             (write `after.meta.tier` or `before.meta.tier`)",
        );
        assert_error(
            "after.status == paid",
            17,
            "expected an operand after `==`; found `paid` (write `'paid'` for text or `after.paid` for a field)",
        );
        assert_error(
            "after.ok == True",
            13,
            "expected an operand after `==`; found `True` (keywords are lower case: write `true`)",
        );
        assert_error(
            "After.ok",
            1,
            "expected a field `before.…` or `after.…`, a literal or a function; found `After.ok` \
             (keywords are lower case: write `after`)",
        );
        assert_error(
            "not after.ok",
            1,
            "expected a field `before.…` or `after.…`, a literal or a function; found `not` \
             (write `!` instead of `not`)",
        );
    }

    // ----- errors: the others ------------------------------------------------------------------------

    #[test]
    fn error_fields() {
        assert_error("after == 1", 7, "expected `.` and a column name after `after`; found `==`");
        assert_error("before", 7, "expected `.` and a column name after `before`; found end of input");
        assert_error("after. == 1", 8, "expected a column name after `after.`; found `==`");
        assert_error("after.meta. == 1", 13, "expected a name after `after.meta.`; found `==`");
        assert_error("after.items.0 == 1", 13, "expected a name after `after.items.`; found `0`");
    }

    #[test]
    fn error_function_calls() {
        assert_error(
            "changed(after.status)",
            9,
            "the column argument of `changed` is written without `before.` or `after.`: \
             write `status`, not `after.status`",
        );
        assert_error(
            "changed_to(before.meta.tier, 1)",
            12,
            "the column argument of `changed_to` is written without `before.` or `after.`: \
             write `meta.tier`, not `before.meta.tier`",
        );
        assert_error(
            "changed(status, 'x')",
            15,
            "expected `)` to close the `(` of `changed` at column 8; found `,` (`changed` takes one column)",
        );
        assert_error(
            "changed_to(status)",
            18,
            "expected `,` and a literal after the column of `changed_to`; found `)`",
        );
        assert_error(
            "changed_to(s, 1, 2)",
            16,
            "expected `)` to close the `(` of `changed_to` at column 11; found `,`",
        );
        assert_error("changed()", 9, "expected a column name as the first argument of `changed`; found `)`");
        assert_error("changed('s')", 9, "expected a column name as the first argument of `changed`; found `'s'`");
        assert_error("changed", 8, "expected `(` after the function name `changed`; found end of input");
        assert_error(
            "changed_to(s, TRUE)",
            15,
            "expected a literal as the second argument of `changed_to`; found `TRUE` \
             (keywords are lower case: write `true`)",
        );
        // A column named `after` is allowed when not followed by a path.
        assert!(update("changed(after)", json!({"after": 1}), json!({"after": 2})));
        assert_eq!(parse("changed(after)").columns(), vec!["after"]);
    }

    #[test]
    fn error_lone_literals_and_chains() {
        assert_error(
            "'paid'",
            7,
            "expected a comparison operator after `'paid'`; found end of input (a literal alone is not a condition)",
        );
        assert_error(
            "true && 5 || false",
            11,
            "expected a comparison operator after `5`; found `||` (a literal alone is not a condition)",
        );
        assert_error(
            "null",
            5,
            "expected a comparison operator after `null`; found end of input (a literal alone is not a condition)",
        );
        assert_error("1 < after.n < 5", 13, "comparisons cannot be chained; found `<` (join comparisons with `&&`)");
        assert_error(
            "(after.n) == 1",
            11,
            "`==` cannot follow a parenthesised condition: a comparison takes a field, a literal or a function \
             on each side",
        );
    }

    #[test]
    fn error_numbers_and_characters() {
        let malformed = "numbers are digits with an optional leading `-` and decimal part, e.g. `-3` or `99.50`";
        assert_error("after.n == 1e3", 12, &format!("malformed number `1e3`; {malformed}"));
        assert_error("after.n == 5.", 12, &format!("malformed number `5.`; {malformed}"));
        assert_error("after.n == 1.2.3", 12, &format!("malformed number `1.2.3`; {malformed}"));
        assert_error("after.n == .5", 12, "expected an operand after `==`; found `.`");
        assert_error(
            "after.n == - 3",
            12,
            "`-` must be directly followed by a digit: only number literals can be negative",
        );
        let huge = format!("after.n == {}.0", "9".repeat(400));
        let e = error(&huge);
        assert_eq!(e.column, 12);
        assert!(e.message.starts_with("number `9999") && e.message.ends_with("…` is out of range"), "{}", e.message);
        assert_error("after.n == \"x\"", 12, "`\"` is not allowed; text is written in single quotes, e.g. `'paid'`");
        assert_error("after.n == 1 # comment", 14, "unexpected character `#`");
        assert_error(
            "after.prénom == 'x'",
            9,
            "unexpected character `é` (names use only ASCII letters, digits and `_`)",
        );
    }

    #[test]
    fn keywords_are_case_sensitive() {
        assert!(Condition::parse("TRUE").is_err());
        assert!(Condition::parse("after.x == NULL").is_err());
        assert!(Condition::parse("CHANGED(x)").is_err());
        assert!(Condition::parse("AFTER.x").is_err());
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        assert_error("after.s == 'é😀' &&", 19, "expected an operand after `&&`; found end of input");
        assert_error("after.s == 'é😀' foo", 17, "expected end of condition; found `foo`");
        assert_error("after.s == 'line\nbreak' =", 25, "`=` is not an operator; write `==`");
    }

    #[test]
    fn earlier_syntax_errors_win_over_later_lexical_ones() {
        assert_eq!(error("status == 'abc").column, 1);
        assert_eq!(error("after.a == == 'x").column, 12);
        // ... and a lexical error is reported once the parser reaches it.
        assert_error("after.a == 1 && 'x", 17, "unterminated text literal starting at column 17");
        assert_error("&x", 1, "a single `&` is not an operator; write `&&`");
    }

    #[test]
    fn long_tokens_are_shortened_in_messages() {
        let text = format!("after.a == 1 '{}'", "x".repeat(100));
        let e = error(&text);
        assert_eq!(e.message, format!("expected end of condition; found `'{}…`", "x".repeat(39)));
    }

    // ----- robustness --------------------------------------------------------------------------------

    /// Parses thousands of random strings over a small alphabet of fragments: parsing must never
    /// panic, errors must point inside the text (or just past it), and whatever parses must evaluate.
    #[test]
    fn random_inputs_do_not_panic() {
        const PIECES: &[&str] = &[
            "after",
            "before",
            ".",
            "status",
            "meta",
            "x",
            "(",
            ")",
            "!",
            "&&",
            "||",
            "&",
            "|",
            "==",
            "!=",
            "=",
            "<",
            "<=",
            ">",
            ">=",
            "'",
            "'a'",
            "''",
            "1",
            "-",
            "-2",
            "99.50",
            ".5",
            "1e3",
            ",",
            "changed",
            "changed_to",
            "changed_from",
            "true",
            "false",
            "null",
            " ",
            "\n",
            "é",
            "😀",
            "\"",
            "#",
            "_",
        ];
        let images = [
            (None, Some(json!({"status": "paid", "x": 1, "meta": {"x": true}}))),
            (Some(json!({"status": "new", "x": 1.0})), None),
            (Some(json!({"x": "1"})), Some(json!({"x": [1], "meta": null}))),
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |bound: usize| {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % bound
        };
        let mut parsed = 0;
        for _ in 0..5000 {
            let len = next(24);
            let text: String = (0..len).map(|_| PIECES[next(PIECES.len())]).collect();
            match Condition::parse(&text) {
                Ok(c) => {
                    parsed += 1;
                    for (b, a) in &images {
                        c.eval(b.as_ref(), a.as_ref());
                    }
                    assert_eq!(c.text(), text);
                    let _ = c.columns();
                }
                Err(e) => {
                    let last = text.chars().count() + 1;
                    assert!(e.column >= 1 && e.column <= last, "{text:?}: {e}");
                    assert!(!e.message.is_empty());
                }
            }
        }
        // The alphabet is rich enough that some inputs parse; the exact number is not important.
        assert!(parsed > 0);
    }
}
