"""A site policy in Python: every job says who pays for it, and the site keeps an audit trail.

    [[policy]]
    plugin = "plugins/python_site_policy.wasm"
    config = { require_time = true, site = "example-hpc" }
    [policy.grants]
    write = ["audit"]

- setup-defaults: a job without `SITE` in its environment gets `SITE=<site>`.
- pre-submit: with `require_time`, a job without a time limit is refused (the scheduler cannot
  backfill it); every other job is amended to export `SLURMKIT_POLICY=python-site-policy`, so the
  job can tell it was checked.
- post-submit: writes `audit/<job id>.json` with the job's name, partition and time limit.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import host, types


def setting(key, default=None):
    return dict(host.config()).get(key, default)


def with_variable(job, name, value):
    """The job with `name=value` in its environment (kept sorted by name, as the host sends it)."""
    environment = [(k, v) for (k, v) in job.environment if k != name]
    environment.append((name, value))
    environment.sort()
    job.environment = environment
    return job


class WitWorld(wit_world.WitWorld):
    def setup_defaults(self, job):
        if not any(name == "SITE" for (name, _) in job.environment):
            job = with_variable(job, "SITE", setting("site", "site"))
        return job

    def pre_submit(self, job):
        if setting("require_time", "false") == "true" and job.time_limit_seconds is None:
            return types.Verdict_Refuse(
                f"job {job.name} has no time limit: set `time` (e.g. time = \"30m\") so the scheduler can plan it"
            )
        host.log(host.Level.INFO, f"job {job.name} passes the python site policy")
        return types.Verdict_Amend(with_variable(job, "SLURMKIT_POLICY", "python-site-policy"))

    def post_submit(self, job, job_id):
        record = {
            "job_id": job_id,
            "name": job.name,
            "partition": job.partition,
            "time_limit_seconds": job.time_limit_seconds,
        }
        try:
            with open(f"audit/{job_id}.json", "w") as audit:
                audit.write(json.dumps(record, sort_keys=True) + "\n")
        except OSError as error:
            raise Err(f"cannot write the audit record: {error}")
