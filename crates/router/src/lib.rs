//! oxserve-router: the data-plane gateway and activator.
