"""How many jobs the HTTP server runs at once: at most ``MAX_CONCURRENCY``, with no queue in front.

On a queue endpoint RunPod's queue holds the jobs a worker cannot take yet. Reached over HTTP there is no
queue, and a request kept waiting behind jobs of unknown length would only look slow; so one the worker
cannot start at once is answered at once, 429 with ``Retry-After``, and its client (or RunPod's load
balancer) tries again, or elsewhere. A job holds its slot from the moment it is admitted until its answer has
been sent, its client has gone or the server has cut it (a stream holds it until its last byte), and never
longer: a client that goes away frees the slot at once, before its job has reached its next check.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RETRY_AFTER_S = 1  # what a 429 asks the client to wait, in seconds: one short job's time
# Native actions that only read or write a little metadata (no model, no aligner): never counted nor refused,
# so a busy worker still lists, shows and deletes its voices and reports its health.
METADATA_ACTIONS = frozenset({"health", "list_models", "list_voices", "get_voice", "delete_voice"})


@dataclass
class Slot:
    """One admitted job's place; ``free`` may be called more than once (the first frees it)."""

    admission: Admission
    freed: bool = False

    def free(self) -> None:
        if not self.freed:
            self.freed = True
            self.admission.running -= 1


@dataclass
class Admission:
    """The slots of one server. Taken and freed on the server's event loop only, so it needs no lock."""

    limit: int
    running: int = field(default=0)

    def take(self, counted: bool = True) -> Slot | None:
        """A slot for a new job, or None when ``limit`` jobs are running; one not ``counted`` (an action in
        METADATA_ACTIONS) always gets a slot, which holds no place."""
        if not counted:
            return Slot(self, freed=True)
        if self.running >= self.limit:
            return None
        self.running += 1
        return Slot(self)
