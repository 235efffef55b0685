//! The shared serve cache: Redis behind the in-process [`ServeCache`], for several servers on one
//! database (`redis_url`; key prefix, TTL and timeout in `[serving]`).
//!
//! Two jobs:
//!
//! - **Invalidation between servers (pub/sub).** Every local [`CacheEvent`] (the vault's
//!   `changed`, after the write committed) is published on `<prefix>:invalidate` as
//!   `{"from":"<server id>","event":{"prompt":"<uuid>"}}` (or `{"capability":"<c>"}`, or
//!   `"all"`). Each server subscribes and applies other servers' events with
//!   [`ServeCache::apply`] (its own, recognised by the per-process id, are skipped; applying one
//!   twice would be harmless). A message that does not parse is applied as `All`.
//! - **A second cache level (L2).** On a local miss, resolve asks Redis before the database
//!   ([`RedisCache::lookup`]); on a Redis miss it loads from the store and writes the entry to
//!   Redis with a TTL ([`RedisCache::fill`], in the background).
//!
//! # Why an L2 entry is never stale after a committed write
//!
//! Redis keeps generations like the local cache does: `<prefix>:gen:prompt:<id>`,
//! `<prefix>:gen:cap:<capability>`, `<prefix>:gen:all`, and `<prefix>:gen:writes`, which moves
//! with every one of them. Publishing an event is one `MULTI`: `INCR` the event's generation,
//! `INCR gen:writes`, `PUBLISH` — so it happens after the write's commit, and every generation
//! move is also a move of `gen:writes`. An entry carries a *stamp*: the generations of its
//! prompts (and capability, and `all`) **as they were before its rows were read**. It is served
//! only if the stamp still equals the current generations (one `MGET`; absent keys are 0).
//!
//! The race "server B reads old rows, server A commits and invalidates, B writes the old entry"
//! cannot leave a usable stale entry: A's `INCR` comes after A's commit, which comes after B's
//! read of the old rows, which comes after B read the stamp — so the stamp holds the old
//! generation and the entry is dead once A's `INCR` lands. Generations read *after* the rows
//! could already include A's `INCR`, which is why a stamp is always from before:
//!
//! - when the lookup found an entry of this key that was stale, its prompts' (and capability's)
//!   generations were just read, before the load: if the loaded prompts are among them, they
//!   are the stamp;
//! - otherwise (a cold miss, e.g. a name not cached yet: its prompt ids are unknown before the
//!   load) the lookup read `gen:writes` before the load; after the load, one `MGET` reads it
//!   again with the loaded prompts' generations. If `gen:writes` did not move, no generation
//!   moved in between, so those are the generations of before the load. If it moved, the entry
//!   is not written (a cheap loss: the next miss tries again).
//!
//! What remains is the propagation window every invalidation has: between A's commit and A's
//! `INCR`/`PUBLISH` (sub-millisecond when Redis is up), other servers may still serve the old
//! answer. On the writing server itself the window is closed: while one of its own events is
//! not yet acknowledged by Redis, it skips the L2 (its local cache already dropped the entry).
//!
//! # What never goes to Redis
//!
//! Only answers whose candidates are all `public` or `internal` are written to Redis. An answer
//! holding a `confidential` or `restricted` prompt (their content is sealed at rest, see
//! `Classification::is_sealed_at_rest`) stays in the local cache only, so Redis never holds
//! such content in clear. Entries hold the stored form (prompt, label target, versions) as
//! JSON; each server derives the outgoing (redacted) form with its own settings on a hit.
//!
//! # When Redis is down
//!
//! A request never fails because of Redis: every call on the request path has a short timeout
//! (`redis_timeout_ms`, default 100 ms), an error or timeout is a miss (counted in
//! `promptvault_redis_errors_total`) and pauses lookups for a second, so a Redis that stops
//! answering costs one timeout per second, not one per request. A supervisor task holds the subscription and reconnects
//! with backoff (50 ms doubling to 2 s); commands go through two `ConnectionManager`s (one for
//! lookups on the request path, one for publishing and filling, so a slow background call
//! never holds up a lookup), which reconnect by themselves. While the subscription is down, invalidations from other servers cannot reach
//! this one, so the local cache is untrusted ([`ServeCache::set_trusted`]) and the L2 is not
//! asked: every resolve reads through to the database. When the subscription is back the
//! supervisor bumps `gen:all` (entries written before the gap could have missed a writer's
//! `INCR`: a writer that died during the outage, or Redis restored from a snapshot), applies
//! `All` locally and only then trusts the local cache again. A writer whose publish failed
//! keeps retrying with backoff and, once Redis answers, publishes `All` in place of everything
//! it could not publish. The outage is logged once at warn and the recovery once at info.
//!
//! A process about to exit (the CLI's local mode) waits for its events to reach Redis with
//! [`RedisCache::flush`].
//!
//! Generation keys have no TTL (one small key per prompt or capability ever written); entries
//! expire after `redis_ttl_secs`.

