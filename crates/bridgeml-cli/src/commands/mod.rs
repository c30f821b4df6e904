//! One module per subcommand: each defines its clap `Args` and a `run`
//! function that builds a typed report and renders it.

pub mod audit;
pub mod budget;
pub mod demo;
pub mod diverge;
pub mod drift;
pub mod gate;
pub mod guard;
pub mod init;
pub mod parity;
pub mod policy;
pub mod predict;
pub mod preprocess;
pub mod profile;
pub mod qat;
pub mod quantize;
pub mod report;
pub mod serve;
pub mod shadow;
pub mod spec;
pub mod train;
