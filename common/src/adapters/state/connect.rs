//! Connecting to Redis: within a deadline, with the options the configuration builds.

use super::*;

/// The `connect_timeout` of the default config, for callers without one.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects a reconnecting, multiplexed Redis connection, trying for up to
/// [`DEFAULT_CONNECT_TIMEOUT`]. `rediss://` trusts the system's certificate
/// store.
pub async fn connect(url: &ServiceUrl) -> Result<ConnectionManager, StateError> {
    connect_tls(url, None).await
}

/// Where the coordination Redis is and how long a first connection may
/// take; the configuration layer builds it (`From<&Config>`).
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// The Redis URL (`redis://` or `rediss://`); may carry a password.
    pub url: ServiceUrl,
    /// CA file for `rediss://` (`None`: the system's trust store).
    pub ca_file: Option<std::path::PathBuf>,
    /// The namespace of every key.
    pub namespace: String,
    /// The deadline of the first connection (`connect_timeout`).
    pub connect_timeout: Duration,
}

/// Connects to the Redis `options` name (its URL and CA file) within its
/// `connect_timeout`. Takes a `&Config` too (the configuration layer
/// converts it).
pub async fn connect_config(
    options: impl Into<RedisOptions>,
) -> Result<ConnectionManager, StateError> {
    let options = options.into();
    connect_within(
        &options.url,
        options.ca_file.as_deref(),
        options.connect_timeout,
    )
    .await
}

/// [`connect`] with `rediss://` trusting the CA certificate(s) in `ca`.
pub async fn connect_tls(
    url: &ServiceUrl,
    ca: Option<&std::path::Path>,
) -> Result<ConnectionManager, StateError> {
    connect_within(url, ca, DEFAULT_CONNECT_TIMEOUT).await
}

/// Connects within `timeout` (tries again with a short pause until then);
/// the error names the URL (password hidden) and the last reason. After the
/// first connect, `ConnectionManager` reconnects by itself.
pub async fn connect_within(
    url: &ServiceUrl,
    ca: Option<&std::path::Path>,
    timeout: Duration,
) -> Result<ConnectionManager, StateError> {
    let client = crate::adapters::tls::redis_client(url, ca).map_err(|e| StateError::Connect {
        url: url.redacted(),
        reason: e.to_string(),
    })?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout.min(Duration::from_secs(5))))
        .set_response_timeout(Some(Duration::from_secs(10)))
        // Fail fast on the first connect; the deadline loop tries again.
        .set_number_of_retries(1);
    let attempt =
        || async { ConnectionManager::new_with_config(client.clone(), config.clone()).await };
    within_deadline("Redis", &url.redacted(), timeout, attempt)
        .await
        .map_err(|reason| StateError::Connect {
            url: url.redacted(),
            reason,
        })
}

/// The fleet state: connects Redis (within `connect_timeout`) and pings it.
/// Takes a `&Config` too (the configuration layer converts it).
pub async fn fleet(options: impl Into<RedisOptions>) -> Result<FleetState, StateError> {
    let options = options.into();
    let timeout = options.connect_timeout;
    let state = FleetState::new(
        connect_within(&options.url, options.ca_file.as_deref(), timeout).await?,
        Keys::new(&options.namespace),
    );
    tokio::time::timeout(timeout, state.ping())
        .await
        .map_err(|_| StateError::Connect {
            url: options.url.redacted(),
            reason: format!("no answer to PING within {} s", timeout.as_secs()),
        })??;
    Ok(state)
}

/// Runs `attempt` until it succeeds or `timeout` has passed since the first
/// try; an attempt still running at the deadline is cut. Between tries it
/// pauses 200 ms, doubling up to 2 s, and logs one line per failed try
/// naming `service` and `url` (pass it redacted). The error is the last
/// try's reason, with the time spent.
pub async fn within_deadline<T, E, F, Fut>(
    service: &str,
    url: &str,
    timeout: Duration,
    mut attempt: F,
) -> Result<T, String>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let start = tokio::time::Instant::now();
    let deadline = start + timeout;
    let mut pause = Duration::from_millis(200);
    let mut tries = 0u32;
    let mut last_error: Option<String> = None;
    loop {
        tries += 1;
        let reason = match tokio::time::timeout_at(deadline, attempt()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => e.to_string(),
            // Cut at the deadline: the last real error says more.
            Err(_) => last_error.take().unwrap_or_else(|| "no answer".to_owned()),
        };
        last_error = Some(reason.clone());
        let now = tokio::time::Instant::now();
        if now + pause >= deadline {
            return Err(format!(
                "{reason} (gave up after {tries} tries in {:.1} s; connect_timeout = {} s)",
                (now - start).as_secs_f64(),
                timeout.as_secs()
            ));
        }
        tracing::warn!(service, %url, error = %reason, attempt = tries, retry_in_ms = pause.as_millis() as u64, "{service} not reachable yet, retrying");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// The backoff both binaries use while a service they need comes up:
/// 200 ms doubling to 5 s, 8 tries (about 30 s in all).
pub fn startup_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(8)
}
