//! Revisions: immutable snapshots of one component spec and their life cycle.
