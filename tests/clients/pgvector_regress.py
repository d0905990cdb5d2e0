#!/usr/bin/env python3
"""Run pgvector's own regression tests against a server; count matching statements.

pgvector's test files are NOT part of this repository (licence): fetch pgvector
(0.8.x) somewhere outside the repo and pass its checkout with --pgvector DIR.
This script only reads DIR/test/sql/*.sql and DIR/test/expected/*.out (and, to
classify error messages, DIR/src/*.c).

Usage
-----
    python3 tests/clients/pgvector_regress.py --pgvector /tmp/pgvector --port 5432 \
        [--host 127.0.0.1] [--user U] [--db D] [--show-diffs] [--file NAME] \
        [--fresh-db] [--server-cmd 'CMD {port} {datadir}'] [--json OUT.json]

How a file is run (what pg_regress does)
----------------------------------------
Each selected file is fed on standard input to

    psql -X -a -q -d DB -v HIDE_TABLEAM=on -v HIDE_TOAST_COMPRESSION=on

with stdout and stderr going to the same file, environment PGTZ=PST8PDT,
PGDATESTYLE='Postgres, MDY', LC_MESSAGES=C, PGAPPNAME=pg_regress, in a scratch
working directory holding a results/ folder (copy.sql's \\copy writes there).
As pg_regress's --load-extension=vector does, `CREATE EXTENSION IF NOT EXISTS
vector` is run first in a separate psql call (its failure is reported, not fatal).
Statements of a file that are not counted still run, as they would under
pg_regress, so the counted ones see the same state.

One difference: psql also gets `-v VERBOSITY=verbose` so that every error
carries its SQLSTATE.  The output is then normalised back to the default
verbosity before comparison: `ERROR:  22P02: msg` becomes `ERROR:  msg` (same
for NOTICE/WARNING/...), and the verbose-only lines `LOCATION:`, `SCHEMA NAME:`,
`TABLE NAME:`, `COLUMN NAME:`, `DATATYPE NAME:`, `CONSTRAINT NAME:` are dropped.

Isolation: pg_regress runs all files in one fresh database.  Here each file gets
a fresh one where asked:
  --fresh-db      (PostgreSQL) CREATE DATABASE pgvregress_<file> TEMPLATE template0
                  through --db, run the file there, DROP it afterwards.
  --server-cmd    start this command per file (with {port} and {datadir}
                  replaced: a new empty temporary directory each time), wait
                  until it accepts connections, run the file, stop it (SIGTERM,
                  then SIGKILL after 10 s).  Meant for lakehouse, e.g.
                  --server-cmd '/tmp/lh-bin2/lakehouse serve --data-dir {datadir}
                  --listen 127.0.0.1:{port}'
Without either, every file runs in --db as it is.

Splitting into statements
-------------------------
psql -a echoes every non-empty input line (statements and `--` comments) before
running it.  The .sql file is parsed into statements (a statement ends at a line
ending in `;` outside quotes, or is one backslash command line) and comment
lines.  In the expected and in the actual output, the echo of each item is
found in order; a statement's block is its echo plus every line up to the next
item's echo.  A statement whose echo cannot be found in the actual output (psql
or the server died) gets an empty block and fails.

Which statements count ("vector-type statements")
--------------------------------------------------
Files that exercise the `vector` type itself.  halfvec.sql, sparsevec.sql,
bit.sql, hnsw_bit/halfvec/sparsevec.sql and all ivfflat_*.sql are excluded.
    vector_type.sql   every statement
    hnsw_vector.sql   every statement (hnsw index on vector, hnsw GUCs/options)
    btree.sql         statements of the `-- vector` section
    copy.sql          statements of the `-- vector` section (incl. the \\copy lines)
    cast.sql          statements that use the vector type (`::vector`,
                      `vector(`, `array_to_vector`) and mention no halfvec or
                      sparsevec
With pgvector 0.8.6 that is 158 + 75 + 6 + 8 + 22 = 269 statements.  (The
earlier measurement's 239 = vector_type + hnsw_vector + 6 more, e.g. btree's
vector section; per-file lines below let any such subset be summed.)

When a statement passes
-----------------------
  1. its actual block equals the expected block line for line (echo, column
     names, rows, row count, the error message with its LINE/caret, DETAIL and
     HINT lines), after the verbosity normalisation above; or
  2. both blocks contain an `ERROR:` line and the SQLSTATE classes (first two
     characters) of their first errors are equal.  The actual SQLSTATE is the
     one the server sent (verbose output).  The expected SQLSTATE is inferred
     from the expected message, since .out files show only the message: first
     from pgvector's own sources (every `errcode(ERRCODE_X), errmsg("fmt"`
     pair, and `elog(ERROR, "fmt")` = XX000, in DIR/src/*.c), then from a small
     table of PostgreSQL core messages below.  An expected error whose class
     cannot be inferred passes only by rule 1.
Everything else fails: different text, error expected but success (or the
reverse), different error class.

Output: `file: identical/total` per file (identical = passing by rule 1 or 2;
the part passing only by rule 2 is shown in brackets), then
`pgvector: X of Y statements (Z%)`.  --show-diffs prints expected and actual
blocks of each failing statement; --json writes every statement's result.
"""

