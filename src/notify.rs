//! Notifications to the service manager (`READY=1`, `STATUS=`, `WATCHDOG=1`, `STOPPING=1`) over
//! the datagram socket systemd names in `$NOTIFY_SOCKET`.
//!
//! The socket is opened once, before confinement ([`open`]), and every message is a `sendto`
//! on it: the confined daemon never creates a unix socket nor connects one (its seccomp filter
//! refuses both), on every kernel, whatever Landlock can scope there.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::OnceLock;

/// The open notification socket and where it sends.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    to: SocketAddr,
}

impl Notifier {
    /// The notifier for a `$NOTIFY_SOCKET` value: a path, or `@name` for an abstract socket.
    pub fn new(notify_socket: &str) -> std::io::Result<Notifier> {
        let to = match notify_socket.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes())?,
            None => SocketAddr::from_pathname(notify_socket)?,
        };
        Ok(Notifier {
            socket: UnixDatagram::unbound()?,
            to,
        })
    }

    /// Sends one message (`KEY=VALUE` lines).
    pub fn send(&self, message: &str) -> std::io::Result<()> {
        self.socket
            .send_to_addr(message.as_bytes(), &self.to)
            .map(drop)
    }
}

static NOTIFIER: OnceLock<Option<Notifier>> = OnceLock::new();

/// Opens the notification socket if the service manager gave one (call before confinement;
/// later calls change nothing). A socket that cannot be opened is logged and notifications are
/// skipped, as without a service manager.
pub fn open() {
    NOTIFIER.get_or_init(|| {
        let path = std::env::var("NOTIFY_SOCKET").ok()?;
        match Notifier::new(&path) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(
                    "NOTIFY_SOCKET={path}: {e}; the service manager will not hear from scramd"
                );
                None
            }
        }
    });
}

/// Sends `message` to the service manager, if there is one (see [`open`]).
pub fn notify(message: &str) {
    if let Some(Some(n)) = NOTIFIER.get() {
        if let Err(e) = n.send(message) {
            tracing::debug!("notify {message:?}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_a_path_socket_and_an_abstract_one() {
        let dir = std::env::temp_dir().join(format!("scram-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        Notifier::new(path.to_str().unwrap())
            .unwrap()
            .send("READY=1")
            .unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        std::fs::remove_dir_all(&dir).unwrap();

        let name = format!("scram-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        Notifier::new(&format!("@{name}"))
            .unwrap()
            .send("STATUS=x")
            .unwrap();
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STATUS=x");
    }
}
