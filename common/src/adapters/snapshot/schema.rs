//! `schema.cypher`: the optional index and uniqueness-constraint statements
//! of a snapshot, applied to its new database before the load (so the
//! database enforces uniqueness during the load, and queries are fast the
//! moment the alias switches). Pure: [`parse`] reads the text, with line
//! numbers in every refusal; the stores render each [`SchemaStatement`] in
//! their own syntax ([`neo4j_statement`] here, pinned by unit tests; FalkorDB
//! in its adapter).
//!
//! Accepted, one statement per line (a trailing `;` is allowed; blank lines
//! and `//` comments are skipped; keywords in any case):
//!
//! ```text
//! CREATE INDEX [name] [IF NOT EXISTS] FOR (n:Label) ON (n.prop[, n.prop2 …])
//! CREATE CONSTRAINT [name] [IF NOT EXISTS] FOR (n:Label) REQUIRE n.prop IS UNIQUE
//! ```
//!
//! Anything else is refused with its line number.

use std::path::Path;

use super::header::{check_name, quote};
use super::SnapshotError;

/// The file's name in a snapshot directory.
pub const SCHEMA_FILE: &str = "schema.cypher";

/// One statement of `schema.cypher`, names checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaStatement {
    /// A range index on node properties.
    Index {
        /// The label.
        label: String,
        /// The indexed properties.
        properties: Vec<String>,
    },
    /// A uniqueness constraint on one node property.
    Unique {
        /// The label.
        label: String,
        /// The unique property.
        property: String,
    },
}

impl SchemaStatement {
    /// The statement in a line, for messages.
    pub fn describe(&self) -> String {
        match self {
            SchemaStatement::Index { label, properties } => {
                format!("index on :{label}({})", properties.join(", "))
            }
            SchemaStatement::Unique { label, property } => {
                format!("uniqueness constraint on :{label}({property})")
            }
        }
    }
}

/// The statements of `dir/schema.cypher`; none when the file is absent.
pub fn read(dir: &Path) -> Result<Vec<SchemaStatement>, SnapshotError> {
    let path = dir.join(SCHEMA_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(SnapshotError::Io {
                file: path.display().to_string(),
                source: e,
            })
        }
    };
    parse(&text).map_err(|m| SnapshotError::format(&path, m))
}

/// Parses the text; the error names the line.
pub fn parse(text: &str) -> Result<Vec<SchemaStatement>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split("//").next().unwrap_or_default().trim();
        let line = line.strip_suffix(';').unwrap_or(line).trim();
        if line.is_empty() {
            continue;
        }
        let stmt = parse_statement(line).map_err(|e| format!("line {}: {e}: {line}", i + 1))?;
        out.push(stmt);
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Punct(char),
}

fn tokens(line: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '`' {
            chars.next();
            let mut w = String::new();
            loop {
                match chars.next() {
                    Some('`') if chars.peek() == Some(&'`') => {
                        chars.next();
                        w.push('`');
                    }
                    Some('`') => break,
                    Some(c) => w.push(c),
                    None => return Err("unterminated backtick".into()),
                }
            }
            out.push(Tok::Word(w));
        } else if c.is_alphanumeric() || c == '_' {
            let mut w = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_alphanumeric() || c == '_' {
                    w.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(Tok::Word(w));
        } else if "():.,".contains(c) {
            out.push(Tok::Punct(c));
            chars.next();
        } else {
            return Err(format!("unexpected character {c:?}"));
        }
    }
    Ok(out)
}

struct Cursor {
    toks: Vec<Tok>,
    at: usize,
}

impl Cursor {
    fn peek_kw(&self, kw: &str) -> bool {
        matches!(self.toks.get(self.at), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }
    fn kw(&mut self, kw: &str) -> Result<(), String> {
        if self.peek_kw(kw) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected {kw}"))
        }
    }
    fn punct(&mut self, p: char) -> Result<(), String> {
        if self.toks.get(self.at) == Some(&Tok::Punct(p)) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected `{p}`"))
        }
    }
    fn word(&mut self, what: &str) -> Result<String, String> {
        match self.toks.get(self.at) {
            Some(Tok::Word(w)) => {
                self.at += 1;
                Ok(w.clone())
            }
            _ => Err(format!("expected {what}")),
        }
    }
    fn done(&self) -> Result<(), String> {
        if self.at == self.toks.len() {
            Ok(())
        } else {
            Err("unexpected text at the end".into())
        }
    }
}

const ONLY: &str = "only `CREATE INDEX … FOR (n:Label) ON (n.prop, …)` and `CREATE CONSTRAINT … FOR (n:Label) REQUIRE n.prop IS UNIQUE` are allowed in schema.cypher";

