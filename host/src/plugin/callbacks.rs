//! Lifecycle callbacks: events journaled first, then delivered at least once.
//!
//! Every event a command observes is written to the journal as one delivery per subscribed plugin
//! (keyed by event id and plugin name, so observing the same thing twice queues nothing new) before any
//! plugin runs. Delivery then calls each plugin in a fresh store; a failure is recorded and retried with
//! backoff, within this run for a few seconds and by any later `slurmkit` run after that. Nothing a
//! callback does can stop or undo a submission.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::bindings::v0_1_0::callbacks::{Callbacks as CallbacksWorld, CallbacksPre};
use super::bindings::v0_1_0::types as wit;
use super::{
    EventKind, PluginEngine, PluginError, PluginSpec, PluginState, convert, export_names,
    link_error,
};
use crate::cluster::{StatusObserver, SubmitObserver, Submitted};
use crate::config::Slurmfile;
use crate::job::journal::{CallbackRoute, Delivery, Journal, Submission, now_ms};
use crate::job::spec::JobSpec;
use crate::slurm::state::{JobState, JobStatus};

/// Attempts before a delivery is given up (marked `failed` in the journal).
pub const MAX_ATTEMPTS: u32 = 8;
/// Delay before the first retry; doubles per attempt, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// How long one run may wait for retries before leaving them to a later run.
const IN_RUN_RETRY_BUDGET: Duration = Duration::from_secs(5);

/// The event as journaled; turned into the WIT record at delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostEvent {
    pub id: String,
    pub kind: EventKind,
    pub spec: JobSpec,
    pub cluster: String,
    pub job_id: Option<String>,
    pub job_dir: Option<String>,
    pub timestamp_ms: u64,
    pub detail: EventDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventDetail {
    None,
    Submitted(String),
    Status {
        previous: Option<JobStatus>,
        current: JobStatus,
    },
}

impl HostEvent {
    fn to_wit(&self) -> wit::Event {
        wit::Event {
            id: self.id.clone(),
            kind: self.kind.to_wit(),
            job: convert::job_to_wit(&self.spec),
            cluster: self.cluster.clone(),
            job_id: self.job_id.clone(),
            job_dir: self.job_dir.clone(),
            emitted_by: wit::Emitter::Client,
            timestamp_ms: self.timestamp_ms,
            detail: match &self.detail {
                EventDetail::None => wit::EventDetail::None,
                EventDetail::Submitted(id) => wit::EventDetail::Submitted(id.clone()),
                EventDetail::Status { previous, current } => {
                    wit::EventDetail::Status(wit::StatusChange {
                        previous: previous.as_ref().map(convert::status_to_wit),
                        current: convert::status_to_wit(current),
                        terminal: current.state.is_terminal(),
                    })
                }
            },
        }
    }
}

/// One loaded callback plugin.
pub struct CallbackPlugin {
    pub spec: PluginSpec,
    pre: CallbacksPre<PluginState>,
    /// Which configured callback it is (see [`CallbackRoute::key`]); deliveries are matched on it.
    pub key: String,
    /// What it subscribes to (its `subscriptions` export).
    pub subscribed: BTreeSet<EventKind>,
    /// The events it gets: what it subscribes to, narrowed by the Slurmfile's `events`.
    pub events: BTreeSet<EventKind>,
}

/// Why one delivery failed, and whether to try again.
#[derive(Debug, Clone)]
pub struct DeliveryFailure {
    pub message: String,
    pub retry: Retry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The plugin said retrying cannot help.
    Never,
    /// The plugin asked for a retry: worth waiting a little for within this run.
    Soon,
    /// The plugin crashed or ran out of time: retried by later runs, with backoff.
    Later,
}

