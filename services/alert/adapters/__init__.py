"""The alert service's I/O, one job per module:

* `outbox_rows` — the outbox's tables and the rows it keeps and answers with;
* `sqlite_lane` — one SQLite connection on a thread of its own, writes taking turns;
* `group_commit` — the operators' appends, committed together (one fsync) with idempotency;
* `outbox` — the durable outbox (SQLite) the handlers append to and the relay reads;
* `relay` — publishes the outbox to Kafka, in order, retrying forever;
* `relay_wake` — wakes the relay in whichever worker runs it when another worker commits;
* `progress` — what the operator's page shows after the 202 (Redis);
* `limiter` — the Redis rate limiter for public tips;
* `photos` — the photos operators upload.
"""
