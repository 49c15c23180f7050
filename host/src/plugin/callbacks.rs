//! Callback plugins: the `callbacks` world, one event at a time. Queuing, journaling and retrying
//! deliveries is the lifecycle's outbox; this module only loads a component and calls it.

use std::collections::BTreeSet;

use super::engine::export_names;
use super::{PluginEngine, PluginError, PluginSpec};
use crate::types::text::bounded;
use crate::wit::v0_1_0::callbacks::{Callbacks as CallbacksWorld, CallbacksPre};
use crate::wit::{Event, EventKind};

/// One loaded callback plugin.
pub struct CallbackPlugin {
    pub spec: PluginSpec,
    engine: PluginEngine,
    pre: CallbacksPre<super::PluginState>,
    /// What it subscribes to (its `subscriptions` export; all events when it lists none).
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
        let (component, instance_pre) = engine.prepare(&spec).await?;
        let pre = CallbacksPre::new(instance_pre).map_err(|_| PluginError::WrongWorld {
            name: spec.name.clone(),
            expected: "callbacks",
            found: export_names(engine.engine(), &component),
        })?;
        let mut plugin = CallbackPlugin {
            spec,
            engine: engine.clone(),
            pre,
            subscribed: BTreeSet::new(),
            events: BTreeSet::new(),
        };
        let subscribed = plugin.subscriptions().await?;
        let subscribed: BTreeSet<EventKind> = if subscribed.is_empty() {
            EventKind::ALL.iter().copied().collect()
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

    async fn subscriptions(&self) -> Result<Vec<EventKind>, PluginError> {
        let pre = self.pre.clone();
        self.engine
            .call(&self.spec, "subscriptions", move |store| {
                Box::pin(async move {
                    let instance: CallbacksWorld = pre.instantiate_async(&mut *store).await?;
                    instance.call_subscriptions(store).await
                })
            })
            .await
    }

    /// Call `on-event` once.
    pub async fn deliver(&self, event: &Event) -> Result<(), DeliveryFailure> {
        let during = format!("on-event({})", event.kind);
        let (pre, record) = (self.pre.clone(), event.clone());
        let result = self
            .engine
            .call(&self.spec, &during, move |store| {
                Box::pin(async move {
                    let instance: CallbacksWorld = pre.instantiate_async(&mut *store).await?;
                    instance.call_on_event(store, &record).await
                })
            })
            .await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(DeliveryFailure {
                message: format!(
                    "plugin {} returned an error for {during}: {}",
                    self.spec.name,
                    bounded(&error.message, self.spec.limits.output)
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
