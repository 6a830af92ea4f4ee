//! The two TCP options (tcp(7)) that neither rustix nor stable std can set: the crate's only `unsafe` code,
//! one `setsockopt` with an `int`, kept to the options named here.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

/// A TCP socket option whose value is an `int`.
#[derive(Debug, Clone, Copy)]
pub enum TcpOption {
    /// On a listener: seconds to hold a new connection until its client sends something.
    DeferAccept,
    /// On a connection: most bytes it queues that the network can't take yet.
    NotSentLowat,
}

impl TcpOption {
    fn name(self) -> libc::c_int {
        match self {
            TcpOption::DeferAccept => libc::TCP_DEFER_ACCEPT,
            TcpOption::NotSentLowat => libc::TCP_NOTSENT_LOWAT,
        }
    }
}

/// Sets `option` on `socket` to `value`.
#[allow(unsafe_code)]
pub fn set(socket: &impl AsFd, option: TcpOption, value: libc::c_int) -> io::Result<()> {
    // SAFETY: the descriptor stays open while borrowed, and the value is a live `c_int` of the length passed,
    // which is what the kernel reads for both options.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            libc::IPPROTO_TCP,
            option.name(),
            (&raw const value).cast(),
            INT_LEN,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `option` as the kernel holds it, for tests that check what was set.
#[cfg(test)]
#[allow(unsafe_code)]
pub fn get(socket: &impl AsFd, option: TcpOption) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = INT_LEN;
    // SAFETY: as in `set`; the kernel writes at most `len` bytes into `value`, and `len` back.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_fd().as_raw_fd(),
            libc::IPPROTO_TCP,
            option.name(),
            (&raw mut value).cast(),
            &raw mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

const INT_LEN: libc::socklen_t = std::mem::size_of::<libc::c_int>() as libc::socklen_t;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_option_set_reads_back() {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        set(&socket, TcpOption::NotSentLowat, 12345).unwrap();
        assert_eq!(get(&socket, TcpOption::NotSentLowat).unwrap(), 12345);
    }
}
