//! Knative KPA autoscaler as a pure state machine.