impl CallbackPlugin {
    /// Load a callback plugin and ask it which events it wants.
    pub async fn load(
        engine: &PluginEngine,
        spec: PluginSpec,
        wanted: Option<&[EventKind]>,
    ) -> Result<CallbackPlugin, PluginError> {
        let component = engine.component(&spec)?;
        let linker = engine.linker()?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| link_error(&spec.name, engine.engine(), &component, e))?;
        let pre = CallbacksPre::new(instance_pre).map_err(|_| PluginError::WrongWorld {
            name: spec.name.clone(),
            expected: "callbacks",
            found: export_names(engine.engine(), &component),
        })?;
        let mut plugin = CallbackPlugin {
            key: spec.name.clone(),
            spec,
            pre,
            subscribed: BTreeSet::new(),
            events: BTreeSet::new(),
        };
        let subscribed = plugin.subscriptions(engine).await?;
        let subscribed: BTreeSet<EventKind> = if subscribed.is_empty() {
            EventKind::ALL.into_iter().collect()
        } else {
            subscribed.into_iter().collect()
        };
        plugin.events = match wanted {
            Some(wanted) => wanted
                .iter()
                .copied()
                .filter(|k| subscribed.contains(k))
                .collect(),
            None => subscribed.clone(),
        };
        plugin.subscribed = subscribed;
        Ok(plugin)
    }

    pub async fn subscriptions(
        &self,
        engine: &PluginEngine,
    ) -> Result<Vec<EventKind>, PluginError> {
        let (mut store, output) = engine.store(&self.spec, Arc::new(self.spec.config.clone()))?;
        let call = async {
            let instance: CallbacksWorld = self.pre.instantiate_async(&mut store).await?;
            instance.call_subscriptions(&mut store).await
        };
        let outcome = engine.with_deadline(&self.spec, call).await;
        let kinds = engine.settle(&self.spec, "subscriptions", &store, &output, outcome)?;
        Ok(kinds.into_iter().map(EventKind::from_wit).collect())
    }

    /// Call `on-event` once.
    pub async fn deliver(
        &self,
        engine: &PluginEngine,
        event: &HostEvent,
    ) -> Result<(), DeliveryFailure> {
        let during = format!("on-event({})", event.kind);
        let record = event.to_wit();
        let result = async {
            let (mut store, output) =
                engine.store(&self.spec, Arc::new(self.spec.config.clone()))?;
            let call = async {
                let instance: CallbacksWorld = self.pre.instantiate_async(&mut store).await?;
                instance.call_on_event(&mut store, &record).await
            };
            let outcome = engine.with_deadline(&self.spec, call).await;
            engine.settle(&self.spec, &during, &store, &output, outcome)
        }
        .await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(DeliveryFailure {
                message: format!(
                    "plugin {} returned an error for {during}: {}",
                    self.spec.name, error.message
                ),
                retry: if error.retryable {
                    Retry::Soon
                } else {
                    Retry::Never
                },
            }),
            // Traps and timeouts may be transient (a full disk, a slow filesystem): retry them, later.
            Err(error) => Err(DeliveryFailure {
                message: error.to_string(),
                retry: Retry::Later,
            }),
        }
    }
}

/// The `config` table as the plugin sees it: key/value strings in key order.
pub fn config_pairs(
    plugin: &str,
    table: Option<&toml::Table>,
) -> Result<Vec<(String, String)>, PluginError> {
    let Some(table) = table else {
        return Ok(Vec::new());
    };
    table
        .iter()
        .map(|(key, value)| {
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) | toml::Value::Datetime(_) => value.to_string(),
                _ => {
                    return Err(PluginError::Load {
                        name: plugin.to_string(),
                        message: format!("config key {key:?} must be a string, number or boolean (plugins receive flat key/value pairs)"),
                    });
                }
            };
            Ok((key.clone(), text))
        })
        .collect()
}

/// The callbacks configured in the Slurmfile: the ones that loaded, and the routes of all of them.
pub struct Callbacks<'e> {
    engine: &'e PluginEngine,
    plugins: Vec<CallbackPlugin>,
    /// Every configured callback, loaded or not: a job's events are journaled for all of them, so a
    /// plugin that fails to load today still gets them once it is fixed.
    routes: Vec<CallbackRoute>,
}

impl<'e> Callbacks<'e> {
    pub fn none(engine: &'e PluginEngine) -> Self {
        Callbacks {
            engine,
            plugins: Vec::new(),
            routes: Vec::new(),
        }
    }

