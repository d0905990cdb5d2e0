#!/usr/bin/env python3
"""Run a real PostgreSQL client's own test suite against a server, and gate on it.

    tests/clients/run.py SUITE --port N [--host H] [--update] [--junit DIR]
    tests/clients/run.py SUITE --server-binary target/debug/lakehouse [--update] [--junit DIR]

SUITE is one of: sqlalchemy, psycopg2, asyncpg (see SUITES below for what each runs).

What it does:
  1. makes (or reuses) a venv in the cache dir ($LAKEHOUSE_CLIENTS_CACHE, default
     ~/.cache/lakehouse-clients; never inside the repository) with the exact versions of
     tests/clients/requirements.txt; a change of that file or of Python makes a new venv;
  2. downloads the suite's sdist with pip (pinned version, sha256 checked) and unpacks it
     in the cache dir;
  3. with --server-binary, starts that lakehouse on a free loopback port with a fresh
     temporary data dir, waits until it accepts a TCP connection, and stops it at the end;
  4. runs the suite with pytest (per-test timeout from pytest-timeout, --junitxml), and
     reads the JUnit XML into passed / failed / skipped per test id;
  5. compares the failures with tests/clients/SUITE.known-failures (one test id per line,
     sorted; lines starting with # are comments). Tests in tests/clients/SUITE.flaky (same
     format; each with a comment saying why) may pass or fail: they are not compared.

Exit status: 0 when the run matches the list; 1 when it does not: a failure or error not
in the list, a listed test that passed, or a listed test that did not fail (skipped or not
run at all; the list must shrink as things are fixed); 2 when nothing could be judged:
zero tests ran, no JUnit file, setup failed, the server did not start or died during the
run. Every offending test id is printed. --update rewrites the list from this run instead
(and exits 0 unless nothing ran).

Extra arguments after `--` go to pytest (a selection such as `-- -k Reflection`); with a
selection, listed tests that did not run are not counted against the run, and --update
keeps them.
"""

import argparse
import collections
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
REQUIREMENTS = os.path.join(HERE, "requirements.txt")
CACHE = os.path.expanduser(os.environ.get("LAKEHOUSE_CLIENTS_CACHE", "~/.cache/lakehouse-clients"))

# Each suite: the sdist that holds its tests (exact version and sha256), what pytest runs
# inside the unpacked sdist, and the default database and user it connects as.
SUITES = {
    "sqlalchemy": {
        "sdist": ("SQLAlchemy", "2.1.9", "sqlalchemy-2.1.9.tar.gz",
                  "d700a8b2edfb26282a470333d6bc4a454c4acda4d201a3bea7b72fa76c217d28"),
        "database": "test",
        "user": "postgres",
    },
    "psycopg2": {
        "sdist": ("psycopg2", "2.9.13", "psycopg2-2.9.13.tar.gz",
                  "d36784fc2dae69523ba4b79c7d1d1b4d6e83e87836874f111262f4db940b16a6"),
        # its own default (tests/testconfig.py): its tests leave tables behind, and the
        # SQLAlchemy suite needs an empty database; made when missing (see suite_setup)
        "database": "psycopg2_test",
        "user": "postgres",
    },
    "asyncpg": {
        "sdist": ("asyncpg", "0.32.0", "asyncpg-0.32.0.tar.gz",
                  "45e64e56714d888330b884aad1dfb363d0bf43fb343e3d1a8968525f3bade478"),
        "database": "postgres",
        "user": "postgres",
    },
}


def log(msg):
    print(msg, flush=True)


def die(msg, code=2):
    log(f"error: {msg}")
    sys.exit(code)


def sh(cmd, **kw):
    r = subprocess.run(cmd, **kw)
    if r.returncode != 0:
        die(f"command failed ({r.returncode}): {' '.join(cmd)}")
    return r


# --- environment -----------------------------------------------------------------------

