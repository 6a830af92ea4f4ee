//! The command line: the original's positional `[PORT] [HOST] [MAX_THREADS]`, the flag forms users of other
//! static servers type (`-p 9000`), and an `HTTP_SERVER_*` environment variable for every option.

use clap::builder::BoolishValueParser;
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};
use http_server::access_log::Format;
use log::LevelFilter;
use std::path::PathBuf;
use std::time::Duration;

/// A single-threaded event-loop HTTP/1.1 server: serves a folder and takes JSON uploads.
#[derive(Parser, Debug)]
#[command(name = "http-server", version)]
pub struct Args {
    /// Port to listen on; 0 picks a free one [default: 8080].
    #[arg(value_name = "PORT")]
    port_arg: Option<u16>,
    /// Address or host name to listen on [default: 127.0.0.1].
    #[arg(value_name = "HOST")]
    host_arg: Option<String>,
    /// Worker threads for file reads and upload writes [default: 10].
    #[arg(value_name = "MAX_THREADS", value_parser = threads)]
    threads_arg: Option<u16>,
    /// Port to listen on (the flag form of PORT).
    #[arg(short, long, env = "HTTP_SERVER_PORT")]
    port: Option<u16>,
    /// Address or host name to listen on (the flag form of HOST).
    #[arg(short, long, value_name = "HOST", env = "HTTP_SERVER_BIND")]
    bind: Option<String>,
    /// Worker threads (the flag form of MAX_THREADS).
    #[arg(short, long, value_name = "N", env = "HTTP_SERVER_THREADS", value_parser = threads)]
    threads: Option<u16>,
    /// Folder to serve; uploads go to its `uploads/` folder.
    #[arg(
        short = 'd',
        long,
        value_name = "DIR",
        env = "HTTP_SERVER_ROOT",
        default_value = "resources"
    )]
    pub root: PathBuf,
    /// Event log level (stderr). Without it, RUST_LOG (a level name), else info.
    #[arg(long, value_enum, env = "HTTP_SERVER_LOG_LEVEL")]
    log_level: Option<LogLevel>,
    /// Where the access log goes: a file (appended to, reopened on SIGHUP), `-` for stdout, or `off`.
    #[arg(long, value_name = "PATH", env = "HTTP_SERVER_ACCESS_LOG", default_value = "-")]
    pub access_log: String,
    /// The access log's line format.
    #[arg(long, value_enum, env = "HTTP_SERVER_ACCESS_LOG_FORMAT", default_value_t = LineFormat::Combined)]
    access_log_format: LineFormat,
    /// Seconds a keep-alive connection may stay idle, or take to send a request (fractions allowed).
    #[arg(long, value_name = "SECS", env = "HTTP_SERVER_IDLE_TIMEOUT", default_value = "5", value_parser = seconds(3600.0))]
    pub idle_timeout: Duration,
    /// Requests served on one connection before it is closed.
    #[arg(long, value_name = "N", env = "HTTP_SERVER_MAX_REQUESTS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_requests: u32,
    /// Largest upload body in bytes.
    #[arg(long, value_name = "BYTES", env = "HTTP_SERVER_MAX_BODY", default_value_t = 10 * 1024 * 1024)]
    pub max_body: usize,
    /// Uploads under way at once, each holding at most 64 KiB of memory; more get 503.
    #[arg(long, value_name = "N", env = "HTTP_SERVER_MAX_UPLOADS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_uploads: u32,
    /// Disk the temporary files of unfinished uploads may hold together (at least --max-body); more gets 503.
    #[arg(long, value_name = "BYTES", env = "HTTP_SERVER_MAX_UPLOAD_DISK", default_value_t = 1024 * 1024 * 1024)]
    pub max_upload_disk: u64,
    /// Window of the minimum upload rate: every SECS, a body must bring at least 1 KiB per second of it, or 408.
    #[arg(long, value_name = "SECS", env = "HTTP_SERVER_BODY_TIMEOUT", default_value = "10", value_parser = seconds(86400.0))]
    pub body_timeout: Duration,
    /// Seconds a small file just read is served from memory before the disk is asked again; 0 turns it off.
    #[arg(long, value_name = "SECS", env = "HTTP_SERVER_FILE_CACHE_WINDOW", default_value = "1", value_parser = seconds_or_zero(60.0))]
    pub file_cache_window: Duration,
    /// Seconds a stop (SIGTERM, SIGINT) lets responses and uploads under way finish; a second signal exits at once.
    #[arg(long, value_name = "SECS", env = "HTTP_SERVER_SHUTDOWN_GRACE", default_value = "10", value_parser = seconds_or_zero(3600.0))]
    pub shutdown_grace: Duration,
    /// Connections the kernel queues for accept (capped by net.core.somaxconn).
    #[arg(long, value_name = "N", env = "HTTP_SERVER_BACKLOG", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub backlog: u32,
    /// Files downloads may hold open at once (each a descriptor beside its socket); more get 503 [default: a
    /// quarter of the descriptor limit, at most 4096].
    #[arg(long = "max-open-files", value_name = "N", env = "HTTP_SERVER_MAX_OPEN_FILES", value_parser = clap::value_parser!(u64).range(1..))]
    max_open_files_arg: Option<u64>,
    /// Connections one client address may hold at once; more are answered 503 [default: no limit].
    #[arg(long = "max-conns-per-ip", value_name = "N", env = "HTTP_SERVER_MAX_CONNS_PER_IP", value_parser = clap::value_parser!(u32).range(1..))]
    max_conns_per_ip_arg: Option<u32>,
    /// Most open client connections; more are answered 503.
    #[arg(long, value_name = "N", env = "HTTP_SERVER_MAX_CONNECTIONS", default_value_t = 16 * 1024)]
    pub max_connections: usize,
    /// Serve images and text inline with their real types instead of as downloads, as a file share would.
    #[arg(long, env = "HTTP_SERVER_INLINE", value_parser = BoolishValueParser::new())]
    pub inline: bool,
    /// Serve files whose type is outside the MIME table as application/octet-stream downloads, not 415.
    #[arg(long, env = "HTTP_SERVER_UNKNOWN_AS_OCTET_STREAM", value_parser = BoolishValueParser::new())]
    pub unknown_as_octet_stream: bool,
    /// The Cache-Control value of file responses; the default makes browsers revalidate (cheaply, with 304s).
    #[arg(long, value_name = "VALUE", env = "HTTP_SERVER_CACHE_CONTROL", default_value = "no-cache", value_parser = header_value)]
    pub cache_control: String,
    /// List the contents of folders that have no index.html, instead of answering 404.
    #[arg(long, env = "HTTP_SERVER_LIST_DIRS", value_parser = BoolishValueParser::new())]
    pub list_dirs: bool,
    /// A field added to every response, as `Name: value` (repeatable; newline-separated in the variable).
    #[arg(long = "header", value_name = "FIELD", env = "HTTP_SERVER_HEADER", value_delimiter = '\n', value_parser = header_field)]
    pub headers: Vec<(String, String)>,
    /// Allow every origin (Access-Control-Allow-Origin: *) and answer CORS preflights.
    #[arg(long, env = "HTTP_SERVER_CORS", value_parser = BoolishValueParser::new())]
    pub cors: bool,
    /// Require HTTP Basic credentials: USER:PASSWORD (repeatable).
    #[arg(long, value_name = "USER:PASSWORD", env = "HTTP_SERVER_AUTH")]
    pub auth: Vec<String>,
    /// Require HTTP Basic credentials from a file of USER:HASH lines (hashes from --hash-password).
    #[arg(long, value_name = "FILE", env = "HTTP_SERVER_AUTH_FILE")]
    pub auth_file: Option<PathBuf>,
    /// Ask for credentials only on POST /upload; everything else stays public.
    #[arg(long, env = "HTTP_SERVER_AUTH_UPLOADS_ONLY", value_parser = BoolishValueParser::new())]
    pub auth_uploads_only: bool,
    /// Speak HTTPS with this PEM certificate chain (the server's certificate first); needs --tls-key.
    #[arg(long, value_name = "FILE", env = "HTTP_SERVER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key (PKCS#8, RSA or SEC1) of --tls-cert. SIGHUP reloads both.
    #[arg(long, value_name = "FILE", env = "HTTP_SERVER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Also listen for plain HTTP on PORT, answering every request with a 308 to its https:// URL.
    #[arg(long, value_name = "PORT", env = "HTTP_SERVER_REDIRECT_HTTP", requires = "tls_cert")]
    pub redirect_http: Option<u16>,
    /// Read a password from standard input, print its hash for an --auth-file line, and exit.
    #[arg(long, exclusive = true)]
    pub hash_password: bool,
    /// Print the completion script for SHELL and exit.
    #[arg(long, value_name = "SHELL", exclusive = true)]
    pub completions: Option<clap_complete::Shell>,
    /// Print the manual page (roff) and exit.
    #[arg(long, exclusive = true)]
    pub man_page: bool,
    /// Another name clients may use in the Host header (repeatable; comma-separated in the variable).
    #[arg(
        long = "allow-host",
        value_name = "NAME",
        env = "HTTP_SERVER_ALLOW_HOST",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,
}

