//! Every socket call a connection makes, behind one trait. `Plain` is a nonblocking TCP stream, `Tls` the same
//! stream under rustls, and `Stream` either of them. The state machine sees only this trait, so unit tests
//! drive it with a scripted one.

/// Registers a transport by the socket under it (`socket_mut`): readiness is the socket's.
macro_rules! source_via_socket {
    ($transport:ty) => {
        impl mio::event::Source for $transport {
            fn register(
                &mut self,
                registry: &mio::Registry,
                token: mio::Token,
                interest: mio::Interest,
            ) -> std::io::Result<()> {
                mio::event::Source::register(self.socket_mut(), registry, token, interest)
            }

            fn reregister(
                &mut self,
                registry: &mio::Registry,
                token: mio::Token,
                interest: mio::Interest,
            ) -> std::io::Result<()> {
                mio::event::Source::reregister(self.socket_mut(), registry, token, interest)
            }

            fn deregister(&mut self, registry: &mio::Registry) -> std::io::Result<()> {
                mio::event::Source::deregister(self.socket_mut(), registry)
            }
        }
    };
}

pub mod sockopt;
mod tls;

use sockopt::TcpOption;
pub use tls::{is_plain_http, Tls};

use log::debug;
use mio::net::TcpStream;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr};

/// Bytes asked of the transport per read. 8 KiB: a typical head fits in one read.
pub const READ_CHUNK: usize = 8 * 1024;

/// About the most bytes of a file a connection keeps queued in the kernel and not yet sent
/// (`TCP_NOTSENT_LOWAT`, which a call may overshoot by a segment), set at its first `sendfile`. 32 KiB. Without it `sendfile` fills the whole send
/// buffer, and the bytes queued there go out later from whichever thread takes in the client's ACKs; on
/// loopback that is the client's own, so it pays for our transmissions. Kept this short, they go out in our
/// `sendfile` calls: in alternating 10 MiB download runs against wrk, 1.6x the MB/s and less server CPU
/// per byte (a limit of 128 KiB gave a little more MB/s for half again the CPU).
const UNSENT_LOWAT: libc::c_int = 32 * 1024;

/// The byte stream under a connection. Every call is nonblocking: `WouldBlock` means "wait for readiness".
pub trait Transport {
    /// Reads into `buf`; `Ok(0)` is the end of the client's input.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Whether a read that returned less than it was asked for took all the input there was. Then the next
    /// arrival is reported as new readiness, and reading again first would only meet `WouldBlock` (nginx
    /// skips that read the same way). False where the transport buffers input of its own (TLS).
    fn short_read_drains(&self) -> bool {
        false
    }
    /// Writes from `buf`, returning how much was taken.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize>;
    /// Like `write`, saying that more follows at once (a file body after its head): the two may go out in one
    /// packet.
    fn write_more(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write(buf)
    }
    /// Pushes out anything the transport itself still holds (TLS records); `WouldBlock` until it is gone.
    fn flush(&mut self) -> io::Result<()>;
    /// Whether output the transport held itself reached the socket since the last call: progress, as a
    /// write that takes bytes is.
    fn sent_own_output(&mut self) -> bool {
        false
    }
    /// Sends up to `len` bytes of `file` from `offset` straight from the page cache, returning how many went;
    /// `Ok(0)` means the file ends there. `Unsupported` where the bytes must pass through us (TLS encrypts
    /// them): the caller then has them read into memory and writes them.
    fn send_file(&mut self, file: &File, offset: u64, len: usize) -> io::Result<usize> {
        let _ = (file, offset, len);
        Err(io::ErrorKind::Unsupported.into())
    }
    /// Ends our side of the stream: the client reads EOF once it has everything sent before.
    fn shutdown_write(&mut self);
    /// Sends `reply` as it is, outside any encryption, and ends the stream: the answer to a client that
    /// spoke plain HTTP to the TLS port (`is_plain_http`). Nothing to do where there is no encryption.
    fn reply_in_clear(&mut self, reply: &[u8]) {
        let _ = reply;
    }
    /// The address the client reached us on (for Host checks when bound to every interface).
    fn local_ip(&self) -> IpAddr;
    /// The client's address.
    fn peer(&self) -> SocketAddr;
}

