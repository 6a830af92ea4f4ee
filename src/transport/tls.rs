//! TLS over a nonblocking TCP stream, the way rustls's `tlsserver-mio` example drives it: records are read
//! with `read_tls` and decrypted by `process_new_packets`; plaintext is buffered into rustls (within its
//! buffer limit) and pushed out with `write_tls`. The handshake needs no state of its own: every read first
//! sends what rustls has queued, so the handshake advances on whichever readiness the loop reports.

use super::{refuse_on, Transport};
use log::debug;
use mio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::Arc;

/// Encrypted output rustls holds per connection before a write waits for the socket (rustls's default, set
/// here so the bound is ours to see). 64 KiB: a worker's whole chunk is taken at once and goes out in one
/// `writev` (a record at a time cost a quarter of the throughput), and the connection then lets go of its
/// own copy (`Connection::write`), so a stalled reader holds this and little else.
const TLS_BUFFER_LIMIT: usize = 64 * 1024;

/// Bytes a client may send before its handshake is done. 16 KiB: a ClientHello is a few KiB even with
/// post-quantum key shares, while rustls would buffer a handshake message of up to 64 KiB, so a stalled
/// handshake holds no more than a stalled plain request head (`Limits::max_head_bytes`).
const MAX_HANDSHAKE_BYTES: usize = 16 * 1024;

/// Why a read failed because the client spoke plain HTTP to the TLS port.
#[derive(Debug)]
pub struct PlainHttp;

impl std::fmt::Display for PlainHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("plain HTTP sent to the HTTPS port")
    }
}

impl std::error::Error for PlainHttp {}

/// A TLS connection.
pub struct Tls {
    /// The accepted socket, which carries only records (or a plain-HTTP refusal).
    socket: TcpStream,
    /// rustls's side of the connection: the handshake, the keys and the record buffers.
    session: ServerConnection,
    /// The client's address.
    peer: SocketAddr,
    /// The address the client reached us on.
    local_ip: IpAddr,
    /// The first byte was seen to be a TLS record.
    sniffed: bool,
    /// Bytes received while the handshake was under way.
    handshake_bytes: usize,
    /// Our side is closing: the socket is shut once `close_notify` has gone out.
    closing: bool,
    /// The client's `close_notify` has been answered with ours.
    answered_close: bool,
    /// Records reached the socket since `sent_own_output` was last asked.
    records_sent: bool,
}

impl Tls {
    /// Starts the server side of a handshake on a freshly accepted socket (`prepare`d) that the client
    /// reached on `local_ip`.
    pub fn new(
        socket: TcpStream,
        peer: SocketAddr,
        local_ip: IpAddr,
        config: Arc<ServerConfig>,
    ) -> Result<Tls, rustls::Error> {
        let mut session = ServerConnection::new(config)?;
        session.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
        Ok(Tls {
            socket,
            session,
            peer,
            local_ip,
            sniffed: false,
            handshake_bytes: 0,
            closing: false,
            answered_close: false,
            records_sent: false,
        })
    }

    /// Shuts the socket's writing side once `close_notify` and everything before it are out: shut earlier,
    /// the records still held would be lost.
    fn finish_closing(&mut self) {
        if self.closing && self.send_records_now().is_ok() && !self.session.wants_write() {
            let _ = self.socket.shutdown(Shutdown::Write);
            self.closing = false;
        }
    }

    pub(super) fn socket_mut(&mut self) -> &mut TcpStream {
        &mut self.socket
    }

    /// Sends the records rustls holds; `WouldBlock` when the socket takes no more.
    fn send_records(&mut self) -> io::Result<()> {
        while self.session.wants_write() {
            match self.session.write_tls(&mut self.socket) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => self.records_sent = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sends what it can now; the rest goes at the next write, flush or read.
    fn send_records_now(&mut self) -> io::Result<()> {
        match self.send_records() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            sent => sent,
        }
    }

    /// Looks at the first byte before rustls does: plain HTTP starts with a method's letters, and deserves
    /// an answer it can read rather than a TLS alert. A TLS connection starts with a handshake record (RFC
    /// 8446 §5.1: content type 22), never a letter.
    fn sniff(&mut self) -> io::Result<()> {
        let mut first = [0u8; 1];
        match self.socket.peek(&mut first) {
            Ok(0) => Ok(()),
            Ok(_) if first[0].is_ascii_alphabetic() => {
                Err(io::Error::new(io::ErrorKind::InvalidData, PlainHttp))
            }
            // A handshake, or garbage that rustls answers with an alert.
            Ok(_) => {
                self.sniffed = true;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// Whether `err` says the client spoke plain HTTP to the TLS port.
pub fn is_plain_http(err: &io::Error) -> bool {
    err.get_ref().is_some_and(|inner| inner.is::<PlainHttp>())
}

impl Transport for Tls {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.finish_closing();
        loop {
            match self.session.reader().read(buf) {
                // The client's close_notify: each side must send its own before closing (RFC 8446 §6.1).
                Ok(0) if !self.answered_close => {
                    self.answered_close = true;
                    self.session.send_close_notify();
                    let _ = self.send_records_now();
                    return Ok(0);
                }
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The client closed without close_notify: most do, and a truncated request can't pass as a
                // whole one anyway, since its head or body framing is then incomplete.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            // Handshake messages (and tickets) queued by the last records go out before waiting for more.
            self.send_records_now()?;
            if !self.sniffed {
                self.sniff()?;
            }
            match self.session.read_tls(&mut self.socket) {
                // End of input; the reader reports it (or the plaintext before it) on the next pass.
                Ok(0) => {}
                Ok(n)
                    if self.session.is_handshaking()
                        && self.handshake_bytes + n > MAX_HANDSHAKE_BYTES =>
                {
                    debug!("{}: TLS handshake over {MAX_HANDSHAKE_BYTES} bytes", self.peer);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "handshake too large"));
                }
                Ok(n) => {
                    if self.session.is_handshaking() {
                        self.handshake_bytes += n;
                    }
                    if let Err(e) = self.session.process_new_packets() {
                        debug!("{}: TLS failed: {e}", self.peer);
                        // Tell the client why, in the alert rustls queued.
                        let _ = self.send_records_now();
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            let taken = self.session.writer().write(buf)?;
            if taken > 0 {
                self.send_records_now()?;
                return Ok(taken);
            }
            // rustls's buffer is full: make room, or wait for the socket. With no records to send, the
            // plaintext is held for a handshake still under way: only the client's next message helps.
            if !self.session.wants_write() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.send_records()?;
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_records()
    }

    fn sent_own_output(&mut self) -> bool {
        std::mem::take(&mut self.records_sent)
    }

    /// Sends `close_notify`, so the client knows the response was not cut short. If the socket takes no
    /// more now, the shutdown follows on a later read while the connection lingers; where it closes at once
    /// instead (an idle timeout, a stop), the alert is best effort, as the close itself is.
    fn shutdown_write(&mut self) {
        if !self.closing {
            self.session.send_close_notify();
            self.closing = true;
        }
        self.finish_closing();
    }

    fn reply_in_clear(&mut self, reply: &[u8]) {
        refuse_on(&mut self.socket, reply);
    }

    fn local_ip(&self) -> IpAddr {
        self.local_ip
    }

    fn peer(&self) -> SocketAddr {
        self.peer
    }
}

source_via_socket!(Tls);