    /// Load every `[[callbacks]]` entry. One that cannot be loaded (missing file, wrong sha256, bad
    /// grant, incompatible) is reported and skipped: callbacks never stand between a user and their job.
    pub async fn load(engine: &'e PluginEngine, file: Option<&Slurmfile>) -> Callbacks<'e> {
        let mut callbacks = Callbacks::none(engine);
        let Some(file) = file else { return callbacks };
        for settings in file.settings.callbacks.iter().flatten() {
            let name = super::callback_name(file, settings);
            let key = format!("{}#{name}", file.path.display());
            if callbacks.routes.iter().any(|r| r.key == key) {
                tracing::error!(
                    "two [[callbacks]] entries are named {name}; the second is ignored (give each its own `name`)"
                );
                continue;
            }
            callbacks.routes.push(CallbackRoute {
                key: key.clone(),
                name: name.clone(),
                events: settings
                    .events
                    .as_ref()
                    .map(|kinds| kinds.iter().map(|k| k.as_str().to_string()).collect()),
            });
            let loaded = async {
                let spec = super::callback_spec(file, settings)?;
                CallbackPlugin::load(engine, spec, settings.events.as_deref()).await
            }
            .await;
            match loaded {
                Ok(mut plugin) => {
                    plugin.key = key;
                    callbacks.plugins.push(plugin);
                }
                Err(error) => {
                    tracing::error!(
                        "callback {name} is not loaded; its events are journaled and wait for it: {error}"
                    );
                    if let Some(hint) = error.hint() {
                        tracing::error!("hint: {hint}");
                    }
                }
            }
        }
        callbacks
    }
}

/// Queues events in the journal and delivers them.
pub struct Deliverer<'e> {
    callbacks: Callbacks<'e>,
    cluster: String,
}

impl<'e> Deliverer<'e> {
    pub fn new(callbacks: Callbacks<'e>, cluster: String) -> Self {
        Deliverer { callbacks, cluster }
    }

    /// Journal `event` for every route that admits its kind. Returns whether all of them were journaled.
    fn enqueue(
        &self,
        journal: &Journal,
        submission_id: i64,
        routes: &[CallbackRoute],
        event: &HostEvent,
    ) -> bool {
        let routes: Vec<&CallbackRoute> = routes
            .iter()
            .filter(|r| r.admits(event.kind.as_str()))
            .collect();
        if routes.is_empty() {
            return true;
        }
        let json = match serde_json::to_string(event) {
            Ok(json) => json,
            Err(e) => {
                tracing::error!("cannot journal event {}: {e}", event.id);
                return false;
            }
        };
        let mut all = true;
        for route in routes {
            if let Err(e) = journal.enqueue_delivery(
                Some(submission_id),
                &event.id,
                event.kind.as_str(),
                &json,
                &route.key,
            ) {
                tracing::error!("cannot journal event {} for {}: {e}", event.id, route.name);
                all = false;
            }
        }
        all
    }

    /// The callbacks a submission's events go to: those recorded when it was submitted, or for one
    /// recorded before slurmkit kept them, those configured now.
    fn routes_for(&self, submission: &Submission) -> Vec<CallbackRoute> {
        submission
            .callbacks
            .clone()
            .unwrap_or_else(|| self.callbacks.routes.clone())
    }

    /// The routes recorded with a submission (the callbacks configured when it was submitted).
    fn routes_of(&self, journal: &Journal, submission_id: i64) -> Vec<CallbackRoute> {
        match journal.submission(submission_id) {
            Ok(Some(submission)) => self.routes_for(&submission),
            Ok(None) => Vec::new(),
            Err(e) => {
                tracing::error!(
                    "cannot read submission {submission_id} from the journal ({e}); using the Slurmfile's callbacks"
                );
                self.callbacks.routes.clone()
            }
        }
    }

    fn event(
        &self,
        kind: EventKind,
        spec: &JobSpec,
        job_dir: &str,
        job_id: Option<&str>,
        detail: EventDetail,
        suffix: &str,
    ) -> HostEvent {
        HostEvent {
            id: format!("{}{}#{}{suffix}", self.cluster, job_dir, kind),
            kind,
            spec: spec.clone(),
            cluster: self.cluster.clone(),
            job_id: job_id.map(str::to_string),
            job_dir: Some(job_dir.to_string()),
            timestamp_ms: now_ms() as u64,
            detail,
        }
    }

