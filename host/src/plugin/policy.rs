//! Site policies: the `policy` world (since WIT 0.2.0), like Slurm's cli_filter. Every job passes
//! through them before it is rendered: each policy's `setup-defaults` in order, then each one's
//! `pre-submit`, which accepts, amends or refuses the job. What a policy returns is checked field by
//! field as a Slurmfile is ([`super::convert::job_from_wit`]). Once sbatch returned an id, each
//! policy's `post-submit` sees it; a failure there is only a warning.

use super::engine::export_names;
use super::{PluginEngine, PluginError, PluginSpec, convert};
use crate::journal::PolicyRecord;
use crate::types::spec::JobSpec;
use crate::types::text::bounded;
use crate::wit::latest::types::{Job, Verdict};
use crate::wit::v0_2_0;

type Pre = v0_2_0::policy::PolicyPre<super::PluginState>;

/// One loaded site policy.
pub struct PolicyPlugin {
    pub spec: PluginSpec,
    engine: PluginEngine,
    pre: Pre,
}

impl PolicyPlugin {
    /// Compile (or read from the cache) and link a policy. Only 0.2.x has the `policy` world: a
    /// component built against 0.1 is refused, saying so.
    pub async fn load(engine: &PluginEngine, spec: PluginSpec) -> Result<Self, PluginError> {
        let (component, instance_pre) = engine.prepare(&spec).await?;
        let pre = match Pre::new(instance_pre) {
            Ok(pre) => pre,
            Err(_) => {
                let imports: Vec<String> = component
                    .component_type()
                    .imports(engine.engine())
                    .map(|(name, _)| name.to_string())
                    .collect();
                let old = imports.iter().find_map(|name| {
                    let (_, version) = name.strip_prefix(super::WIT_PACKAGE)?.split_once('@')?;
                    version.starts_with("0.1.").then(|| version.to_string())
                });
                return Err(match old {
                    Some(version) => PluginError::PolicyTooOld {
                        plugin: spec.name.clone(),
                        version,
                    },
                    None => PluginError::WrongWorld {
                        name: spec.name.clone(),
                        expected: "policy",
                        found: export_names(engine.engine(), &component),
                    },
                });
            }
        };
        Ok(PolicyPlugin {
            spec,
            engine: engine.clone(),
            pre,
        })
    }

    /// What the journal records about it.
    pub fn record(&self) -> PolicyRecord {
        PolicyRecord {
            name: self.spec.name.clone(),
            origin: self.spec.origin.clone(),
            sha256: self.spec.sha256.clone(),
        }
    }

    pub async fn setup_defaults(&self, job: &Job) -> Result<Job, PluginError> {
        let (pre, record) = (self.pre.clone(), job.clone());
        self.engine
            .call(&self.spec, "setup-defaults", move |store| {
                Box::pin(async move {
                    let instance = pre.instantiate_async(&mut *store).await?;
                    instance.call_setup_defaults(store, &record).await
                })
            })
            .await
    }

    pub async fn pre_submit(&self, job: &Job) -> Result<Verdict, PluginError> {
        let (pre, record) = (self.pre.clone(), job.clone());
        self.engine
            .call(&self.spec, "pre-submit", move |store| {
                Box::pin(async move {
                    let instance = pre.instantiate_async(&mut *store).await?;
                    instance.call_pre_submit(store, &record).await
                })
            })
            .await
    }

    /// `post-submit`; the plugin's own error comes back as `Ok(Err(message))`.
    pub async fn post_submit(
        &self,
        job: &Job,
        job_id: &str,
    ) -> Result<Result<(), String>, PluginError> {
        let (pre, record, id) = (self.pre.clone(), job.clone(), job_id.to_string());
        self.engine
            .call(&self.spec, "post-submit", move |store| {
                Box::pin(async move {
                    let instance = pre.instantiate_async(&mut *store).await?;
                    instance.call_post_submit(store, &record, &id).await
                })
            })
            .await
    }
}

/// The policies that apply, in order: the site layer's first, then the Slurmfile's.
#[derive(Default)]
pub struct Policies {
    pub plugins: Vec<PolicyPlugin>,
}

/// A job as the policies left it, and which passed it.
#[derive(Debug, Clone)]
pub struct Policed {
    pub spec: JobSpec,
    pub policies: Vec<PolicyRecord>,
}

impl Policies {
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    /// Run every `setup-defaults`, then every `pre-submit`, over `spec`. A refusal, a value that
    /// does not validate, or a policy that fails stops the job (exit code 7), naming the policy.
    pub async fn apply(&self, spec: &JobSpec) -> Result<Policed, PluginError> {
        let mut spec = spec.clone();
        for policy in &self.plugins {
            let sent = convert::job_to_wit(&spec);
            let returned = policy.setup_defaults(&sent).await?;
            spec = amended(policy, "setup-defaults", &spec, &sent, &returned)?;
        }
        for policy in &self.plugins {
            let sent = convert::job_to_wit(&spec);
            match policy.pre_submit(&sent).await? {
                Verdict::Accept => {}
                Verdict::Amend(returned) => {
                    spec = amended(policy, "pre-submit", &spec, &sent, &returned)?;
                }
                Verdict::Refuse(message) => {
                    return Err(PluginError::PolicyRefused {
                        policy: policy.spec.name.clone(),
                        message: bounded(&message, policy.spec.limits.output),
                    });
                }
            }
        }
        Ok(Policed {
            spec,
            policies: self.plugins.iter().map(PolicyPlugin::record).collect(),
        })
    }

    /// Tell every policy the job got `job_id`. Failures are logged as warnings: the job stays
    /// submitted.
    pub async fn post_submit(&self, spec: &JobSpec, job_id: &str) {
        if self.plugins.is_empty() {
            return;
        }
        let record = convert::job_to_wit(spec);
        for policy in &self.plugins {
            match policy.post_submit(&record, job_id).await {
                Ok(Ok(())) => {}
                Ok(Err(message)) => tracing::warn!(
                    "site policy {} failed during post-submit of job {job_id} (the job is submitted): {}",
                    policy.spec.name,
                    bounded(&message, policy.spec.limits.output)
                ),
                Err(error) => tracing::warn!("{error} (job {job_id} is submitted)"),
            }
        }
    }
}

fn amended(
    policy: &PolicyPlugin,
    during: &'static str,
    spec: &JobSpec,
    sent: &Job,
    returned: &Job,
) -> Result<JobSpec, PluginError> {
    convert::job_from_wit(spec, sent, returned).map_err(|source| PluginError::PolicyAmend {
        policy: policy.spec.name.clone(),
        during,
        source,
    })
}
