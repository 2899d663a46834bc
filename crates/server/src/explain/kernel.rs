//! KernelSHAP.