/// The outcome of one read appended to a buffer.
pub enum Filled {
    /// Bytes were appended; `drained`: all the input there was (`Transport::short_read_drains`).
    Data { drained: bool },
    /// Nothing to read now.
    Blocked,
    /// The client closed its side.
    Eof,
    /// The connection is broken.
    Failed(io::Error),
}

/// One read, appended to `buf`. It reads into the loop's `scratch` first, so a connection woken with nothing
/// to read never grows a heap buffer (idle connections stay a few hundred bytes each), and no read pays for
/// zeroing a fresh buffer (that was most of a small request's instructions).
pub fn fill(transport: &mut impl Transport, buf: &mut Vec<u8>, scratch: &mut [u8]) -> Filled {
    loop {
        return match transport.read(scratch) {
            Ok(0) => Filled::Eof,
            Ok(n) => {
                buf.extend_from_slice(&scratch[..n]);
                Filled::Data { drained: n < scratch.len() && transport.short_read_drains() }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Filled::Blocked,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Filled::Failed(e),
        };
    }
}

/// The outcome of writing a buffer out.
pub enum Drained {
    /// All of it went out, including what the transport itself held.
    All,
    /// The client is not taking more now.
    Blocked,
    /// The connection is broken.
    Failed(io::Error),
}

/// Writes `buf[*written..]` until all of it is out and flushed, or the transport blocks; `*written` counts
/// what was taken. `more`: a file body follows at once.
pub fn drain(
    transport: &mut impl Transport,
    buf: &[u8],
    written: &mut usize,
    more: bool,
) -> Drained {
    while *written < buf.len() {
        let rest = &buf[*written..];
        let wrote = if more { transport.write_more(rest) } else { transport.write(rest) };
        match wrote {
            Ok(0) => return Drained::Failed(io::ErrorKind::WriteZero.into()),
            Ok(n) => *written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Drained::Blocked,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Drained::Failed(e),
        }
    }
    match transport.flush() {
        Ok(()) => Drained::All,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Drained::Blocked,
        Err(e) => Drained::Failed(e),
    }
}

/// A plain TCP connection.
pub struct Plain {
    socket: TcpStream,
    peer: SocketAddr,
    local_ip: IpAddr,
    /// `UNSENT_LOWAT` is set: once, at the first file sent, so a connection that never sends one pays
    /// no system call for it.
    paced: bool,
}

/// Readies a freshly accepted socket for either transport, and tells the address it was reached on: the
/// listener's own, unless that is unspecified (0.0.0.0), and only then asked of the kernel.
pub fn prepare(socket: &TcpStream, listening_on: IpAddr) -> IpAddr {
    // Responses go out in one write per buffer; waiting for more data to coalesce only adds latency.
    let _ = socket.set_nodelay(true);
    if !listening_on.is_unspecified() {
        return listening_on;
    }
    socket.local_addr().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip())
}

impl Plain {
    /// Wraps a freshly accepted socket (`prepare`d) that the client reached on `local_ip`.
    pub fn new(socket: TcpStream, peer: SocketAddr, local_ip: IpAddr) -> Plain {
        Plain { socket, peer, local_ip, paced: false }
    }

    fn socket_mut(&mut self) -> &mut TcpStream {
        &mut self.socket
    }

    /// Best effort for a client we won't serve: `refuse_on`, then close.
    pub fn refuse(mut socket: TcpStream, reply: &[u8]) {
        refuse_on(&mut socket, reply);
    }
}

/// Best effort: read what the client already sent (so that closing does not reset the connection and destroy
/// the reply), send `reply` once unless it is empty, and end our side.
fn refuse_on(socket: &mut TcpStream, reply: &[u8]) {
    let mut scratch = [0u8; 4096];
    for _ in 0..4 {
        if !matches!(socket.read(&mut scratch), Ok(n) if n > 0) {
            break;
        }
    }
    if !reply.is_empty() {
        let _ = socket.write(reply);
    }
    let _ = socket.shutdown(Shutdown::Write);
}

