#!/usr/bin/env python3
"""soak.py: the soak run of tests/worker/soak.sh and bench/soak.

Inside a tests/lib/with_cluster.sh cluster whose worker ticks every second
as a role without BYPASSRLS: four writer sessions play the sync server
(new missions, edits, pauses, reschedules, cadence changes, soft and hard
deletes, agent edits, grant changes, input edits; single rows and small
push batches, some committing late) at about --rate rows/s, while the
worker plans against tests/mock_llm.py (50-500 ms, 5 % errors).  Every
--kill-every seconds the worker is killed with SIGKILL (a crash restart
of the whole cluster), and twice the server is stopped with
`pg_ctlcluster ... stop -m immediate` and started again.  The writers
reconnect and carry on; a row counts as written only once its commit was
acknowledged.  Then the writers stop, the mock stops failing, the worker
ticks until a tick finds nothing left to do, is paused, and the checks
run (check_* below); the first counter-example ends the run with exit 1.

Owns only the soak's own roles, rows and processes.  Must never edit
mana_ai's objects; reads them as a superuser for the checks.

How the checks can be exact with writers racing the worker: writer rows
never write `iterations` (only the runner does), and every writer row
that sets nextRunAt also sets `objective` to a text unique to that row,
with the same field stamps.  A runner row's actor.rationale is then the
objective its write-back replay saw, which names the winning writer row,
and its `iterations` name the runner rows that replay saw.  In the seed
format (FORMAT=seed) the slot it planned is then, by LWW, the nextRunAt
of the newest-stamped of those rows; in the current one (the default)
the runner writes no nextRunAt and keeps its slot state in
mana_ai.mission_slots, which a trigger of the soak's logs as each runner
row is inserted (soak_checks.py's header says how the oracle uses it).
The worker's memory is read from /proc (WorkerMemory) and printed.
"""
import argparse
import datetime as dt
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pq  # noqa: E402
from soak_common import DUE_AT, FORMAT, SEED, STAMPS, Fail, iso, log, metrics, utcnow  # noqa: E402
from soak_writers import (APP_PASSWORD, APP_ROLE, GRANT_INPUTS, LEGACY, INSERT_SQL, Vectors, Writer,  # noqa: E402
                          cadence, space_of)
from soak_checks import (SLOT_LOG_SQL, check_due, check_iterations, check_metrics,  # noqa: E402
                         check_refresh_idle, check_runner_rows, check_slots, check_snapshots, check_tick_runs,
                         check_writes, inject, runner_table)

DB = "mana_sync"
TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


# ---------------------------------------------------------------- connections

def admin_conninfo(db=DB):
    return "dbname=%s application_name=soak-admin connect_timeout=5" % db


def connect(conninfo, deadline):
    """Connect, retrying while the server restarts, until deadline."""
    last = None
    while time.monotonic() < deadline:
        try:
            return pq.Conn(conninfo)
        except pq.ConnectionLost as e:
            last = e
            time.sleep(0.2)
    raise Fail("could not connect within the deadline: %s" % last)


