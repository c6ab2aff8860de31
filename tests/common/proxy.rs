//! A TCP proxy on 127.0.0.1 in front of a real service, for fault injection: it passes
//! traffic, or blackholes it (connections stay open and nothing moves, like a dead host
//! behind a firewall), or refuses it (every connection is cut, like a stopped server).

use std::net::SocketAddr;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Pass,
    /// Accept and hold connections, forward nothing.
    Blackhole,
    /// Cut every connection at once.
    Refuse,
    /// Cut every connection and stop listening, like a stopped server: connects are
    /// refused (ECONNREFUSED) until the mode changes.
    Stopped,
}

/// A running proxy; stops when dropped.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy to `upstream`, passing traffic.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (mode, watcher) = watch::channel(Mode::Pass);
        let task = tokio::spawn(async move {
            let mut listener = Some(listener);
            let mut modes = watcher.clone();
            loop {
                match &listener {
                    Some(l) => tokio::select! {
                        accepted = l.accept() => {
                            let Ok((client, _)) = accepted else { return };
                            tokio::spawn(serve(client, upstream, watcher.clone()));
                        }
                        changed = modes.changed() => {
                            if changed.is_err() {
                                return;
                            }
                            if *modes.borrow_and_update() == Mode::Stopped {
                                listener = None;
                            }
                        }
                    },
                    None => {
                        if modes.wait_for(|m| *m != Mode::Stopped).await.is_err() {
                            return;
                        }
                        listener = Some(bind_again(addr).await);
                    }
                }
            }
        });
        Proxy { addr, mode, task }
    }

    /// Changes what the proxy does, for open connections too.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

/// Listens on `addr` again (the port was given up a moment ago).
async fn bind_again(addr: SocketAddr) -> TcpListener {
    for _ in 0..100 {
        if let Ok(l) = TcpListener::bind(addr).await {
            return l;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("cannot listen on {addr} again");
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    loop {
        let now = *mode.borrow_and_update();
        match now {
            Mode::Refuse | Mode::Stopped => {
                let _ = client.shutdown().await;
                return;
            }
            Mode::Blackhole => {
                // Hold the connection, move nothing, until the mode changes.
                if mode.changed().await.is_err() {
                    return;
                }
            }
            Mode::Pass => break,
        }
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let changed = {
        let mut mode = mode.clone();
        async move {
            let _ = mode.wait_for(|m| *m != Mode::Pass).await;
        }
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        () = changed => {
            if *mode.borrow_and_update() == Mode::Blackhole {
                // Move nothing, keep both ends open; when the network comes back the
                // connection is found dead (as TCP would find it), never revived.
                let _ = mode.changed().await;
            }
        }
    }
}
