//! Knative autoscaler scenarios replayed tick by tick.
