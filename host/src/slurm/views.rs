//! The queue and the cluster as Slurm shows them to anyone: `squeue` for jobs (whoever submitted
//! them), `sinfo` for partitions and nodes, `scontrol show job` for everything about one job. One
//! command per view; parsers are pure functions over captured output.

use std::collections::BTreeMap;

use serde::Serialize;

use super::SlurmError;
use super::parse::scontrol_fields;
use crate::exec::Exec;
use crate::types::names::JobId;
use crate::types::shell::ShellCommand;

/// The `--Format` of [`queue`]: the name last, since only it may hold a `|`.
const QUEUE_FORMAT: &str = "JobArrayID:|,UserName:|,Partition:|,State:|,TimeUsed:|,TimeLimit:|,NumNodes:|,NumCPUs:|,ReasonList:|,Name:";

/// One job in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueRow {
    pub job_id: String,
    pub user: String,
    pub partition: String,
    pub state: String,
    /// `D-HH:MM:SS` as Slurm prints it.
    pub time_used: String,
    pub time_limit: String,
    pub nodes: u32,
    pub cpus: u32,
    /// Its nodes when running, otherwise why it waits (`(Priority)`).
    pub nodelist_or_reason: String,
    pub name: String,
}

/// Which jobs to list; empty lists mean all.
#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    /// Only the cluster user's own jobs (`squeue --me`).
    pub mine: bool,
    pub users: Vec<String>,
    pub partitions: Vec<String>,
    /// Slurm state names (`PENDING`, `RUNNING`, ...), or `all`.
    pub states: Vec<String>,
    pub names: Vec<String>,
}

/// The queue, filtered, in one `squeue`.
pub async fn queue(exec: &impl Exec, filter: &QueueFilter) -> Result<Vec<QueueRow>, SlurmError> {
    let mut command = ShellCommand::new("squeue")
        .arg("--noheader")
        .arg(format!("--Format={QUEUE_FORMAT}"));
    if filter.mine {
        command = command.arg("--me");
    }
    let lists = [
        ("--user", &filter.users),
        ("--partition", &filter.partitions),
        ("--states", &filter.states),
        ("--name", &filter.names),
    ];
    for (option, values) in lists {
        if !values.is_empty() {
            command = command.arg(format!("{option}={}", values.join(",")));
        }
    }
    let output = exec.exec(&command).await?.check(&command)?;
    Ok(parse_queue(&output.stdout_text()))
}

pub fn parse_queue(text: &str) -> Vec<QueueRow> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.splitn(10, '|').map(str::trim).collect();
            let [
                job_id,
                user,
                partition,
                state,
                used,
                limit,
                nodes,
                cpus,
                reason,
                name,
            ] = fields.as_slice()
            else {
                return None;
            };
            Some(QueueRow {
                job_id: job_id.to_string(),
                user: user.to_string(),
                partition: partition.to_string(),
                state: state.to_string(),
                time_used: used.to_string(),
                time_limit: limit.to_string(),
                nodes: nodes.parse().unwrap_or(0),
                cpus: cpus.parse().unwrap_or(0),
                nodelist_or_reason: reason.to_string(),
                name: name.to_string(),
            })
        })
        .collect()
}

/// Every field `scontrol -o show job` reports for `id` (one record per array task), or none when
/// Slurm no longer knows it.
pub async fn job_records(
    exec: &impl Exec,
    id: &JobId,
) -> Result<Vec<BTreeMap<String, String>>, SlurmError> {
    let command = ShellCommand::new("scontrol")
        .arg("-o")
        .arg("show")
        .arg("job")
        .arg(id.as_str());
    let output = exec.exec(&command).await?;
    if !output.success() && output.stderr_text().contains("Invalid job id") {
        return Ok(Vec::new());
    }
    let output = output.check(&command)?;
    Ok(output
        .stdout_text()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            scontrol_fields(line)
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect())
}

/// `sinfo --Node`'s fields for [`cluster`], `|`-separated.
const SINFO_FORMAT: &str =
    "Partition:|,Available:|,Time:|,NodeList:|,StateLong:|,CPUsState:|,Gres:|,GresUsed:";

/// One partition: its nodes by state, CPUs and GPUs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PartitionView {
    pub name: String,
    pub default: bool,
    /// `up`, `down`, `drain`, `inact`.
    pub available: String,
    pub time_limit: String,
    pub nodes: u32,
    /// Node count per state (`idle`, `mixed`, `allocated`, `down`, ...).
    pub node_states: BTreeMap<String, u32>,
    pub cpus: Counts,
    pub gpus: GpuCounts,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub allocated: u64,
    pub idle: u64,
    pub other: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GpuCounts {
    pub used: u64,
    pub free: u64,
    pub total: u64,
}