impl Args {
    /// Parses the command line and the environment, or exits with the usage and code 2.
    pub fn from_env() -> Args {
        match Args::try_from_iter(std::env::args_os()) {
            Ok(args) => args,
            Err(e) => e.exit(),
        }
    }

    /// Parses `args` (the program name first) and the environment. A positional and its flag on the
    /// command line both is an error; a variable from the environment yields to either.
    pub fn try_from_iter<I, T>(args: I) -> Result<Args, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut command = Args::command();
        let matches = command.try_get_matches_from_mut(args)?;
        for (positional, flag) in
            [("port_arg", "port"), ("host_arg", "bind"), ("threads_arg", "threads")]
        {
            let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
            if given(positional) && given(flag) {
                let message =
                    format!("the positional argument and --{flag} name the same setting; give one");
                return Err(command.error(ErrorKind::ArgumentConflict, message));
            }
        }
        Args::from_arg_matches(&matches).map_err(|e| e.format(&mut command))
    }

    /// Writes the completion script for `shell` to `out`.
    pub fn write_completions(shell: clap_complete::Shell, out: &mut impl std::io::Write) {
        clap_complete::generate(shell, &mut Args::command(), "http-server", out);
    }

    /// Writes the manual page to `out`.
    pub fn write_man_page(out: &mut impl std::io::Write) -> std::io::Result<()> {
        clap_mangen::Man::new(Args::command()).render(out)
    }

    /// `--max-conns-per-ip`, if given.
    pub fn max_conns_per_ip(&self) -> Option<usize> {
        self.max_conns_per_ip_arg.map(|n| n as usize)
    }

    /// `--max-open-files`, if given.
    pub fn max_open_files(&self) -> Option<usize> {
        self.max_open_files_arg.map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// The port, from the positional or the flag.
    pub fn port(&self) -> u16 {
        self.port_arg.or(self.port).unwrap_or(8080)
    }

    /// The address to bind, from the positional or the flag.
    pub fn host(&self) -> &str {
        self.host_arg.as_deref().or(self.bind.as_deref()).unwrap_or("127.0.0.1")
    }

    /// The worker threads, from the positional or the flag.
    pub fn threads(&self) -> usize {
        usize::from(self.threads_arg.or(self.threads).unwrap_or(10))
    }

    /// The event log level: `--log-level`, else `RUST_LOG` when it is a level name, else info.
    pub fn log_level(&self) -> LevelFilter {
        match self.log_level {
            Some(level) => level.into(),
            None => std::env::var("RUST_LOG")
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(LevelFilter::Info),
        }
    }

    /// The access log's format.
    pub fn access_log_format(&self) -> Format {
        match self.access_log_format {
            LineFormat::Common => Format::Common,
            LineFormat::Combined => Format::Combined,
            LineFormat::Json => Format::Json,
        }
    }
}