    /// The observer `cluster::submit` and `cluster::reconcile` call at each step.
    pub fn observer<'a>(&'a self, journal: &'a Journal) -> SubmitEvents<'a, 'e> {
        SubmitEvents {
            deliverer: self,
            journal,
        }
    }

    /// The observer `cluster::observe` calls when a journaled job changes state.
    pub fn status_observer<'a>(&'a self, journal: &'a Journal) -> StatusEvents<'a, 'e> {
        StatusEvents {
            deliverer: self,
            journal,
        }
    }

    /// Deliver every due delivery for the plugins loaded in this run. A delivery the plugin itself
    /// reported as retryable is retried with backoff for up to a few seconds of this run; a plugin that
    /// crashed or ran out of time would most likely do it again, so it is left to later runs (with the
    /// same backoff) instead of slowing this one down. Whatever is still pending stays journaled.
    pub async fn deliver_due(&self, journal: &Journal) {
        if self.callbacks.plugins.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        // Deliveries worth waiting for in this run, and when each is due again.
        let mut waiting: HashMap<i64, i64> = HashMap::new();
        let mut first_pass = true;
        loop {
            let now = now_ms();
            let due = match journal.due_deliveries(now) {
                Ok(due) => due,
                Err(e) => return tracing::error!("cannot read pending callback deliveries: {e}"),
            };
            // One that came due but is not pending any more was handled by another run.
            waiting.retain(|id, at| *at > now || due.iter().any(|d| d.id == *id));
            for delivery in due {
                if !first_pass && !waiting.contains_key(&delivery.id) {
                    continue;
                }
                let Some(plugin) = self
                    .callbacks
                    .plugins
                    .iter()
                    .find(|p| p.key == delivery.plugin)
                else {
                    continue;
                };
                match self.attempt(journal, plugin, &delivery).await {
                    Some(retry_at) => waiting.insert(delivery.id, retry_at),
                    None => waiting.remove(&delivery.id),
                };
            }
            first_pass = false;
            let Some(next) = waiting.values().min().copied() else {
                return;
            };
            let wait = Duration::from_millis((next - now_ms()).max(0) as u64);
            if started.elapsed() + wait > IN_RUN_RETRY_BUDGET {
                return;
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// One delivery attempt, recorded in the journal. Returns when to retry it within this run, if the
    /// plugin asked for a retry.
    async fn attempt(
        &self,
        journal: &Journal,
        plugin: &CallbackPlugin,
        delivery: &Delivery,
    ) -> Option<i64> {
        let kind = EventKind::parse(&delivery.event_kind);
        // The Slurmfile's `events` filter was applied when the event was queued; only the plugin's own
        // subscriptions decide here.
        if kind.is_none_or(|kind| !plugin.subscribed.contains(&kind)) {
            let reason = format!(
                "{} does not subscribe to {}",
                plugin.spec.name, delivery.event_kind
            );
            if let Err(e) = journal.mark_skipped(delivery.id, &reason) {
                tracing::error!("cannot record a skipped delivery: {e}");
            }
            return None;
        }
        let event: HostEvent = match serde_json::from_str(&delivery.event_json) {
            Ok(event) => event,
            Err(e) => {
                let _ = journal.mark_attempt_failed(
                    delivery.id,
                    &format!("unreadable journaled event: {e}"),
                    None,
                );
                return None;
            }
        };
        let (recorded, retry_soon) = match plugin.deliver(self.callbacks.engine, &event).await {
            Ok(()) => {
                tracing::debug!("delivered {} to {}", event.id, plugin.spec.name);
                (journal.mark_delivered(delivery.id), None)
            }
            Err(failure) => {
                let attempt = delivery.attempts + 1;
                let retry_at = (failure.retry != Retry::Never && attempt < MAX_ATTEMPTS)
                    .then(|| now_ms() + backoff(attempt).as_millis() as i64);
                match retry_at {
                    Some(_) => tracing::warn!(
                        "{} (attempt {attempt} of {MAX_ATTEMPTS}; will retry)",
                        failure.message
                    ),
                    None => tracing::error!(
                        "{} (giving up after {attempt} attempt(s))",
                        failure.message
                    ),
                }
                let soon = retry_at.filter(|_| failure.retry == Retry::Soon);
                (
                    journal.mark_attempt_failed(delivery.id, &failure.message, retry_at),
                    soon,
                )
            }
        };
        if let Err(e) = recorded {
            tracing::error!("cannot record the delivery of {}: {e}", event.id);
        }
        retry_soon
    }
}

fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(MAX_BACKOFF)
}

/// Queues the submit sequence's events.
pub struct SubmitEvents<'a, 'e> {
    deliverer: &'a Deliverer<'e>,
    journal: &'a Journal,
}

impl SubmitEvents<'_, '_> {
    /// Queue an event that carries no detail beyond the job.
    fn emit(&self, kind: EventKind, submission_id: i64, spec: &JobSpec, job_dir: &str) {
        let event = self
            .deliverer
            .event(kind, spec, job_dir, None, EventDetail::None, "");
        let routes = self.deliverer.routes_of(self.journal, submission_id);
        self.deliverer
            .enqueue(self.journal, submission_id, &routes, &event);
    }
}

impl SubmitObserver for SubmitEvents<'_, '_> {
    fn callback_routes(&self) -> Vec<CallbackRoute> {
        self.deliverer.callbacks.routes.clone()
    }

    fn staging_begin(&mut self, submission_id: i64, spec: &JobSpec, job_dir: &str) {
        self.emit(EventKind::PackagingBegin, submission_id, spec, job_dir);
    }

    fn staging_end(&mut self, submission_id: i64, spec: &JobSpec, job_dir: &str) {
        self.emit(EventKind::PackagingEnd, submission_id, spec, job_dir);
    }

    fn submit_begin(&mut self, submission_id: i64, spec: &JobSpec, job_dir: &str) {
        self.emit(EventKind::SubmitBegin, submission_id, spec, job_dir);
    }

    /// Also used when an interrupted submission is recovered.
    fn submitted(&mut self, submitted: &Submitted, spec: &JobSpec) {
        let id = submitted.job_id.to_string();
        let event = self.deliverer.event(
            EventKind::Submitted,
            spec,
            &submitted.job_dir,
            Some(&id),
            EventDetail::Submitted(id.clone()),
            "",
        );
        let routes = self
            .deliverer
            .routes_of(self.journal, submitted.submission_id);
        self.deliverer
            .enqueue(self.journal, submitted.submission_id, &routes, &event);
    }
}

/// Queues `status-changed`, and `completed` or `failed`, when a journaled job changes state.
pub struct StatusEvents<'a, 'e> {
    deliverer: &'a Deliverer<'e>,
    journal: &'a Journal,
}

impl StatusObserver for StatusEvents<'_, '_> {
    fn changed(
        &mut self,
        submission: &Submission,
        previous: Option<&JobStatus>,
        current: &JobStatus,
    ) -> bool {
        let deliverer = self.deliverer;
        let job_id = current.job_id.to_string();
        let detail = EventDetail::Status {
            previous: previous.cloned(),
            current: current.clone(),
        };
        let changed = deliverer.event(
            EventKind::StatusChanged,
            &submission.spec,
            &submission.job_dir,
            Some(&job_id),
            detail.clone(),
            &format!(":{job_id}:{}", current.state),
        );
        let routes = deliverer.routes_for(submission);
        let mut queued = deliverer.enqueue(self.journal, submission.id, &routes, &changed);
        if current.state.is_terminal() {
            let kind = if current.state == JobState::Completed {
                EventKind::Completed
            } else {
                EventKind::Failed
            };
            let ended = deliverer.event(
                kind,
                &submission.spec,
                &submission.job_dir,
                Some(&job_id),
                detail,
                &format!(":{job_id}"),
            );
            queued &= deliverer.enqueue(self.journal, submission.id, &routes, &ended);
        }
        queued
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }

    #[test]
    fn config_tables_become_flat_pairs() {
        let table: toml::Table =
            toml::from_str("channel = \"#hpc\"\nretries = 3\nverbose = true").unwrap();
        let pairs = config_pairs("p", Some(&table)).unwrap();
        assert_eq!(
            pairs,
            vec![
                ("channel".into(), "#hpc".into()),
                ("retries".into(), "3".into()),
                ("verbose".into(), "true".into())
            ]
        );
        let nested: toml::Table = toml::from_str("a = { b = 1 }").unwrap();
        assert!(config_pairs("p", Some(&nested)).is_err());
    }
}
