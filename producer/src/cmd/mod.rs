//! One module per `producer` subcommand (parse in `main.rs`, the body
//! here): each opens what it needs from the config, does its work, prints
//! its result. The work itself lives in the library modules beside this one
//! (`publish`, `scan`, `watch`, `dlq`, `rollback`, `approve`, `console`).

pub mod approve;
pub mod backfill;
pub mod cancel;
pub mod console;
pub mod dlq;
pub mod generate;
pub mod history;
pub mod publish;
pub mod status;
pub mod watch;