use std::{
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::StreamExt;
use promptvault_core::{
    deploy::LabelTarget,
    model::{Prompt, PromptVersion},
};
use promptvault_store::types::ServeCandidate;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::serve_cache::{CacheEvent, InvalidationSink, Selector, ServeCache, ServeKey, Served};

/// Backoff of the subscription's reconnects and of a failed publish's retries.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How long connecting (and subscribing) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long lookups are skipped after one failed.
const LOOKUP_PAUSE: Duration = Duration::from_secs(1);
/// Background calls (publish, fill) may take this many request timeouts.
const BACKGROUND_FACTOR: u32 = 5;
/// The version of the entry format, part of every entry key (a format change is a fresh key
/// space, never a misread entry).
const FORMAT: &str = "v1";

/// What the shared cache needs from the settings.
#[derive(Debug, Clone)]
pub struct RedisCacheConfig {
    pub url: String,
    pub prefix: String,
    pub ttl: Duration,
    pub timeout: Duration,
}

impl RedisCacheConfig {
    /// The configuration, when `redis_url` is set.
    pub fn from_settings(settings: &crate::settings::Settings) -> Option<Self> {
        let url = settings.redis_url.as_ref()?;
        Some(RedisCacheConfig {
            url: url.clone(),
            prefix: settings.serving.redis_prefix.clone(),
            ttl: Duration::from_secs(settings.serving.redis_ttl_secs),
            timeout: Duration::from_millis(settings.serving.redis_timeout_ms),
        })
    }
}

/// Counters of one shared cache (for tests; `/metrics` has the process-wide ones).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedisCacheStats {
    /// Lookups answered from Redis.
    pub hits: u64,
    /// Lookups Redis could not answer (then read from the database).
    pub misses: u64,
    /// Entries written to Redis.
    pub fills: u64,
    /// Failed or timed-out Redis calls.
    pub errors: u64,
}

/// The answer of [`RedisCache::lookup`].
pub enum Lookup {
    /// Redis was not asked (not connected, an own invalidation in flight) or did not answer.
    Skipped,
    /// A current entry.
    Hit(Vec<ServeCandidate>),
    /// No current entry: load from the store and give the ticket to [`RedisCache::fill`].
    Miss(Ticket),
}

/// What a lookup read before the database load, to stamp the entry written after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    entry_key: String,
    capability: Option<String>,
    /// `gen:all` and `gen:writes` before the load.
    all: u64,
    writes: u64,
    /// Generations read before the load (from a stale entry of this key).
    known_prompts: Vec<(Uuid, u64)>,
    known_capability: Option<u64>,
}

impl Ticket {
    /// The stamp from generations read before the load, if they cover `prompts`.
    fn known_stamp(&self, prompts: &[Uuid]) -> Option<Stamp> {
        let prompts = prompts
            .iter()
            .map(|id| {
                self.known_prompts
                    .iter()
                    .find(|(known, _)| known == id)
                    .copied()
            })
            .collect::<Option<Vec<_>>>()?;
        let capability = match &self.capability {
            None => None,
            Some(capability) => Some((capability.clone(), self.known_capability?)),
        };
        Some(Stamp {
            all: self.all,
            prompts,
            capability,
        })
    }

    /// The stamp from generations read after the load (`current`: the prompts' then the
    /// capability's), valid only if `gen:writes` is still what it was before the load.
    fn stamp_if_unchanged(
        &self,
        writes_now: u64,
        prompts: &[Uuid],
        current: &[u64],
    ) -> Option<Stamp> {
        if writes_now != self.writes
            || current.len() != prompts.len() + usize::from(self.capability.is_some())
        {
            return None;
        }
        Some(Stamp {
            all: self.all,
            prompts: prompts
                .iter()
                .copied()
                .zip(current.iter().copied())
                .collect(),
            capability: self
                .capability
                .clone()
                .map(|capability| (capability, current[prompts.len()])),
        })
    }
}

/// The generations an entry was read under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stamp {
    all: u64,
    prompts: Vec<(Uuid, u64)>,
    capability: Option<(String, u64)>,
}

impl Stamp {
    /// Whether the entry is current, given `gen:all` now and the current generations of the
    /// stamp's prompts then capability (in [`Names::generation_keys`] order; absent = 0).
    fn is_current(&self, all: u64, current: &[u64]) -> bool {
        self.all == all
            && current.len() == self.prompts.len() + usize::from(self.capability.is_some())
            && self
                .prompts
                .iter()
                .map(|(_, generation)| *generation)
                .chain(self.capability.iter().map(|(_, generation)| *generation))
                .eq(current.iter().copied())
    }
}

