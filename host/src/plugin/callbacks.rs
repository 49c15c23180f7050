//! Callback plugins: the `callbacks` world, one event at a time. Queuing, journaling and retrying
//! deliveries is the lifecycle's outbox; this module only loads a component and calls it.

use std::collections::BTreeSet;

use super::compat::{self, Same};
use super::engine::export_names;
use super::{PluginEngine, PluginError, PluginSpec};
use crate::types::text::bounded;
use crate::wit::{Event, EventKind, v0_1_0, v0_2_0};

/// A linked callback plugin, through the bindings of the version it was built against.
#[derive(Clone)]
enum Pre {
    V0_2(v0_2_0::callbacks::CallbacksPre<super::PluginState>),
    V0_1(v0_1_0::callbacks::CallbacksPre<super::PluginState>),
}

/// One loaded callback plugin.
pub struct CallbackPlugin {
    pub spec: PluginSpec,
    engine: PluginEngine,
    pre: Pre,
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
        let pre = match v0_2_0::callbacks::CallbacksPre::new(instance_pre.clone()) {
            Ok(pre) => Pre::V0_2(pre),
            Err(_) => match v0_1_0::callbacks::CallbacksPre::new(instance_pre) {
                Ok(pre) => Pre::V0_1(pre),
                Err(_) => {
                    return Err(PluginError::WrongWorld {
                        name: spec.name.clone(),
                        expected: "callbacks",
                        found: export_names(engine.engine(), &component),
                    });
                }
            },
        };
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
                    match pre {
                        Pre::V0_2(pre) => {
                            let instance = pre.instantiate_async(&mut *store).await?;
                            instance.call_subscriptions(store).await
                        }
                        Pre::V0_1(pre) => {
                            let instance = pre.instantiate_async(&mut *store).await?;
                            let kinds = instance.call_subscriptions(store).await?;
                            Ok(kinds.into_iter().map(|k| Same(k).into()).collect())
                        }
                    }
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
                    match pre {
                        Pre::V0_2(pre) => {
                            let instance = pre.instantiate_async(&mut *store).await?;
                            instance.call_on_event(store, &record).await
                        }
                        Pre::V0_1(pre) => {
                            let instance = pre.instantiate_async(&mut *store).await?;
                            let record = compat::event_v1(&record);
                            let result = instance.call_on_event(store, &record).await?;
                            Ok(result.map_err(compat::callback_error))
                        }
                    }
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
