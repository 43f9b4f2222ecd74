"""Prints DATABASE_URL (read from the environment) as a libpq service file section named
"jobqueue", so psql connects with `service=jobqueue` and the password never appears on a
command line, where `ps` shows it to every user. Standard library only."""

import os
import shlex
import sys
from urllib.parse import parse_qsl, unquote, urlsplit

dsn = os.environ["DATABASE_URL"]
params: dict[str, str] = {}
try:
    if dsn.startswith(("postgresql://", "postgres://")):
        url = urlsplit(dsn)
        found = {
            "user": unquote(url.username or ""),
            "password": unquote(url.password or ""),
            "host": url.hostname or "",
            "port": str(url.port or ""),
            "dbname": unquote(url.path.lstrip("/")),
        }
        params = {key: value for key, value in found.items() if value}
        params.update(parse_qsl(url.query))
    else:
        for item in shlex.split(dsn):
            key, _, value = item.partition("=")
            params[key.strip()] = value
except ValueError:
    sys.exit("DATABASE_URL is not a PostgreSQL connection string")
if any("\n" in value for value in params.values()):
    sys.exit("DATABASE_URL holds a newline")
print("[jobqueue]")
for key, value in params.items():
    print(f"{key}={value}")
