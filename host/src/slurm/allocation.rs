//! Where a job runs: its state and nodes (`scontrol show job`) and how to reach a node (`scontrol show
//! node`), for commands that go to the job's allocation rather than the queue.

use super::SlurmError;
use super::parse::scontrol_fields;
use crate::exec::Exec;
use crate::types::names::JobId;
use crate::types::shell::ShellCommand;
use crate::types::status::JobState;

/// A job as its allocation is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// The id `srun --jobid` takes: an array task's own job id, not `<array>_<task>`.
    pub own_id: String,
    pub state: JobState,
    /// Its nodes in order (empty until it runs).
    pub nodes: Vec<String>,
}

/// The job's allocation, or `None` when Slurm no longer (or never) knew the job.
pub async fn allocation(exec: &impl Exec, id: &JobId) -> Result<Option<Allocation>, SlurmError> {
    // One exec: the record, then its node list expanded (`n[1-2]` → n1, n2) on lines after a marker.
    let command = ShellCommand::sh(
        "scontrol show job",
        r#"record=$(scontrol -o show job "$1") || exit $?
printf '%s\n' "$record"
list=$(printf '%s\n' "$record" | tr ' ' '\n' | sed -n 's/^NodeList=//p' | head -n 1)
case $list in ''|'(null)') ;; *) echo '--nodes--'; scontrol show hostnames "$list" ;; esac"#,
    )
    .arg(id.as_str());
    let output = exec.exec(&command).await?;
    if !output.success() {
        if output.stderr_text().contains("Invalid job id") {
            return Ok(None);
        }
        return Err(output.check(&command).unwrap_err().into());
    }
    Ok(parse_allocation(&output.stdout_text()))
}

/// Read [`allocation`]'s output: the record's first line, then the nodes after `--nodes--`.
pub fn parse_allocation(text: &str) -> Option<Allocation> {
    let mut lines = text.lines();
    let record = lines.next()?;
    let fields = scontrol_fields(record);
    let nodes = lines
        .skip_while(|l| *l != "--nodes--")
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    Some(Allocation {
        own_id: fields.get("JobId")?.to_string(),
        state: JobState::parse(fields.get("JobState")?),
        nodes,
    })
}

/// The address Slurm reaches `node` at (`NodeAddr`; its name when none is set).
pub async fn node_address(exec: &impl Exec, node: &str) -> Result<String, SlurmError> {
    let command = ShellCommand::new("scontrol")
        .arg("-o")
        .arg("show")
        .arg("node")
        .arg(node);
    let output = exec.exec(&command).await?.check(&command)?;
    let text = output.stdout_text();
    let fields = scontrol_fields(text.lines().next().unwrap_or(""));
    Ok(fields
        .get("NodeAddr")
        .filter(|a| !a.is_empty())
        .map_or_else(|| node.to_string(), |a| a.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_own_id_state_and_nodes() {
        let text = "JobId=4242 ArrayJobId=4240 ArrayTaskId=2 JobName=x JobState=RUNNING Reason=None NodeList=n[1-2] BatchHost=n1\n--nodes--\nn1\nn2\n";
        let allocation = parse_allocation(text).unwrap();
        assert_eq!(allocation.own_id, "4242");
        assert_eq!(allocation.state, JobState::Running);
        assert_eq!(allocation.nodes, vec!["n1", "n2"]);
        let pending =
            parse_allocation("JobId=7 JobState=PENDING Reason=Priority NodeList=(null)\n").unwrap();
        assert_eq!(pending.state, JobState::Pending);
        assert!(pending.nodes.is_empty());
    }
}