/// An invalidation as published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Message {
    from: Uuid,
    event: WireEvent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum WireEvent {
    Prompt(Uuid),
    Capability(String),
    All,
}

impl From<&CacheEvent> for WireEvent {
    fn from(event: &CacheEvent) -> Self {
        match event {
            CacheEvent::Prompt(id) => WireEvent::Prompt(*id),
            CacheEvent::Capability(capability) => WireEvent::Capability(capability.clone()),
            CacheEvent::All => WireEvent::All,
        }
    }
}

impl From<WireEvent> for CacheEvent {
    fn from(event: WireEvent) -> Self {
        match event {
            WireEvent::Prompt(id) => CacheEvent::Prompt(id),
            WireEvent::Capability(capability) => CacheEvent::Capability(capability),
            WireEvent::All => CacheEvent::All,
        }
    }
}

fn encode_message(from: Uuid, event: &CacheEvent) -> String {
    let message = Message {
        from,
        event: event.into(),
    };
    // A struct of a UUID and an enum of a UUID or a string always serializes.
    serde_json::to_string(&message)
        .unwrap_or_else(|_| format!(r#"{{"from":"{from}","event":"all"}}"#))
}

/// The sender and event of a message; anything unreadable is `All` from nobody (applied).
fn decode_message(payload: &[u8]) -> (Option<Uuid>, CacheEvent) {
    match serde_json::from_slice::<Message>(payload) {
        Ok(message) => (Some(message.from), message.event.into()),
        Err(_) => (None, CacheEvent::All),
    }
}

/// An entry as written: the stamp's JSON, a newline, the candidates' JSON (so a stale entry is
/// recognised without decoding its candidates).
#[derive(Serialize)]
struct CandidateRef<'a> {
    prompt: &'a Prompt,
    target: Option<&'a LabelTarget>,
    versions: Vec<&'a PromptVersion>,
}

#[derive(Deserialize)]
struct CandidateOwned {
    prompt: Prompt,
    target: Option<LabelTarget>,
    versions: Vec<PromptVersion>,
}

fn encode_entry(stamp: &Stamp, served: &Served) -> Result<Vec<u8>, serde_json::Error> {
    let candidates: Vec<CandidateRef<'_>> = served
        .candidates
        .iter()
        .map(|candidate| CandidateRef {
            prompt: &candidate.prompt,
            target: candidate.target.as_ref(),
            versions: candidate
                .versions
                .iter()
                .map(|served| &served.version)
                .collect(),
        })
        .collect();
    let mut bytes = serde_json::to_vec(stamp)?;
    bytes.push(b'\n');
    serde_json::to_writer(&mut bytes, &candidates)?;
    Ok(bytes)
}

fn decode_stamp(entry: &[u8]) -> Option<(Stamp, &[u8])> {
    let newline = entry.iter().position(|byte| *byte == b'\n')?;
    let stamp = serde_json::from_slice(&entry[..newline]).ok()?;
    Some((stamp, &entry[newline + 1..]))
}

fn decode_candidates(body: &[u8]) -> Option<Vec<ServeCandidate>> {
    let candidates: Vec<CandidateOwned> = serde_json::from_slice(body).ok()?;
    Some(
        candidates
            .into_iter()
            .map(|candidate| ServeCandidate {
                prompt: candidate.prompt,
                target: candidate.target,
                versions: candidate.versions,
            })
            .collect(),
    )
}

/// Whether an answer may be written to Redis: no candidate's content is sealed at rest.
fn may_share(served: &Served) -> bool {
    served
        .candidates
        .iter()
        .all(|candidate| !candidate.prompt.classification.is_sealed_at_rest())
}

/// The Redis names under one prefix.
#[derive(Debug, Clone)]
struct Names {
    prefix: String,
}

impl Names {
    fn channel(&self) -> String {
        format!("{}:invalidate", self.prefix)
    }

    fn all(&self) -> String {
        format!("{}:gen:all", self.prefix)
    }

    fn writes(&self) -> String {
        format!("{}:gen:writes", self.prefix)
    }

    fn prompt(&self, id: Uuid) -> String {
        format!("{}:gen:prompt:{id}", self.prefix)
    }

    fn capability(&self, capability: &str) -> String {
        format!("{}:gen:cap:{capability}", self.prefix)
    }

    /// The generation keys of `prompts` then `capability`.
    fn generation_keys(&self, prompts: &[Uuid], capability: Option<&str>) -> Vec<String> {
        prompts
            .iter()
            .map(|id| self.prompt(*id))
            .chain(capability.map(|capability| self.capability(capability)))
            .collect()
    }

    /// The entry key of a resolve key: readable, unambiguous (JSON), versioned.
    fn entry(&self, key: &ServeKey) -> String {
        let selector = |selector: &Selector| match selector {
            Selector::Label(label) => serde_json::json!(["label", label]),
            Selector::Number(number) => serde_json::json!(["version", number]),
        };
        let parts = match key {
            ServeKey::Id { id, selector: s } => serde_json::json!(["id", id, selector(s)]),
            ServeKey::Name { name, selector: s } => serde_json::json!(["name", name, selector(s)]),
            ServeKey::Capability {
                agent,
                capability,
                selector: s,
            } => serde_json::json!(["capability", agent, capability, selector(s)]),
        };
        format!("{}:serve:{FORMAT}:{parts}", self.prefix)
    }
}

fn capability_of(key: &ServeKey) -> Option<String> {
    match key {
        ServeKey::Capability { capability, .. } => Some(capability.clone()),
        _ => None,
    }
}

/// A generation as stored (a decimal integer; absent or unreadable = 0).
fn generation(value: Option<&[u8]>) -> u64 {
    value
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .and_then(|text| text.parse().ok())
        .unwrap_or(0)
}

/// Two multiplexed connections, so that a slow publish or fill never holds up a lookup (Redis
/// answers one connection's commands in order).
struct Connections {
    /// Lookups, on the request path.
    requests: ConnectionManager,
    /// Publishing, filling, resetting.
    background: ConnectionManager,
}

/// Which connection a call uses.
#[derive(Clone, Copy)]
enum On {
    Requests,
    Background,
}

/// What the background tasks share with the handle.
struct Inner {
    id: Uuid,
    names: Names,
    ttl_secs: u64,
    timeout: Duration,
    client: redis::Client,
    /// Set by `start`.
    connections: OnceLock<Connections>,
    /// The subscription is up (and the local cache was reset after it came up).
    connected: AtomicBool,
    /// Own events queued or being published.
    in_flight: AtomicU64,
    /// A publish failed: `All` must be published once Redis answers.
    dirty: AtomicBool,
    /// Woken after every publish attempt (for [`RedisCache::flush`]).
    published: tokio::sync::Notify,
    /// After a failed lookup, lookups are skipped until this many milliseconds after `born`
    /// (a Redis that stopped answering costs one timeout per [`LOOKUP_PAUSE`], not per request).
    born: std::time::Instant,
    lookups_paused_until: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    fills: AtomicU64,
    errors: AtomicU64,
}

impl Inner {
    /// Whether the L2 may be asked now.
    fn usable(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
            && self.in_flight.load(Ordering::SeqCst) == 0
            && !self.dirty.load(Ordering::SeqCst)
            && self.millis() >= self.lookups_paused_until.load(Ordering::Relaxed)
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn error(&self, what: &str, error: &dyn std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        crate::metrics::redis_error();
        tracing::debug!(%error, "redis: {what} failed");
    }

    fn connection(&self, on: On) -> Option<ConnectionManager> {
        let connections = self.connections.get()?;
        Some(match on {
            On::Requests => connections.requests.clone(),
            On::Background => connections.background.clone(),
        })
    }

    /// Runs `command` on `on` within the timeout of `on`; an error or timeout is counted and is
    /// `None`.
    async fn call<T: redis::FromRedisValue>(
        &self,
        what: &str,
        command: &redis::Cmd,
        on: On,
    ) -> Option<T> {
        let mut connection = self.connection(on)?;
        let timeout = match on {
            On::Requests => self.timeout,
            On::Background => self.timeout * BACKGROUND_FACTOR,
        };
        let failure =
            match tokio::time::timeout(timeout, command.query_async::<T>(&mut connection)).await {
                Ok(Ok(value)) => return Some(value),
                Ok(Err(error)) => error.to_string(),
                Err(_) => "timed out".to_string(),
            };
        self.error(what, &failure);
        if let On::Requests = on {
            let until = self
                .millis()
                .saturating_add(LOOKUP_PAUSE.as_millis() as u64);
            self.lookups_paused_until.store(until, Ordering::Relaxed);
        }
        None
    }

    async fn lookup(&self, key: &ServeKey) -> Lookup {
        if !self.usable() {
            return Lookup::Skipped;
        }
        let entry_key = self.names.entry(key);
        let mut first = redis::cmd("MGET");
        first
            .arg(&entry_key)
            .arg(self.names.all())
            .arg(self.names.writes());
        let Some(values) = self
            .call::<Vec<Option<Vec<u8>>>>("lookup", &first, On::Requests)
            .await
        else {
            return Lookup::Skipped;
        };
        let [entry, all, writes] = <[Option<Vec<u8>>; 3]>::try_from(values).unwrap_or_default();
        let mut ticket = Ticket {
            entry_key,
            capability: capability_of(key),
            all: generation(all.as_deref()),
            writes: generation(writes.as_deref()),
            known_prompts: Vec::new(),
            known_capability: None,
        };
        if let Some((stamp, body)) = entry.as_deref().and_then(decode_stamp) {
            let ids: Vec<Uuid> = stamp.prompts.iter().map(|(id, _)| *id).collect();
            let keys = self
                .names
                .generation_keys(&ids, stamp.capability.as_ref().map(|(c, _)| c.as_str()));
            let current: Vec<u64> = if keys.is_empty() {
                Vec::new()
            } else {
                let mut second = redis::cmd("MGET");
                second.arg(&keys);
                let Some(values) = self
                    .call::<Vec<Option<Vec<u8>>>>("lookup", &second, On::Requests)
                    .await
                else {
                    return Lookup::Skipped;
                };
                values
                    .iter()
                    .map(|value| generation(value.as_deref()))
                    .collect()
            };
            if stamp.is_current(ticket.all, &current)
                && let Some(candidates) = decode_candidates(body)
            {
                self.hits.fetch_add(1, Ordering::Relaxed);
                crate::metrics::cache_hit("redis");
                return Lookup::Hit(candidates);
            }
            // Stale: what was just read is from before the load that follows.
            if stamp.capability.as_ref().map(|(c, _)| c) == ticket.capability.as_ref() {
                ticket.known_prompts = ids.into_iter().zip(current.iter().copied()).collect();
                ticket.known_capability = ticket
                    .capability
                    .as_ref()
                    .and_then(|_| current.get(stamp.prompts.len()).copied());
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        crate::metrics::cache_miss("redis");
        Lookup::Miss(ticket)
    }

    async fn fill(&self, ticket: Ticket, served: Arc<Served>) {
        let prompts: Vec<Uuid> = served
            .candidates
            .iter()
            .map(|candidate| candidate.prompt.id)
            .collect();
        let stamp = match ticket.known_stamp(&prompts) {
            Some(stamp) => stamp,
            None => {
                let mut read = redis::cmd("MGET");
                read.arg(self.names.writes()).arg(
                    self.names
                        .generation_keys(&prompts, ticket.capability.as_deref()),
                );
                let Some(values) = self
                    .call::<Vec<Option<Vec<u8>>>>("fill", &read, On::Background)
                    .await
                else {
                    return;
                };
                let values: Vec<u64> = values
                    .iter()
                    .map(|value| generation(value.as_deref()))
                    .collect();
                let Some((writes, current)) = values.split_first() else {
                    return;
                };
                match ticket.stamp_if_unchanged(*writes, &prompts, current) {
                    Some(stamp) => stamp,
                    // Something was invalidated during the load: do not guess.
                    None => return,
                }
            }
        };
        let value = match encode_entry(&stamp, &served) {
            Ok(value) => value,
            Err(error) => {
                tracing::warn!(%error, "redis: cannot encode a serve entry");
                return;
            }
        };
        let mut set = redis::cmd("SET");
        set.arg(&ticket.entry_key)
            .arg(value)
            .arg("EX")
            .arg(self.ttl_secs);
        if self
            .call::<()>("fill", &set, On::Background)
            .await
            .is_some()
        {
            self.fills.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Bumps `event`'s generation and `gen:writes` and publishes it, atomically.
    async fn send(&self, event: &CacheEvent) -> bool {
        let Some(mut connection) = self.connection(On::Background) else {
            return false;
        };
        let generation = match event {
            CacheEvent::Prompt(id) => self.names.prompt(*id),
            CacheEvent::Capability(capability) => self.names.capability(capability),
            CacheEvent::All => self.names.all(),
        };
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("INCR")
            .arg(generation)
            .ignore()
            .cmd("INCR")
            .arg(self.names.writes())
            .ignore()
            .cmd("PUBLISH")
            .arg(self.names.channel())
            .arg(encode_message(self.id, event))
            .ignore();
        let timeout = self.timeout * BACKGROUND_FACTOR;
        match tokio::time::timeout(timeout, pipe.query_async::<()>(&mut connection)).await {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                self.error("publish", &error);
                false
            }
            Err(_) => {
                self.error("publish", &"timed out");
                false
            }
        }
    }

    /// Subscribes (on a connection of its own: a subscribed connection takes no commands).
    async fn connect(&self) -> Result<redis::aio::PubSub, String> {
        let subscribe = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(self.names.channel()).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        tokio::time::timeout(CONNECT_TIMEOUT, subscribe)
            .await
            .map_err(|_| "subscribing timed out".to_string())?
            .map_err(|error| error.to_string())
    }

    /// After a gap in the subscription: entries written before it may have missed an `INCR`
    /// (see the module documentation), so none of them is used again.
    async fn bump_all(&self) -> bool {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("INCR")
            .arg(self.names.all())
            .ignore()
            .cmd("INCR")
            .arg(self.names.writes())
            .ignore();
        let Some(mut connection) = self.connection(On::Background) else {
            return false;
        };
        matches!(
            tokio::time::timeout(CONNECT_TIMEOUT, pipe.query_async::<()>(&mut connection)).await,
            Ok(Ok(()))
        )
    }
}

/// The shared cache of one server (see the module documentation). It is the local cache's
/// [`InvalidationSink`]; [`RedisCache::start`] runs its background tasks.
pub struct RedisCache {
    inner: Arc<Inner>,
    events: mpsc::UnboundedSender<CacheEvent>,
    /// The publisher's end, until `start` takes it.
    pending: Mutex<Option<mpsc::UnboundedReceiver<CacheEvent>>>,
    /// Dropped with the cache: the supervisor then stops.
    _stop: watch::Sender<()>,
    stop: watch::Receiver<()>,
}

impl RedisCache {
    /// A shared cache on `config.url` (checked, not connected: connecting is the background
    /// task's job, so a server starts whether Redis is up or not).
    pub fn new(config: RedisCacheConfig) -> anyhow::Result<Self> {
        let client = redis::Client::open(config.url.as_str()).map_err(|error| {
            anyhow::anyhow!(
                "redis_url {}: {error}",
                promptvault_store::redact_url(&config.url)
            )
        })?;
        let (events, receiver) = mpsc::unbounded_channel();
        let (stop_sender, stop) = watch::channel(());
        Ok(RedisCache {
            inner: Arc::new(Inner {
                id: Uuid::new_v4(),
                names: Names {
                    prefix: config.prefix,
                },
                ttl_secs: config.ttl.as_secs().max(1),
                timeout: config.timeout,
                client,
                connections: OnceLock::new(),
                connected: AtomicBool::new(false),
                in_flight: AtomicU64::new(0),
                dirty: AtomicBool::new(false),
                published: tokio::sync::Notify::new(),
                born: std::time::Instant::now(),
                lookups_paused_until: AtomicU64::new(0),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                fills: AtomicU64::new(0),
                errors: AtomicU64::new(0),
            }),
            events,
            pending: Mutex::new(Some(receiver)),
            _stop: stop_sender,
            stop,
        })
    }

    /// Starts the subscription supervisor and the publisher on the current tokio runtime, for
    /// `local` (the cache this one is the sink of). `local` is untrusted until the subscription
    /// is up.
    pub fn start(&self, local: &Arc<ServeCache>) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| anyhow::anyhow!("the Redis cache needs a tokio runtime"))?;
        let receiver = match self.pending.lock() {
            Ok(mut pending) => pending.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        let Some(receiver) = receiver else {
            return Ok(());
        };
        // Connects on first use, reconnects after an I/O error; every call has its own timeout.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.inner.timeout.max(Duration::from_millis(250))))
            .set_response_timeout(Some(self.inner.timeout * BACKGROUND_FACTOR))
            .set_number_of_retries(1)
            .set_min_delay(MIN_BACKOFF)
            .set_max_delay(MAX_BACKOFF);
        let connect = || {
            ConnectionManager::new_lazy_with_config(self.inner.client.clone(), config.clone())
                .map_err(|error| anyhow::anyhow!("redis: {error}"))
        };
        let connections = Connections {
            requests: connect()?,
            background: connect()?,
        };
        // `pending` was still there: this is the first start, so the cell is empty.
        let _ = self.inner.connections.set(connections);
        local.set_trusted(false);
        crate::metrics::redis_connected(false);
        runtime.spawn(publisher(self.inner.clone(), receiver));
        runtime.spawn(supervise(
            self.inner.clone(),
            Arc::downgrade(local),
            self.stop.clone(),
        ));
        Ok(())
    }

    /// The entry for `key`, if Redis has a current one (see [`Lookup`]).
    pub async fn lookup(&self, key: &ServeKey) -> Lookup {
        self.inner.lookup(key).await
    }

    /// Writes what was loaded after `ticket` to Redis, in the background — unless a candidate
    /// is confidential or restricted.
    pub fn fill(&self, ticket: Ticket, served: &Arc<Served>) {
        if !may_share(served) {
            return;
        }
        let inner = self.inner.clone();
        let served = served.clone();
        tokio::spawn(async move { inner.fill(ticket, served).await });
    }

    /// Waits (at most `within`) until every local event so far is published; false if some
    /// could not be (Redis unreachable). For a process about to exit (the CLI's local mode).
    pub async fn flush(&self, within: Duration) -> bool {
        let inner = &self.inner;
        let settled =
            || inner.in_flight.load(Ordering::SeqCst) == 0 && !inner.dirty.load(Ordering::SeqCst);
        let waiting = async {
            loop {
                let published = inner.published.notified();
                if settled() {
                    return;
                }
                published.await;
            }
        };
        tokio::time::timeout(within, waiting).await.is_ok()
    }

    /// Whether the subscription is up (hits are served again).
    pub fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::SeqCst)
    }

    /// This cache's counters.
    pub fn stats(&self) -> RedisCacheStats {
        RedisCacheStats {
            hits: self.inner.hits.load(Ordering::Relaxed),
            misses: self.inner.misses.load(Ordering::Relaxed),
            fills: self.inner.fills.load(Ordering::Relaxed),
            errors: self.inner.errors.load(Ordering::Relaxed),
        }
    }
}

impl InvalidationSink for RedisCache {
    fn publish(&self, event: &CacheEvent) {
        // Counted before it is queued, so the L2 is skipped from now until Redis has it.
        self.inner.in_flight.fetch_add(1, Ordering::SeqCst);
        if self.events.send(event.clone()).is_err() {
            self.inner.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Publishes local events in order; after a failure, publishes `All` (for everything queued
/// meanwhile) with backoff until Redis takes it.
async fn publisher(inner: Arc<Inner>, mut events: mpsc::UnboundedReceiver<CacheEvent>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let (event, taken) = if inner.dirty.load(Ordering::SeqCst) {
            tokio::time::sleep(backoff).await;
            let mut taken = 0;
            loop {
                match events.try_recv() {
                    Ok(_) => taken += 1,
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => return,
                }
            }
            (CacheEvent::All, taken)
        } else {
            match events.recv().await {
                Some(event) => (event, 1),
                None => return,
            }
        };
        if inner.send(&event).await {
            inner.dirty.store(false, Ordering::SeqCst);
            backoff = MIN_BACKOFF;
        } else {
            inner.dirty.store(true, Ordering::SeqCst);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        // After `dirty` is set on failure, so the L2 stays skipped throughout.
        inner.in_flight.fetch_sub(taken, Ordering::SeqCst);
        inner.published.notify_waiters();
    }
}

/// Holds the subscription: applies other servers' events; on loss, untrusts the local cache and
/// reconnects with backoff; on (re)connection, resets the local cache before trusting it.
async fn supervise(inner: Arc<Inner>, local: Weak<ServeCache>, mut stop: watch::Receiver<()>) {
    let mut backoff = MIN_BACKOFF;
    let mut reported_down = false;
    let mut ever_connected = false;
    loop {
        if local.strong_count() == 0 {
            return;
        }
        match inner.connect().await {
            Ok(pubsub) => {
                if ever_connected && !inner.bump_all().await {
                    inner.error("reconnect", &"cannot reset the shared entries");
                } else {
                    let Some(cache) = local.upgrade() else {
                        return;
                    };
                    cache.apply(&CacheEvent::All);
                    cache.set_trusted(true);
                    drop(cache);
                    inner.connected.store(true, Ordering::SeqCst);
                    crate::metrics::redis_connected(true);
                    if reported_down {
                        tracing::info!("redis is reachable again; the serve caches are in use");
                    } else if !ever_connected {
                        tracing::debug!("redis connected");
                    }
                    reported_down = false;
                    ever_connected = true;
                    backoff = MIN_BACKOFF;
                    let mut messages = pubsub.into_on_message();
                    loop {
                        tokio::select! {
                            message = messages.next() => match message {
                                Some(message) => {
                                    let (from, event) = decode_message(message.get_payload_bytes());
                                    if from == Some(inner.id) {
                                        continue;
                                    }
                                    let Some(cache) = local.upgrade() else { return };
                                    cache.apply(&event);
                                }
                                None => break,
                            },
                            changed = stop.changed() => if changed.is_err() { return },
                        }
                    }
                    // Lost: nothing cached here can be trusted until the subscription is back.
                    inner.connected.store(false, Ordering::SeqCst);
                    if let Some(cache) = local.upgrade() {
                        cache.set_trusted(false);
                    }
                    crate::metrics::redis_connected(false);
                }
            }
            Err(error) => inner.error("subscribe", &error),
        }
        if !reported_down {
            tracing::warn!(
                "redis is unreachable; serving from the database until it is back (local cache \
                 off, writes still invalidate locally)"
            );
            reported_down = true;
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            changed = stop.changed() => if changed.is_err() { return },
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn a_message_is_small_json_naming_its_sender_and_event() {
        let from = id(1);
        let prompt = encode_message(from, &CacheEvent::Prompt(id(2)));
        assert_eq!(
            prompt,
            r#"{"from":"00000000-0000-0000-0000-000000000001","event":{"prompt":"00000000-0000-0000-0000-000000000002"}}"#
        );
        let capability = encode_message(from, &CacheEvent::Capability("summarize".into()));
        assert_eq!(
            capability,
            r#"{"from":"00000000-0000-0000-0000-000000000001","event":{"capability":"summarize"}}"#
        );
        let all = encode_message(from, &CacheEvent::All);
        assert_eq!(
            all,
            r#"{"from":"00000000-0000-0000-0000-000000000001","event":"all"}"#
        );
        for (text, event) in [
            (prompt, CacheEvent::Prompt(id(2))),
            (capability, CacheEvent::Capability("summarize".into())),
            (all, CacheEvent::All),
        ] {
            assert_eq!(decode_message(text.as_bytes()), (Some(from), event));
        }
    }

    #[test]
    fn an_unreadable_message_invalidates_everything() {
        assert_eq!(decode_message(b"not json"), (None, CacheEvent::All));
        assert_eq!(
            decode_message(
                br#"{"from":"00000000-0000-0000-0000-000000000001","event":{"tag":"x"}}"#
            ),
            (None, CacheEvent::All)
        );
    }

    #[test]
    fn an_entry_is_current_only_while_every_generation_it_was_read_under_is_unchanged() {
        let stamp = Stamp {
            all: 3,
            prompts: vec![(id(1), 5), (id(2), 0)],
            capability: Some(("summarize".into(), 7)),
        };
        assert!(stamp.is_current(3, &[5, 0, 7]));
        assert!(!stamp.is_current(4, &[5, 0, 7]), "gen:all moved");
        assert!(!stamp.is_current(3, &[6, 0, 7]), "a prompt was written");
        assert!(
            !stamp.is_current(3, &[5, 1, 7]),
            "the other prompt was written"
        );
        assert!(
            !stamp.is_current(3, &[5, 0, 8]),
            "a link of the capability moved"
        );
        assert!(!stamp.is_current(3, &[5, 0]), "a generation is missing");
        let by_name = Stamp {
            all: 0,
            prompts: vec![(id(1), 0)],
            capability: None,
        };
        assert!(by_name.is_current(0, &[0]), "absent keys read as 0");
        assert!(!by_name.is_current(0, &[0, 0]));
    }

    fn ticket(capability: Option<&str>) -> Ticket {
        Ticket {
            entry_key: "k".into(),
            capability: capability.map(str::to_string),
            all: 2,
            writes: 40,
            known_prompts: Vec::new(),
            known_capability: None,
        }
    }

    #[test]
    fn generations_read_after_the_load_stamp_an_entry_only_if_nothing_was_invalidated_meanwhile() {
        let cold = ticket(Some("summarize"));
        assert_eq!(
            cold.stamp_if_unchanged(40, &[id(1), id(2)], &[5, 6, 9]),
            Some(Stamp {
                all: 2,
                prompts: vec![(id(1), 5), (id(2), 6)],
                capability: Some(("summarize".into(), 9)),
            })
        );
        assert_eq!(
            cold.stamp_if_unchanged(41, &[id(1), id(2)], &[5, 6, 9]),
            None,
            "a write was published between the lookup and the load's end"
        );
        assert_eq!(
            cold.known_stamp(&[id(1)]),
            None,
            "nothing known before the load"
        );
    }

    #[test]
    fn generations_read_before_the_load_stamp_an_entry_when_they_cover_its_prompts() {
        let stale = Ticket {
            known_prompts: vec![(id(1), 5), (id(2), 6)],
            known_capability: Some(9),
            ..ticket(Some("summarize"))
        };
        assert_eq!(
            stale.known_stamp(&[id(2)]),
            Some(Stamp {
                all: 2,
                prompts: vec![(id(2), 6)],
                capability: Some(("summarize".into(), 9)),
            })
        );
        assert_eq!(
            stale.known_stamp(&[id(2), id(3)]),
            None,
            "a prompt not in the stale entry has no generation from before the load"
        );
        let without_capability = Ticket {
            known_capability: None,
            ..stale
        };
        assert_eq!(without_capability.known_stamp(&[id(1)]), None);
    }

    #[test]
    fn entry_keys_are_namespaced_unambiguous_and_versioned() {
        let names = Names {
            prefix: "pv".into(),
        };
        let by_name = names.entry(&ServeKey::Name {
            name: "support/summarize".into(),
            selector: Selector::Label("production".into()),
        });
        assert_eq!(
            by_name,
            r#"pv:serve:v1:["name","support/summarize",["label","production"]]"#
        );
        let by_capability = names.entry(&ServeKey::Capability {
            agent: None,
            capability: "summarize".into(),
            selector: Selector::Number(3),
        });
        assert_eq!(
            by_capability,
            r#"pv:serve:v1:["capability",null,"summarize",["version",3]]"#
        );
        assert_eq!(
            names.generation_keys(&[id(1)], Some("summarize")),
            [
                "pv:gen:prompt:00000000-0000-0000-0000-000000000001",
                "pv:gen:cap:summarize"
            ]
        );
    }

    #[test]
    fn a_stored_generation_reads_as_a_number_and_anything_else_as_zero() {
        assert_eq!(generation(Some(b"12")), 12);
        assert_eq!(generation(None), 0);
        assert_eq!(generation(Some(b"x")), 0);
    }
}
