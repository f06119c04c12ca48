//! Values that may hold a password: [`Secret`] and [`ServiceUrl`] never show
//! it in `Debug` or `Display` output (errors, logs, status, doctor), and
//! either may be read from a file (`{ file = "<path>" }` in TOML, read by
//! [`read_secret_file`] when the configuration is extracted).
//! **Invariant: a secret is only ever `expose()`d into a client library's
//! constructor.** Every adapter that connects somewhere takes these; the
//! configuration layer fills them.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A string that never shows itself in `Debug` or `Display` output. In TOML
/// it is a string or `{ file = "/run/secrets/x" }` (read at load, see
/// [`read_secret_file`]); `SNAPSWITCH_<KEY>_FILE` does the same from the
/// environment.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(#[serde(deserialize_with = "secret_string")] String);

impl Secret {
    /// A secret holding `s`.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself; call only where it is handed to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A service URL that may carry a password (`amqp://user:pass@host`). Its
/// `Debug` and `Display` show the URL with the password replaced by `***`.
/// Like [`Secret`], it may be read from a file.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ServiceUrl(#[serde(deserialize_with = "secret_string")] String);

impl ServiceUrl {
    /// A service URL from its text (checked by the configuration's validation).
    pub fn new(s: impl Into<String>) -> Self {
        ServiceUrl(s.into())
    }
    /// The full URL including any password; hand it only to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// The scheme before `://` (`redis`, `amqps`, …), if any.
    pub fn scheme(&self) -> Option<&str> {
        self.0.split_once("://").map(|(s, _)| s)
    }
    /// The URL with the password of its userinfo part masked.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl fmt::Debug for ServiceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for ServiceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The URL with the password of its userinfo part replaced by `***`, for
/// every output (errors, logs, status, doctor). Parsed with the `url` crate;
/// a password holding reserved characters that are not percent-encoded
/// (`#`, `/`, `?`, `@`, `:`) makes the URL ambiguous, and then everything
/// between `://` and the last `@` is hidden; a URL that does not parse at all
/// is not shown beyond its scheme.
pub fn redact_url(raw: &str) -> String {
    let Some((scheme, rest)) = raw.split_once("://") else {
        // Not a URL (a config mistake such as `user:pw@host`): show no
        // userinfo at all rather than guess where a password ends.
        return match raw.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None if raw.contains(['/', '?', '#']) => "***".to_owned(),
            None => raw.to_owned(),
        };
    };
    // Where a parser ends the authority; an `@` after it means the userinfo
    // (the password) may reach beyond that point.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if rest[authority_end..].contains('@') {
        let host = rest.rsplit_once('@').map_or("", |(_, h)| h);
        return format!("{scheme}://***@{host}");
    }
    match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            if url.set_password(Some("***")).is_err() {
                return format!("{scheme}://***");
            }
            url.to_string()
        }
        Ok(url) => url.to_string(),
        Err(_) => format!("{scheme}://*** (not a valid URL)"),
    }
}

/// Why `raw` is not a usable service URL (`None`: it is): it must parse, and
/// a password must not hold unencoded reserved characters. The reason never
/// quotes the URL.
pub fn url_problem(raw: &str) -> Option<String> {
    let Some((_, rest)) = raw.split_once("://") else {
        return Some("not a URL (scheme://host:port)".into());
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let encode_hint = "percent-encode reserved characters in the user name and password (# %23, / %2F, ? %3F, @ %40, : %3A, % %25)";
    if rest[authority_end..].contains('@') {
        return Some(format!(
            "the password seems to hold `/`, `?` or `#`: {encode_hint}"
        ));
    }
    match url::Url::parse(raw) {
        Ok(url) if url.host_str().is_none_or(str::is_empty) => Some("no host after `://`".into()),
        Ok(_) => None,
        Err(e) => Some(format!("not a valid URL ({e}): {encode_hint}")),
    }
}

/// Largest secret file read (a password or a URL, not a document).
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Reads a secret from `path`: UTF-8, at most [`MAX_SECRET_FILE_BYTES`], one
/// trailing line break removed (`echo pw > file`, Docker and Kubernetes
/// secrets). The error names the file, never its content.
pub fn read_secret_file(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("secret file {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("secret file {shown} is not a file"));
    }
    if meta.len() > MAX_SECRET_FILE_BYTES {
        return Err(format!(
            "secret file {shown} is larger than {MAX_SECRET_FILE_BYTES} bytes"
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("secret file {shown}: {e}"))?;
    let mut text =
        String::from_utf8(bytes).map_err(|_| format!("secret file {shown} is not UTF-8"))?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(format!("secret file {shown} is empty"));
    }
    Ok(text)
}

/// Schemes that encrypt (and so may use a CA file).
pub fn is_tls_scheme(scheme: &str) -> bool {
    matches!(
        scheme,
        "amqps" | "rediss" | "neo4j+s" | "neo4j+ssc" | "bolt+s" | "bolt+ssc"
    )
}

/// A secret value: a string (also one the environment layer parsed as a
/// number), or `{ file = "<path>" }`, read with [`read_secret_file`].
fn secret_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_any(StringLike { file_allowed: true })
}

/// Deserializes a string that the environment layer may have parsed as a
/// number or a boolean (`SNAPSWITCH_GRAPH_PASSWORD=12345`).
pub fn string_like<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_any(StringLike {
        file_allowed: false,
    })
}

/// A string, a scalar taken as its text, and with `file_allowed` also
/// `{ file = "<path>" }` (the file's content).
struct StringLike {
    file_allowed: bool,
}

impl<'de> serde::de::Visitor<'de> for StringLike {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.file_allowed {
            "a string or { file = \"<path>\" }"
        } else {
            "a string"
        })
    }
    fn visit_str<E>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_i64<E>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_bool<E>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_char<E>(self, v: char) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<String, A::Error> {
        if !self.file_allowed {
            return Err(serde::de::Error::invalid_type(
                serde::de::Unexpected::Map,
                &self,
            ));
        }
        let mut file: Option<PathBuf> = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "file" {
                file = Some(map.next_value()?);
            } else {
                return Err(serde::de::Error::unknown_field(&key, &["file"]));
            }
        }
        let file = file.ok_or_else(|| serde::de::Error::missing_field("file"))?;
        read_secret_file(&file).map_err(serde::de::Error::custom)
    }
}
