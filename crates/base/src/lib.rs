//! What every clawgate crate shares and none owns: the clock ([`time::now_ms`]), civil dates
//! ([`time::civil_from_days`]) and private files ([`fs::write_private`]). Standard library
//! only, so the bottom crates (`protocol`, `store`) and the test crates can use it without
//! pulling anything in.

pub mod fs;
pub mod time;

pub use fs::{create_private_dir, replace_file, write_private, write_private_new};
pub use time::{civil_from_days, iso8601_ms, now_ms};