import argparse
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

# --- selection -------------------------------------------------------------

VECTOR_WORD = re.compile(r"::\s*vector\b|\bvector\s*\(|\barray_to_vector\b", re.I)
OTHER_TYPES = re.compile(r"\b(halfvec|sparsevec)\b", re.I)


def select_all(stmt):
    return True


def select_section(name):
    def sel(stmt):
        return stmt["section"] == name
    return sel


def select_cast(stmt):
    t = stmt["text"]
    return bool(VECTOR_WORD.search(t)) and not OTHER_TYPES.search(t)


SELECTION = [
    ("vector_type", select_all),
    ("hnsw_vector", select_all),
    ("btree", select_section("vector")),
    ("copy", select_section("vector")),
    ("cast", select_cast),
]

# --- expected SQLSTATE inference --------------------------------------------

ERRCODE_NAMES = {
    "ERRCODE_DATA_EXCEPTION": "22000",
    "ERRCODE_FEATURE_NOT_SUPPORTED": "0A000",
    "ERRCODE_INVALID_PARAMETER_VALUE": "22023",
    "ERRCODE_INVALID_TEXT_REPRESENTATION": "22P02",
    "ERRCODE_NULL_VALUE_NOT_ALLOWED": "22004",
    "ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE": "22003",
    "ERRCODE_PROGRAM_LIMIT_EXCEEDED": "54000",
    "ERRCODE_INTERNAL_ERROR": "XX000",
    "ERRCODE_INVALID_OBJECT_DEFINITION": "42P17",
    "ERRCODE_OUT_OF_MEMORY": "53200",
    "ERRCODE_SYNTAX_ERROR": "42601",
    "ERRCODE_UNDEFINED_OBJECT": "42704",
    "ERRCODE_DATATYPE_MISMATCH": "42804",
    "ERRCODE_WRONG_OBJECT_TYPE": "42809",
    "ERRCODE_INVALID_TABLE_DEFINITION": "42P16",
    "ERRCODE_INSUFFICIENT_PRIVILEGE": "42501",
}

# PostgreSQL core messages seen in (or likely near) pgvector's tests.
CORE_MESSAGES = [
    (r"^invalid input syntax for type ", "22P02"),
    (r"^value out of range: (overflow|underflow)", "22003"),
    (r" is out of range for type ", "22003"),
    (r" is outside the valid range for parameter ", "22023"),
    (r"^invalid value for parameter ", "22023"),
    (r"^value .* out of bounds for option ", "22023"),
    (r"^unrecognized parameter ", "22023"),
    (r"^invalid type modifier", "22023"),
    (r"^syntax error at or near", "42601"),
    (r"^column .* does not exist", "42703"),
    (r"^relation .* does not exist", "42P01"),
    (r"^relation .* already exists", "42P07"),
    (r"^function .* does not exist", "42883"),
    (r"^operator does not exist", "42883"),
    (r"^type .* does not exist", "42704"),
    (r"^cannot cast type ", "42846"),
    (r"^division by zero", "22012"),
]


def c_format_to_regex(fmt):
    fmt = fmt.encode().decode("unicode_escape")  # \" -> ", \\ -> \
    out = []
    i = 0
    while i < len(fmt):
        m = re.match(r"%[-+ #0-9.]*(?:l|ll|h|z)?[dusfgeixcp]", fmt[i:])
        if m:
            out.append(".*?")
            i += m.end()
        elif fmt.startswith("%%", i):
            out.append("%")
            i += 2
        else:
            out.append(re.escape(fmt[i]))
            i += 1
    return "^" + "".join(out) + "$"


