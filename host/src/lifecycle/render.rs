//! Rendering a batch of jobs into their directories-to-be, before anything is recorded or sent: each
//! job's directory name, what it runs after, the renderer's script with slurmkit's prologue, and for an
//! array of items larger than one array may be, its later parts ([`super::split`]).

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::LifecycleError;
use super::after::{Earlier, dependencies};
use super::runner::RunnerRef;
use super::split;
use super::stage::{self, PartOf};
use crate::journal::PolicyRecord;
use crate::plugin::policy::Policed;
use crate::plugin::renderer::Renderer;
use crate::types::job_dir::job_dir_name;
use crate::types::spec::JobSpec;

/// A job rendered into its directory-to-be.
pub(super) struct Rendered {
    /// Its place among the jobs asked for (a later part shares its first part's).
    pub index: usize,
    pub spec: JobSpec,
    /// The site policies that passed it.
    pub policies: Vec<PolicyRecord>,
    pub dir_name: String,
    pub dir: String,
    /// The renderer's script with slurmkit's prologue.
    pub script: String,
    /// What it runs after, for the exchange (`-`, or sbatch's syntax with `@<directory>`).
    pub after: String,
    /// For a later part of a split array: the first part's directory and the index of its first item.
    pub part: Option<(String, u64)>,
    /// Whether later parts follow it.
    pub has_parts: bool,
}

/// What every job of a batch is rendered against.
pub(super) struct Context<'a> {
    /// The absolute directory job directories go in.
    pub base: &'a str,
    pub runner: Option<&'a RunnerRef>,
    /// The most tasks of one array of items.
    pub array_limit: Option<u64>,
    pub earlier: &'a BTreeMap<String, Earlier>,
}

/// Render every job that passed the policies (`policed`), in order, with its later parts after it.
/// A job that cannot be rendered gets its error in `results` (through `fail`) and leaves no trace.
pub(super) async fn render_all<T>(
    renderer: &Renderer,
    specs: &[JobSpec],
    policed: Vec<Option<Policed>>,
    context: &Context<'_>,
    results: &mut [Option<Result<T, LifecycleError>>],
    fail: impl Fn(&JobSpec, LifecycleError) -> Result<T, LifecycleError>,
) -> Vec<Rendered> {
    let base = context.base;
    // Directory names first: a job's prologue names the directories of the jobs it runs after. Unique
    // in this batch too: two jobs of the same name in the same second may draw the same suffix.
    let mut dir_names: Vec<String> = Vec::with_capacity(specs.len());
    for (spec, passed) in specs.iter().zip(&policed) {
        let spec = passed.as_ref().map_or(spec, |p| &p.spec);
        let name = loop {
            let name = job_dir_name(&spec.name, SystemTime::now());
            if !dir_names.contains(&name) {
                break name;
            }
        };
        dir_names.push(name);
    }
    let mut part_dirs: Vec<Vec<String>> = vec![Vec::new(); specs.len()];
    let mut rendered: Vec<Rendered> = Vec::new();
    for (index, passed) in policed.into_iter().enumerate() {
        let Some(Policed { spec, policies }) = passed else {
            continue;
        };
        let dir_name = dir_names[index].clone();
        let dir = format!("{base}/{dir_name}");
        let later = split::parts(spec.items.len(), context.array_limit);
        let first = match context.array_limit {
            Some(limit) if !later.is_empty() => split::first_part(&spec, limit),
            _ => spec.clone(),
        };
        let anchored = first.anchored_in(&dir);
        let resolved = dependencies(
            index,
            &anchored,
            specs,
            (&dir_names, &part_dirs),
            base,
            context.earlier,
            results,
        );
        let (dependency_dirs, after) = match resolved {
            Ok(resolved) => resolved,
            Err(error) => {
                results[index] = Some(fail(&anchored, error));
                continue;
            }
        };
        let mut jobs = Vec::with_capacity(1 + later.len());
        let mut refused = None;
        let pieces = std::iter::once((anchored.clone(), dir_name.clone(), None)).chain(
            later.iter().map(|part| {
                let name = split::part_dir_name(&dir_name, part);
                let part_dir = format!("{base}/{name}");
                let spec = split::part_spec(&spec, part).anchored_in(&part_dir);
                (spec, name, Some((dir.clone(), part.offset)))
            }),
        );
        for (piece, piece_dir_name, part) in pieces {
            let script = match renderer.render(&piece).await {
                Ok(script) => script,
                Err(error) => {
                    refused = Some(error.into());
                    break;
                }
            };
            let part_of = part.as_ref().map(|(first_dir, offset)| PartOf {
                first_dir,
                offset: *offset,
            });
            let prologue = stage::prologue(&piece, &dependency_dirs, context.runner, part_of);
            match stage::with_prologue(&piece, &script, &prologue) {
                Ok(script) => jobs.push(Rendered {
                    index,
                    dir: format!("{base}/{piece_dir_name}"),
                    spec: piece,
                    policies: policies.clone(),
                    dir_name: piece_dir_name,
                    script,
                    after: after.clone(),
                    has_parts: part.is_none() && !later.is_empty(),
                    part,
                }),
                Err(error) => {
                    refused = Some(error);
                    break;
                }
            }
        }
        // All parts or none: a job cut short would run some items and not others.
        if let Some(error) = refused {
            results[index] = Some(fail(&anchored, error));
            continue;
        }
        part_dirs[index] = jobs.iter().skip(1).map(|j| j.dir_name.clone()).collect();
        rendered.extend(jobs);
    }
    rendered
}
