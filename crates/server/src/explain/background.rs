//! Background data.
