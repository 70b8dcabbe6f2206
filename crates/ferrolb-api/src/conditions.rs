//! Condition types and reasons ferrolb reports on its resources.

/// Pool condition: the pool is valid and serving.
pub const CONDITION_READY: &str = "Ready";
/// Pool condition: some entry overlaps another pool (the message names both).
pub const CONDITION_OVERLAPPING: &str = "Overlapping";
/// Pool condition: the pool is being deleted and Services still hold its addresses (the message names them).
pub const CONDITION_DELETION_BLOCKED: &str = "DeletionBlocked";
