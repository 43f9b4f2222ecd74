"""Framework-free HTTP handling shared by both functions, with adapters per runtime."""
