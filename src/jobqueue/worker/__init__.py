"""worker_pull: claims jobs, runs their handlers and records each outcome."""
