//! Click events that could not be published while NATS was away, kept on disk so a long
//! outage (or a restart during one) loses none. The forwarder appends them, in order, to
//! `clicks.spill` under `click_spill_dir` (one JSON line each, fsync'd per batch, at most
//! `click_spill_max_bytes`), and publishes them again, oldest first, once NATS answers.
//! `clicks.replayed` records how far that got, so a restart resumes there; an event
//! published twice (a crash between a publish and that record) keeps its id, and the store
//! counts each id once.

use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The spill: its file, how much of it is replayed, and its bound.
#[derive(Debug)]
pub struct Spill {
    events: PathBuf,
    replayed_at: PathBuf,
    /// Bytes in the file.
    len: u64,
    /// Bytes of it already published.
    replayed: u64,
    max_bytes: u64,
}

impl Spill {
    /// Opens the spill in `dir` (created when missing), at most `max_bytes` long.
    pub fn open(dir: &Path, max_bytes: u64) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the click spill directory {}", dir.display()))?;
        let events = dir.join("clicks.spill");
        let replayed_at = dir.join("clicks.replayed");
        let len = std::fs::metadata(&events).map_or(0, |m| m.len());
        let replayed = std::fs::read_to_string(&replayed_at)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
            .min(len);
        Ok(Self {
            events,
            replayed_at,
            len,
            replayed,
            max_bytes,
        })
    }

    /// Whether events wait in the spill.
    pub fn is_empty(&self) -> bool {
        self.replayed >= self.len
    }

    /// Bytes waiting.
    pub fn waiting_bytes(&self) -> u64 {
        self.len - self.replayed
    }

    /// Appends `lines` (one event each, without newline) and syncs them to disk. Returns
    /// how many fitted under the bound; the rest are not written.
    pub fn append(&mut self, lines: &[Vec<u8>]) -> anyhow::Result<usize> {
        let mut buf = Vec::new();
        let mut fitted = 0;
        for line in lines {
            if self.len + (buf.len() + line.len() + 1) as u64 > self.max_bytes {
                break;
            }
            buf.extend_from_slice(line);
            buf.push(b'\n');
            fitted += 1;
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.events)
            .context("opening the click spill")?;
        file.write_all(&buf).context("writing the click spill")?;
        file.sync_data().context("syncing the click spill")?;
        self.len += buf.len() as u64;
        Ok(fitted)
    }

    /// Up to `most` events from where the replay stands, and the position after them (for
    /// [`Spill::replayed_to`] once they are published).
    pub fn next(&self, most: usize) -> anyhow::Result<(Vec<Vec<u8>>, u64)> {
        let mut file = std::fs::File::open(&self.events).context("opening the click spill")?;
        file.seek(SeekFrom::Start(self.replayed))?;
        let mut reader = BufReader::new(file);
        let mut lines = Vec::new();
        let mut at = self.replayed;
        while lines.len() < most {
            let mut line = Vec::new();
            let n = reader.read_until(b'\n', &mut line)?;
            // The end, or a line cut short by a crash while it was written.
            if n == 0 || line.last() != Some(&b'\n') {
                break;
            }
            at += n as u64;
            line.pop();
            lines.push(line);
        }
        if lines.is_empty() {
            // Nothing whole is left: what remains is a torn last line.
            at = self.len;
        }
        Ok((lines, at))
    }

    /// Records that everything before `at` is published. When all is, the file is emptied.
    pub fn replayed_to(&mut self, at: u64) -> anyhow::Result<()> {
        self.replayed = at.min(self.len);
        if self.is_empty() {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&self.events)
                .context("emptying the click spill")?
                .sync_data()?;
            self.len = 0;
            self.replayed = 0;
        }
        let mut file = std::fs::File::create(&self.replayed_at)?;
        file.write_all(self.replayed.to_string().as_bytes())?;
        file.sync_data()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(range: std::ops::Range<u32>) -> Vec<Vec<u8>> {
        range
            .map(|i| format!("{{\"n\":{i}}}").into_bytes())
            .collect()
    }

    #[test]
    fn appends_replays_in_order_and_resumes_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut spill = Spill::open(dir.path(), 1 << 20).unwrap();
        assert!(spill.is_empty());
        assert_eq!(spill.append(&lines(0..10)).unwrap(), 10);
        let (first, at) = spill.next(4).unwrap();
        assert_eq!(first, lines(0..4));
        spill.replayed_to(at).unwrap();
        // A restart resumes where the replay stood.
        let mut spill = Spill::open(dir.path(), 1 << 20).unwrap();
        let (rest, at) = spill.next(100).unwrap();
        assert_eq!(rest, lines(4..10));
        spill.replayed_to(at).unwrap();
        assert!(spill.is_empty());
        assert_eq!(
            std::fs::metadata(dir.path().join("clicks.spill"))
                .unwrap()
                .len(),
            0
        );
    }

    #[test]
    fn stops_at_its_bound_and_skips_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut spill = Spill::open(dir.path(), 39).unwrap();
        // Each line is 8 bytes with its newline: four fit in 39.
        assert_eq!(spill.append(&lines(0..10)).unwrap(), 4);
        assert_eq!(spill.append(&lines(10..11)).unwrap(), 0);
        // A crash in the middle of a write leaves half a line.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("clicks.spill"))
            .unwrap();
        file.write_all(b"{\"n\":9").unwrap();
        let mut spill = Spill::open(dir.path(), 1 << 20).unwrap();
        let (all, at) = spill.next(100).unwrap();
        assert_eq!(all, lines(0..4));
        spill.replayed_to(at).unwrap();
        let (none, at) = spill.next(100).unwrap();
        assert!(none.is_empty());
        spill.replayed_to(at).unwrap();
        assert!(spill.is_empty());
    }
}
