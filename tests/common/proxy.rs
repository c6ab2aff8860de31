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
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(client, upstream, watcher.clone()));
            }
        });
        Proxy { addr, mode, task }
    }

    /// Changes what the proxy does, for open connections too.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
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
            Mode::Refuse => {
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
