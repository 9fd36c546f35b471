"""soak_writers.py: the writer sessions of tests/lib/soak.py, which play
the sync server, and the crypto vectors their rows carry.

Owns the shapes of the rows the writers append (as the web app writes
them, in the sync format the table has: field_timestamps in the seed
format; field_meta, origin NULL and the mission's space_id in the current
one) and which commits were acknowledged.  Must never write `iterations`
(only the runner does), and every row that sets nextRunAt also sets an
`objective` unique to that row, with the same field stamps: soak_checks.py
relies on both to name the slot each write-back planned.  A mission's
space_id never changes (soak_checks.py checks that the runner's rows
carry it).
"""
import datetime as dt
import json
import os
import random
import threading
import time

import pq
from soak_common import SEED, STAMPS, Fail, iso, utcnow

LEGACY = "legacy:ai-default"
APP_ROLE, APP_PASSWORD = "soak_app", "soak-app-pw"
CRON = ["0 9 * * 1-5", "*/30 8-18 * * *", "15 6 * * 0", "0 12 1,15 * *", "45 21 * * 1-5"]
TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DB = "mana_sync"


class Vectors:
    def __init__(self):
        self.v = {}
        with open(os.path.join(TOP, "tests", "fixtures", "crypto", "vectors.txt"), encoding="utf-8") as f:
            for line in f:
                if line.startswith("#") or " " not in line:
                    continue
                k, val = line.rstrip("\n").split(" ", 1)
                self.v[k] = val

    def grant(self, name):
        return json.loads(self.v[name])


GRANT_INPUTS = [{"module": "notes", "table": "notes", "id": "n1"},
                {"module": "tasks", "table": "tasks", "id": "t1"},
                {"module": "journal", "table": "journal", "id": "j1"},
                {"module": "goals", "table": "companionGoals", "id": "g1"}]


def space_of(user, k):
    """The space of the user's k-th initial mission (current format only): a third are shared."""
    return "sp-%s" % user if k % 3 == 1 and not SEED else None


def cadence(rng):
    kind = rng.choice(["interval", "interval", "daily", "weekly", "cron", "manual"])
    if kind == "interval":
        return {"kind": kind, "everyMinutes": rng.choice([60, 240, 1440])}
    if kind == "daily":
        return {"kind": kind, "atHour": rng.randint(0, 23), "atMinute": rng.choice([0, 15, 30, 45])}
    if kind == "weekly":
        return {"kind": kind, "dayOfWeek": rng.randint(0, 6), "atHour": rng.randint(6, 20)}
    if kind == "cron":
        return {"kind": kind, "expression": rng.choice(CRON)}
    return {"kind": "manual"}


# The writers' INSERT in the table's format (STAMPS is a constant).
_COLS = "id, app_id, table_name, record_id, user_id, op, data, %s, client_id, actor%s" % (
    STAMPS, "" if SEED else ", space_id")
INSERT_SQL = ("INSERT INTO public.sync_changes (%s) SELECT %s"
              "   FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, app_id text, table_name text, record_id text,"
              "        user_id text, op text, data jsonb, %s jsonb, client_id text, actor jsonb%s)"
              % (_COLS, _COLS, STAMPS, "" if SEED else ", space_id text"))


