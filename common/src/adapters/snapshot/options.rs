//! Per-snapshot CSV options: neo4j-admin's `--delimiter`, `--array-delimiter`
//! and `--quote`, written by the ETL job as a small TOML file
//! [`OPTIONS_FILE`] in the snapshot directory. No file: neo4j-admin's
//! defaults (`,`, `;`, `"`).
//!
//! ```toml
//! delimiter = ";"        # one ASCII character; "\t" or "TAB" for a tab
//! array_delimiter = "|"  # one character
//! quote = "'"            # one ASCII character
//! ```
//! Any other key is refused (a typo never silently falls back to a default).

use std::path::Path;

use serde::Deserialize;

use super::SnapshotError;

/// The options file's name, in the snapshot directory (next to `nodes/`).
pub const OPTIONS_FILE: &str = "import.toml";

/// How CSV files of one snapshot are split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportOptions {
    /// The field delimiter (default `,`).
    pub delimiter: u8,
    /// The delimiter inside an array value (default `;`).
    pub array_delimiter: char,
    /// The quote character (default `"`).
    pub quote: u8,
}

impl Default for ImportOptions {
    /// neo4j-admin's defaults.
    fn default() -> Self {
        ImportOptions {
            delimiter: b',',
            array_delimiter: ';',
            quote: b'"',
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    delimiter: Option<String>,
    array_delimiter: Option<String>,
    quote: Option<String>,
}

fn one_char(key: &str, v: &str) -> Result<char, String> {
    if v.eq_ignore_ascii_case("TAB") || v == "\\t" {
        return Ok('\t');
    }
    let mut chars = v.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c != '\n' && c != '\r' => Ok(c),
        _ => Err(format!(
            "`{key}` must be one character (or \"TAB\"), not {v:?}"
        )),
    }
}

fn ascii(key: &str, c: char) -> Result<u8, String> {
    u8::try_from(c)
        .ok()
        .filter(u8::is_ascii)
        .ok_or_else(|| format!("`{key}` must be an ASCII character, not {c:?}"))
}

impl ImportOptions {
    /// Parses the options file's text.
    pub fn parse(text: &str) -> Result<ImportOptions, String> {
        let raw: Raw = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut o = ImportOptions::default();
        if let Some(d) = &raw.delimiter {
            o.delimiter = ascii("delimiter", one_char("delimiter", d)?)?;
        }
        if let Some(a) = &raw.array_delimiter {
            o.array_delimiter = one_char("array_delimiter", a)?;
        }
        if let Some(q) = &raw.quote {
            o.quote = ascii("quote", one_char("quote", q)?)?;
        }
        let d = char::from(o.delimiter);
        let q = char::from(o.quote);
        if d == q || d == o.array_delimiter || q == o.array_delimiter {
            return Err(format!(
                "delimiter {d:?}, array_delimiter {:?} and quote {q:?} must be three different characters",
                o.array_delimiter
            ));
        }
        Ok(o)
    }

    /// The options of the snapshot in `dir`: its [`OPTIONS_FILE`], or the defaults.
    pub fn read(dir: &Path) -> Result<ImportOptions, SnapshotError> {
        let path = dir.join(OPTIONS_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => ImportOptions::parse(&text).map_err(|m| SnapshotError::format(&path, m)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ImportOptions::default()),
            Err(e) => Err(SnapshotError::Io {
                file: path.display().to_string(),
                source: e,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_neo4j_admins() {
        assert_eq!(
            ImportOptions::parse("").unwrap(),
            ImportOptions {
                delimiter: b',',
                array_delimiter: ';',
                quote: b'"'
            }
        );
    }

    #[test]
    fn options_are_read_and_checked() {
        let o = ImportOptions::parse("delimiter = \"TAB\"\narray_delimiter = \"|\"\nquote = \"'\"")
            .unwrap();
        assert_eq!(
            (o.delimiter, o.array_delimiter, o.quote),
            (b'\t', '|', b'\'')
        );
        assert_eq!(
            ImportOptions::parse("delimiter = \"\\t\"")
                .unwrap()
                .delimiter,
            b'\t'
        );
        let cases = [
            ("delimiter = \";;\"", "must be one character"),
            ("delimiter = \"é\"", "must be an ASCII character"),
            ("delimiter = \";\"", "three different characters"),
            ("quote = \",\"", "three different characters"),
            ("delimeter = \";\"", "unknown field"),
            ("delimiter = 3", "invalid type"),
        ];
        for (text, want) in cases {
            let err = ImportOptions::parse(text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