def ensure_venv():
    """The venv for requirements.txt and this Python, made once and then reused."""
    with open(REQUIREMENTS, "rb") as f:
        key = hashlib.sha256(f.read() + sys.version.encode()).hexdigest()[:12]
    venv = os.path.join(CACHE, f"venv-{key}")
    py = os.path.join(venv, "bin", "python")
    marker = os.path.join(venv, ".complete")
    if os.path.exists(marker):
        return py
    log(f"clients: creating venv {venv}")
    os.makedirs(CACHE, exist_ok=True)
    for old in os.listdir(CACHE):  # venvs of earlier requirements
        if old.startswith("venv-"):
            shutil.rmtree(os.path.join(CACHE, old), ignore_errors=True)
    sh([sys.executable, "-m", "venv", venv])
    sh([py, "-m", "pip", "install", "-q", "-r", REQUIREMENTS])
    with open(marker, "w") as f:
        f.write("ok\n")
    return py


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ensure_sdist(py, suite):
    """The unpacked sdist of the suite, downloaded with pip once and then reused."""
    name, version, filename, sha = SUITES[suite]["sdist"]
    root = os.path.join(CACHE, "sdist")
    unpacked = os.path.join(root, filename[: -len(".tar.gz")])
    if os.path.exists(os.path.join(unpacked, ".complete")):
        return unpacked
    os.makedirs(root, exist_ok=True)
    archive = os.path.join(root, filename)
    if not os.path.exists(archive) or sha256_of(archive) != sha:
        log(f"clients: downloading {name}=={version} sdist")
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            sh([py, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                "-d", tmp, f"{name}=={version}"])
            got = os.path.join(tmp, filename)
            if not os.path.exists(got):
                die(f"pip download of {name}=={version} did not give {filename}: {os.listdir(tmp)}")
            os.replace(got, archive)
    if sha256_of(archive) != sha:
        die(f"{archive}: sha256 {sha256_of(archive)} is not the pinned {sha}")
    shutil.rmtree(unpacked, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        with tarfile.open(archive) as tar:
            kw = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(tmp, **kw)
        os.replace(os.path.join(tmp, os.path.basename(unpacked)), unpacked)
    with open(os.path.join(unpacked, ".complete"), "w") as f:
        f.write("ok\n")
    return unpacked


# --- the server ------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_accepting(host, port, proc, logfile, deadline_s=120):
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        if proc is not None and proc.poll() is not None:
            tail(logfile)
            die(f"the server exited with status {proc.returncode} before accepting connections")
        try:
            with socket.create_connection((host, port), timeout=1):
                return time.monotonic() - start
        except OSError:
            time.sleep(0.05)
    tail(logfile)
    die(f"nothing accepted a connection on {host}:{port} within {deadline_s} s")


def tail(path, n=40):
    if path and os.path.exists(path):
        with open(path, errors="replace") as f:
            lines = f.readlines()[-n:]
        log(f"--- last {len(lines)} lines of {path}:")
        for line in lines:
            log("  " + line.rstrip("\n"))


class Server:
    def __init__(self, binary, outdir, suite):
        self.port = free_port()
        self.data_dir = tempfile.mkdtemp(prefix="lakehouse-clients-")
        self.logfile = os.path.join(outdir, f"{suite}-server.log")
        self.log = open(self.logfile, "w")
        cmd = [binary, "serve", "--data-dir", self.data_dir, "--listen", f"127.0.0.1:{self.port}"]
        log(f"clients: starting {' '.join(cmd)}")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        took = wait_accepting("127.0.0.1", self.port, self.proc, self.logfile)
        log(f"clients: server accepts connections on 127.0.0.1:{self.port} after {took:.1f} s")

    def died(self):
        return self.proc.poll() is not None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)


# --- running a suite -------------------------------------------------------------------

