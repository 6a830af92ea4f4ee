use clap::Parser;
use http_server::mime::MimeTable;
use http_server::{Config, Limits, Server, StartError};
use log::{error, info, warn, LevelFilter};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use simple_logger::SimpleLogger;
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// A single-threaded event-loop HTTP/1.1 server: serves a folder and takes JSON uploads.
#[derive(Parser, Debug)]
#[command(name = "http-server", version)]
struct Args {
    /// Port to listen on; 0 picks a free one.
    #[arg(default_value_t = 8080)]
    port: u16,
    /// Address or host name to listen on.
    #[arg(default_value = "127.0.0.1")]
    host: String,
    /// Worker threads for file reads and upload writes.
    #[arg(default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1024))]
    max_threads: u16,
    /// Folder to serve; uploads go to its `uploads/` folder.
    #[arg(long, default_value = "resources")]
    root: PathBuf,
    /// Log level: off, error, warn, info, debug or trace. Without it, RUST_LOG, else info.
    #[arg(long)]
    log_level: Option<LevelFilter>,
    /// Seconds a keep-alive connection may stay idle, or take to send a request (fractions allowed).
    #[arg(long, default_value = "5", value_parser = seconds(3600.0))]
    idle_timeout: Duration,
    /// Requests served on one connection before it is closed.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    max_requests: u32,
    /// Largest upload body in bytes.
    #[arg(long, default_value_t = 10 * 1024 * 1024)]
    max_body: usize,
    /// Upload bytes held in memory across all connections (at least twice --max-body); more gets 503.
    #[arg(long, default_value_t = 256 * 1024 * 1024)]
    max_upload_memory: usize,
    /// Seconds an upload body may take to arrive, plus one per KiB received (fractions allowed).
    #[arg(long, default_value = "60", value_parser = seconds(86400.0))]
    body_timeout: Duration,
    /// Seconds a small file just read is served from memory before the disk is asked again; 0 turns it off.
    #[arg(long, default_value = "1", value_parser = seconds_or_zero(60.0))]
    file_cache_window: Duration,
    /// Most open client connections; more are answered 503.
    #[arg(long, default_value_t = 16 * 1024)]
    max_connections: usize,
    /// Serve images and text inline with their real types instead of as downloads, as a file share would.
    #[arg(long)]
    inline: bool,
    /// Serve files whose type is outside the MIME table as application/octet-stream downloads, not 415.
    #[arg(long)]
    unknown_as_octet_stream: bool,
    /// The Cache-Control value of file responses; the default makes browsers revalidate (cheaply, with 304s).
    #[arg(long, default_value = "no-cache", value_parser = header_value)]
    cache_control: String,
    /// List the contents of folders that have no index.html, instead of answering 404.
    #[arg(long)]
    list_dirs: bool,
    /// Another name clients may use in the Host header (repeatable).
    #[arg(long = "allow-host", value_name = "NAME")]
    allowed_hosts: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let logger = match args.log_level {
        Some(level) => SimpleLogger::new().with_level(level),
        None => SimpleLogger::new().with_level(LevelFilter::Info).env(),
    };
    // Only fails if a logger is already set, which nothing else does.
    let _ = logger.with_utc_timestamps().init();

