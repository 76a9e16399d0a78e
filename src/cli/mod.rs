//! The subcommands of the `iisan` binary: argument types, one call into the library API
//! ([`iisan::api`]) each, and what is printed (progress bars in [`progress`]).

pub(crate) mod check_device;
pub(crate) mod data;
pub(crate) mod encode;
pub(crate) mod eval;
pub(crate) mod import;
pub(crate) mod index;
pub(crate) mod items;
pub(crate) mod prep;
pub(crate) mod progress;
pub(crate) mod recommend;
pub(crate) mod report;
pub(crate) mod serve;
pub(crate) mod train;