impl Transport for Plain {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.read(buf)
    }

    /// A TCP socket's short read emptied its receive queue.
    fn short_read_drains(&self) -> bool {
        true
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.socket.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// `MSG_MORE`: the head waits, as `TCP_CORK` would, for the `sendfile` right after it (or 200 ms at most),
    /// so a download's head and first bytes share a packet despite `TCP_NODELAY`.
    fn write_more(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(rustix::net::send(&self.socket, buf, rustix::net::SendFlags::MORE)?)
    }

    fn send_file(&mut self, file: &File, offset: u64, len: usize) -> io::Result<usize> {
        if !self.paced {
            self.paced = true;
            // Only a matter of speed: without it, the file goes out all the same.
            if let Err(e) = sockopt::set(&self.socket, TcpOption::NotSentLowat, UNSENT_LOWAT) {
                debug!("{}: cannot set TCP_NOTSENT_LOWAT: {e}", self.peer);
            }
        }
        let mut offset = offset;
        Ok(rustix::fs::sendfile(&self.socket, file, Some(&mut offset), len)?)
    }

    fn shutdown_write(&mut self) {
        let _ = self.socket.shutdown(Shutdown::Write);
    }

    fn local_ip(&self) -> IpAddr {
        self.local_ip
    }

    fn peer(&self) -> SocketAddr {
        self.peer
    }
}

source_via_socket!(Plain);

/// An accepted connection, in the clear or under TLS: the one transport type the server's slab holds.
/// The TLS session is boxed, so connections in the clear stay as small as `Plain`.
pub enum Stream {
    /// HTTP in the clear: the listener without `--tls-cert`, and the `--redirect-http` one.
    Plain(Plain),
    /// HTTPS.
    Tls(Box<Tls>),
}

/// Calls `$method` on whichever transport `$stream` holds.
macro_rules! either {
    ($stream:expr, $inner:ident => $call:expr) => {
        match $stream {
            Stream::Plain($inner) => $call,
            Stream::Tls($inner) => $call,
        }
    };
}

impl Stream {
    fn socket_mut(&mut self) -> &mut TcpStream {
        either!(self, t => t.socket_mut())
    }
}

impl Transport for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        either!(self, t => t.read(buf))
    }

    fn short_read_drains(&self) -> bool {
        either!(self, t => t.short_read_drains())
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        either!(self, t => t.write(buf))
    }

    fn write_more(&mut self, buf: &[u8]) -> io::Result<usize> {
        either!(self, t => t.write_more(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        either!(self, t => t.flush())
    }

    fn sent_own_output(&mut self) -> bool {
        either!(self, t => t.sent_own_output())
    }

    fn send_file(&mut self, file: &File, offset: u64, len: usize) -> io::Result<usize> {
        either!(self, t => t.send_file(file, offset, len))
    }

    fn shutdown_write(&mut self) {
        either!(self, t => t.shutdown_write())
    }

    fn reply_in_clear(&mut self, reply: &[u8]) {
        either!(self, t => t.reply_in_clear(reply))
    }

    fn local_ip(&self) -> IpAddr {
        either!(self, t => t.local_ip())
    }

    fn peer(&self) -> SocketAddr {
        either!(self, t => t.peer())
    }
}

source_via_socket!(Stream);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_file_sent_limits_what_the_socket_queues_unsent() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (socket, peer) = listener.accept().unwrap();
        socket.set_nonblocking(true).unwrap();
        let mut plain = Plain::new(TcpStream::from_std(socket), peer, peer.ip());
        // Unset, the option reads as the system-wide net.ipv4.tcp_notsent_lowat (unlimited by default).
        assert_ne!(sockopt::get(&plain.socket, TcpOption::NotSentLowat).unwrap(), UNSENT_LOWAT);

        let dir = crate::fuzzing::temp_dir("transport");
        std::fs::write(dir.join("f"), b"twelve bytes").unwrap();
        let file = File::open(dir.join("f")).unwrap();
        assert_eq!(plain.send_file(&file, 0, 12).unwrap(), 12);
        assert_eq!(sockopt::get(&plain.socket, TcpOption::NotSentLowat).unwrap(), UNSENT_LOWAT);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