def suite_setup(py, suite, host, port, user, database):
    """What each suite's docs ask of the database before a run (best effort)."""
    if suite == "sqlalchemy":
        # README.unittests.rst: the schemas test_schema and test_schema_2 must exist; without
        # them "a handful of tests which expect them to be present will fail".
        code = (
            "import psycopg2,sys\n"
            "c=psycopg2.connect(host=sys.argv[1],port=int(sys.argv[2]),user=sys.argv[3],dbname=sys.argv[4])\n"
            "c.autocommit=True\n"
            "for s in ('test_schema','test_schema_2'):\n"
            "    try: c.cursor().execute('CREATE SCHEMA IF NOT EXISTS '+s)\n"
            "    except Exception as e: print('clients: could not create schema %s: %s' % (s, str(e).strip()))\n"
        )
        subprocess.run([py, "-c", code, host, str(port), user, database])
    elif suite == "psycopg2":
        # doc/src/install.rst: the tests run against a database called psycopg2_test.
        code = (
            "import psycopg2,sys\n"
            "h,p,u,d=sys.argv[1],int(sys.argv[2]),sys.argv[3],sys.argv[4]\n"
            "try: psycopg2.connect(host=h,port=p,user=u,dbname=d).close()\n"
            "except psycopg2.OperationalError as e:\n"
            "    if 'does not exist' not in str(e): raise\n"
            "    c=psycopg2.connect(host=h,port=p,user=u,dbname='postgres'); c.autocommit=True\n"
            "    c.cursor().execute('CREATE DATABASE \"%s\"' % d); print('clients: created database', d)\n"
        )
        subprocess.run([py, "-c", code, host, str(port), user, database])


def pytest_command(py, suite, src, host, port, user, database, junit, timeout):
    # The pytest script, not `python -m pytest`: -m would put the sdist root (cwd) first on
    # sys.path, and asyncpg's sdist has an uncompiled asyncpg/ there.
    cmd = [os.path.join(os.path.dirname(py), "pytest"), "-p", "no:cacheprovider", f"--junitxml={junit}",
           f"--timeout={timeout}", "--timeout-method=signal", "-o", "junit_family=xunit1",
           "--tb=native", "-rN"]
    env = dict(os.environ)
    for k in list(env):
        if k.startswith(("PG", "PSYCOPG2_")):
            del env[k]
    if suite == "sqlalchemy":
        # test/dialect/test_suite.py is the dialect compliance suite (sqlalchemy.testing.suite);
        # pyproject's addopts stop at 250 failures: lift that, a run must see every test.
        # sqla_provision_plugin.py (beside this file): a CREATE EXTENSION citext/hstore that
        # fails in SQLAlchemy's provisioning is a warning, not the end of the session.
        env["PYTHONPATH"] = HERE
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ in the repository
        cmd += ["-p", "sqla_provision_plugin",
                "test/dialect/test_suite.py", "--maxfail=1000000",
                f"--dburi=postgresql+psycopg2://{user}@{host}:{port}/{database}"]
    elif suite == "psycopg2":
        # tests/testconfig.py reads these; replication tests stay off (no REPL_DSN).
        cmd += ["tests"]
        env.update(PSYCOPG2_TESTDB=database, PSYCOPG2_TESTDB_HOST=host,
                   PSYCOPG2_TESTDB_PORT=str(port), PSYCOPG2_TESTDB_USER=user)
    elif suite == "asyncpg":
        # With PGHOST set, asyncpg._testbase uses the running server (RunningCluster) instead
        # of initdb-ing its own; connections take PGHOST/PGPORT/PGUSER/PGDATABASE.
        # The tests import the installed (compiled) asyncpg, not the sdist's source tree:
        # --import-mode=append keeps the sdist root behind site-packages on sys.path.
        # test__sourcecode.py runs flake8 and mypy over asyncpg's own source: not a client test.
        # TestConnectionAttributes initdb-s a primary/standby pair of its own (HotStandbyTestCase,
        # which ignores PGHOST and fails as root): it never talks to the server under test.
        cmd += ["tests", "--import-mode=append", "--ignore=tests/test__sourcecode.py",
                "--deselect=tests/test_connect.py::TestConnectionAttributes"]
        env.update(PGHOST=host, PGPORT=str(port), PGUSER=user, PGDATABASE=database)
    return cmd, env


# --- results ---------------------------------------------------------------------------

SQLA_BACKEND_SUFFIX = re.compile(r"_postgresql\+psycopg2(_\d+)*$")