    let addr = match (args.host.as_str(), args.port).to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(addr)) => addr,
        _ => {
            eprintln!("error: cannot resolve host {:?}", args.host);
            return ExitCode::from(2);
        }
    };
    if !args.root.is_dir() {
        eprintln!("error: document root {} is not a folder", args.root.display());
        return ExitCode::from(2);
    }
    let max_connections = fit_to_fd_limit(args.max_connections);
    let defaults = Limits::default();
    let limits = Limits {
        idle_timeout: args.idle_timeout,
        max_requests: args.max_requests,
        max_body_bytes: args.max_body,
        // A chunked body's buffer grows by doubling, so one largest body may hold twice its size.
        max_buffered_body_bytes: args.max_upload_memory.max(args.max_body.saturating_mul(2)),
        body_timeout: args.body_timeout,
        file_cache_window: args.file_cache_window,
        max_connections,
        ..defaults
    };
    let config = Config {
        addr,
        host_name: args.host,
        root: args.root,
        workers: usize::from(args.max_threads),
        allowed_hosts: args.allowed_hosts,
        cache_control: args.cache_control,
        list_dirs: args.list_dirs,
        mime: MimeTable {
            inline_all: args.inline,
            unknown_as_octet_stream: args.unknown_as_octet_stream,
        },
        limits,
    };
    info!(
        "starting {} on {addr}: root {}, {} workers, idle timeout {:?}, max {} requests per connection, \
         max body {} bytes, max {} connections",
        http_server::http::SERVER_NAME,
        config.root.display(),
        config.workers,
        config.limits.idle_timeout,
        config.limits.max_requests,
        config.limits.max_body_bytes,
        config.limits.max_connections,
    );
    let server = match Server::bind(config) {
        Ok(server) => server,
        Err(StartError::Listen(e)) => {
            error!("cannot listen on {addr}: {e}");
            eprintln!("error: cannot listen on {addr} (port {}): {e}", addr.port());
            return ExitCode::FAILURE;
        }
        Err(e) => {
            error!("{e}");
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match server.local_addr() {
        // Tests and scripts read this line, so it is printed even when info logging is off.
        Ok(bound) if log::log_enabled!(log::Level::Info) => info!("listening on {bound}"),
        Ok(bound) => println!("listening on {bound}"),
        Err(e) => error!("cannot read the bound address: {e}"),
    }
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("event loop failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Descriptors kept free of connections: the listener, the poller, the waker, logging, upload files. 64.
/// A download also holds its file open, so many at once can still run out: then new clients wait in the
/// backlog and file opens answer 503 until descriptors free up.
const FD_RESERVE: u64 = 64;

/// Raises the soft descriptor limit to the hard one, and lowers `max_connections` to what it allows, so a
/// client past the limit gets the documented 503 rather than the server failing with EMFILE.
fn fit_to_fd_limit(max_connections: usize) -> usize {
    let limit = getrlimit(Resource::Nofile);
    let raised = Rlimit { current: limit.maximum, maximum: limit.maximum };
    let available = match setrlimit(Resource::Nofile, raised) {
        Ok(()) => limit.maximum,
        Err(e) => {
            warn!("cannot raise the file descriptor limit: {e}");
            limit.current
        }
    };
    let Some(fds) = available else {
        return max_connections;
    };
    let fitting = usize::try_from(fds.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX).max(1);
    if fitting < max_connections {
        warn!(
            "file descriptor limit {fds} allows {fitting} connections, not {max_connections}; \
             raise it (ulimit -n) for more"
        );
    }
    max_connections.min(fitting)
}

/// A clap parser for a positive number of seconds, fractions allowed, up to `max`.
fn seconds(max: f64) -> impl Fn(&str) -> Result<Duration, String> + Clone {
    move |text| match parse_seconds(text, max)? {
        d if d.is_zero() => Err("must be more than 0".into()),
        d => Ok(d),
    }
}

/// As `seconds`, but 0 is allowed (it turns the feature off).
fn seconds_or_zero(max: f64) -> impl Fn(&str) -> Result<Duration, String> + Clone {
    move |text| parse_seconds(text, max)
}

/// A header field value as RFC 9110 §5.5 allows it: visible ASCII, spaces and tabs, nothing that could
/// end the field early.
fn header_value(text: &str) -> Result<String, String> {
    if text.is_empty() || !text.bytes().all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic()) {
        return Err("must be visible ASCII (spaces and tabs allowed)".into());
    }
    Ok(text.trim().to_owned())
}

fn parse_seconds(text: &str, max: f64) -> Result<Duration, String> {
    let secs: f64 = text.parse().map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(0.0..=max).contains(&secs) {
        return Err(format!("must be between 0 and {max} seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_accept_fractions_and_refuse_zero_negative_and_nonsense() {
        let parse = seconds(3600.0);
        assert_eq!(parse("0.3"), Ok(Duration::from_millis(300)));
        assert_eq!(parse("5"), Ok(Duration::from_secs(5)));
        for bad in ["0", "-1", "NaN", "inf", "3601", "1e400", "x", ""] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(seconds_or_zero(60.0)("0"), Ok(Duration::ZERO));
    }
}
