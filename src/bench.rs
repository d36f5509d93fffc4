//! `rnsq bench …`: benchmarks that print figures for the closing notes. Not tests: they assert
//! nothing and run as long as they are told.

pub mod meta;