fn parse_statement(line: &str) -> Result<SchemaStatement, String> {
    let mut words = line.split_whitespace().map(str::to_ascii_uppercase);
    let kind = (words.next(), words.next());
    if !matches!(
        (kind.0.as_deref(), kind.1.as_deref()),
        (Some("CREATE"), Some("INDEX" | "CONSTRAINT"))
    ) {
        return Err(ONLY.to_owned());
    }
    if line.contains("-[") || line.contains("]-") {
        return Err(format!(
            "relationship indexes and constraints are not supported; {ONLY}"
        ));
    }
    let mut c = Cursor {
        toks: tokens(line)?,
        at: 0,
    };
    c.kw("CREATE").map_err(|_| ONLY.to_owned())?;
    let index = if c.peek_kw("INDEX") {
        true
    } else if c.peek_kw("CONSTRAINT") {
        false
    } else {
        return Err(ONLY.to_owned());
    };
    c.at += 1;
    // An optional name, an optional IF NOT EXISTS.
    if !c.peek_kw("IF") && !c.peek_kw("FOR") {
        c.word("a name")?;
    }
    if c.peek_kw("IF") {
        c.kw("IF")?;
        c.kw("NOT")?;
        c.kw("EXISTS")?;
    }
    c.kw("FOR")
        .map_err(|e| format!("{e} (only node indexes and constraints: FOR (n:Label))"))?;
    c.punct('(')
        .map_err(|e| format!("{e} (only node indexes and constraints: FOR (n:Label))"))?;
    let var = c.word("a variable")?;
    c.punct(':')?;
    let label = c.word("a label")?;
    c.punct(')')?;
    check_name("label", &label)?;
    let prop = |c: &mut Cursor| -> Result<String, String> {
        let v = c.word("a variable")?;
        if v != var {
            return Err(format!("`{v}` is not the variable `{var}`"));
        }
        c.punct('.')?;
        let p = c.word("a property")?;
        check_name("property", &p)?;
        Ok(p)
    };
    if index {
        c.kw("ON")?;
        c.punct('(')?;
        let mut properties = vec![prop(&mut c)?];
        while c.punct(',').is_ok() {
            properties.push(prop(&mut c)?);
        }
        c.punct(')')?;
        c.done()?;
        Ok(SchemaStatement::Index { label, properties })
    } else {
        c.kw("REQUIRE")?;
        let property = prop(&mut c)?;
        c.kw("IS")?;
        c.kw("UNIQUE")
            .map_err(|_| "only uniqueness constraints (IS UNIQUE) are allowed".to_owned())?;
        c.done()?;
        Ok(SchemaStatement::Unique { label, property })
    }
}

/// The statement in Neo4j 5's syntax (names backtick-quoted, idempotent).
pub fn neo4j_statement(s: &SchemaStatement) -> String {
    match s {
        SchemaStatement::Index { label, properties } => {
            let props: Vec<String> = properties
                .iter()
                .map(|p| format!("n.{}", quote(p)))
                .collect();
            format!(
                "CREATE INDEX IF NOT EXISTS FOR (n:{}) ON ({})",
                quote(label),
                props.join(", ")
            )
        }
        SchemaStatement::Unique { label, property } => format!(
            "CREATE CONSTRAINT IF NOT EXISTS FOR (n:{}) REQUIRE n.{} IS UNIQUE",
            quote(label),
            quote(property)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(label: &str, props: &[&str]) -> SchemaStatement {
        SchemaStatement::Index {
            label: label.into(),
            properties: props.iter().map(|p| (*p).into()).collect(),
        }
    }

    #[test]
    fn accepted_statements() {
        let text = "// schema\n\nCREATE INDEX FOR (n:Person) ON (n.name);\ncreate index person_age if not exists for (p:Person) on (p.age, p.name)\nCREATE CONSTRAINT person_id IF NOT EXISTS FOR (n:Person) REQUIRE n.personId IS UNIQUE;\nCREATE CONSTRAINT FOR (c:`Big Co`) REQUIRE c.`id` IS UNIQUE // trailing\n";
        assert_eq!(
            parse(text).unwrap(),
            vec![
                idx("Person", &["name"]),
                idx("Person", &["age", "name"]),
                SchemaStatement::Unique {
                    label: "Person".into(),
                    property: "personId".into()
                },
                SchemaStatement::Unique {
                    label: "Big Co".into(),
                    property: "id".into()
                },
            ]
        );
    }

    #[test]
    fn refused_statements_name_their_line() {
        let cases = [
            ("MATCH (n) DETACH DELETE n", "line 1: only `CREATE INDEX"),
            (
                "\n\nCREATE (n:Person {id: 1})",
                "line 3: only `CREATE INDEX",
            ),
            (
                "CREATE INDEX FOR ()-[r:KNOWS]-() ON (r.since)",
                "line 1: relationship indexes and constraints are not supported",
            ),
            (
                "CREATE CONSTRAINT FOR (n:Person) REQUIRE n.id IS NOT NULL",
                "line 1: only uniqueness constraints",
            ),
            (
                "CREATE INDEX FOR (n:Person) ON (m.id)",
                "line 1: `m` is not the variable `n`",
            ),
            (
                "CREATE INDEX FOR (n:Person) ON (n.id) OPTIONS {}",
                "line 1: unexpected character '{'",
            ),
            ("DROP INDEX foo", "line 1: only `CREATE INDEX"),
            ("CALL db.clearQueryCaches()", "line 1: only `CREATE INDEX"),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.starts_with(want), "{text}: {err}");
        }
    }

    #[test]
    fn neo4j_statements_are_pinned() {
        assert_eq!(
            neo4j_statement(&idx("Person", &["age", "name"])),
            "CREATE INDEX IF NOT EXISTS FOR (n:`Person`) ON (n.`age`, n.`name`)"
        );
        assert_eq!(
            neo4j_statement(&SchemaStatement::Unique {
                label: "Person".into(),
                property: "id".into()
            }),
            "CREATE CONSTRAINT IF NOT EXISTS FOR (n:`Person`) REQUIRE n.`id` IS UNIQUE"
        );
    }
}
