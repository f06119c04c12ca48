//! `producer dlq`: list, replay or purge the parking (dead-letter) queue.

use common::config::Config;
use common::topology::Topology;

use crate::dlq;
use clap::Subcommand;

/// What to do with the parking queue.
#[derive(Subcommand, Debug)]
pub enum DlqCommand {
    /// List parked events with their reasons (nothing is removed).
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Republish parked events to the work queue (original priority, attempt count reset).
    Replay {
        /// The event with this event id.
        #[arg(long, group = "which")]
        id: Option<String>,
        /// Every parked event of this customer.
        #[arg(long, group = "which")]
        customer: Option<String>,
        /// Every parked event.
        #[arg(long, group = "which")]
        all: bool,
    },
    /// Delete every parked event.
    Purge {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// Runs one `dlq` subcommand.
pub async fn run(config: &Config, command: DlqCommand) -> anyhow::Result<()> {
    let connection = common::broker::connect_config(config, "snapswitch-producer-dlq").await?;
    let topology = Topology::from_config(config);
    common::broker::declare(&connection.create_channel().await?, &topology).await?;
    match command {
        DlqCommand::List { json } => {
            let parked = dlq::list(&connection, &topology).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&parked)?);
            } else if parked.is_empty() {
                println!("the parking queue {} is empty", topology.dead_queue);
            } else {
                // Bodies and headers come from outside: escape control
                // characters, so no terminal escape sequence reaches the screen.
                let shown = |v: Option<&str>| printable(v.unwrap_or("-"));
                for p in &parked {
                    println!(
                        "{}  {}/{}  reason={} attempts={} failed_at={}\n    {}",
                        shown(p.event_id.as_deref()),
                        shown(p.customer.as_deref()),
                        p.snapshot_id
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| "-".into()),
                        shown(p.reason.as_deref()),
                        p.attempts
                            .map(|a| a.to_string())
                            .unwrap_or_else(|| "-".into()),
                        shown(p.failed_at.as_deref()),
                        printable(p.error.as_deref().or(p.body.as_deref()).unwrap_or("")),
                    );
                }
            }
        }
        DlqCommand::Replay { id, customer, all } => {
            let selection = match (id, customer, all) {
                (Some(id), _, _) => dlq::Selection::Id(id),
                (_, Some(c), _) => dlq::Selection::Customer(c),
                (_, _, true) => dlq::Selection::All,
                _ => anyhow::bail!("say which events to replay: --id ID, --customer C or --all"),
            };
            let n = dlq::replay(&connection, &topology, &selection).await?;
            println!("replayed {n}");
        }
        DlqCommand::Purge { yes } => {
            let depth = dlq::depth(&connection, &topology).await?;
            if !yes {
                use std::io::{BufRead, IsTerminal, Write};
                if !std::io::stdin().is_terminal() {
                    anyhow::bail!(
                        "refusing to purge {depth} parked events without confirmation: pass --yes"
                    );
                }
                print!(
                    "Delete {depth} parked events from {}? [y/N] ",
                    topology.dead_queue
                );
                std::io::stdout().flush()?;
                let mut answer = String::new();
                std::io::stdin().lock().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    println!("nothing purged");
                    return Ok(());
                }
            }
            let n = dlq::purge(&connection, &topology).await?;
            println!("purged {n}");
        }
    }
    connection.close(200, "done".into()).await.ok();
    Ok(())
}

/// `text` with every control character (ESC, CR, BEL, line breaks …)
/// written as an escape (`\u{1b}`), for output to a terminal.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_terminal_control_sequences() {
        assert_eq!(
            printable("a\u{1b}[2J\u{1b}]0;pwned\u{7}b\r\nc"),
            "a\\u{1b}[2J\\u{1b}]0;pwned\\u{7}b\\r\\nc"
        );
        assert_eq!(printable("plain – ünïcode"), "plain – ünïcode");
        assert!(!printable("\u{9b}31m").contains('\u{9b}'));
    }
}
