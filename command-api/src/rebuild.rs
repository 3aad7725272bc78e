//! Rebuilding the writer's state from the log when it takes the lease.

use crate::state::WriterState;
use anyhow::Context as _;
use std::collections::HashMap;
use std::time::Duration;

/// Reads the whole log (read_committed) and folds it. An event this version cannot read is a bug
/// to fix, not something to skip: the state would be wrong, so the writer refuses to start.
pub fn read_state(brokers: &str, topic: &str) -> anyhow::Result<WriterState> {
    let mut state = WriterState::default();
    service_kit::kafka::read_to_end(brokers, topic, &HashMap::new(), Duration::from_secs(1800), |p, o, message| {
        let envelope = service_kit::kafka::envelope_of(message)
            .with_context(|| format!("undecodable event at partition {p} offset {o}"))?;
        state.apply(&envelope);
        Ok(())
    })?;
    Ok(state)
}
