// A site renderer in JavaScript (componentize-js). Every job gets the site's constraint and a comment
// naming the site; the rest is rendered as the default renderer would, with every value quoted.
//
//   [renderer]
//   plugin = "plugins/js_site_renderer.wasm"
//   config = { site = "example-hpc", constraint = "cpu" }

import { config, log } from "slurmkit:plugin/host@0.2.0";

function setting(key, fallback) {
  const found = config().find(([k]) => k === key);
  return found ? found[1] : fallback;
}

// sbatch's directive parser honours double quotes; a value it cannot carry is refused.
function directive(field, value) {
  if (value === "" || /["\\\u0000-\u001f\u007f]/.test(value)) {
    throw { tag: "invalid-field", val: { field, message: `${JSON.stringify(value)} cannot go in an #SBATCH line` } };
  }
  return `"${value}"`;
}

// Single quotes for bash, each embedded ' written as '\''.
function quote(word) {
  return `'${word.replaceAll("'", "'\\''")}'`;
}

function hms(seconds) {
  const s = Number(seconds);
  const pad = (n) => String(n).padStart(2, "0");
  return `${pad(Math.floor(s / 3600))}:${pad(Math.floor((s % 3600) / 60))}:${pad(s % 60)}`;
}

export function render(job) {
  const site = setting("site", "site");
  const lines = ["#!/bin/bash"];
  const sbatch = (option, field, value) => lines.push(`#SBATCH --${option}=${directive(field, value)}`);
  sbatch("job-name", "name", job.name);
  for (const [option, field, value] of [
    ["partition", "partition", job.partition],
    ["account", "account", job.account],
    ["output", "output", job.output],
    ["error", "error", job.error],
    ["chdir", "working-dir", job.workingDir],
  ]) {
    if (value !== undefined && value !== null) sbatch(option, field, value);
  }
  if (job.timeLimitSeconds !== undefined && job.timeLimitSeconds !== null) sbatch("time", "time-limit-seconds", hms(job.timeLimitSeconds));
  if (job.memoryMb !== undefined && job.memoryMb !== null) sbatch("mem", "memory-mb", `${job.memoryMb}M`);
  sbatch("constraint", "constraint", job.constraint ?? setting("constraint", "cpu"));
  sbatch("comment", "site", `site:${site}`);
  for (const [field, unsupported] of [["array", job.array], ["gpus", job.gpus], ["nodes", job.nodes], ["container", job.container]]) {
    if (unsupported !== undefined && unsupported !== null) {
      throw { tag: "unsupported", val: { field, message: `the ${site} JavaScript renderer does not support ${field}` } };
    }
  }
  lines.push(`# Rendered by the ${site} JavaScript site renderer.`);
  for (const module of job.modules) lines.push(`module load ${quote(module)}`);
  for (const [name, value] of job.environment) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw { tag: "invalid-field", val: { field: "environment", message: `${name} is not a variable name` } };
    }
    lines.push(`export ${name}=${quote(value)}`);
  }
  if (job.payload.tag === "command") {
    lines.push(`exec ${job.payload.val.map(quote).join(" ")}`);
  } else {
    lines.push(job.payload.val.trimEnd());
  }
  log("debug", `rendered ${job.name} for ${site}`);
  return lines.join("\n") + "\n";
}
