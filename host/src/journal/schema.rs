//! The journal's schema, as migrations applied in order at open (tracked in `PRAGMA user_version`).
//! Never edit or reorder a migration that has shipped; only append. Never make a change an older
//! slurmkit cannot read (adding tables and nullable columns is fine).

/// Ordered migrations. Append only.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: submissions.
    "CREATE TABLE submissions (
        id INTEGER PRIMARY KEY,
        cluster TEXT NOT NULL,
        job_name TEXT NOT NULL,
        job_dir TEXT NOT NULL,
        spec_json TEXT NOT NULL,
        spec_sha256 TEXT NOT NULL,
        renderer TEXT NOT NULL,
        state TEXT NOT NULL,
        job_id TEXT,
        error TEXT,
        created_ms INTEGER NOT NULL,
        submitted_ms INTEGER,
        last_status_json TEXT,
        updated_ms INTEGER NOT NULL
    );
    CREATE INDEX submissions_job_id ON submissions (cluster, job_id);",
    // 2: callback deliveries.
    "CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        submission_id INTEGER REFERENCES submissions (id),
        event_id TEXT NOT NULL,
        event_kind TEXT NOT NULL,
        event_json TEXT NOT NULL,
        plugin TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER NOT NULL,
        last_error TEXT,
        created_ms INTEGER NOT NULL,
        delivered_ms INTEGER,
        UNIQUE (event_id, plugin)
    );
    CREATE INDEX deliveries_due ON deliveries (state, next_attempt_ms);",
    // 3: the callbacks configured when the job was submitted, so its events are journaled for them
    // whichever later run (and from whichever directory) observes the job.
    // NULL for submissions recorded before this column: their events go to the callbacks configured now.
    "ALTER TABLE submissions ADD COLUMN callbacks_json TEXT;",
    // 4: what the host learned about each cluster: the remote home directory, so a job directory's
    // absolute path is known (and journaled) before anything is sent.
    "CREATE TABLE clusters (
        key TEXT PRIMARY KEY,
        home TEXT,
        updated_ms INTEGER NOT NULL
    );",
    // 5: the site policies that passed each submission (name, file, sha256), as JSON; NULL for none
    // and for submissions recorded before policies existed.
    "ALTER TABLE submissions ADD COLUMN policies_json TEXT;",
    // 6: every tool call an MCP client made (`slurmkit mcp`), with its arguments and outcome.
    "CREATE TABLE tool_calls (
        id INTEGER PRIMARY KEY,
        tool TEXT NOT NULL,
        arguments_json TEXT NOT NULL,
        outcome TEXT,
        error TEXT,
        started_ms INTEGER NOT NULL,
        ended_ms INTEGER
    );",
    // 7: what a submission belongs to besides itself: the workflow (job graph) it was submitted in,
    // or the array it is a part of when an array was split at the cluster's MaxArraySize.
    "ALTER TABLE submissions ADD COLUMN group_json TEXT;",
    // 8: the cluster's MaxArraySize and when it was read (arrays of items larger are split).
    "ALTER TABLE clusters ADD COLUMN max_array_size INTEGER;
     ALTER TABLE clusters ADD COLUMN max_array_size_ms INTEGER;",
    // 9: the sha256 of each local input file sent through the cluster's input store, keyed by the
    // file's identity (canonical path, size, times in ns, inode, device), so the next submission knows
    // it without reading the file; a file that changed has another identity and is sent again.
    "CREATE TABLE input_digests (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        ctime_ns INTEGER NOT NULL,
        inode INTEGER NOT NULL,
        dev INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        updated_ms INTEGER NOT NULL
    );",
];