class Writer(threading.Thread):
    """One session of the sync server, writing for its own users."""

    def __init__(self, n, users, rate, vectors, seed, stop, pause):
        super().__init__(name="writer-%d" % n, daemon=True)
        self.n, self.users, self.rate, self.vec = n, users, rate, vectors
        self.rng = random.Random(seed)
        self.stop_ev, self.pause_ev = stop, pause
        self.idle = threading.Event()
        self.c = None
        self.seq = 0
        self.client = "soak-w%d" % n
        self.acked = []             # row ids whose commit was acknowledged
        self.in_doubt = []          # row ids whose COMMIT got no answer
        self.ops = {}
        self.reconnects = 0
        self.error = None
        # model: per user, missions {id: alive} and agents
        self.missions = {u: ["m-%s-%d" % (u, k) for k in range(8)] + ["mission-abc"] for u in users}
        self.agents = {u: [LEGACY, "ag-%s-a" % u, "ag-%s-b" % u] for u in users}
        self.spaces = {"m-%s-%d" % (u, k): space_of(u, k) for u in users for k in range(8)}

    # -- row shapes -----------------------------------------------------
    def tag(self):
        self.seq += 1
        return "w%d.%d" % (self.n, self.seq)

    def stamp(self):
        now = utcnow()
        if self.rng.random() < 0.05:            # an offline edit, stamped earlier
            now -= dt.timedelta(seconds=self.rng.randint(1, 120))
        return iso(now)

    def row(self, user, table, record, op, data, app="ai", actor=True):
        """A row as the web app pushes it; origin is left NULL (the web app sends none)."""
        st = self.stamp()
        r = {"id": self.uuid(), "app_id": app, "table_name": table, "record_id": record,
             "user_id": user, "op": op, "data": data,
             STAMPS: {k: st for k in data} if data else {},
             "client_id": self.client,
             "actor": {"kind": "user", "principalId": user, "displayName": user} if actor else None}
        if not SEED:
            r["space_id"] = self.spaces.get(record) if table == "aiMissions" else None
        return r

    def uuid(self):
        b = bytearray(self.rng.getrandbits(128).to_bytes(16, "big"))
        b[6] = (b[6] & 0x0F) | 0x40
        b[8] = (b[8] & 0x3F) | 0x80
        h = b.hex()
        return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])

    def slot(self):
        now, r = utcnow(), self.rng.random()
        if r < 0.60:
            return iso(now - dt.timedelta(seconds=self.rng.randint(0, 600)))
        if r < 0.85:
            return iso(now + dt.timedelta(milliseconds=self.rng.randint(500, 8000)))
        if r < 0.95:
            return iso(now + dt.timedelta(days=self.rng.randint(1, 30)))
        return None

    def scheduled(self, mission, nra, extra=None):
        """A write of nextRunAt always carries a fresh objective (see the header)."""
        d = {"nextRunAt": nra, "objective": "Ziel %s #%s" % (mission, self.tag()),
             "updatedAt": iso(utcnow())}
        d.update(extra or {})
        return d

    def op_rows(self):
        """(op name, rows) of one write, as the web app would push it."""
        rng = self.rng
        u = rng.choice(self.users)
        ms = self.missions[u]
        m = rng.choice(ms) if ms else None
        r = rng.random()
        now = iso(utcnow())
        if r < 0.08 or m is None:
            mid = "m-%s-w%d-%d" % (u, self.n, self.seq + 1)
            agent = rng.choice([None, LEGACY, "ag-%s-a" % u, "ag-%s-b" % u, "ag-%s-ghost" % u])
            data = {"title": "Neue Mission %s" % mid, "conceptMarkdown": "## Idee\nSoak.",
                    "inputs": [{"module": "goals", "table": "companionGoals", "id": "g1"}],
                    "cadence": cadence(rng), "state": "active", "iterations": [],
                    "createdAt": now}
            data.update(self.scheduled(mid, self.slot()))
            if agent:
                data["agentId"] = agent
            ms.append(mid)
            self.spaces[mid] = "sp-%s" % u if not SEED and rng.random() < 0.3 else None
            return "new-mission", [self.row(u, "aiMissions", mid, "insert", data)]
        if r < 0.30:
            field = rng.choice(["title", "conceptMarkdown"])
            return "edit", [self.row(u, "aiMissions", m, "update",
                                     {field: "%s %s" % (field, self.tag()), "updatedAt": now})]
        if r < 0.40:
            state = rng.choice(["paused", "active", "active", "done", "archived"])
            return "pause/resume", [self.row(u, "aiMissions", m, "update", {"state": state, "updatedAt": now})]
        if r < 0.62:
            return "reschedule", [self.row(u, "aiMissions", m, "update", self.scheduled(m, self.slot()))]
        if r < 0.66:
            return "cadence", [self.row(u, "aiMissions", m, "update",
                                        self.scheduled(m, self.slot(), {"cadence": cadence(rng)}))]
        if r < 0.68:
            deleted = None if rng.random() < 0.3 else now
            return "soft-delete", [self.row(u, "aiMissions", m, "update", {"deletedAt": deleted, "updatedAt": now})]
        if r < 0.69 and m != "mission-abc":
            ms.remove(m)
            return "delete", [self.row(u, "aiMissions", m, "delete", None)]
        if r < 0.82:
            a = rng.choice(self.agents[u])
            field, value = rng.choice([
                ("name", "Agent %s" % self.tag()), ("systemPrompt", "Sei knapp. %s" % self.tag()),
                ("memory", self.vec.v["enc_object"]), ("state", rng.choice(["active", "active", "paused"])),
                ("state", "archived"), ("maxConcurrentMissions", rng.randint(1, 4)),
                ("maxTokensPerDay", rng.choice([0, 1000000000, 1000000000])),
                ("deletedAt", rng.choice([None, None, now])),
                ("policy", {"tools": {"undo_drink": "deny"}, "defaultForAi": "propose"})])
            if a == LEGACY and field in ("state", "deletedAt", "maxTokensPerDay"):
                field, value = "name", "Mana %s" % self.tag()
            return "agent-edit", [self.row(u, "agents", a, "update", {field: value, "updatedAt": now})]
        if r < 0.88:
            target = "mission-abc" if rng.random() < 0.7 else m
            g = rng.choice(["grant_ok", "grant_ok", "grant_expired", "grant_wrong_key", None])
            return "grant", [self.row(u, "aiMissions", target, "update",
                                      {"grant": self.vec.grant(g) if g else None,
                                       "inputs": GRANT_INPUTS, "updatedAt": now})]
        if r < 0.94:
            rows = [self.row(u, "notes", "n1", "update", {"content": self.vec.v["enc_note_content"]}, app="notes"),
                    self.row(u, "companionGoals", "g1", "update", {"currentValue": rng.randint(0, 10)},
                             app="companion")]
            return "input-edit", rows[: rng.randint(1, 2)]
        # a push of several changes in one transaction
        rows = [self.row(u, "aiMissions", x, "update", self.scheduled(x, self.slot()))
                for x in rng.sample(ms, min(len(ms), rng.randint(2, 4)))]
        return "batch-reschedule", rows

    # -- the loop -------------------------------------------------------
    def conninfo(self):
        return ("dbname=%s user=%s password=%s application_name=soak-writer-%d connect_timeout=5"
                % (DB, APP_ROLE, APP_PASSWORD, self.n))

    def write(self, rows):
        """True when the commit was acknowledged; ConnectionLost when not."""
        c = self.c
        late = self.rng.random() < 0.05
        batch = len(rows) > 1 or late
        payload = json.dumps(rows)
        if batch:
            c.execute("BEGIN")
        c.execute("SELECT set_config('app.current_user_id', $1, %s)" % ("true" if batch else "false"),
                  (rows[0]["user_id"],))
        sql = INSERT_SQL
        if not batch:
            # In autocommit the INSERT is its own commit: a connection lost
            # before its answer leaves it in doubt like a lost COMMIT.
            try:
                c.execute(sql, (payload,))
            except pq.ConnectionLost:
                self.in_doubt.extend(r["id"] for r in rows)
                raise
            return True
        c.execute(sql, (payload,))
        if late:        # a push that commits late: its created_at is older than rows committed meanwhile
            time.sleep(self.rng.uniform(0.05, 0.4))
        try:
            c.execute("COMMIT")
        except pq.ConnectionLost:
            self.in_doubt.extend(r["id"] for r in rows)
            raise
        return True

    def run(self):
        try:
            self.loop()
        except BaseException as e:      # reported by the main thread
            self.error = e

    def loop(self):
        next_at = time.monotonic()
        while not self.stop_ev.is_set():
            if self.pause_ev.is_set():
                self.idle.set()
                time.sleep(0.02)
                continue
            self.idle.clear()
            if self.c is None:
                try:
                    self.c = pq.Conn(self.conninfo())
                except pq.ConnectionLost:
                    time.sleep(0.2)
                    continue
            op, rows = self.op_rows()
            try:
                self.write(rows)
            except pq.ConnectionLost:
                self.c.close()
                self.c = None
                self.reconnects += 1
                continue
            except pq.SqlError as e:
                raise Fail("writer %d: %s was refused: %s" % (self.n, op, e))
            self.acked.extend(r["id"] for r in rows)
            self.ops[op] = self.ops.get(op, 0) + len(rows)
            next_at += len(rows) / self.rate
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -3:
                next_at = time.monotonic() - 3  # down for a while (restart): catch up 3 s, no more
        if self.c:
            self.c.close()
        self.idle.set()
