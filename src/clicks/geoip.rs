//! Countries from a MaxMind-format database (`--geoip FILE`, e.g. GeoLite2-Country.mmdb),
//! read once into memory and looked up at the edge, so the client's address never leaves the
//! request.

use std::net::IpAddr;
use std::path::Path;

use anyhow::Context;
use maxminddb::{Reader, geoip2};

/// An open country database.
pub struct GeoIp(Reader<Vec<u8>>);

impl GeoIp {
    /// Opens the database at `path`.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let reader = Reader::open_readfile(path)
            .with_context(|| format!("opening the GeoIP database {}", path.display()))?;
        Ok(Self(reader))
    }

    /// The ISO 3166 country code of `ip`, if the database knows it.
    pub fn country(&self, ip: IpAddr) -> Option<String> {
        let found = self.0.lookup(ip).ok()?;
        let record: geoip2::Country<'_> = found.decode().ok()??;
        record.country.iso_code.map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_database_resolves_its_ranges() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/geoip-test.mmdb");
        let geo = GeoIp::open(&path).unwrap();
        let at = |s: &str| geo.country(s.parse().unwrap());
        assert_eq!(at("198.51.100.7").as_deref(), Some("DE"));
        assert_eq!(at("198.51.100.200").as_deref(), Some("FR"));
        assert_eq!(at("203.0.113.9").as_deref(), Some("JP"));
        assert_eq!(at("192.0.2.1"), None);
        assert_eq!(at("::1"), None);
        assert!(GeoIp::open(Path::new("/nonexistent.mmdb")).is_err());
    }
}
