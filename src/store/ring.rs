//! The consistent-hash ring that places links on shards by their code.
//!
//! Each shard owns `vnodes` points on a 64-bit ring; a code belongs to the first point at or
//! after its hash (wrapping around). Points and codes are hashed with XXH3-64 of their bytes:
//! specified and identical across processes, builds, versions and machines (unlike std's
//! `DefaultHasher`). Adding a shard moves only the codes that now fall to its points, about
//! 1/N of them; removing one moves only that shard's codes.

use xxhash_rust::xxh3::xxh3_64;

/// A shard as the ring sees it: a stable name and how many points it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingMember {
    /// Stable identity; renaming a shard moves its codes.
    pub name: String,
    /// Virtual nodes: proportional to the share of codes the shard receives.
    pub vnodes: u32,
}

/// A built ring: points sorted by hash, each naming a member by index.
#[derive(Debug, Clone)]
pub struct Ring {
    points: Vec<(u64, usize)>,
    members: Vec<RingMember>,
}

impl Ring {
    /// Builds the ring of `members` (in order; indexes refer to this order).
    pub fn new(members: Vec<RingMember>) -> Self {
        let mut points: Vec<(u64, usize)> = members
            .iter()
            .enumerate()
            .flat_map(|(i, m)| {
                (0..m.vnodes).map(move |v| (xxh3_64(format!("{}#{v}", m.name).as_bytes()), i))
            })
            .collect();
        // Ties (astronomically rare) are broken by member index, so every process agrees.
        points.sort_unstable();
        points.dedup_by_key(|p| p.0);
        Self { points, members }
    }

    /// The members.
    pub fn members(&self) -> &[RingMember] {
        &self.members
    }

    /// The index of the member that owns `key`.
    pub fn owner(&self, key: &[u8]) -> usize {
        if self.points.is_empty() {
            return 0;
        }
        let h = xxh3_64(key);
        let i = self.points.partition_point(|p| p.0 < h);
        self.points[if i == self.points.len() { 0 } else { i }].1
    }

    /// The name of the member that owns `key`.
    pub fn owner_name(&self, key: &[u8]) -> &str {
        &self.members[self.owner(key)].name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(names: &[&str]) -> Ring {
        Ring::new(
            names
                .iter()
                .map(|n| RingMember {
                    name: (*n).to_owned(),
                    vnodes: 200,
                })
                .collect(),
        )
    }

    /// `n` codes of seven letters and digits, the same every run: the spread over shards
    /// follows from the ring's fixed points, and random codes would make a share near a
    /// bound pass or fail by chance.
    fn codes(n: usize) -> Vec<String> {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..n)
            .map(|_| {
                (0..7)
                    .map(|_| {
                        x = x
                            .wrapping_mul(6_364_136_223_846_793_005)
                            .wrapping_add(1_442_695_040_888_963_407);
                        ALPHABET[(x >> 33) as usize % ALPHABET.len()] as char
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_key_on_a_point_belongs_to_that_points_member() {
        // "at or after its hash": a key whose hash is a point's own belongs to that point's
        // member, not to the next point's.
        let r = ring(&["shard-a", "shard-b", "shard-c"]);
        for v in 0..200 {
            assert_eq!(r.owner_name(format!("shard-b#{v}").as_bytes()), "shard-b");
        }
    }

    #[test]
    fn members_are_kept_in_order() {
        let r = ring(&["x", "y"]);
        let names: Vec<&str> = r.members().iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["x", "y"]);
        assert!(r.members().iter().all(|m| m.vnodes == 200));
    }

    #[test]
    fn placement_is_stable_and_known() {
        // Fixed expectations: a change of hash or layout would move every stored link.
        let r = ring(&["a", "b", "c"]);
        let owners: Vec<&str> = ["abc", "hello", "zzzzzzz", "0", "Q7xP2kd"]
            .iter()
            .map(|k| r.owner_name(k.as_bytes()))
            .collect();
        let again = ring(&["a", "b", "c"]);
        let owners_again: Vec<&str> = ["abc", "hello", "zzzzzzz", "0", "Q7xP2kd"]
            .iter()
            .map(|k| again.owner_name(k.as_bytes()))
            .collect();
        assert_eq!(owners, owners_again);
        assert_eq!(xxh3_64(b"hello"), 0x9555_e855_5c62_dcfd);
    }

    #[test]
    fn codes_spread_within_ten_percent_over_three_shards() {
        let r = ring(&["shard-a", "shard-b", "shard-c"]);
        let mut counts = [0usize; 3];
        for c in codes(100_000) {
            counts[r.owner(c.as_bytes())] += 1;
        }
        let mean = 100_000.0 / 3.0;
        for n in counts {
            let off = (n as f64 - mean).abs() / mean;
            assert!(off <= 0.10, "{counts:?} is more than 10% off the mean");
        }
    }

    #[test]
    fn adding_a_fourth_shard_moves_a_quarter_of_the_codes_only_to_it() {
        let before = ring(&["shard-a", "shard-b", "shard-c"]);
        let after = ring(&["shard-a", "shard-b", "shard-c", "shard-d"]);
        let all = codes(100_000);
        let mut moved = 0;
        for c in &all {
            let (from, to) = (
                before.owner_name(c.as_bytes()),
                after.owner_name(c.as_bytes()),
            );
            if from != to {
                moved += 1;
                assert_eq!(to, "shard-d", "a code moved between old shards");
            }
        }
        let share = moved as f64 / all.len() as f64;
        assert!((0.20..=0.30).contains(&share), "{share} of the codes moved");
    }

    #[test]
    fn removing_a_shard_moves_only_its_codes() {
        let before = ring(&["shard-a", "shard-b", "shard-c"]);
        let after = ring(&["shard-a", "shard-c"]);
        for c in codes(50_000) {
            let (from, to) = (
                before.owner_name(c.as_bytes()),
                after.owner_name(c.as_bytes()),
            );
            if from != "shard-b" {
                assert_eq!(from, to, "{c} moved though its shard stayed");
            }
        }
    }

    #[test]
    fn weights_shift_the_share() {
        let r = Ring::new(vec![
            RingMember {
                name: "big".into(),
                vnodes: 400,
            },
            RingMember {
                name: "small".into(),
                vnodes: 200,
            },
        ]);
        let big = codes(60_000)
            .iter()
            .filter(|c| r.owner(c.as_bytes()) == 0)
            .count();
        let share = big as f64 / 60_000.0;
        assert!((0.60..=0.73).contains(&share), "{share}");
    }
}
