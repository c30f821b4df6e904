//! One module per subcommand: each defines its clap `Args` and a `run`
//! function that builds a typed report and renders it.

pub mod parity;
pub mod preprocess;
pub mod qat;
pub mod spec;
pub mod train;
