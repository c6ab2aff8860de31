//! Raw HTTP/1.1 over one TCP connection, for tests of how connections behave: the head and
//! the body in two writes, answers read whole, and how the connection ends.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One raw HTTP/1.1 connection.
pub struct Raw {
    pub stream: TcpStream,
    read: Vec<u8>,
}

/// What came back for one request.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub close: bool,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            read: Vec::new(),
        }
    }

    /// Writes `head` (without its blank line), then `body` a few milliseconds later.
    pub async fn send(&mut self, head: &str, body: &[u8]) -> io::Result<()> {
        let head = format!(
            "{head}\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.stream.write_all(head.as_bytes()).await?;
        if !body.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.stream.write_all(body).await?;
        }
        Ok(())
    }

    /// Reads one whole answer.
    pub async fn answer(&mut self) -> io::Result<Answer> {
        let end = loop {
            if let Some(i) = self.read.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.read[..end]).to_ascii_lowercase();
        let status = head[9..12].parse().unwrap();
        let header = |name: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
        };
        let length: usize = header("content-length:").map_or(0, |v| v.parse().unwrap());
        let close = header("connection:").is_some_and(|v| v == "close");
        while self.read.len() < end + length {
            self.fill().await?;
        }
        self.read.drain(..end + length);
        Ok(Answer { status, close })
    }

    async fn fill(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 8192];
        let n = tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut buf))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer"))??;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
        }
        self.read.extend_from_slice(&buf[..n]);
        Ok(())
    }

    /// The server closes the connection cleanly (FIN, not a reset) within a few seconds.
    pub async fn closes_cleanly(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 1024];
        loop {
            match tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut buf)).await {
                Ok(Ok(0)) => return Ok(()),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "still open")),
            }
        }
    }
}
