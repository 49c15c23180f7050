//! The outbox of lifecycle events: journaled first, then delivered to callbacks at least once.
//!
//! Every event the session observes is written to the journal as one delivery per configured callback
//! (keyed by event id and callback, so observing the same thing twice queues nothing new) before the
//! state it announces is recorded and before any plugin runs. Delivery then calls each plugin; a
//! failure is recorded and retried with backoff, within this run for a few seconds and by any later
//! `slurmkit` run after that. Nothing a callback does can stop or undo a submission.

use std::collections::HashMap;
use std::time::Duration;

use super::event::{EventDetail, HostEvent, NodeDetails};
use crate::config::node::{NODE_EVENT_KINDS, NodeEvent};
use crate::config::{CallbackSettings, Grants};
use crate::config::{CallbackSide, Slurmfile};
use crate::journal::{CallbackRoute, Delivery, Journal, SharedJournal, Submission, now_ms};
use crate::plugin::callbacks::{CallbackPlugin, Retry};
use crate::plugin::{Limits, PluginEngine, PluginError, PluginSpec, spec::callback_name};
use crate::types::spec::JobSpec;
use crate::types::status::{JobState, JobStatus};
use crate::wit::EventKind;

/// Attempts before a delivery is given up (marked `failed` in the journal).
pub const MAX_ATTEMPTS: u32 = 8;
/// Delay before the first retry; doubles per attempt, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// How long one run may wait for retries before leaving them to a later run.
const IN_RUN_RETRY_BUDGET: Duration = Duration::from_secs(5);

/// A callback for the compute node: its file (checked against its pin), configuration, grants (for
/// the job directory, checked there) and the node events it takes.
#[derive(Debug, Clone)]
pub struct NodeSource {
    pub spec: PluginSpec,
    pub grants: Grants,
    pub events: Vec<EventKind>,
}

impl NodeSource {
    fn read(file: &Slurmfile, settings: &CallbackSettings) -> Result<NodeSource, PluginError> {
        let name = callback_name(file, settings);
        let mut spec = PluginSpec::from_file(
            &name,
            &file.resolve_path(&settings.plugin),
            settings.sha256.as_deref(),
        )?;
        spec.config = crate::plugin::spec::config_pairs(&name, settings.config.as_ref())?;
        spec.limits = Limits::from_settings(settings.limits.as_ref());
        let events: Vec<EventKind> = match &settings.events {
            Some(kinds) => {
                let others: Vec<&str> = kinds
                    .iter()
                    .filter(|k| !NODE_EVENT_KINDS.contains(k))
                    .map(|k| k.as_str())
                    .collect();
                if !others.is_empty() {
                    tracing::warn!(
                        "callback {name} runs on the compute node, where only run-begin and run-end happen; it never gets {}",
                        others.join(", ")
                    );
                }
                NODE_EVENT_KINDS
                    .into_iter()
                    .filter(|k| kinds.contains(k))
                    .collect()
            }
            None => NODE_EVENT_KINDS.to_vec(),
        };
        Ok(NodeSource {
            spec,
            grants: settings.grants.clone().unwrap_or_default(),
            events,
        })
    }
}

/// The callbacks configured in the Slurmfile (the ones that loaded, and the routes of all of them), and
/// the journal their events go through.
pub struct Outbox {
    plugins: Vec<(String, CallbackPlugin)>,
    /// The callbacks that run on the compute node (`on = "node"`), read and checked against their pins.
    pub node: Vec<NodeSource>,
    /// Every configured callback, loaded or not: a job's events are journaled for all of them, so a
    /// plugin that fails to load today still gets them once it is fixed.
    routes: Vec<CallbackRoute>,
    cluster: String,
    journal: SharedJournal,
}

