//! raft-rs logs through `slog`; the server logs through `tracing`. This drain hands every
//! raft-rs line to `tracing` (target `raft`) with its key-values; its info lines (one per
//! election of every group) become debug lines.

use std::fmt::Write as _;

/// A `slog` drain writing to `tracing`.
#[derive(Debug, Clone, Copy)]
pub struct TracingDrain;

/// Key-values of a line, as `key=value` pairs.
struct Pairs(String);

impl slog::Serializer for Pairs {
    fn emit_arguments(&mut self, key: slog::Key, value: &std::fmt::Arguments<'_>) -> slog::Result {
        let _ = write!(self.0, " {key}={value}");
        Ok(())
    }
}

impl slog::Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &slog::Record<'_>, values: &slog::OwnedKVList) -> Result<(), slog::Never> {
        let mut pairs = Pairs(String::new());
        let _ = slog::KV::serialize(&record.kv(), record, &mut pairs);
        let _ = slog::KV::serialize(values, record, &mut pairs);
        let message = record.msg();
        let pairs = pairs.0;
        match record.level() {
            slog::Level::Critical | slog::Level::Error => tracing::error!(target: "raft", "{message}{pairs}"),
            slog::Level::Warning => tracing::warn!(target: "raft", "{message}{pairs}"),
            // Every election of every group is an info line in raft-rs: at 10,000 groups a
            // server start would be 30,000 lines.
            slog::Level::Info | slog::Level::Debug => tracing::debug!(target: "raft", "{message}{pairs}"),
            slog::Level::Trace => tracing::trace!(target: "raft", "{message}{pairs}"),
        }
        Ok(())
    }
}

/// The logger every group's `RawNode` gets.
pub fn logger() -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!())
}
