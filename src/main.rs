//! `http-server`: parses the command line, installs the event log, binds, and runs the loop until SIGTERM
//! or SIGINT.

#![deny(unsafe_code)]

mod cli;

use cli::Args;
use http_server::auth::{self, Users};
use http_server::logging::{EventLog, Sink};
use http_server::mime::MimeTable;
use http_server::tls::{self, Acceptor, CertFiles};
use http_server::{Config, Limits, Server, StartError};
use log::{info, warn};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGXFSZ};
use std::net::ToSocketAddrs;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

fn main() -> ExitCode {
    let args = Args::from_env();
    if args.hash_password {
        return print_hash();
    }
    if let Some(shell) = args.completions {
        Args::write_completions(shell, &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    if args.man_page {
        return match Args::write_man_page(&mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let events = match EventLog::install(args.log_level(), Arc::default()) {
        Ok(events) => events,
        Err(e) => {
            eprintln!("error: cannot start the event log: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = run(args);
    events.close();
    code
}

fn run(args: Args) -> ExitCode {
    // The handlers only raise flags; the loop and the log writers act on them (never work in a handler).
    let stop = Arc::new(AtomicBool::new(false));
    let reopen_logs = Arc::new(AtomicBool::new(false));
    // SIGXFSZ would kill the process when a write passes `ulimit -f`; with a handler the write fails with
    // EFBIG instead, and the upload gets a 507.
    let file_too_large = Arc::new(AtomicBool::new(false));
    // A second SIGTERM or SIGINT exits at once with status 1: registered before the flag, this handler still
    // sees it unset on the first signal.
    for signal in [SIGTERM, SIGINT] {
        if let Err(e) =
            signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(&stop))
        {
            eprintln!("error: cannot handle signal {signal}: {e}");
            return ExitCode::FAILURE;
        }
    }
    for (signal, flag) in
        [(SIGTERM, &stop), (SIGINT, &stop), (SIGHUP, &reopen_logs), (SIGXFSZ, &file_too_large)]
    {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(flag)) {
            eprintln!("error: cannot handle signal {signal}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let addr = match (args.host(), args.port()).to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(addr)) => addr,
        _ => {
            eprintln!("error: cannot resolve host {:?}", args.host());
            return ExitCode::from(2);
        }
    };
    if !args.root.is_dir() {
        eprintln!("error: document root {} is not a folder", args.root.display());
        return ExitCode::from(2);
    }
    let access_log = match args.access_log.as_str() {
        "off" => None,
        "-" => Some(Sink::Stdout),
        path => Some(Sink::File(path.into())),
    };
    // One largest upload must fit, or --max-body would be a promise the server can't keep.
    let max_body = args.max_body as u64;
    if args.max_upload_disk < max_body {
        warn!(
            "--max-upload-disk {} is less than --max-body; using {max_body}",
            args.max_upload_disk
        );
    }
    let (max_connections, max_open_files) =
        fit_to_fd_limit(args.max_connections, args.max_open_files());
    let limits = Limits {
        idle_timeout: args.idle_timeout,
        max_requests: args.max_requests,
        max_body_bytes: args.max_body,
        max_uploads: args.max_uploads as usize,
        max_upload_disk_bytes: args.max_upload_disk.max(max_body),
        body_timeout: args.body_timeout,
        file_cache_window: args.file_cache_window,
        max_connections,
        max_open_files,
        max_conns_per_ip: args.max_conns_per_ip(),
        listen_backlog: args.backlog,
        shutdown_grace: args.shutdown_grace,
        ..Limits::default()
    };
    let mut users = Users::default();
    users.uploads_only = args.auth_uploads_only;
    for pair in &args.auth {
        if let Err(e) = users.add_plain(pair) {
            eprintln!("error: --auth {pair:?}: {e}");
            return ExitCode::from(2);
        }
    }
    if let Some(file) = &args.auth_file {
        let added = std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|text| users.add_file(&text));
        if let Err(e) = added {
            eprintln!("error: --auth-file {}: {e}", file.display());
            return ExitCode::from(2);
        }
    }
    if (!args.auth.is_empty() || args.auth_file.is_some()) && users.is_empty() {
        eprintln!("error: --auth-file names no users: nobody could sign in");
        return ExitCode::from(2);
    }
    if args.auth_uploads_only && users.is_empty() {
        eprintln!("error: --auth-uploads-only needs --auth or --auth-file");
        return ExitCode::from(2);
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let files = CertFiles { cert: cert.clone(), key: key.clone() };
            match Acceptor::load(files) {
                Ok(acceptor) => Some(Arc::new(acceptor)),
                Err(e) => {
                    eprintln!("error: --tls-cert/--tls-key: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        // clap requires both or neither.
        _ => None,
    };
    if let Some(acceptor) = &tls {
        if let Err(e) = tls::reload_on_hangup(Arc::clone(acceptor)) {
            eprintln!("error: cannot handle SIGHUP for certificate reloads: {e}");
            return ExitCode::FAILURE;
        }
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    let config = Config {
        tls,
        redirect_http: args.redirect_http,
        users,
        cors: args.cors,
        addr,
        host_name: args.host().to_owned(),
        workers: args.threads(),
        access_log: access_log.map(|sink| (sink, args.access_log_format())),
        extra_headers: args.headers,
        reopen_logs,
        root: args.root,
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
        "starting {} ({scheme}) on {addr}: root {}, {} workers, idle timeout {:?}, max {} requests per connection, \
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
            log::logger().flush();
            eprintln!("error: cannot listen on {addr} (port {}): {e}", addr.port());
            return ExitCode::FAILURE;
        }
        Err(e) => {
            log::logger().flush();
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match server.local_addr() {
        // Tests and scripts read this line, so it is printed even when info logging is off.
        Ok(bound) if log::log_enabled!(log::Level::Info) => info!("listening on {bound}"),
        Ok(bound) => eprintln!("listening on {bound}"),
        Err(e) => eprintln!("error: cannot read the bound address: {e}"),
    }
    if let Some(redirect) = server.redirect_addr() {
        info!("redirecting to https from {redirect}");
    }
    match server.run(&stop) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("event loop failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--hash-password`: one line from standard input in, its Argon2 hash out.
fn print_hash() -> ExitCode {
    let mut password = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut password) {
        eprintln!("error: cannot read the password: {e}");
        return ExitCode::FAILURE;
    }
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("error: the password is empty");
        return ExitCode::from(2);
    }
    match auth::hash(password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
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
fn fit_to_fd_limit(max_connections: usize, max_open_files: Option<usize>) -> (usize, usize) {
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
        return (max_connections, max_open_files.unwrap_or(DEFAULT_OPEN_FILES));
    };
    let usable = usize::try_from(fds.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX).max(2);
    // Every connection is a socket, and every download under way a file beside it: share the descriptors,
    // a quarter for files unless told otherwise.
    // Files never take more than half: a server that can hold files but no clients serves nobody.
    let files = max_open_files.unwrap_or(DEFAULT_OPEN_FILES.min(usable / 4)).clamp(1, usable / 2);
    let fitting = usable - files;
    if fitting < max_connections {
        warn!(
            "file descriptor limit {fds} allows {fitting} connections and {files} open files, not \
             {max_connections} connections; raise it (ulimit -n) for more"
        );
    }
    (max_connections.min(fitting), files)
}

/// Files held open by downloads at once when the descriptor limit leaves room for it. 4096.
const DEFAULT_OPEN_FILES: usize = 4096;
