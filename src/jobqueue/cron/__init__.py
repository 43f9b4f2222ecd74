"""cron_tick: the scheduled driver that calls worker_pull until the queue is drained."""
