//! Who may act in the console: the operator token (from a file), sessions
//! made by logging in with it, and the checks every state-changing request
//! passes (session cookie, CSRF token, same origin). No token configured:
//! the console is read-only.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

/// The session cookie's name.
pub const COOKIE: &str = "snapswitch_console";
/// Shortest token accepted (a token is a secret, not a password to remember).
pub const MIN_TOKEN_LEN: usize = 16;

/// Why a console request was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No operator token is configured.
    #[error("read-only console: no operator token is configured (console_token_file)")]
    ReadOnly,
    /// No session cookie, or an unknown one.
    #[error("not logged in: log in with the operator token first")]
    NoSession,
    /// The token does not match.
    #[error("wrong operator token")]
    BadToken,
    /// The form's CSRF token does not match the session's.
    #[error("the form's CSRF token does not match this session; reload the page")]
    BadCsrf,
    /// The request came from another origin.
    #[error("cross-origin request refused")]
    CrossOrigin,
    #[error(
        "operator name {0:?} is not valid: 1 to 64 characters of a-z, A-Z, 0-9, '.', '_', '@', '-'"
    )]
    /// The operator name is not valid.
    BadOperator(String),
}

/// A logged-in operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The name the operator logged in with (in every audit entry).
    pub operator: String,
    /// Put in every form of this session's pages; a POST must echo it.
    pub csrf: String,
}

/// The console's operator token and its sessions.
pub struct Auth {
    token: Option<String>,
    sessions: Mutex<HashMap<String, Session>>,
}

impl Auth {
    /// No token: every action is refused.
    pub fn read_only() -> Self {
        Auth {
            token: None,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// The token in `path` (surrounding whitespace trimmed).
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!("cannot read the console token file {}: {e}", path.display())
        })?;
        Self::with_token(text.trim())
            .map_err(|e| anyhow::anyhow!("console token file {}: {e}", path.display()))
    }

    /// With the operator token `token`.
    pub fn with_token(token: &str) -> anyhow::Result<Self> {
        if token.len() < MIN_TOKEN_LEN {
            anyhow::bail!("the token must be at least {MIN_TOKEN_LEN} characters");
        }
        Ok(Auth {
            token: Some(token.to_owned()),
            sessions: Mutex::new(HashMap::new()),
        })
    }

    /// Whether actions are possible at all.
    pub fn writable(&self) -> bool {
        self.token.is_some()
    }

    /// Checks a presented token (constant time in its content).
    pub fn check_token(&self, given: &str) -> Result<(), AuthError> {
        let Some(token) = &self.token else {
            return Err(AuthError::ReadOnly);
        };
        if constant_time_eq(token.as_bytes(), given.trim().as_bytes()) {
            Ok(())
        } else {
            Err(AuthError::BadToken)
        }
    }

    /// Logs `operator` in; returns the session id for the cookie.
    pub fn login(&self, operator: &str, token: &str) -> Result<(String, Session), AuthError> {
        valid_operator(operator)?;
        self.check_token(token)?;
        let id = random_hex();
        let session = Session {
            operator: operator.to_owned(),
            csrf: random_hex(),
        };
        if let Ok(mut s) = self.sessions.lock() {
            s.insert(id.clone(), session.clone());
        }
        Ok((id, session))
    }

    /// Ends the session the cookie names (if any).
    pub fn logout(&self, cookie_header: Option<&str>) {
        if let Some(id) = cookie_header.and_then(|h| cookie_value(h, COOKIE)) {
            if let Ok(mut s) = self.sessions.lock() {
                s.remove(id);
            }
        }
    }

    /// The session of the request's cookie, if it is a live one.
    pub fn session(&self, cookie_header: Option<&str>) -> Option<Session> {
        self.token.as_ref()?;
        let id = cookie_header.and_then(|h| cookie_value(h, COOKIE))?;
        self.sessions.lock().ok()?.get(id).cloned()
    }

    /// The checks of a state-changing form POST; returns the session.
    pub fn authorize_form(
        &self,
        cookie_header: Option<&str>,
        csrf: Option<&str>,
        origin: Option<&str>,
        host: Option<&str>,
    ) -> Result<Session, AuthError> {
        if !self.writable() {
            return Err(AuthError::ReadOnly);
        }
        if !same_origin(origin, host) {
            return Err(AuthError::CrossOrigin);
        }
        let session = self.session(cookie_header).ok_or(AuthError::NoSession)?;
        match csrf {
            Some(c) if constant_time_eq(c.as_bytes(), session.csrf.as_bytes()) => Ok(session),
            _ => Err(AuthError::BadCsrf),
        }
    }

    /// The checks of a JSON API action: `Authorization: Bearer <token>` and
    /// an operator name (header `X-Snapswitch-Operator`).
    pub fn authorize_bearer(
        &self,
        authorization: Option<&str>,
        operator: Option<&str>,
    ) -> Result<String, AuthError> {
        if !self.writable() {
            return Err(AuthError::ReadOnly);
        }
        let token = authorization
            .and_then(|a| a.strip_prefix("Bearer "))
            .ok_or(AuthError::BadToken)?;
        self.check_token(token)?;
        let operator = operator.unwrap_or("");
        valid_operator(operator)?;
        Ok(operator.to_owned())
    }
}

