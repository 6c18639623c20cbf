"""A throwaway PostgreSQL server from Debian's binaries, for tests and the export benchmark.

initdb refuses to run as root, and sessions and CI run as root: the data directory then belongs to the
`postgres` user and the server runs through `runuser`. The server listens on a unix socket only (no
TCP port to collide with other jobs) in a short directory under /tmp, because a socket path must fit
in 107 bytes and Bazel's TEST_TMPDIR does not. `stop()` always runs (context manager), so a failing
test never leaves a postmaster behind.
"""

import contextlib
import glob
import os
import pathlib
import pwd
import shutil
import subprocess
import tempfile

USER = "gate"
PASSWORD = "s3cret-never-printed"  # the tests check that it never reaches a file, a report or a log


def _bindir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL binaries not found under /usr/lib/postgresql/*/bin: run "
                           "scripts/bootstrap.sh (it installs Debian's postgresql package)")
    return pathlib.Path(found[-1]).parent


class Server:
    """A running server; `url(database, password)` builds SQLAlchemy URLs for it."""

    def __init__(self, directory, as_user):
        self.directory = directory
        self._as_user = as_user

    def run(self, tool, *args):
        command = [*self._as_user, str(_bindir() / tool), *args]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=60)

    def url(self, database="postgres", password=PASSWORD, user=USER):
        auth = f"{user}:{password}" if password is not None else user
        return f"postgresql+psycopg://{auth}@/{database}?host={self.directory}"

    def psql(self, database, sql):
        """Run `sql` (as the superuser) with psql; returns its stdout."""
        env = {**os.environ, "PGPASSWORD": PASSWORD}
        return subprocess.run([str(_bindir() / "psql"), "-h", str(self.directory), "-U", USER, "-d", database,
                               "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql],
                              check=True, capture_output=True, text=True, env=env, timeout=60).stdout


@contextlib.contextmanager
def scratch_server():
    """Start a server (password auth, user `gate`), yield a Server, stop it and delete it afterwards."""
    directory = pathlib.Path(tempfile.mkdtemp(prefix="pg-", dir="/tmp"))
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    server = Server(directory, as_user)
    data = directory / "data"
    try:
        (directory / "pw").write_text(PASSWORD + "\n")
        if as_user:
            account = pwd.getpwnam("postgres")
            for path in (directory, directory / "pw"):
                os.chown(path, account.pw_uid, account.pw_gid)
        server.run("initdb", "-D", str(data), "-U", USER, "-A", "scram-sha-256", f"--pwfile={directory / 'pw'}",
                   "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync")
        (directory / "pw").unlink()
        server.run("pg_ctl", "-D", str(data), "-l", str(directory / "log"), "-w", "-o",
                   f"-k {directory} -c listen_addresses='' -c fsync=off", "start")
        yield server
    finally:
        if (data / "postmaster.pid").exists():  # also after a start that failed half-way
            server.run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(directory, ignore_errors=True)
