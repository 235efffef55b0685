//! The in-process cache of what `GET /api/resolve` serves: for a subject (a prompt by name or
//! id, or the prompts linked to an agent's capability) and a selector (a label or a version
//! number), the candidate prompts with their label target and the versions it may serve — each
//! version's outgoing content already filtered (`compliance.redact`). A hit reads no database at
//! all. Access is never cached: the vault decides it on every request from the cached prompt.
//!
//! Invalidation has one entry point, [`ServeCache::invalidate`], taking a [`CacheEvent`]; the
//! vault calls it after every write that can change what resolve returns. `Prompt(id)` drops
//! exactly the entries holding that prompt; `Capability(c)` drops the entries of that capability
//! (every agent), as a link change can reorder them. A shared cache (e.g. Redis with pub/sub)
//! plugs in as an [`InvalidationSink`]: it receives every local event to publish, and events
//! from other servers come back through [`ServeCache::apply`].
//!
//! Invalidation is O(1): each prompt and each capability has a generation, an entry remembers
//! the generations of what it holds when it is cached, and `Prompt(id)` / `Capability(c)` only
//! bump a generation; an entry whose generations moved is a miss (and is dropped). (Predicate
//! invalidation over the whole cache cost every write far more than the entries it dropped.)
//!
//! A read that raced a write never leaves a stale entry: every invalidation bumps an epoch
//! before anything else, and a filler re-checks the epoch after inserting (and drops its own
//! entry when it moved).
//!
//! Trust: with other servers writing to the same database, this cache is only as fresh as the
//! invalidations that reach it. While they cannot reach it (the shared cache's subscription is
//! down, or not up yet), the cache is *untrusted* ([`ServeCache::set_trusted`]): `get` answers
//! nothing and every resolve reads through to the database. Whoever re-establishes the flow of
//! invalidations applies [`CacheEvent::All`] first and only then trusts the cache again, so
//! nothing cached before or during the gap is served afterwards (an insert racing that `All`
//! is dropped by the epoch check). A cache without a shared cache is always trusted.

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use moka::sync::Cache;
use promptvault_api::{
    preserialized::Preserialized,
    prompts::{ResolvedPrompt, VersionResponse},
};
use promptvault_core::{
    deploy::LabelTarget,
    model::{Prompt, PromptVersion},
};
use uuid::Uuid;

/// What a cache entry is keyed by: the subject as addressed and the selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServeKey {
    /// A prompt by id.
    Id { id: Uuid, selector: Selector },
    /// A prompt by name.
    Name { name: String, selector: Selector },
    /// The prompts linked to a capability (for an agent, or global links only).
    Capability {
        agent: Option<String>,
        capability: String,
        selector: Selector,
    },
}

/// A label or a version number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selector {
    Label(String),
    Number(i64),
}

/// A change that may alter what resolve returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheEvent {
    /// Anything about this prompt: metadata, access, classification, type, versions, statuses,
    /// labels, deletion.
    Prompt(Uuid),
    /// A link of this capability was added, changed or removed.
    Capability(String),
    /// Everything (e.g. an import touching many prompts, key rotation).
    All,
}

/// Where a shared cache learns of local invalidations (to publish them to other servers).
pub trait InvalidationSink: Send + Sync {
    fn publish(&self, event: &CacheEvent);
}

/// One version ready to serve.
#[derive(Debug)]
pub struct ServedVersion {
    pub version: PromptVersion,
    /// The wire form, content already redacted when the classification asks for it, serialized
    /// once.
    pub response: Preserialized<VersionResponse>,
    /// How many matches the redaction replaced.
    pub redactions: u64,
}

/// One prompt a resolve may serve.
#[derive(Debug)]
pub struct ServedCandidate {
    pub prompt: Prompt,
    /// The prompt's part of a resolve answer, serialized once.
    pub resolved: Preserialized<ResolvedPrompt>,
    pub target: Option<LabelTarget>,
    pub versions: Vec<ServedVersion>,
}

impl ServedCandidate {
    pub fn version(&self, number: i64) -> Option<&ServedVersion> {
        self.versions
            .iter()
            .find(|served| served.version.version_number == number)
    }
}

/// The candidates of one key, in resolution order.
#[derive(Debug)]
pub struct Served {
    pub candidates: Vec<ServedCandidate>,
}

/// A cached answer with the generations of what it depends on.
struct Stamped {
    served: Arc<Served>,
    prompts: Vec<(Uuid, u64)>,
    capability: Option<(String, u64)>,
}

/// The resolve cache (see the module documentation).
pub struct ServeCache {
    entries: Cache<ServeKey, Arc<Stamped>>,
    epoch: AtomicU64,
    prompt_generations: RwLock<HashMap<Uuid, u64>>,
    capability_generations: RwLock<HashMap<String, u64>>,
    sinks: Vec<Arc<dyn InvalidationSink>>,
    /// Whether hits may be served (see the module documentation).
    trusted: AtomicBool,
}

fn generation<K: std::hash::Hash + Eq>(map: &RwLock<HashMap<K, u64>>, key: &K) -> u64 {
    match map.read() {
        Ok(map) => map.get(key).copied().unwrap_or(0),
        Err(poisoned) => poisoned.into_inner().get(key).copied().unwrap_or(0),
    }
}

fn bump<K: std::hash::Hash + Eq>(map: &RwLock<HashMap<K, u64>>, key: K) {
    let mut map = match map.write() {
        Ok(map) => map,
        Err(poisoned) => poisoned.into_inner(),
    };
    *map.entry(key).or_default() += 1;
}