def load_message_table(pgvector_dir):
    table = []  # (regex, sqlstate, literal length)
    src = os.path.join(pgvector_dir, "src")
    if os.path.isdir(src):
        for name in sorted(os.listdir(src)):
            if not name.endswith(".c"):
                continue
            with open(os.path.join(src, name), encoding="utf-8", errors="replace") as f:
                text = f.read()
            for m in re.finditer(
                r'errcode\((ERRCODE_\w+)\)\s*,\s*errmsg\(\s*"((?:[^"\\]|\\.)*)"', text
            ):
                code = ERRCODE_NAMES.get(m.group(1))
                if code:
                    table.append((c_format_to_regex(m.group(2)), code, len(m.group(2))))
            for m in re.finditer(r'elog\(\s*ERROR\s*,\s*"((?:[^"\\]|\\.)*)"', text):
                table.append((c_format_to_regex(m.group(1)), "XX000", len(m.group(1))))
    # the most specific (longest format) first
    table.sort(key=lambda t: -t[2])
    return [(re.compile(r), c) for r, c, _ in table] + [
        (re.compile(r), c) for r, c in CORE_MESSAGES
    ]


def infer_sqlstate(table, message):
    for rx, code in table:
        if rx.search(message):
            return code
    return None


# --- parsing ------------------------------------------------------------------

def parse_sql(path):
    """Return the list of echoed items: dicts with kind 'stmt' or 'comment'."""
    items = []
    section = None
    cur = None
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    in_quote = False
    for line in lines:
        if cur is None:
            if line.strip() == "":
                continue
            if line.lstrip().startswith("--"):
                items.append({"kind": "comment", "echo": line})
                section = line.lstrip()[2:].strip()
                continue
            if line.lstrip().startswith("\\"):
                items.append({"kind": "stmt", "echo": line, "text": line,
                              "section": section, "line": None})
                continue
            cur = {"kind": "stmt", "echo": line, "text": line, "section": section}
        else:
            cur["text"] += "\n" + line
        # track quotes to find the terminating semicolon
        for ch in line:
            if ch == "'":
                in_quote = not in_quote
        code = line if in_quote else re.sub(r"--.*$", "", line)
        if not in_quote and code.rstrip().endswith(";"):
            items.append(cur)
            cur = None
    if cur is not None:
        items.append(cur)
    n = 0
    for it in items:
        if it["kind"] == "stmt":
            it["index"] = n
            n += 1
    return items


def split_blocks(items, output_lines):
    """Map statement index -> (start, end) line range in output (None when not found)."""
    positions = []
    pos = 0
    for it in items:
        found = None
        for j in range(pos, len(output_lines)):
            if output_lines[j] == it["echo"]:
                found = j
                break
        positions.append(found)
        if found is not None:
            pos = found + 1
    blocks = {}
    for k, it in enumerate(items):
        if it["kind"] != "stmt":
            continue
        start = positions[k]
        if start is None:
            blocks[it["index"]] = None
            continue
        end = len(output_lines)
        for k2 in range(k + 1, len(items)):
            if positions[k2] is not None:
                end = positions[k2]
                break
        blocks[it["index"]] = (start, end)
    return blocks


VERBOSE_CODE = re.compile(
    r"^(ERROR|WARNING|NOTICE|INFO|LOG|DEBUG|FATAL|PANIC):  ([0-9A-Z]{5}): ")
VERBOSE_ONLY = re.compile(
    r"^(LOCATION|SCHEMA NAME|TABLE NAME|COLUMN NAME|DATATYPE NAME|CONSTRAINT NAME):  ")


def normalise(lines):
    """Verbose psql output -> (default-verbosity lines, list of ERROR sqlstates)."""
    out, codes = [], []
    for ln in lines:
        m = VERBOSE_CODE.match(ln)
        if m:
            if m.group(1) == "ERROR":
                codes.append((len(out), m.group(2)))
            ln = m.group(1) + ":  " + ln[m.end():]
        elif VERBOSE_ONLY.match(ln):
            continue
        out.append(ln)
    return out, codes


