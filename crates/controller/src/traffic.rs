//! Traffic plans and the status derived from (spec, revisions).