impl ServeCache {
    /// A cache of at most `capacity` entries (0 disables caching).
    pub fn new(capacity: u64) -> Self {
        ServeCache {
            entries: Cache::builder().max_capacity(capacity).build(),
            epoch: AtomicU64::new(0),
            prompt_generations: RwLock::default(),
            capability_generations: RwLock::default(),
            sinks: Vec::new(),
            trusted: AtomicBool::new(true),
        }
    }

    /// Whether hits are served. False while invalidations from other servers cannot reach this
    /// process: every lookup is then a miss (and reads through to the database). Set it back to
    /// true only after applying [`CacheEvent::All`].
    pub fn set_trusted(&self, trusted: bool) {
        self.trusted.store(trusted, Ordering::SeqCst);
    }

    pub fn is_trusted(&self) -> bool {
        self.trusted.load(Ordering::SeqCst)
    }

    /// Forwards every local invalidation to `sink` too.
    pub fn with_sink(mut self, sink: Arc<dyn InvalidationSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// The cached answer for `key`, counted as a hit or a miss of cache `resolve` in `/metrics`.
    pub fn get(&self, key: &ServeKey) -> Option<Arc<Served>> {
        if !self.is_trusted() {
            crate::metrics::cache_miss("resolve");
            return None;
        }
        let found = self.entries.get(key).and_then(|stamped| {
            if self.is_current(&stamped) {
                Some(stamped.served.clone())
            } else {
                self.entries.invalidate(key);
                None
            }
        });
        if found.is_some() {
            crate::metrics::cache_hit("resolve");
        } else {
            crate::metrics::cache_miss("resolve");
        }
        found
    }

    fn is_current(&self, stamped: &Stamped) -> bool {
        stamped
            .prompts
            .iter()
            .all(|(id, stamp)| generation(&self.prompt_generations, id) == *stamp)
            && stamped
                .capability
                .as_ref()
                .is_none_or(|(capability, stamp)| {
                    generation(&self.capability_generations, capability) == *stamp
                })
    }

    /// The epoch to pass to [`ServeCache::insert`], read before loading from the database.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Caches what was loaded since `epoch`, unless an invalidation happened meanwhile.
    pub fn insert(&self, key: ServeKey, served: Arc<Served>, epoch: u64) {
        if self.epoch() != epoch {
            return;
        }
        let prompts = served
            .candidates
            .iter()
            .map(|candidate| {
                let id = candidate.prompt.id;
                (id, generation(&self.prompt_generations, &id))
            })
            .collect();
        let capability = match &key {
            ServeKey::Capability { capability, .. } => Some((
                capability.clone(),
                generation(&self.capability_generations, capability),
            )),
            _ => None,
        };
        let stamped = Arc::new(Stamped {
            served,
            prompts,
            capability,
        });
        self.entries.insert(key.clone(), stamped);
        if self.epoch() != epoch {
            self.entries.invalidate(&key);
        }
    }

    /// A write changed something resolve may return: tell the sinks, then drop the affected
    /// entries here. (Sinks first: a shared cache marks its own invalidation in flight before
    /// a lookup that misses here can ask it, so this server never refills itself from a shared
    /// entry its own write just made stale.)
    pub fn invalidate(&self, event: CacheEvent) {
        for sink in &self.sinks {
            sink.publish(&event);
        }
        self.apply(&event);
    }

    /// Drops the entries `event` affects, in this process only (for events from elsewhere).
    pub fn apply(&self, event: &CacheEvent) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        match event {
            CacheEvent::All => self.entries.invalidate_all(),
            CacheEvent::Prompt(id) => bump(&self.prompt_generations, *id),
            CacheEvent::Capability(changed) => bump(&self.capability_generations, changed.clone()),
        }
    }

    /// How many entries are cached (approximate; for tests and metrics).
    pub fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ServeKey {
        ServeKey::Name {
            name: "p".into(),
            selector: Selector::Label("production".into()),
        }
    }

    #[test]
    fn an_untrusted_cache_serves_nothing_until_it_is_trusted_again() {
        let cache = ServeCache::new(100);
        let served = Arc::new(Served {
            candidates: Vec::new(),
        });
        cache.insert(key(), served.clone(), cache.epoch());
        assert!(cache.get(&key()).is_some());
        cache.set_trusted(false);
        assert!(
            cache.get(&key()).is_none(),
            "untrusted: every lookup misses"
        );
        // Whoever trusts it again resets it first.
        cache.apply(&CacheEvent::All);
        cache.set_trusted(true);
        assert!(cache.get(&key()).is_none(), "nothing from before the gap");
        cache.insert(key(), served, cache.epoch());
        assert!(cache.get(&key()).is_some());
    }

    struct Recorder(std::sync::Mutex<Vec<CacheEvent>>);

    impl InvalidationSink for Recorder {
        fn publish(&self, event: &CacheEvent) {
            if let Ok(mut events) = self.0.lock() {
                events.push(event.clone());
            }
        }
    }

    #[test]
    fn a_local_invalidation_reaches_the_sinks_and_a_remote_one_does_not() {
        let sink = Arc::new(Recorder(std::sync::Mutex::default()));
        let cache = ServeCache::new(100).with_sink(sink.clone());
        let id = Uuid::from_u128(7);
        cache.invalidate(CacheEvent::Prompt(id));
        cache.apply(&CacheEvent::All);
        let published = sink
            .0
            .lock()
            .map(|events| events.clone())
            .unwrap_or_default();
        assert_eq!(published, [CacheEvent::Prompt(id)]);
    }
}