def first_error(block):
    for ln in block or []:
        if ln.startswith("ERROR:  "):
            return ln[len("ERROR:  "):]
    return None


# --- running ------------------------------------------------------------------

def psql_env(args, db):
    env = dict(os.environ)
    env.update({
        "PGHOST": args.host, "PGPORT": str(args.port), "PGDATABASE": db,
        "PGTZ": "PST8PDT", "PGDATESTYLE": "Postgres, MDY", "LC_MESSAGES": "C",
        "PGAPPNAME": "pg_regress", "PGCONNECT_TIMEOUT": "10",
    })
    if args.user:
        env["PGUSER"] = args.user
    for k in ("PGOPTIONS", "PGSERVICE", "PGSSLMODE"):
        env.pop(k, None)
    return env


def psql_command(args, db, sql, timeout=60):
    return subprocess.run(
        [args.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql],
        env=psql_env(args, db), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=timeout)


def wait_ready(args, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection((args.host, args.port), timeout=1):
                pass
            r = psql_command(args, args.db, "SELECT 1", timeout=10)
            if r.returncode == 0:
                return True
        except (OSError, subprocess.TimeoutExpired):
            pass
        time.sleep(0.3)
    return False


def stop_server(proc):
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_file(args, name, sql_path, workdir):
    """Run one .sql file; return (raw output text, notes)."""
    notes = []
    db = args.db
    proc = None
    datadir = None
    if args.server_cmd:
        datadir = tempfile.mkdtemp(prefix="pgvregress-data-")
        cmd = args.server_cmd.format(port=args.port, datadir=datadir)
        log = open(os.path.join(workdir, name + ".server.log"), "w")
        proc = subprocess.Popen(cmd, shell=True, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        if not wait_ready(args, proc):
            notes.append("server did not become ready")
    try:
        if args.fresh_db:
            db = "pgvregress_" + re.sub(r"\W", "_", name)
            psql_command(args, args.db, 'DROP DATABASE IF EXISTS "%s"' % db)
            r = psql_command(args, args.db, 'CREATE DATABASE "%s" TEMPLATE template0' % db)
            if r.returncode != 0:
                notes.append("CREATE DATABASE failed: " + r.stdout.strip())
                db = args.db
        r = psql_command(args, db, 'CREATE EXTENSION IF NOT EXISTS "vector"')
        if r.returncode != 0:
            notes.append("CREATE EXTENSION failed: " + r.stdout.strip().splitlines()[0]
                         if r.stdout.strip() else "CREATE EXTENSION failed")
        os.makedirs(os.path.join(workdir, "results"), exist_ok=True)
        with open(sql_path, "rb") as fin, \
                open(os.path.join(workdir, name + ".out"), "wb") as fout:
            try:
                subprocess.run(
                    [args.psql, "-X", "-a", "-q", "-d", db,
                     "-v", "HIDE_TABLEAM=on", "-v", "HIDE_TOAST_COMPRESSION=on",
                     "-v", "VERBOSITY=verbose"],
                    stdin=fin, stdout=fout, stderr=subprocess.STDOUT,
                    env=psql_env(args, db), cwd=workdir, timeout=args.timeout)
            except subprocess.TimeoutExpired:
                notes.append("psql timed out after %ss" % args.timeout)
        with open(os.path.join(workdir, name + ".out"), encoding="utf-8",
                  errors="replace") as f:
            output = f.read()
        if args.fresh_db and db != args.db:
            psql_command(args, args.db, 'DROP DATABASE IF EXISTS "%s"' % db)
    finally:
        if proc is not None:
            stop_server(proc)
        if datadir:
            # the server may leave siblings such as DATADIR-rescue
            for d in [datadir] + glob.glob(datadir + "-*"):
                shutil.rmtree(d, ignore_errors=True)
    return output, notes


def compare(expected, actual, actual_codes, table):
    """Return (passed, how, expected_class, actual_code)."""
    exp_err = first_error(expected)
    exp_code = infer_sqlstate(table, exp_err) if exp_err is not None else None
    act_code = actual_codes[0] if actual_codes else None
    if actual is not None and expected == actual:
        return True, "identical", exp_code, act_code
    if actual is None:
        return False, "missing", exp_code, act_code
    act_err = first_error(actual)
    if exp_err is not None and act_err is not None:
        if exp_code and act_code and exp_code[:2] == act_code[:2]:
            return True, "same-class", exp_code, act_code
        return False, "error-class", exp_code, act_code
    if exp_err is not None:
        return False, "error-expected", exp_code, act_code
    if act_err is not None:
        return False, "unexpected-error", exp_code, act_code
    return False, "different", exp_code, act_code


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pgvector", required=True, help="pgvector checkout (outside the repo)")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--user", default=None)
    ap.add_argument("--db", default="postgres")
    ap.add_argument("--show-diffs", action="store_true")
    ap.add_argument("--file", action="append", help="only this file (vector_type or vector_type.sql); repeatable")
    ap.add_argument("--fresh-db", action="store_true", help="CREATE DATABASE per file (PostgreSQL)")
    ap.add_argument("--server-cmd", help="start this per file; {port} {datadir} substituted")
    ap.add_argument("--psql", default="psql")
    ap.add_argument("--timeout", type=int, default=300, help="seconds per file")
    ap.add_argument("--json", help="write per-statement results here")
    ap.add_argument("--keep", help="keep raw psql outputs in this directory")
    args = ap.parse_args()

    testdir = os.path.join(args.pgvector, "test")
    table = load_message_table(args.pgvector)
    wanted = None
    if args.file:
        wanted = {re.sub(r"\.(sql|out)$", "", os.path.basename(f)) for f in args.file}
    workdir = args.keep or tempfile.mkdtemp(prefix="pgvregress-")
    os.makedirs(workdir, exist_ok=True)

    total = passed = 0
    results = []
    classifier_warnings = []
    for name, selector in SELECTION:
        if wanted is not None and name not in wanted:
            continue
        sql_path = os.path.join(testdir, "sql", name + ".sql")
        exp_path = os.path.join(testdir, "expected", name + ".out")
        if not os.path.exists(sql_path) or not os.path.exists(exp_path):
            print("%s: missing in %s" % (name, testdir))
            continue
        items = parse_sql(sql_path)
        with open(exp_path, encoding="utf-8") as f:
            exp_lines = f.read().split("\n")
        exp_ranges = split_blocks(items, exp_lines)
        raw, notes = run_file(args, name, sql_path, workdir)
        act_lines, codes = normalise(raw.split("\n"))
        act_ranges = split_blocks(items, act_lines)
        code_at = dict(codes)
        n_file = p_file = p_class = 0
        for it in items:
            if it["kind"] != "stmt" or not selector(it):
                continue
            i = it["index"]
            r = exp_ranges[i]
            exp = exp_lines[r[0]:r[1]] if r else []
            r = act_ranges[i]
            act = act_lines[r[0]:r[1]] if r else None
            act_codes = [code_at[j] for j in range(r[0], r[1]) if j in code_at] if r else []
            ok, how, exp_code, act_code = compare(exp, act, act_codes, table)
            if how == "identical" and exp_code and act_code and exp_code[:2] != act_code[:2]:
                classifier_warnings.append((name, it["text"], exp_code, act_code))
            n_file += 1
            if ok:
                p_file += 1
                if how == "same-class":
                    p_class += 1
            results.append({
                "file": name, "statement": it["text"], "passed": ok, "how": how,
                "expected_sqlstate": exp_code, "actual_sqlstate": act_code,
                "expected": exp, "actual": act,
            })
            if not ok and args.show_diffs:
                print("=" * 72)
                print("%s: %s  [%s; expected %s, got %s]" % (
                    name, it["text"], how, exp_code or "-", act_code or "-"))
                print("--- expected")
                print("\n".join(exp).rstrip("\n"))
                print("+++ actual")
                print("\n".join(act).rstrip("\n") if act is not None else "(statement not reached)")
        total += n_file
        passed += p_file
        extra = " (%d by SQLSTATE class)" % p_class if p_class else ""
        note = ("  [" + "; ".join(notes) + "]") if notes else ""
        print("%s: %d/%d%s%s" % (name, p_file, n_file, extra, note))
        sys.stdout.flush()
    for name, text, e, a in classifier_warnings:
        print("note: %s: %s: inferred expected SQLSTATE %s but identical output had %s"
              % (name, text, e, a))
    pct = 100.0 * passed / total if total else 0.0
    print("pgvector: %d of %d statements (%.1f%%)" % (passed, total, pct))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
