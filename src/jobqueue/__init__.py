"""Background processing of uploaded files on a PostgreSQL job queue.

Kept free of imports so that each function's cold start loads only what it uses: cron_tick must
never pay for a database driver.
"""

__version__ = "1.0.0"
