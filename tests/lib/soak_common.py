"""soak_common.py: what tests/lib/soak.py, soak_writers.py and
soak_checks.py share: the sync format the run is in, the failure type,
the log line, the metrics reader and the query for missions due, active
and not gated at a given instant.

Owns nothing but these definitions; runs no query of its own.
"""


import datetime as dt
import os

# FORMAT=current (the default, as in every test: SPEC 11.1, field_meta,
# the runner's next slot in mana_ai.mission_slots) or FORMAT=seed (SPEC
# 1.1, field_timestamps, the runner's next slot in the record's
# nextRunAt).  tests/fixtures/sync_changes.sql reads the same variable.
FORMAT = os.environ.get("FORMAT") or "current"
if FORMAT not in ("current", "seed"):
    raise SystemExit("soak: FORMAT must be current or seed, not %r" % FORMAT)
SEED = FORMAT == "seed"
STAMPS = "field_timestamps" if SEED else "field_meta"     # the stamps column (a constant, never data)


class Fail(Exception):
    pass


def log(msg):
    print("soak: " + msg, flush=True)


def iso(t):
    """As the web app writes it (Date.toISOString)."""
    t = t.astimezone(dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def utcnow():
    return dt.datetime.now(dt.timezone.utc)


METRICS_SQL = "SELECT name, coalesce(labels::text, '{}'), value::text FROM mana_ai.metrics"


def metrics(admin):
    return {(n, l): float(v) for n, l, v in admin.q(METRICS_SQL)}


GATED = """
  (SELECT a.deleted OR a.state IN ('paused', 'archived')
          OR (a.max_tokens_per_day IS NOT NULL
              AND (SELECT coalesce(sum(u.tokens), 0) FROM mana_ai.token_usage u
                    WHERE u.user_id = m.user_id AND u.agent_id = a.agent_id
                      AND u.ts > %(at)s - interval '24 hours') >= a.max_tokens_per_day)
     FROM mana_ai.agents a WHERE a.user_id = m.user_id AND a.agent_id = m.agent_id)"""

# m.slot is the slot mana_ai plans next, the key of mission_attempts: the
# record's nextRunAt in the seed format; in the current one that, or
# mana_ai's own next slot from mission_slots (the view's rule).
DUE_AT = """
SELECT m.user_id, m.mission_id, m.slot, coalesce(m.agent_id, ''),
       (SELECT t.next_attempt_at::text FROM mana_ai.mission_attempts t
         WHERE t.user_id = m.user_id AND t.mission_id = m.mission_id AND t.slot = m.slot
           AND t.next_attempt_at > $1::timestamptz)
  FROM mana_ai.missions m
 WHERE m.state = 'active' AND NOT m.deleted AND m.next_run_at <= $1::timestamptz
   AND NOT coalesce(%s, false)
 ORDER BY m.next_run_at, m.user_id, m.mission_id""" % (GATED % {"at": "$1::timestamptz"})
