//! The subcommands of the `iisan` binary: argument types and one call into the library each.

pub(crate) mod check_device;
pub(crate) mod data;
pub(crate) mod encode;
pub(crate) mod eval;
pub(crate) mod import;
pub(crate) mod items;
pub(crate) mod recommend;
pub(crate) mod report;
pub(crate) mod serve;
pub(crate) mod train;
