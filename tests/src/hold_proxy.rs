//! A plain TCP proxy owned by a test that can hold one command: armed with a
//! set of byte patterns, the first client→server chunk that contains all of
//! them is kept back (not forwarded, nor anything after it on that
//! connection) until [`HoldProxy::release`]. It stands between one worker and
//! FalkorDB to hold that worker's alias switch while the worker is paused,
//! the way a slow network or a stalled process would deliver it late.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Default)]
struct Shared {
    /// Patterns a chunk must all contain to be held; `None` when disarmed.
    armed: Mutex<Option<Vec<Vec<u8>>>>,
}

pub struct HoldProxy {
    pub port: u16,
    shared: Arc<Shared>,
    held_tx: watch::Sender<bool>,
    released_tx: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

impl HoldProxy {
    /// Listens on 127.0.0.1 (call inside a Tokio runtime), forwarding to
    /// `127.0.0.1:<target>`.
    pub async fn start(target: u16) -> anyhow::Result<HoldProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared::default());
        let (held_tx, _) = watch::channel(false);
        let (released_tx, _) = watch::channel(false);
        let (s, h, r) = (shared.clone(), held_tx.clone(), released_tx.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (s, h, r) = (s.clone(), h.clone(), r.subscribe());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let down = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    });
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut released = r;
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let chunk = &buf[..n];
                        let hold = {
                            let mut armed = s.armed.lock().unwrap_or_else(|p| p.into_inner());
                            let hit = armed
                                .as_ref()
                                .is_some_and(|pats| pats.iter().all(|p| contains(chunk, p)));
                            if hit {
                                *armed = None;
                            }
                            hit
                        };
                        if hold {
                            let _ = h.send(true);
                            while !*released.borrow_and_update() {
                                if released.changed().await.is_err() {
                                    return;
                                }
                            }
                        }
                        if sw.write_all(chunk).await.is_err() {
                            break;
                        }
                    }
                    down.abort();
                });
            }
        });
        Ok(HoldProxy {
            port,
            shared,
            held_tx,
            released_tx,
            task,
        })
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Holds the next client→server chunk that contains every one of `patterns`.
    pub fn arm(&self, patterns: &[&[u8]]) {
        let _ = self.released_tx.send(false);
        let _ = self.held_tx.send(false);
        *self.shared.armed.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(patterns.iter().map(|p| p.to_vec()).collect());
    }

    /// Waits up to `timeout` until a chunk is being held.
    pub async fn wait_held(&self, timeout: Duration) -> bool {
        let mut rx = self.held_tx.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|held| *held))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Forwards the held chunk (and everything after it).
    pub fn release(&self) {
        let _ = self.released_tx.send(true);
    }
}

impl Drop for HoldProxy {
    fn drop(&mut self) {
        let _ = self.released_tx.send(true);
        self.task.abort();
    }
}