class Admin:
    """One superuser session that reconnects after a crash restart."""

    def __init__(self):
        self.c = None

    def q(self, sql, params=(), timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            if self.c is None:
                self.c = connect(admin_conninfo(), deadline)
            try:
                return self.c.execute(sql, params)
            except pq.ConnectionLost:
                self.c.close()
                self.c = None
                if time.monotonic() > deadline:
                    raise Fail("lost the admin connection for %d s running: %s" % (timeout, sql[:80]))
                time.sleep(0.2)

    def v(self, sql, params=(), timeout=60):
        rows = self.q(sql, params, timeout)
        return rows[0][0] if rows else None

    def close(self):
        if self.c:
            self.c.close()
            self.c = None


def set_guc(admin, name, value):
    admin.q("ALTER SYSTEM SET %s = '%s'" % (name, value))
    admin.q("SELECT pg_reload_conf()")


# ---------------------------------------------------------------- the mock LLM

class Mock:
    def __init__(self, lifetime):
        fd, portfile = tempfile.mkstemp()
        os.close(fd)
        os.unlink(portfile)
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(TOP, "tests", "mock_llm.py"), "--port", "0",
             "--port-file", portfile, "--latency-range", "50-500", "--error-rate", "0.05",
             "--error-modes", "error500,no-plan,garbage,down", "--max-lifetime", str(lifetime)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not os.path.exists(portfile) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not os.path.exists(portfile):
            raise Fail("the mock LLM did not start")
        with open(portfile) as f:
            self.url = "http://127.0.0.1:%d" % int(f.read())
        os.unlink(portfile)

    def call(self, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
        return json.load(urllib.request.urlopen(req, timeout=5))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------- the world

# ---------------------------------------------------------------- setup

# Each user's first mission (no agent, so no concurrency gate) runs every
# minute until a writer changes its cadence: mana_ai's own next slot then
# falls due within any run of more than a minute, so the slot oracle's
# path for it (the runner's nextRunAt, or mana_ai.mission_slots' next
# slot) is taken, and the mission's history grows all run long.
EVERY_MINUTE = {"kind": "cron", "expression": "* * * * *"}


def setup(admin, args, vec, keydir):
    root = connect(admin_conninfo("postgres"), time.monotonic() + 30)
    if not root.execute("SELECT 1 FROM pg_roles WHERE rolname = 'mana_runner'"):
        root.execute("CREATE ROLE mana_runner LOGIN NOBYPASSRLS")
    root.execute("CREATE DATABASE %s" % DB)
    root.close()
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", DB,
                    "-f", os.path.join(TOP, "tests", "fixtures", "sync_changes.sql"),
                    "-c", "CREATE EXTENSION mana_ai",
                    "-v", "runner=mana_runner", "-f", os.path.join(TOP, "tests", "fixtures", "runner_role.sql")],
                   check=True, stdout=subprocess.DEVNULL)
    for sql in SLOT_LOG_SQL:
        admin.q(sql)
    admin.q("CREATE ROLE %s LOGIN PASSWORD '%s' NOSUPERUSER NOBYPASSRLS" % (APP_ROLE, APP_PASSWORD))
    admin.q("GRANT INSERT ON public.sync_changes TO %s" % APP_ROLE)

    # the runner's key, for the grants (owned by the server's user, 0600)
    key = os.path.join(keydir, "key.pem")
    shutil.copy(os.path.join(TOP, "tests", "fixtures", "crypto", "TEST-ONLY-private-key.pem"), key)
    os.chmod(keydir, 0o755)
    os.chmod(key, 0o600)
    owner = os.stat(admin.v("SHOW data_directory")).st_uid
    try:
        os.chown(key, owner, -1)
    except PermissionError:
        pass
    set_guc(admin, "mana_ai.private_key_file", key)
    set_guc(admin, "mana_ai.llm_max_parallel", "32")
    set_guc(admin, "mana_ai.llm_timeout", "5s")
    set_guc(admin, "mana_ai.max_attempts", "2")     # so the failed-iteration path runs too
    if admin.v("SELECT count(*) FROM pg_settings WHERE name = 'mana_ai.planner_protocol'") != "0":
        set_guc(admin, "mana_ai.planner_protocol", os.environ.get("SOAK_PLANNER_PROTOCOL", "json"))

    users = ["su%02d" % i for i in range(args.users)]
    rng = random.Random(args.seed)
    rows = []
    now = utcnow()
    for u in users:
        def add(app, table, rid, data, space=None):
            r = {"id": str(uuid.uuid4()), "app_id": app, "table_name": table,
                 "record_id": rid, "user_id": u, "op": "insert", "data": data,
                 STAMPS: {k: iso(now) for k in data}, "client_id": "soak-setup", "actor": None}
            if not SEED:
                r["space_id"] = space
            rows.append(r)
        add("ai", "agents", LEGACY, {"name": "Mana", "state": "active", "maxConcurrentMissions": 2})
        add("ai", "agents", "ag-%s-a" % u, {"name": "Planer", "role": "Planer", "state": "active",
                                            "maxConcurrentMissions": 3, "maxTokensPerDay": 1000000000})
        add("ai", "agents", "ag-%s-b" % u, {"name": "Coach", "state": "active", "maxConcurrentMissions": 1,
                                            "memory": vec.v["enc_object"]})
        add("notes", "notes", "n1", {"title": vec.v["enc_note_title"], "content": vec.v["enc_note_content"]})
        add("todo", "tasks", "t1", {"title": vec.v["enc_task_title"], "description": vec.v["enc_task_description"],
                                    "status": "open", "dueDate": "2026-05-01"})
        add("journal", "journal", "j1", {"content": vec.v["enc_note_title"]})
        add("companion", "companionGoals", "g1", {"title": "Zehn Seiten lesen", "currentValue": 3,
                                                  "target": {"value": 10, "period": "week"}})
        for k, mid in enumerate(["m-%s-%d" % (u, k) for k in range(8)] + ["mission-abc"]):
            agent = [None, LEGACY, "ag-%s-a" % u, "ag-%s-b" % u, "ag-%s-ghost" % u][k % 5]
            due = rng.random() < 0.5
            data = {"title": "Mission %s" % mid, "conceptMarkdown": "## Idee\nSoak.",
                    "objective": "Ziel %s #init" % mid, "state": "active", "iterations": [],
                    "cadence": EVERY_MINUTE if k == 0 else cadence(rng), "createdAt": iso(now), "updatedAt": iso(now),
                    "nextRunAt": iso(now - dt.timedelta(minutes=5) if due else now + dt.timedelta(days=2)),
                    "inputs": GRANT_INPUTS if mid == "mission-abc" else []}
            if mid == "mission-abc":
                data["grant"] = vec.grant("grant_ok")
            if agent:
                data["agentId"] = agent
            add("ai", "aiMissions", mid, data, space_of(u, k) if k < 8 else None)
    admin.q(INSERT_SQL, (json.dumps(rows),))
    return users


