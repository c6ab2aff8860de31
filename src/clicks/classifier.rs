//! Sorting clicks by who made them: a user agent's browser, OS and device, and whether it is
//! a bot, remembered for the agents seen again and again.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use crate::domain::visit::{Visit, classify};

/// Classifies user agents, remembering the answers: the same agents come again and again,
/// and parsing them is most of the worker's work. Each agent gets a small number, and so
/// does each profile (a browser, OS and device seen together: many agents, few profiles);
/// both stay valid until [`Classifier::trim`]. Each agent also gets a 64-bit key that stays
/// the same for as long as the classifier lives.
#[derive(Debug, Default)]
pub struct Classifier {
    ids: HashMap<Arc<str>, u32, foldhash::fast::RandomState>,
    agents: Vec<Agent>,
    profiles: Vec<Visit>,
    profile_ids: HashMap<Visit, u32, foldhash::fast::RandomState>,
    keys: foldhash::fast::RandomState,
}

/// A remembered agent.
#[derive(Debug)]
struct Agent {
    visit: Visit,
    profile: u32,
    text: Arc<str>,
    key: u64,
}

impl Classifier {
    /// Most agents remembered across batches.
    const CAPACITY: usize = 10_000;
    /// Most agents remembered within one batch.
    pub(super) const MAX: usize = 50_000;

    /// Agents remembered.
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// The classification of a request with `user_agent`, made with `HEAD` if `head`.
    pub fn classify(&mut self, user_agent: Option<&str>, head: bool) -> Visit {
        let id = self.id(user_agent);
        let base = self.visit(id).clone();
        if head {
            Visit {
                bot: true,
                device: "bot".into(),
                ..base
            }
        } else {
            base
        }
    }

    /// The number of `user_agent`'s classification (for a `GET`).
    pub fn id(&mut self, user_agent: Option<&str>) -> u32 {
        let text = user_agent.unwrap_or("");
        if let Some(id) = self.ids.get(text) {
            return *id;
        }
        let id = self.agents.len() as u32;
        let text: Arc<str> = text.into();
        let visit = classify(user_agent, false);
        let next = self.profiles.len() as u32;
        let profile = *self.profile_ids.entry(visit.clone()).or_insert(next);
        if profile == next {
            self.profiles.push(visit.clone());
        }
        self.agents.push(Agent {
            visit,
            profile,
            key: self.keys.hash_one(&*text),
            text: text.clone(),
        });
        self.ids.insert(text, id);
        id
    }

    /// The classification numbered `id`.
    pub fn visit(&self, id: u32) -> &Visit {
        &self.agents[id as usize].visit
    }

    /// The number of the profile of the agent numbered `id`.
    pub fn profile(&self, id: u32) -> u32 {
        self.agents[id as usize].profile
    }

    /// The profile numbered `profile`: what every agent of it was classified as.
    pub fn profile_visit(&self, profile: u32) -> &Visit {
        &self.profiles[profile as usize]
    }

    /// The user agent numbered `id` (empty for none).
    pub fn text(&self, id: u32) -> &str {
        &self.agents[id as usize].text
    }

    /// The key of the agent numbered `id`: a hash of its text, the same whatever number the
    /// agent has.
    pub fn key(&self, id: u32) -> u64 {
        self.agents[id as usize].key
    }

    /// Forgets every agent if more than `CAPACITY` are remembered; numbers given before are
    /// then void, so call it only when nothing holds one.
    pub fn trim(&mut self) {
        if self.agents.len() > Self::CAPACITY {
            self.ids.clear();
            self.agents.clear();
            self.profiles.clear();
            self.profile_ids.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_classifications_equal_fresh_ones() {
        let mut c = Classifier::default();
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
            (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
        for ua in [Some(chrome), Some("Twitterbot/1.0"), None] {
            for head in [false, true, false, true] {
                assert_eq!(
                    c.classify(ua, head),
                    classify(ua, head),
                    "{ua:?} head={head}"
                );
            }
        }
        assert_eq!(c.len(), 3);
    }
}