impl Outbox {
    /// Load every `[[callbacks]]` entry. One that cannot be loaded (missing file, wrong sha256, bad
    /// grant, incompatible) is reported and skipped: callbacks never stand between a user and their job.
    pub async fn load(
        engine: &PluginEngine,
        file: Option<&Slurmfile>,
        cluster: &str,
        journal: SharedJournal,
    ) -> Outbox {
        let mut outbox = Outbox {
            plugins: Vec::new(),
            node: Vec::new(),
            routes: Vec::new(),
            cluster: cluster.to_string(),
            journal,
        };
        let Some(file) = file else { return outbox };
        for settings in file.settings.callbacks.iter().flatten() {
            // Those run on the compute node, by the runner.
            if settings.on == CallbackSide::Node {
                match NodeSource::read(file, settings) {
                    Ok(source) => outbox.node.push(source),
                    Err(error) => tracing::error!(
                        "callback {} is not sent to the compute node: {error}",
                        callback_name(file, settings)
                    ),
                }
                continue;
            }
            let name = callback_name(file, settings);
            let key = format!("{}#{name}", file.path.display());
            if outbox.routes.iter().any(|r| r.key == key) {
                tracing::error!(
                    "two [[callbacks]] entries are named {name}; the second is ignored (give each its own `name`)"
                );
                continue;
            }
            outbox.routes.push(CallbackRoute {
                key: key.clone(),
                name: name.clone(),
                events: settings
                    .events
                    .as_ref()
                    .map(|kinds| kinds.iter().map(|k| k.as_str().to_string()).collect()),
                sha256: None,
            });
            let loaded = async {
                let spec = PluginSpec::callback(file, settings)?;
                CallbackPlugin::load(engine, spec, settings.events.as_deref()).await
            }
            .await;
            match loaded {
                Ok(plugin) => {
                    if let Some(route) = outbox.routes.last_mut() {
                        route.sha256 = Some(plugin.spec.sha256.clone());
                    }
                    outbox.plugins.push((key, plugin));
                }
                Err(error) => {
                    tracing::error!(
                        "callback {name} is not loaded; its events are journaled and wait for it: {error}"
                    );
                    if let Some(hint) = crate::error::Diagnose::hint(&error) {
                        tracing::error!("hint: {hint}");
                    }
                }
            }
        }
        outbox
    }

    /// Whether jobs need the node-side runner: a callback here or on the node takes `run-begin` or
    /// `run-end`.
    pub fn wants_run_events(&self) -> bool {
        !self.node.is_empty()
            || self
                .plugins
                .iter()
                .any(|(_, p)| NODE_EVENT_KINDS.iter().any(|kind| p.events.contains(kind)))
    }

    /// The callbacks configured now, recorded with each new submission.
    pub fn routes(&self) -> &[CallbackRoute] {
        &self.routes
    }

    /// The callbacks a submission's events go to: those recorded when it was submitted, or for one
    /// recorded before slurmkit kept them, those configured now.
    fn routes_for(&self, submission: &Submission) -> Vec<CallbackRoute> {
        submission
            .callbacks
            .clone()
            .unwrap_or_else(|| self.routes.clone())
    }