def test_id(suite, classname, name):
    if suite == "sqlalchemy":
        # The compliance suite names its per-backend classes after the server's version
        # (ReturningTest_postgresql+psycopg2_15_20): drop that so ids survive a version change.
        classname = SQLA_BACKEND_SUFFIX.sub("", classname)
    return f"{classname}::{name}"


def read_junit(suite, path):
    """{test id: ('passed'|'failed'|'skipped', message)} from a JUnit XML file."""
    rank = {"skipped": 0, "passed": 1, "failed": 2}
    results = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        tid = test_id(suite, case.get("classname", ""), case.get("name", ""))
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
                text = (child.text or "").strip().splitlines()
                message = child.get("message") or (text[-1] if text else "")
                break
            if child.tag == "skipped":
                outcome, message = "skipped", child.get("message", "")
        old = results.get(tid)
        if old is None or rank[outcome] > rank[old[0]]:
            results[tid] = (outcome, message or "")
    return results


def read_list(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]


def write_list(path, suite, ids):
    with open(path, "w") as f:
        f.write(f"# Tests of the {suite} suite known to fail against lakehouse: one test id per line,\n"
                f"# sorted. tests/clients/run.py fails on a failure not listed here and on a listed\n"
                f"# test that did not fail, so fix a test and delete its line (or run with --update).\n")
        for tid in sorted(ids):
            f.write(tid + "\n")


def one_line(message, width=200):
    first = message.strip().splitlines()[0] if message.strip() else "(no message)"
    return first[:width]


def cause_of(message):
    """A failure message reduced to what groups tests with the same cause."""
    m = one_line(message, 300)
    m = re.sub(r"0x[0-9a-fA-F]+", "0x…", m)
    m = re.sub(r"\b\d+\b", "N", m)
    m = re.sub(r"\(Background on this error at: [^)]*\)", "", m)
    m = re.sub(r"; did you mean [^?]*\?", "", m)
    return m[:200]


def print_causes(results, limit):
    groups = collections.defaultdict(list)
    for tid, (outcome, message) in results.items():
        if outcome == "failed":
            groups[cause_of(message)].append(tid)
    log(f"--- top {limit} failure causes:")
    for cause, ids in sorted(groups.items(), key=lambda kv: -len(kv[1]))[:limit]:
        log(f"{len(ids):6d}  {cause}\n        e.g. {sorted(ids)[0]}")


# --- main ------------------------------------------------------------------------------