# ---------------------------------------------------------------- chaos

def worker_pid(admin):
    return admin.v("SELECT pid FROM pg_stat_activity WHERE backend_type = 'mana_ai worker'")


def wait_worker(admin, not_pid=None, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = worker_pid(admin)
        if pid and pid != not_pid:
            return pid
        time.sleep(0.1)
    raise Fail("no tick worker within %d s (after pid %s)" % (timeout, not_pid))


def cluster_ctl(action, *extra):
    """pg_ctlcluster on pg_virtualenv's cluster (PG_CLUSTER_CONF_ROOT/<version>/<name>)."""
    root = os.environ.get("PG_CLUSTER_CONF_ROOT")
    if not root:
        raise Fail("PG_CLUSTER_CONF_ROOT is not set: run inside tests/lib/with_cluster.sh")
    found = [(v, n) for v in os.listdir(root) for n in os.listdir(os.path.join(root, v))]
    if len(found) != 1:
        raise Fail("expected one cluster under %s, found %s" % (root, found))
    v, n = found[0]
    r = subprocess.run(["pg_ctlcluster", v, n, action] + list(extra), capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise Fail("pg_ctlcluster %s %s %s failed: %s" % (v, n, action, (r.stderr or r.stdout).strip()))


def proc_kb(pid, fields):
    """{field: kB} from /proc/PID/status, or None once the process is gone (or is no mana_ai worker)."""
    try:
        with open("/proc/%s/cmdline" % pid, "rb") as f:
            if b"mana_ai worker" not in f.read():
                return None
        with open("/proc/%s/status" % pid) as f:
            got = {}
            for line in f:
                k, _, v = line.partition(":")
                if k in fields:
                    got[k] = int(v.split()[0])
            return got
    except (OSError, ValueError, IndexError):
        return None


class WorkerMemory(threading.Thread):
    """The tick worker's memory, every process of it: VmHWM (the kernel's peak
    resident set, shared buffers it touched included) read last just before
    each kill or stop, and RssAnon (private memory: palloc'd contexts, the
    rebuilt records) sampled every 0.25 s, whose peak the kernel keeps no
    record of.  Its own connection; reads /proc/PID/status (readable by
    every user)."""

    FIELDS = ("VmHWM", "VmRSS", "RssAnon", "RssShmem")

    def __init__(self, stop):
        super().__init__(name="worker-memory", daemon=True)
        self.stop_ev = stop
        self.lock = threading.Lock()
        self.seen = {}              # pid -> {"first": t, "last": t, "VmHWM": kB, "RssAnon": kB, ...}
        self.c = None

    def sample(self, pid):
        got = proc_kb(pid, self.FIELDS)
        if got is None:
            return False
        now = time.monotonic()
        with self.lock:
            p = self.seen.setdefault(str(pid), {"first": now})
            p["last"] = now
            for k, v in got.items():
                p[k] = max(p.get(k, 0), v)
        return True

    def run(self):
        pid = None
        while not self.stop_ev.wait(0.25):
            if pid is None or not self.sample(pid):
                pid = self.find()
                if pid is not None:
                    self.sample(pid)
        if self.c:
            self.c.close()

    def find(self):
        try:
            if self.c is None:
                self.c = pq.Conn(admin_conninfo() + " application_name=soak-memory")
            return self.c.value("SELECT pid FROM pg_stat_activity WHERE backend_type = 'mana_ai worker'")
        except (pq.ConnectionLost, pq.SqlError):
            if self.c:
                self.c.close()
            self.c = None
            return None

    def summary(self):
        with self.lock:
            seen = dict(self.seen)
        if not seen:
            return "worker memory: not measured (no worker process was seen)"
        mb = lambda kb: kb / 1024.0  # noqa: E731
        hwm_pid = max(seen, key=lambda p: seen[p].get("VmHWM", 0))
        anon_pid = max(seen, key=lambda p: seen[p].get("RssAnon", 0))
        h, a = seen[hwm_pid], seen[anon_pid]
        return ("worker memory over %d worker processes: peak VmHWM %.1f MB (pid %s, seen for %.0f s; its peak"
                " RssShmem %.1f MB), peak RssAnon %.1f MB (pid %s, sampled every 0.25 s); median of the"
                " processes' peak VmHWM %.1f MB"
                % (len(seen), mb(h.get("VmHWM", 0)), hwm_pid, h["last"] - h["first"], mb(h.get("RssShmem", 0)),
                   mb(a.get("RssAnon", 0)), anon_pid,
                   mb(sorted(p.get("VmHWM", 0) for p in seen.values())[len(seen) // 2])))


class Chaos:
    def __init__(self, admin, memory):
        self.admin = admin
        self.memory = memory
        self.kills = []         # the worker's activity when it was killed
        self.restarts = 0

    def kill(self):
        pid = wait_worker(self.admin)
        phase = self.admin.v("SELECT coalesce(query, '') FROM pg_stat_activity WHERE pid = $1", (pid,)) or ""
        self.memory.sample(pid)
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            return
        self.admin.close()
        self.kills.append(phase.replace("mana_ai tick: ", "") or "idle")
        wait_worker(self.admin, not_pid=pid)

    def restart(self):
        pid = worker_pid(self.admin)
        if pid:
            self.memory.sample(pid)
        self.admin.close()
        cluster_ctl("stop", "-m", "immediate")
        cluster_ctl("start")
        self.restarts += 1
        wait_worker(self.admin)


# ---------------------------------------------------------------- checkpoint, quiet phase

def ok_ticks_of(admin, pid):
    return admin.v("SELECT count(*) FROM mana_ai.tick_runs t, pg_stat_activity a"
                   " WHERE a.pid = $1 AND t.backend_pid = a.pid AND t.started_at >= a.backend_start"
                   "   AND t.source = 'worker' AND t.status = 'ok'", (pid,))


def ticks_metric(m):
    return int(m.get(("mana_ai_ticks_total", "{}"), 0))


def checkpoint(admin, writers, pause):
    """The state and metrics at one instant with no tick and no writer running."""
    pause.set()
    for w in writers:
        if not w.idle.wait(30):
            raise Fail("writer %d did not pause" % w.n)
    pid = worker_pid(admin)
    admin.q("SELECT mana_ai.hold_tick_lock()")
    # the counters of the tick that just released the lock land after it
    deadline = time.monotonic() + 10
    while ticks_metric(metrics(admin)) != int(ok_ticks_of(admin, pid)):
        if time.monotonic() > deadline:
            raise Fail("mana_ai_ticks_total %d never matched the %s ok ticks of worker %s since it started"
                       % (ticks_metric(metrics(admin)), ok_ticks_of(admin, pid), pid))
        time.sleep(0.05)
    admin.q("SELECT count(*) FROM mana_ai.refresh_snapshots()")
    cp = {
        "metrics": metrics(admin),
        "rows": int(admin.v("SELECT count(*) FROM public.sync_changes WHERE app_id = 'ai'"
                            " AND table_name IN ('aiMissions', 'agents')")),
        "audit": int(admin.v("SELECT coalesce(max(id), 0) FROM mana_ai.decrypt_audit")),
        "tick": int(admin.v("SELECT coalesce(max(id), 0) FROM mana_ai.tick_runs")),
        "at": admin.v("SELECT clock_timestamp()"),
        "pid": pid,
    }
    admin.q("SELECT mana_ai.release_tick_lock()")
    pause.clear()
    return cp


def quiesce(admin, since, timeout):
    """Tick until a worker tick leaves nothing due; pause the worker; that tick."""
    deadline = time.monotonic() + timeout
    last_id = int(admin.v("SELECT coalesce(max(id), 0) FROM mana_ai.tick_runs"))
    while True:
        if time.monotonic() > deadline:
            raise Fail("no quiet tick within %d s after the writers stopped (%d due, active, ungated missions"
                       " left); last ticks: %s"
                       % (timeout, len(admin.q(DUE_AT, (admin.v("SELECT clock_timestamp()"),))),
                          admin.q("SELECT id, status, due_missions, plans_written_back, errors::text"
                                  " FROM mana_ai.tick_runs ORDER BY id DESC LIMIT 3")))
        row = admin.q("SELECT id, started_at, plans_written_back, (result ->> 'failedIterations')::int,"
                      "       jsonb_array_length(errors)"
                      "  FROM mana_ai.tick_runs WHERE id > $1 AND source = 'worker' AND status = 'ok'"
                      "   AND started_at > $2::timestamptz ORDER BY id DESC LIMIT 1", (last_id, since))
        if not row:
            time.sleep(0.2)
            continue
        tid, started, written, failed_its, errs = row[0]
        last_id = int(tid)
        if int(written) or int(failed_its or 0) or int(errs):
            continue
        pending = [r for r in admin.q(DUE_AT, (started,)) if r[4]]
        due = [r for r in admin.q(DUE_AT, (started,)) if not r[4]]
        if due:
            raise Fail("tick %s (started %s, wrote nothing) left a due, active, ungated mission unplanned: "
                       "user %s mission %s nextRunAt %s agent %r"
                       % (tid, started, due[0][0], due[0][1], due[0][2], due[0][3]))
        if pending:
            continue            # still backing off from a failure before the writers stopped
        set_guc(admin, "mana_ai.enabled", "off")
        pdeadline = time.monotonic() + 30
        while admin.v("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'mana_ai worker'"
                      "   AND query LIKE 'paused%'") != "1":
            if time.monotonic() > pdeadline:
                raise Fail("the worker did not pause")
            time.sleep(0.1)
        after = admin.q("SELECT count(*) FROM mana_ai.tick_runs WHERE id > $1 AND"
                        " (plans_written_back > 0 OR (result ->> 'failedIterations')::int > 0)", (tid,))
        if after[0][0] != "0":
            set_guc(admin, "mana_ai.enabled", "on")
            continue            # something fell due in the meantime: once more
        last = admin.q("SELECT id, started_at FROM mana_ai.tick_runs WHERE source = 'worker'"
                       " ORDER BY id DESC LIMIT 1")[0]
        return last[0], last[1]


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=80, help="how long the writers write")
    ap.add_argument("--rate", type=float, default=300, help="rows per second of all four writers")
    ap.add_argument("--kill-every", type=float, default=10)
    ap.add_argument("--users", type=int, default=40)
    ap.add_argument("--seed", type=int, default=int(os.environ.get("SOAK_SEED", "0")) or None)
    args = ap.parse_args()
    seed = args.seed or random.SystemRandom().randint(1, 10 ** 6)
    args.seed = seed            # the setup's choices too, so that SOAK_SEED replays them
    log("%s sync format (FORMAT=%s), seed %d (rerun with SOAK_SEED=%d), %g s of writes at %g rows/s,"
        " kill -9 every %g s" % (FORMAT, FORMAT, seed, seed, args.seconds, args.rate, args.kill_every))
    t_start = time.monotonic()
    admin = Admin()
    vec = Vectors()
    keydir = tempfile.mkdtemp()
    mock = Mock(lifetime=args.seconds + 900)
    writers = []
    memory = None
    stop, pause = threading.Event(), threading.Event()
    try:
        users = setup(admin, args, vec, keydir)
        set_guc(admin, "mana_ai.llm_url", mock.url)
        wait_worker(admin)
        memory = WorkerMemory(threading.Event())
        memory.start()
        chaos = Chaos(admin, memory)
        writers = [Writer(n, users[n::4], args.rate / 4, vec, seed * 10 + n, stop, pause) for n in range(4)]
        for w in writers:
            w.start()

        # the disruptions: a kill every kill_every s, and two server
        # restarts half-way between kills at a third and two thirds; the
        # last one leaves a kill_every of writes before the writers stop
        n_kills = max(int(args.seconds // args.kill_every) - 1, 1)
        events = [(i * args.kill_every, chaos.kill) for i in range(1, n_kills + 1)]
        events += [((k * n_kills // 3 + 0.5) * args.kill_every, chaos.restart) for k in (1, 2)]
        t0 = time.monotonic()
        for at, action in sorted(events, key=lambda e: e[0]):
            while time.monotonic() < t0 + at:
                time.sleep(0.1)
                for w in writers:
                    if w.error:
                        raise w.error
            action()
        log("%d kills (%s), %d server restarts in %.0f s"
            % (len(chaos.kills), ", ".join("%s %d" % (p, chaos.kills.count(p)) for p in sorted(set(chaos.kills))),
               chaos.restarts, time.monotonic() - t0))
        cp = checkpoint(admin, writers, pause)
        while time.monotonic() < t0 + args.seconds:
            time.sleep(0.1)
        stop.set()
        for w in writers:
            w.join(60)
            if w.error:
                raise w.error
        wrote_s = time.monotonic() - t0
        stopped_at = admin.v("SELECT clock_timestamp()")
        mock.call("/__control", {"error_rate": 0.0})
        # the backlog of due slots left when the writers stop grows with
        # the run, and drains by each agent's maxConcurrentMissions per
        # tick (after 30 min: about 240 ungated due missions of 5 agents,
        # 14 plans a tick): 120 s for the 80 s run, half the writing time
        # for a long one (a deadline for the wait, not a speed goal)
        t_quiet = time.monotonic()
        quiet_id, quiet_at = quiesce(admin, stopped_at, timeout=max(120.0, args.seconds / 2))
        quiet_s = time.monotonic() - t_quiet
        last_pid = worker_pid(admin)
        if last_pid:
            memory.sample(last_pid)
        memory.stop_ev.set()

        inject(admin, os.environ.get("SOAK_INJECT", ""), cp)
        checks, failures = [], []

        def check(fn, *a):
            try:
                checks.append(fn(admin, *a))
            except Fail as e:
                failures.append("%s: %s" % (fn.__name__, e))
        acked, doubt, doubt_found = (len([i for w in writers for i in w.acked]),
                                     len([i for w in writers for i in w.in_doubt]), 0)
        check(check_writes, writers)
        check(check_snapshots)
        runner_table(admin)
        check(check_runner_rows)
        check(check_iterations)
        check(check_slots)
        check(check_due, quiet_id, quiet_at)
        check(check_tick_runs, chaos)
        check(check_metrics, cp)
        check(check_refresh_idle)
        for f in failures:
            print("soak: FAIL: " + f, file=sys.stderr, flush=True)
        if failures:
            raise Fail("%d of %d checks failed (each with its first counter-example above)"
                       % (len(failures), len(failures) + len(checks)))
        crashed, ok_ticks, skipped = (int(x) for x in admin.q(
            "SELECT count(*) FILTER (WHERE status = 'failed'), count(*) FILTER (WHERE status = 'ok'),"
            "       count(*) FILTER (WHERE status = 'overlap-skipped') FROM mana_ai.tick_runs")[0])

        ops = {}
        for w in writers:
            for k, v in w.ops.items():
                ops[k] = ops.get(k, 0) + v
        plans = admin.q("SELECT count(*) FILTER (WHERE data -> 'iterations' -> -1 ->> 'overallStatus' IS DISTINCT FROM 'failed'),"
                        "       count(*) FILTER (WHERE data -> 'iterations' -> -1 ->> 'overallStatus' = 'failed')"
                        "  FROM public.sync_changes WHERE client_id = 'mana-ai-runner'")[0]
        stats = mock.call("/__stats")
        load = os.getloadavg()
        log("rows written: %d acknowledged in %.0f s (%.0f rows/s; %s), %d in doubt, %d reconnects"
            % (acked, wrote_s, acked / wrote_s, ", ".join("%s %d" % kv for kv in sorted(ops.items())),
               doubt, sum(w.reconnects for w in writers)))
        log("ticks: %s ok, %d failed by a crash, %s overlap-skipped; %s plans and %s failed iterations written;"
            " %d LLM requests (%s injected faults)"
            % (ok_ticks, crashed, skipped, plans[0], plans[1], stats["requests"],
               sum(stats.get("injected", {}).values())))
        log("kills: %d kill -9 of the worker, %d server restarts (pg_ctlcluster stop -m immediate);"
            " quiet %.0f s after the writers stopped (tick %s)" % (len(chaos.kills), chaos.restarts, quiet_s, quiet_id))
        biggest = admin.q("SELECT record_id, jsonb_array_length(data -> 'iterations'), octet_length(data::text)"
                          "  FROM public.sync_changes WHERE client_id = 'mana-ai-runner'"
                          " ORDER BY jsonb_array_length(data -> 'iterations') DESC, created_at DESC LIMIT 1")
        log(memory.summary() + ("; the longest history: mission %s, %s iterations, its last runner row %.0f kB"
                                % (biggest[0][0], biggest[0][1], int(biggest[0][2]) / 1024.0) if biggest else ""))
        for c in checks:
            log("check: " + c)
        log("PASS in %.0f s (load average %.2f %.2f %.2f)" % ((time.monotonic() - t_start,) + load))
        return 0
    except Fail as e:
        print("soak: FAIL: %s" % e, file=sys.stderr, flush=True)
        return 1
    finally:
        stop.set()
        if memory:
            memory.stop_ev.set()
        mock.stop()
        shutil.rmtree(keydir, ignore_errors=True)
        admin.close()


if __name__ == "__main__":
    sys.exit(main())
