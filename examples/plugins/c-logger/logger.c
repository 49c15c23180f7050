// A callback in C: logs one line per event through the host's `log` import, with a prefix from its
// config. Bindings come from `wit-bindgen c` (see build.sh); the component is linked with the
// wasm-component-ld that ships with Rust's wasm32-wasip2 target.
//
//   [[callbacks]]
//   plugin = "plugins/c_logger.wasm"
//   config = { prefix = "audit" }

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen/callbacks.h"

static const char *KIND_NAMES[] = {
    "packaging-begin", "packaging-end", "submit-begin", "submitted", "status-changed", "run-begin", "run-end",
    "completed", "failed", "workflow-begin", "workflow-end", "workflow-task-submitted", "outputs-fetched",
};

// Copy a WIT string into a NUL-terminated buffer (truncating).
static void text(char *buf, size_t size, const callbacks_string_t *s) {
    size_t n = s->len < size - 1 ? s->len : size - 1;
    memcpy(buf, s->ptr, n);
    buf[n] = '\0';
}

void exports_callbacks_subscriptions(callbacks_list_event_kind_t *ret) {
    ret->ptr = NULL;  // an empty list: every event
    ret->len = 0;
}

bool exports_callbacks_on_event(callbacks_event_t *event, callbacks_callback_error_t *err) {
    char prefix[64] = "c-logger";
    callbacks_list_tuple2_string_string_t config;
    slurmkit_plugin_host_config(&config);
    for (size_t i = 0; i < config.len; i++) {
        char key[64];
        text(key, sizeof key, &config.ptr[i].f0);
        if (strcmp(key, "prefix") == 0) text(prefix, sizeof prefix, &config.ptr[i].f1);
    }
    callbacks_list_tuple2_string_string_free(&config);

    if (event->kind >= sizeof KIND_NAMES / sizeof KIND_NAMES[0]) {
        callbacks_string_dup(&err->message, "unknown event kind");
        err->retryable = false;
        slurmkit_plugin_types_event_free(event);
        return false;
    }
    char name[160], job_id[32] = "-", line[320];
    text(name, sizeof name, &event->job.name);
    if (event->job_id.is_some) text(job_id, sizeof job_id, &event->job_id.val);
    snprintf(line, sizeof line, "%s: %s job=%s id=%s", prefix, KIND_NAMES[event->kind], name, job_id);
    callbacks_string_t message;
    callbacks_string_set(&message, line);
    slurmkit_plugin_host_log(SLURMKIT_PLUGIN_HOST_LEVEL_INFO, &message);
    slurmkit_plugin_types_event_free(event);
    return true;
}