def main():
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("suite", choices=sorted(SUITES))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int)
    p.add_argument("--server-binary", help="start this lakehouse binary on a free port for the run")
    p.add_argument("--user", help="user to connect as (default: the suite's, postgres)")
    p.add_argument("--database", help="database to connect to (default: the suite's)")
    p.add_argument("--update", action="store_true", help="rewrite SUITE.known-failures from this run")
    p.add_argument("--junit", metavar="DIR", help="keep the JUnit XML and logs in DIR "
                   "(default: CACHE/runs/SUITE)")
    p.add_argument("--timeout", type=int, default=60, help="seconds per test (pytest-timeout)")
    p.add_argument("--suite-timeout", type=int, default=1200, help="seconds for the whole pytest run")
    p.add_argument("--known-failures", help="the list to compare with (default: tests/clients/SUITE.known-failures)")
    p.add_argument("--causes", type=int, default=0, metavar="N",
                   help="also print the N most common failure messages with a test id each")
    args = p.parse_args(argv)
    if (args.port is None) == (args.server_binary is None):
        p.error("give exactly one of --port and --server-binary")

    suite = args.suite
    cfg = SUITES[suite]
    user = args.user or cfg["user"]
    database = args.database or cfg["database"]
    outdir = os.path.abspath(args.junit or os.path.join(CACHE, "runs", suite))
    os.makedirs(outdir, exist_ok=True)
    junit = os.path.join(outdir, f"{suite}.xml")
    pytest_log = os.path.join(outdir, f"{suite}.log")
    if os.path.exists(junit):
        os.remove(junit)
    listfile = args.known_failures or os.path.join(HERE, f"{suite}.known-failures")
    flakyfile = os.path.join(os.path.dirname(listfile), f"{suite}.flaky")

    py = ensure_venv()
    src = ensure_sdist(py, suite)

    server = None
    host, port = args.host, args.port
    if args.server_binary:
        server = Server(os.path.abspath(args.server_binary), outdir, suite)
        host, port = "127.0.0.1", server.port
    else:
        wait_accepting(host, port, None, None, deadline_s=10)
    try:
        suite_setup(py, suite, host, port, user, database)
        cmd, env = pytest_command(py, suite, src, host, port, user, database, junit, args.timeout)
        cmd += extra
        log(f"clients: running {suite} against {host}:{port} (user {user}, database {database}); "
            f"pytest output in {pytest_log}")
        start = time.monotonic()
        with open(pytest_log, "w") as out:
            proc = subprocess.Popen(cmd, cwd=src, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                rc = proc.wait(args.suite_timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                tail(pytest_log)
                die(f"{suite}: pytest ran past --suite-timeout={args.suite_timeout} s and was killed")
        wall = time.monotonic() - start
        server_died = server is not None and server.died()
    finally:
        if server is not None:
            server.stop()
    log(f"clients: pytest exited {rc} after {wall:.0f} s")
    if server_died:
        tail(server.logfile)
        die(f"{suite}: the server died during the run (status {server.proc.returncode})")
    if not os.path.exists(junit):
        tail(pytest_log)
        die(f"{suite}: pytest wrote no JUnit XML (exit {rc})")

    results = read_junit(suite, junit)
    passed = {t for t, (o, _) in results.items() if o == "passed"}
    failed = {t for t, (o, _) in results.items() if o == "failed"}
    skipped = {t for t, (o, _) in results.items() if o == "skipped"}
    known = read_list(listfile)
    dupes = sorted(t for t, n in collections.Counter(known).items() if n > 1)
    known = set(known)
    flaky = set(read_list(flakyfile))
    if flaky:  # outcomes of flaky tests are not compared either way
        known -= flaky
        passed, failed, skipped = passed - flaky, failed - flaky, skipped - flaky

    log(f"{suite}: {len(passed)} passed, {len(failed)} failed ({len(failed & known)} known), "
        f"{len(skipped)} skipped, of {len(results)}"
        + (f" ({len(flaky & set(results))} flaky not counted)" if flaky else ""))
    if args.causes:
        print_causes(results, args.causes)
    if not passed and not failed:
        tail(pytest_log)
        die(f"{suite}: no test ran")

    if args.update:
        keep = {t for t in known if t not in results} if extra else set()
        write_list(listfile, suite, failed | keep)
        log(f"clients: wrote {len(failed | keep)} ids to {listfile}")
        return 0

    new_failures = sorted(failed - known)
    now_pass = sorted(known & passed)
    not_failing = sorted((known & skipped) | (set() if extra else known - set(results)))
    for tid in new_failures:
        log(f"UNEXPECTED FAILURE: {tid}\n    {one_line(results[tid][1])}")
    for tid in now_pass:
        log(f"UNEXPECTED PASS (delete it from {os.path.basename(listfile)}): {tid}")
    for tid in not_failing:
        why = "skipped" if tid in results else "not run"
        log(f"LISTED BUT {why.upper()} (delete it from {os.path.basename(listfile)}): {tid}")
    for tid in dupes:
        log(f"LISTED TWICE in {os.path.basename(listfile)}: {tid}")
    bad = len(new_failures) + len(now_pass) + len(not_failing) + len(dupes)
    if bad:
        log(f"{suite}: FAILED: {len(new_failures)} unexpected failures, {len(now_pass)} unexpected "
            f"passes, {len(not_failing)} listed tests that did not fail"
            + (f", {len(dupes)} duplicate lines" if dupes else "")
            + f" (JUnit XML: {junit}; to accept this run: tests/clients/run.py {suite} ... --update)")
        return 1
    log(f"{suite}: OK, matches {os.path.basename(listfile)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