/// Partitions with their nodes, CPUs and GPUs, from one `sinfo` (a line per node and partition).
pub async fn cluster(exec: &impl Exec) -> Result<Vec<PartitionView>, SlurmError> {
    let command = ShellCommand::new("sinfo")
        .arg("--Node")
        .arg("--noheader")
        .arg(format!("--Format={SINFO_FORMAT}"));
    let output = exec.exec(&command).await?.check(&command)?;
    Ok(parse_cluster(&output.stdout_text()))
}

pub fn parse_cluster(text: &str) -> Vec<PartitionView> {
    let mut partitions: Vec<PartitionView> = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split('|').map(str::trim).collect();
        let [
            partition,
            available,
            limit,
            _node,
            state,
            cpus,
            gres,
            gres_used,
            ..,
        ] = fields.as_slice()
        else {
            continue;
        };
        let name = partition.trim_end_matches('*');
        let index = match partitions.iter().position(|p| p.name == name) {
            Some(index) => index,
            None => {
                partitions.push(PartitionView {
                    name: name.to_string(),
                    default: partition.ends_with('*'),
                    available: available.to_string(),
                    time_limit: limit.to_string(),
                    ..PartitionView::default()
                });
                partitions.len() - 1
            }
        };
        let view = &mut partitions[index];
        view.nodes += 1;
        // `idle*` (not responding) and `mixed~` (powered down) are still idle and mixed nodes.
        let state = state.trim_end_matches(['*', '~', '#', '!', '%', '$', '@', '^', '-']);
        *view.node_states.entry(state.to_lowercase()).or_default() += 1;
        let counts: Vec<u64> = cpus.split('/').filter_map(|n| n.parse().ok()).collect();
        if let [allocated, idle, other, total] = counts[..] {
            view.cpus.allocated += allocated;
            view.cpus.idle += idle;
            view.cpus.other += other;
            view.cpus.total += total;
        }
        let (total, used) = (gpu_count(gres), gpu_count(gres_used));
        view.gpus.total += total;
        view.gpus.used += used.min(total);
    }
    for view in &mut partitions {
        view.gpus.free = view.gpus.total - view.gpus.used;
    }
    partitions
}

/// GPUs in a GRES list: `gpu:a100:4(S:0-1),gpu:2,mps:100` → 6.
fn gpu_count(gres: &str) -> u64 {
    gres.split(',')
        .map(|entry| entry.split('(').next().unwrap_or(""))
        .filter(|entry| entry.starts_with("gpu"))
        .filter_map(|entry| entry.rsplit(':').next()?.parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_rows_keep_a_name_with_bars() {
        let text = "4242_3|alice|gpu|RUNNING|1:02|1:00:00|1|8|n01|train|v2\n17|bob|debug|PENDING|0:00|10:00|2|4|(Priority)|x\n";
        let rows = parse_queue(text);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].job_id, "4242_3");
        assert_eq!(rows[0].name, "train|v2");
        assert_eq!(rows[0].cpus, 8);
        assert_eq!(rows[1].nodelist_or_reason, "(Priority)");
    }

    #[test]
    fn partitions_add_up_nodes_cpus_and_gpus() {
        let text = "gpu*|up|2-00:00:00|g1|mixed|4/60/0/64|gpu:a100:4(S:0-1)|gpu:a100:3(IDX:0-2)\n\
                    gpu*|up|2-00:00:00|g2|idle*|0/64/0/64|gpu:a100:4(S:0-1)|gpu:a100:0(IDX:N/A)\n\
                    cpu|up|1:00:00|c1|down|0/0/32/32|(null)|gpu:0\n";
        let partitions = parse_cluster(text);
        assert_eq!(partitions.len(), 2);
        let gpu = &partitions[0];
        assert!(gpu.default);
        assert_eq!(gpu.nodes, 2);
        assert_eq!(gpu.node_states["mixed"], 1);
        assert_eq!(gpu.node_states["idle"], 1);
        assert_eq!(gpu.cpus.idle, 124);
        assert_eq!((gpu.gpus.used, gpu.gpus.free, gpu.gpus.total), (3, 5, 8));
        assert_eq!(partitions[1].cpus.other, 32);
        assert_eq!(partitions[1].gpus.total, 0);
    }
}