/// The event log levels, named so that `--help` and a wrong value list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl From<LogLevel> for LevelFilter {
    fn from(level: LogLevel) -> LevelFilter {
        match level {
            LogLevel::Off => LevelFilter::Off,
            LogLevel::Error => LevelFilter::Error,
            LogLevel::Warn => LevelFilter::Warn,
            LogLevel::Info => LevelFilter::Info,
            LogLevel::Debug => LevelFilter::Debug,
            LogLevel::Trace => LevelFilter::Trace,
        }
    }
}

/// The access log formats, as the command line names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LineFormat {
    Common,
    Combined,
    Json,
}

/// Worker threads: 1 to 1024.
fn threads(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(n @ 1..=1024) => Ok(n),
        _ => Err("must be a whole number from 1 to 1024".into()),
    }
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

fn parse_seconds(text: &str, max: f64) -> Result<Duration, String> {
    let secs: f64 = text.parse().map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(0.0..=max).contains(&secs) {
        return Err(format!("must be between 0 and {max} seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `Name: value`, with a field name of token characters (RFC 9110 §5.1) that the server does not set
/// itself, and a valid value.
fn header_field(text: &str) -> Result<(String, String), String> {
    /// Fields the server sets from the request and the file; a second copy would contradict it.
    const OWN: &[&str] = &[
        "accept-ranges",
        "access-control-allow-origin",
        "allow",
        "connection",
        "content-disposition",
        "content-encoding",
        "content-length",
        "content-range",
        "content-type",
        "date",
        "etag",
        "keep-alive",
        "last-modified",
        "location",
        "server",
        "transfer-encoding",
        "vary",
        "www-authenticate",
    ];
    let (name, value) = text.split_once(':').ok_or("expected Name: value")?;
    let name = name.trim();
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(format!("{name:?} is not a valid field name"));
    }
    if OWN.iter().any(|own| own.eq_ignore_ascii_case(name)) {
        return Err(format!("{name} is set by the server itself"));
    }
    Ok((name.to_owned(), header_value(value)?))
}

/// A header field value as RFC 9110 §5.5 allows it: visible ASCII, spaces and tabs, nothing that could
/// end the field early.
fn header_value(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic()) {
        return Err("must be visible ASCII (spaces and tabs allowed), and not empty".into());
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_from_iter(std::iter::once("http-server").chain(args.iter().copied()))
    }

    #[test]
    fn positionals_and_flags_name_the_same_settings() {
        let positional = parse(&["9000", "0.0.0.0", "4"]).unwrap();
        assert_eq!(
            (positional.port(), positional.host(), positional.threads()),
            (9000, "0.0.0.0", 4)
        );
        let flags = parse(&["-p", "9000", "-b", "0.0.0.0", "-t", "4"]).unwrap();
        assert_eq!((flags.port(), flags.host(), flags.threads()), (9000, "0.0.0.0", 4));
        let long =
            parse(&["--port", "9001", "--bind", "::1", "--threads", "2", "-d", "site"]).unwrap();
        assert_eq!((long.port(), long.host(), long.threads()), (9001, "::1", 2));
        assert_eq!(long.root, PathBuf::from("site"));
        let defaults = parse(&[]).unwrap();
        assert_eq!((defaults.port(), defaults.host(), defaults.threads()), (8080, "127.0.0.1", 10));
    }

    #[test]
    fn a_flag_and_a_positional_for_the_same_setting_conflict() {
        for args in [
            &["9000", "-p", "9001"][..],
            &["9000", "a", "--bind", "b"],
            &["9000", "a", "4", "-t", "4"],
        ] {
            assert!(parse(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn seconds_accept_fractions_and_refuse_zero_negative_and_nonsense() {
        let parse = seconds(3600.0);
        assert_eq!(parse("0.3"), Ok(Duration::from_millis(300)));
        assert_eq!(parse("5"), Ok(Duration::from_secs(5)));
        for bad in ["0", "-1", "NaN", "inf", "3601", "1e400", "x", ""] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(seconds_or_zero(60.0)("0"), Ok(Duration::ZERO));
        assert!(threads("0").is_err() && threads("1025").is_err() && threads("1024").is_ok());
    }

    #[test]
    fn completions_and_the_man_page_come_from_the_same_definition() {
        let mut bash = Vec::new();
        Args::write_completions(clap_complete::Shell::Bash, &mut bash);
        let bash = String::from_utf8(bash).unwrap();
        assert!(
            bash.contains("--access-log-format") && bash.contains("--auth-uploads-only"),
            "{bash}"
        );
        let mut man = Vec::new();
        Args::write_man_page(&mut man).unwrap();
        let man = String::from_utf8(man).unwrap();
        assert!(man.contains(".TH http-server") && man.contains("access\\-log\\-format"), "{man}");
    }

    #[test]
    fn header_fields_are_validated() {
        assert_eq!(
            header_field("X-Frame-Options: DENY"),
            Ok(("X-Frame-Options".into(), "DENY".into()))
        );
        assert_eq!(
            header_field("Strict-Transport-Security:max-age=63072000"),
            Ok(("Strict-Transport-Security".into(), "max-age=63072000".into()))
        );
        for bad in [
            "NoColon",
            ": x",
            "Bad Name: x",
            "X-A: line\r\nInjected: 1",
            "Content-Length: 5",
            "X-Empty:",
            "X-Blank:   ",
            "ETag: x",
            "Vary: *",
        ] {
            assert!(header_field(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_wrong_log_level_lists_the_valid_ones() {
        let err = parse(&["--log-level", "loud"]).unwrap_err().to_string();
        assert!(err.contains("off, error, warn, info, debug, trace"), "{err}");
    }
}