/// Operator names go into the audit trail: a short, plain charset.
pub fn valid_operator(name: &str) -> Result<(), AuthError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AuthError::BadOperator(name.chars().take(64).collect()))
    }
}

/// A request with an `Origin` must come from the console's own origin
/// (`http://<Host>`); browsers send `Origin` on every cross-site POST.
pub fn same_origin(origin: Option<&str>, host: Option<&str>) -> bool {
    match (origin, host) {
        (None, _) => true,
        (Some(o), Some(h)) => o == format!("http://{h}") || o == format!("https://{h}"),
        (Some(_), None) => false,
    }
}

/// The value of cookie `name` in a `Cookie:` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 244 random bits as hex (two v4 UUIDs; the OS's random source).
fn random_hex() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef-token";

    #[test]
    fn no_token_means_read_only_for_every_path() {
        let auth = Auth::read_only();
        assert!(!auth.writable());
        assert_eq!(auth.login("ann", TOKEN).unwrap_err(), AuthError::ReadOnly);
        assert_eq!(
            auth.authorize_form(None, None, None, Some("h"))
                .unwrap_err(),
            AuthError::ReadOnly
        );
        assert_eq!(
            auth.authorize_bearer(Some(&format!("Bearer {TOKEN}")), Some("ann"))
                .unwrap_err(),
            AuthError::ReadOnly
        );
    }

    #[test]
    fn short_tokens_are_refused() {
        assert!(Auth::with_token("short").is_err());
    }

    #[test]
    fn a_form_post_needs_session_csrf_and_same_origin() {
        let auth = Auth::with_token(TOKEN).unwrap();
        assert_eq!(
            auth.login("ann", "wrong-token-xxxxxxx").unwrap_err(),
            AuthError::BadToken
        );
        assert!(matches!(
            auth.login("<script>", TOKEN).unwrap_err(),
            AuthError::BadOperator(_)
        ));
        let (id, session) = auth.login("ann", TOKEN).unwrap();
        let cookie = format!("other=1; {COOKIE}={id}");
        let host = Some("127.0.0.1:8080");
        type Row<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            Result<(), AuthError>,
        );
        let table: [Row; 5] = [
            (Some(&cookie), Some(&session.csrf), None, Ok(())),
            (
                Some(&cookie),
                Some(&session.csrf),
                Some("http://127.0.0.1:8080"),
                Ok(()),
            ),
            (
                Some(&cookie),
                Some(&session.csrf),
                Some("http://evil.example"),
                Err(AuthError::CrossOrigin),
            ),
            (Some(&cookie), Some("nope"), None, Err(AuthError::BadCsrf)),
            (None, Some(&session.csrf), None, Err(AuthError::NoSession)),
        ];
        for (cookie, csrf, origin, want) in table {
            let got = auth.authorize_form(cookie, csrf, origin, host).map(|_| ());
            assert_eq!(got, want, "{cookie:?} {csrf:?} {origin:?}");
        }
        auth.logout(Some(&cookie));
        assert!(auth.session(Some(&cookie)).is_none());
    }

    #[test]
    fn bearer_needs_the_token_and_an_operator() {
        let auth = Auth::with_token(TOKEN).unwrap();
        let good = format!("Bearer {TOKEN}");
        assert_eq!(
            auth.authorize_bearer(Some(&good), Some("bot")).unwrap(),
            "bot"
        );
        assert_eq!(
            auth.authorize_bearer(Some("Bearer x"), Some("bot"))
                .unwrap_err(),
            AuthError::BadToken
        );
        assert_eq!(
            auth.authorize_bearer(None, Some("bot")).unwrap_err(),
            AuthError::BadToken
        );
        assert!(auth.authorize_bearer(Some(&good), None).is_err());
    }
}