    /// An event about the job in `job_dir`; its id is stable, so queuing it again does nothing.
    pub fn event(
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
            node: None,
        }
    }

    /// Journal `event` for every route that admits its kind. Returns whether all of them were journaled.
    pub async fn enqueue(
        &self,
        submission_id: i64,
        routes: &[CallbackRoute],
        event: &HostEvent,
    ) -> bool {
        if !routes.iter().any(|r| r.admits(event.kind.as_str())) {
            return true;
        }
        let (routes, event) = (routes.to_vec(), event.clone());
        let id = event.id.clone();
        match self
            .journal
            .run(move |journal| Ok(queue(journal, submission_id, &routes, &event)))
            .await
        {
            Ok(queued) => queued,
            Err(e) => {
                tracing::error!("cannot journal event {id}: {e}");
                false
            }
        }
    }

    /// Queue an event of a submission with the callbacks recorded for it.
    pub async fn emit(&self, submission_id: i64, event: HostEvent) -> bool {
        let routes = match self
            .journal
            .run(move |journal| journal.submission(submission_id))
            .await
        {
            Ok(Some(submission)) => self.routes_for(&submission),
            Ok(None) => Vec::new(),
            Err(e) => {
                tracing::error!(
                    "cannot read submission {submission_id} from the journal ({e}); using the Slurmfile's callbacks"
                );
                self.routes.clone()
            }
        };
        self.enqueue(submission_id, &routes, &event).await
    }

    /// Queue `status-changed`, and `completed` or `failed`, for a journaled job's change of state.
    /// Returns whether everything was queued; if not, the new state is not recorded, so the change is
    /// seen (and announced) again next time.
    pub async fn status_changed(
        &self,
        submission: &Submission,
        previous: Option<&JobStatus>,
        current: &JobStatus,
    ) -> bool {
        let job_id = current.job_id.to_string();
        let detail = EventDetail::Status {
            previous: previous.cloned(),
            current: current.clone(),
        };
        let changed = self.event(
            EventKind::StatusChanged,
            &submission.spec,
            &submission.job_dir,
            Some(&job_id),
            detail.clone(),
            &format!(":{job_id}:{}", current.state),
        );
        let routes = self.routes_for(submission);
        let mut queued = self.enqueue(submission.id, &routes, &changed).await;
        if current.state.is_terminal() {
            let kind = if current.state == JobState::Completed {
                EventKind::Completed
            } else {
                EventKind::Failed
            };
            let ended = self.event(
                kind,
                &submission.spec,
                &submission.job_dir,
                Some(&job_id),
                detail.clone(),
                &format!(":{job_id}"),
            );
            queued &= self.enqueue(submission.id, &routes, &ended).await;
        }
        // A workflow ends with its last job: when that ends, or is seen never to run.
        if current.settled() && submission.group.workflow.as_deref() == Some(&submission.job_dir) {
            let ended = self.event(
                EventKind::WorkflowEnd,
                &submission.spec,
                &submission.job_dir,
                Some(&job_id),
                detail,
                "",
            );
            queued &= self.enqueue(submission.id, &routes, &ended).await;
        }
        queued
    }

    /// Queue the events the node-side runner logged for a journaled job (stable ids: what was queued
    /// before is not queued again). Returns whether all were queued.
    pub async fn node_events(&self, submission: &Submission, events: &[NodeEvent]) -> bool {
        let routes = self.routes_for(submission);
        let mut queued = true;
        for logged in events {
            let detail = match logged.run {
                Some(run) => EventDetail::Run(run),
                None => EventDetail::None,
            };
            let mut event = self.event(
                logged.kind,
                &submission.spec,
                &submission.job_dir,
                Some(&logged.job_id),
                detail,
                &logged.id_suffix(),
            );
            event.timestamp_ms = logged.timestamp_ms;
            event.node = Some(NodeDetails {
                node: logged.node.clone(),
                array_task_id: logged.array_task_id,
                step: logged.step.clone(),
            });
            queued &= self.enqueue(submission.id, &routes, &event).await;
        }
        queued
    }

    /// Deliver every due delivery for the plugins loaded in this run. A delivery the plugin itself
    /// reported as retryable is retried with backoff for up to a few seconds of this run; a plugin that
    /// crashed or ran out of time would most likely do it again, so it is left to later runs (with the
    /// same backoff) instead of slowing this one down. Whatever is still pending stays journaled.
    pub async fn deliver_due(&self) {
        if self.plugins.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        // Deliveries worth waiting for in this run, and when each is due again.
        let mut waiting: HashMap<i64, i64> = HashMap::new();
        let mut first_pass = true;
        loop {
            let now = now_ms();
            let due = match self.journal.run(move |j| j.due_deliveries(now)).await {
                Ok(due) => due,
                Err(e) => return tracing::error!("cannot read pending callback deliveries: {e}"),
            };
            // One that came due but is not pending any more was handled by another run.
            waiting.retain(|id, at| *at > now || due.iter().any(|d| d.id == *id));
            for delivery in due {
                if !first_pass && !waiting.contains_key(&delivery.id) {
                    continue;
                }
                let Some((_, plugin)) =
                    self.plugins.iter().find(|(key, _)| *key == delivery.plugin)
                else {
                    continue;
                };
                match self.attempt(plugin, &delivery).await {
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
    async fn attempt(&self, plugin: &CallbackPlugin, delivery: &Delivery) -> Option<i64> {
        let id = delivery.id;
        let kind = EventKind::from_name(&delivery.event_kind);
        // The Slurmfile's `events` filter was applied when the event was queued; only the plugin's own
        // subscriptions decide here.
        if kind.is_none_or(|kind| !plugin.subscribed.contains(&kind)) {
            let reason = format!(
                "{} does not subscribe to {}",
                plugin.spec.name, delivery.event_kind
            );
            if let Err(e) = self.journal.run(move |j| j.mark_skipped(id, &reason)).await {
                tracing::error!("cannot record a skipped delivery: {e}");
            }
            return None;
        }
        let event: HostEvent = match serde_json::from_str(&delivery.event_json) {
            Ok(event) => event,
            Err(e) => {
                let message = format!("unreadable journaled event: {e}");
                let _ = self
                    .journal
                    .run(move |j| j.mark_attempt_failed(id, &message, None))
                    .await;
                return None;
            }
        };
        let (recorded, retry_soon) = match plugin.deliver(&event.to_wit()).await {
            Ok(()) => {
                tracing::debug!("delivered {} to {}", event.id, plugin.spec.name);
                (self.journal.run(move |j| j.mark_delivered(id)).await, None)
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
                let message = failure.message;
                let recorded = self
                    .journal
                    .run(move |j| j.mark_attempt_failed(id, &message, retry_at))
                    .await;
                (recorded, soon)
            }
        };
        if let Err(e) = recorded {
            tracing::error!("cannot record the delivery of {}: {e}", event.id);
        }
        retry_soon
    }
}

/// Journal `event` for every route that admits its kind, within a journal call already made (so a
/// batch of jobs costs one). Returns whether all of them were journaled.
pub fn queue(
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

fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(MAX_BACKOFF)
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
}
