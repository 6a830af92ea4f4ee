//! A standalone HTTP/1.1 server on a single mio event loop, with a worker pool for blocking file work.

// Two socket options have no safe binding (`transport::sockopt`); everything else is safe code.
#![deny(unsafe_code)]

pub mod access_log;
pub mod auth;
pub mod body;
mod budget;
mod buffers;
mod cache;
pub mod config;
mod connection;
mod context;
mod cursor;
pub mod error;
mod exchange;
/// Entry points for the fuzz targets in `fuzz/`, and the unit test that replays their corpus.
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
mod html;
pub mod http;
mod listing;
pub mod logging;
pub mod mime;
mod negotiate;
mod response;
pub mod routes;
mod server;
pub mod status;
mod storage;
pub mod tls;
mod transport;
mod worker;

pub use config::{Config, Limits};
pub use server::{Server, StartError};
