//! `[<env>.cluster]` and its `backend_config` (the SSH backend's arguments) as slurmkit's `[cluster]`,
//! with the cluster's default account and partition, and the backend's `env`, going to `[job]`.

use toml::{Table, Value};

use super::{Layer, fits, job, key_path, shown};
use crate::config::{ClusterSettings, JobSettings};

/// Why a setting about how to connect has no equivalent.
const NO_GSSAPI: &str = "slurmkit does not authenticate with GSSAPI (Kerberos)";
const NO_PASSWORD: &str = "passwords are never copied: slurmkit asks for one on the terminal when the server wants it; better, use a key (key_filename) or the agent";
const ONE_HANDSHAKE_TIMEOUT: &str =
    "slurmkit has one timeout for the connection and the whole handshake: connect_timeout";

/// `[<env>.cluster]`: `backend`, `job_base_dir`, `backend_config`. The SDK reads nothing else there,
/// but its documentation writes the backend's arguments (hostname, ...) directly in `[cluster]`, so
/// those are read too; `backend_config` wins where both say something.
pub(super) fn convert(value: &Value, at: &str, layer: &mut Layer) {
    let Value::Table(table) = value else {
        layer.drop(at, "the cluster must be a table");
        return;
    };
    for (key, value) in table {
        let here = format!("{at}.{}", key_path(key));
        match key.as_str() {
            "backend_config" => {}
            "backend" => carry_cluster("backend", value, &here, layer),
            _ => backend_setting(key, value, &here, layer),
        }
    }
    match table.get("backend_config") {
        Some(Value::Table(config)) => {
            for (key, value) in config {
                let here = format!("{at}.backend_config.{}", key_path(key));
                backend_setting(key, value, &here, layer);
            }
        }
        Some(_) => layer.drop(
            &format!("{at}.backend_config"),
            "backend_config must be a table",
        ),
        None => {}
    }
}

/// One argument of the SDK's `Cluster(...)` / `SSHCommandBackend(...)`.
fn backend_setting(key: &str, value: &Value, at: &str, layer: &mut Layer) {
    match key {
        "hostname" | "username" | "host_key_policy" | "job_base_dir" | "proxy_jump" => {
            carry_cluster(key, value, at, layer)
        }
        "port" => carry_cluster("port", &job::as_integer(value), at, layer),
        "known_hosts" | "known_hosts_file" => carry_cluster("known_hosts", value, at, layer),
        "key_filename" | "ssh_key_path" => key_filename(value, at, layer),
        "timeout" => match value {
            Value::Integer(_) => carry_cluster("connect_timeout", value, at, layer),
            // Whole seconds, rounded up; a float's ceiling below 1e9 fits an i64 exactly.
            Value::Float(seconds) if *seconds > 0.0 && *seconds < 1e9 => carry_cluster(
                "connect_timeout",
                &Value::Integer(seconds.ceil() as i64),
                at,
                layer,
            ),
            _ => layer.drop(at, format!("{}: write whole seconds", shown(value))),
        },
        // Off: only the configured key. On is slurmkit's default.
        "allow_agent" | "look_for_keys" => match value {
            Value::Boolean(false) => {
                carry_cluster("identities_only", &Value::Boolean(true), at, layer)
            }
            Value::Boolean(true) => {}
            _ => layer.drop(at, format!("{}: expected true or false", shown(value))),
        },
        "password" | "passphrase" | "key_passphrase" => layer.drop(at, NO_PASSWORD),
        "banner_timeout" | "auth_timeout" => layer.drop(at, ONE_HANDSHAKE_TIMEOUT),
        "gss_auth" | "gss_kex" | "gss_deleg_creds" | "gss_host" | "gss_trust_dns" => {
            layer.drop(at, NO_GSSAPI)
        }
        "disabled_algorithms" => layer.drop(
            at,
            "slurmkit negotiates from its own list of algorithms, which has no weak ones to disable",
        ),
        "connection_attempts" | "retry_delay" => layer.drop(
            at,
            "slurmkit connects once per command and says why it failed; it does not retry",
        ),
        "remote_workdir" => layer.drop(
            at,
            "no equivalent: a job runs in its job directory (set working_dir on a job to change that)",
        ),
        "script_permissions" => layer.drop(
            at,
            "slurmkit sets the modes of what it writes itself (job directories 0700)",
        ),
        "env" => environment(value, at, layer),
        "default_account" => job::carry(layer, "account", value, at),
        "default_partition" => job::carry(layer, "partition", value, at),
        "default_packaging" => job::packaging(value, at, layer, None),
        "callbacks" => super::callbacks(value, at, layer),
        "backend" | "backend_type" => carry_cluster("backend", value, at, layer),
        _ if key.starts_with("default_packaging_") => layer.drop(at, job::NO_BUILD),
        _ => layer.drop(
            at,
            "not a setting of the SDK's backends that slurmkit knows",
        ),
    }
}

/// Put `key = value` in `[cluster]` if the loader takes it; otherwise say why not.
fn carry_cluster(key: &str, value: &Value, at: &str, layer: &mut Layer) {
    match fits::<ClusterSettings>(key, value) {
        Ok(()) => {
            layer.cluster.insert(key.to_string(), value.clone());
        }
        Err(why) => layer.drop(at, why),
    }
}

/// paramiko takes one key file or a list; slurmkit takes one.
fn key_filename(value: &Value, at: &str, layer: &mut Layer) {
    match value {
        Value::Array(files) => {
            for (i, file) in files.iter().enumerate() {
                if i == 0 {
                    carry_cluster("key_filename", file, &format!("{at}[0]"), layer)
                } else {
                    layer.drop(
                        &format!("{at}[{i}]"),
                        "slurmkit takes one key_filename (ssh_config's IdentityFile can list more)",
                    );
                }
            }
        }
        _ => carry_cluster("key_filename", value, at, layer),
    }
}

/// The backend's `env`: variables the SDK's `sbatch` ran with, which a job inherits; each one checked
/// as `[job] environment` checks it.
fn environment(value: &Value, at: &str, layer: &mut Layer) {
    let Value::Table(variables) = value else {
        layer.drop(at, "env must be a table of variables");
        return;
    };
    let mut carried = match layer.job.remove("environment") {
        Some(Value::Table(existing)) => existing,
        _ => Table::new(),
    };
    for (name, value) in variables {
        let here = format!("{at}.{}", key_path(name));
        let value = match value {
            Value::String(_) => value.clone(),
            Value::Integer(_) | Value::Float(_) | Value::Boolean(_) => {
                Value::String(value.to_string())
            }
            _ => {
                layer.drop(&here, "an environment value must be text");
                continue;
            }
        };
        let mut one = Table::new();
        one.insert(name.clone(), value.clone());
        match fits::<JobSettings>("environment", &Value::Table(one)) {
            Ok(()) => {
                carried.insert(name.clone(), value);
            }
            Err(why) => layer.drop(&here, why),
        }
    }
    if !carried.is_empty() {
        layer
            .job
            .insert("environment".into(), Value::Table(carried));
    }
}
