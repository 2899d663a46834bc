//! Tests of the batcher task.
