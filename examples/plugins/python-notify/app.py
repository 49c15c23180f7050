"""A notifier callback in Python: one JSON line per event it subscribes to, in a granted outbox.

    [[callbacks]]
    plugin = "plugins/python_notify.wasm"
    config = { channel = "#hpc" }
    [callbacks.grants]
    write = ["outbox"]

It asks only for `submitted`, `completed` and `failed` (its `subscriptions` export). A real notifier
would post to a chat service; a plugin has no network, so it leaves messages for a host-side relay.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import host, types


def setting(key, default):
    return dict(host.config()).get(key, default)


class WitWorld(wit_world.WitWorld):
    def subscriptions(self):
        return [types.EventKind.SUBMITTED, types.EventKind.COMPLETED, types.EventKind.FAILED]

    def on_event(self, event):
        channel = setting("channel", "#general")
        state = None
        if isinstance(event.detail, types.EventDetail_Status):
            state = event.detail.value.current.state.name
        message = {
            "channel": channel,
            "event": event.id,
            "kind": event.kind.name.lower().replace("_", "-"),
            "job": event.job.name,
            "job_id": event.job_id,
            "state": state,
            "text": f"{event.job.name} ({event.job_id or 'not submitted yet'}): {event.kind.name.lower()}",
        }
        path = "outbox/" + channel.strip("#") + ".jsonl"
        try:
            with open(path, "a") as outbox:
                outbox.write(json.dumps(message, sort_keys=True) + "\n")
        except OSError as error:
            raise Err(types.CallbackError(message=f"cannot write {path}: {error}", retryable=True))
        host.log(host.Level.INFO, f"queued a message for {channel}")
