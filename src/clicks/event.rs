//! One click as it travels: the event the redirect edge records ([`ClickEvent`]), the same
//! click as another node sends it through NATS ([`Click`]), and the ids of events and
//! batches.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Classifier, ClickSlotValue, visitor_id};
use crate::cache::CachedTarget;
use crate::domain::code::Code;
use crate::store::ClickFact;

/// One redirect served, as the edge saw it; its strings are borrowed (the queue copies them
/// into a buffer of its own, see [`super::queue`]). The client's address stays in memory, in this
/// process: it is never stored or sent, only the salted visitor hash made of it (by the
/// worker, once per new visitor, or by the forwarder before an event leaves the node).
#[derive(Debug, Clone, Copy)]
pub struct ClickEvent<'a> {
    /// The link that was followed, as the cache holds it (the worker keeps its batch number
    /// of the link on it; see [`CachedTarget::click_slot`]).
    pub link: &'a Arc<CachedTarget>,
    /// The link's [`CachedTarget::click_slot`] as the edge read it (the line was in its
    /// cache; the worker's would not be), so that the worker need not touch the link.
    pub slot: ClickSlotValue,
    /// When.
    pub at: DateTime<Utc>,
    /// A `HEAD` request (counted as a bot).
    pub head: bool,
    /// The client's address (after trusted proxies).
    pub ip: IpAddr,
    /// The `User-Agent` header (first 512 bytes).
    pub user_agent: Option<&'a str>,
    /// The referring host.
    pub referrer: Option<&'a str>,
    /// ISO country code, when a GeoIP database is configured.
    pub country: Option<&'a str>,
}

impl ClickEvent<'_> {
    /// Classifies the event into what the store counts, its visitor id made with `salt`.
    pub fn fact(&self, classifier: &mut Classifier, salt: &str) -> ClickFact {
        // Cached codes came from the store.
        let code = Code::from_trusted(self.link.code().to_owned());
        let visitor = visitor_id(salt, self.ip, self.user_agent.unwrap_or(""));
        Click {
            event_id: None,
            code,
            at: self.at,
            head: self.head,
            user_agent: self.user_agent,
            referrer: self.referrer.map(str::to_owned),
            visitor: Some(visitor.to_string()),
            country: self.country.map(str::to_owned),
        }
        .fact(classifier)
    }
}

/// A click named by its code, as it comes from another node (through NATS), ready to be
/// classified into a [`ClickFact`].
#[derive(Debug)]
pub struct Click<'a> {
    /// Unique id of an event that may be delivered more than once (through NATS).
    pub event_id: Option<String>,
    /// The link.
    pub code: Code,
    /// When.
    pub at: DateTime<Utc>,
    /// A `HEAD` request.
    pub head: bool,
    /// The `User-Agent` header.
    pub user_agent: Option<&'a str>,
    /// The referring host.
    pub referrer: Option<String>,
    /// The visitor id, in hex.
    pub visitor: Option<String>,
    /// ISO country code.
    pub country: Option<String>,
}

impl Click<'_> {
    /// Classifies the click into what the store counts.
    pub fn fact(self, classifier: &mut Classifier) -> ClickFact {
        let v = classifier.classify(self.user_agent, self.head);
        let dims = if v.bot {
            Vec::new()
        } else {
            vec![
                ("referrer", self.referrer.unwrap_or_else(|| "direct".into())),
                ("browser", v.browser),
                ("os", v.os),
                ("device", v.device),
                ("country", self.country.unwrap_or_else(|| "unknown".into())),
            ]
        };
        ClickFact {
            event_id: self.event_id,
            code: self.code,
            at: self.at,
            bot: v.bot,
            visitor: if v.bot { None } else { self.visitor },
            dims,
        }
    }
}

/// A new event or batch id: a UUIDv7, so ids sort by time.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
