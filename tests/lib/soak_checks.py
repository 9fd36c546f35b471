"""soak_checks.py: the end-of-run checks of tests/lib/soak.py, the slot
log their slot oracle reads in the current sync format, and the faults
SOAK_INJECT plants to see each of them fail.

Owns the queries that compare the log, the snapshots, the slot state,
tick_runs and the metrics after a soak run, and the soak's own slot log
(SLOT_LOG_SQL, installed by soak.py's setup).  Each check returns one line
saying what it checked, or raises Fail with its first counter-example.
Runs as a superuser with the worker paused; reads only, except inject()
and the temporary tables of the session.

The slot oracle per format (check_slots): in the seed format a runner row
writes the next slot into the record's nextRunAt, so the log alone says
which slot each write-back planned (see soak.py's header).  In the current
format the runner writes only iterations; its slot state (the slot it
planned, the next one by the cadence) is in mana_ai.mission_slots, which
keeps only the latest.  The slot log records, as each runner row is
inserted, the mission's slot state at that moment: the one the runner
planned that row's slot from, which it updates in the same transaction
right after the row (tick_writeback.c).  So the state a write-back left is
the one the next runner row of the mission found, or, for the last one,
mana_ai.mission_slots now.  The oracle walks each mission's runner rows in
order with the rule of mana_ai.missions (the record's nextRunAt if later
than the slot planned before, else the next slot kept then), derives the
slot each one planned, and compares it with the slot the state it left
says it planned.
"""
import json

from soak_common import DUE_AT, SEED, STAMPS, Fail, log, metrics

# A row trigger (never deferred) on the soak's own public.sync_changes: as
# each runner row is inserted, the mission's row of mana_ai.mission_slots
# (the state before that write-back's update, see the header).  Read only
# by check_slots; mana_ai never reads it.
SLOT_LOG_SQL = [
    """CREATE TABLE public.soak_slot_log (
           runner_row   uuid PRIMARY KEY,
           user_id      text NOT NULL,
           mission_id   text NOT NULL,
           has_state    boolean NOT NULL,
           planned_slot timestamptz,
           next_slot    text,
           logged_at    timestamptz NOT NULL DEFAULT clock_timestamp())""",
    """CREATE FUNCTION public.soak_slot_log() RETURNS trigger
           LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
       BEGIN
           INSERT INTO public.soak_slot_log (runner_row, user_id, mission_id, has_state, planned_slot, next_slot)
           SELECT NEW.id, NEW.user_id, NEW.record_id, s.user_id IS NOT NULL, s.planned_slot, s.next_slot
             FROM (SELECT) one
             LEFT JOIN mana_ai.mission_slots s ON s.user_id = NEW.user_id AND s.mission_id = NEW.record_id;
           RETURN NULL;
       END $$""",
    """CREATE TRIGGER soak_slot_log AFTER INSERT ON public.sync_changes
           FOR EACH ROW WHEN (NEW.client_id = 'mana-ai-runner')
           EXECUTE FUNCTION public.soak_slot_log()""",
]


def check_writes(admin, writers):
    """Every acknowledged row is there; nothing is there that was not sent."""
    acked = [i for w in writers for i in w.acked]
    doubt = [i for w in writers for i in w.in_doubt]
    admin.q("CREATE TEMP TABLE soak_acked (id uuid PRIMARY KEY)")
    admin.q("INSERT INTO soak_acked SELECT DISTINCT x::uuid FROM jsonb_array_elements_text($1::jsonb) x",
            (json.dumps(acked),))
    lost = admin.q("SELECT a.id FROM soak_acked a LEFT JOIN public.sync_changes s USING (id)"
                   " WHERE s.id IS NULL LIMIT 1")
    if lost:
        raise Fail("row %s was acknowledged as committed but is not in sync_changes" % lost[0][0])
    extra = admin.q("SELECT s.id, s.client_id FROM public.sync_changes s LEFT JOIN soak_acked a USING (id)"
                    " WHERE s.client_id LIKE 'soak-w%' AND a.id IS NULL AND s.id::text <> ALL ($1::text[])"
                    " LIMIT 1", ("{%s}" % ",".join(doubt),))
    if extra:
        raise Fail("row %s of %s is in sync_changes but its commit was never acknowledged nor in doubt"
                   % extra[0])
    found = admin.v("SELECT count(*) FROM public.sync_changes WHERE id::text = ANY ($1::text[])",
                    ("{%s}" % ",".join(doubt),))
    return ("%d acknowledged rows all present, none unacknowledged (%d in doubt, %s of them committed)"
            % (len(acked), len(doubt), found))


def check_snapshots(admin):
    """Every snapshot equals a full replay of its record by lww_merge."""
    bad = admin.q("""
WITH r AS (SELECT user_id, table_name, record_id,
                  mana_ai.lww_merge(record_id, op, data, %s, created_at ORDER BY created_at, id) AS rec
             FROM public.sync_changes WHERE app_id = 'ai' AND table_name IN ('aiMissions', 'agents')
            GROUP BY 1, 2, 3),
     s AS (SELECT user_id, 'aiMissions' AS table_name, mission_id AS record_id, record FROM mana_ai.mission_snapshots
           UNION ALL SELECT user_id, 'agents', agent_id, record FROM mana_ai.agent_snapshots)
SELECT user_id, table_name, record_id, left(r.rec::text, 300), left(s.record::text, 300)
  FROM r FULL JOIN s USING (user_id, table_name, record_id)
 WHERE r.rec IS DISTINCT FROM s.record
 ORDER BY 1, 2, 3 LIMIT 1""" % STAMPS)
    if bad:
        u, t, rid, replay, snap = bad[0]
        raise Fail("snapshot of %s %s/%s differs from the full replay:\n  replay:   %s\n  snapshot: %s"
                   % (t, u, rid, replay, snap))
    return "%s snapshots equal the full replay of the log by lww_merge" % admin.v(
        "SELECT (SELECT count(*) FROM mana_ai.mission_snapshots) + (SELECT count(*) FROM mana_ai.agent_snapshots)")


def runner_table(admin):
    """The runner's rows, numbered per mission in the log's order."""
    admin.q("""
CREATE TEMP TABLE runner AS
SELECT s.id, s.user_id, s.record_id, s.created_at, s.data, s.%s AS stamps,
       s.actor ->> 'iterationId' AS iteration_id, s.actor ->> 'rationale' AS rationale,
       row_number() OVER (PARTITION BY s.user_id, s.record_id ORDER BY s.created_at, s.id) AS k
  FROM public.sync_changes s WHERE s.client_id = 'mana-ai-runner' AND s.table_name = 'aiMissions'""" % STAMPS)
    admin.q("CREATE INDEX ON runner (user_id, record_id, k)")
    admin.q("ANALYZE runner")


def check_runner_rows(admin):
    """Every runner row has its format's shape: SPEC 1.3/1.4 (seed), 11.2 (current)."""
    common = """s.op <> 'update' OR s.app_id <> 'ai' OR s.schema_version <> 1
       OR s.actor ->> 'kind' IS DISTINCT FROM 'ai' OR s.actor ->> 'missionId' IS DISTINCT FROM s.record_id
       OR jsonb_typeof(s.data -> 'iterations') IS DISTINCT FROM 'array'
       OR s.actor ->> 'iterationId' IS DISTINCT FROM s.data -> 'iterations' -> -1 ->> 'id'"""
    if SEED:
        shape = """EXISTS (SELECT 1 FROM jsonb_object_keys(s.data) k WHERE k NOT IN ('iterations', 'updatedAt', 'nextRunAt'))
       OR (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(s.data) k)
          IS DISTINCT FROM (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(s.field_timestamps) k)
       OR (SELECT count(DISTINCT v) FROM jsonb_each_text(s.field_timestamps) x(k, v)) <> 1"""
        what = "data and field_timestamps of iterations, updatedAt and nextRunAt, one stamp"
    else:
        mixed = admin.q("SELECT user_id, record_id FROM public.sync_changes WHERE table_name = 'aiMissions'"
                        "   AND client_id <> 'mana-ai-runner'"
                        " GROUP BY 1, 2 HAVING count(DISTINCT coalesce(space_id, '')) > 1 LIMIT 1")
        if mixed:
            raise Fail("the writers gave mission %s/%s more than one space_id (the soak's own bug)" % mixed[0])
        shape = """s.data - 'iterations' <> '{}' OR s.field_meta - 'iterations' <> '{}'
       OR jsonb_typeof(s.field_meta -> 'iterations') IS DISTINCT FROM 'string'
       OR s.origin IS DISTINCT FROM 'agent'
       OR s.space_id IS DISTINCT FROM (
              SELECT max(w.space_id) FROM public.sync_changes w
               WHERE w.table_name = 'aiMissions' AND w.user_id = s.user_id AND w.record_id = s.record_id
                 AND w.client_id <> 'mana-ai-runner')"""
        what = "data and field_meta of iterations alone, origin agent, the mission's space_id"
    bad = admin.q("""
SELECT s.id, s.user_id, s.record_id, left((s.data - 'iterations' || '{"iterations": "..."}')::text, 200),
       s.%(stamps)s::text, %(origin)s, %(space)s, s.schema_version, s.actor::text
  FROM public.sync_changes s
 WHERE s.client_id = 'mana-ai-runner' AND (%(common)s OR %(shape)s)
 ORDER BY s.created_at LIMIT 1""" % {"stamps": STAMPS, "origin": "'-'" if SEED else "coalesce(s.origin, 'NULL')",
                                     "space": "'-'" if SEED else "coalesce(s.space_id, 'NULL')", "common": common, "shape": shape})
    if bad:
        raise Fail("runner row %s of %s/%s is not in its format's shape: data %s, stamps %s, origin %s,"
                   " space_id %s, schema_version %s, actor %s" % bad[0])
    return "%s runner rows each in the %s format's shape (op update, actor, %s)" % (
        admin.v("SELECT count(*) FROM runner"), "seed" if SEED else "current", what)


def check_iterations(admin):
    """Each runner row's iterations are the earlier runner rows' plus its own, in order."""
    bad = admin.q("""
SELECT r.user_id, r.record_id, r.id, r.k,
       (SELECT string_agg(e ->> 'id', ',' ORDER BY o) FROM jsonb_array_elements(r.data -> 'iterations') WITH ORDINALITY x(e, o)),
       (SELECT string_agg(p.iteration_id, ',' ORDER BY p.k) FROM runner p
         WHERE p.user_id = r.user_id AND p.record_id = r.record_id AND p.k <= r.k)
  FROM runner r
 WHERE (SELECT string_agg(e ->> 'id', ',' ORDER BY o) FROM jsonb_array_elements(r.data -> 'iterations') WITH ORDINALITY x(e, o))
       IS DISTINCT FROM
       (SELECT string_agg(p.iteration_id, ',' ORDER BY p.k) FROM runner p
         WHERE p.user_id = r.user_id AND p.record_id = r.record_id AND p.k <= r.k)
 ORDER BY r.created_at LIMIT 1""")
    if bad:
        raise Fail("runner row %s (write-back %s of mission %s/%s) holds iterations [%s], "
                   "but the runner rows so far are [%s] (an iteration lost or doubled)"
                   % (bad[0][2], bad[0][3], bad[0][0], bad[0][1], bad[0][4], bad[0][5]))
    return "%s write-backs each hold the earlier iterations plus their own" % admin.v("SELECT count(*) FROM runner")


def check_slots(admin):
    """No two iterations for one due slot, and every planned slot was due (see the header)."""
    admin.q("""
CREATE TEMP TABLE slot_rows AS
SELECT id, user_id, record_id, created_at, data ->> 'objective' AS objective, data ->> 'nextRunAt' AS slot,
       coalesce(mana_ai.iso_timestamp(%(stamps)s ->> 'nextRunAt'), created_at) AS stamp
  FROM public.sync_changes
 WHERE app_id = 'ai' AND table_name = 'aiMissions' AND client_id <> 'mana-ai-runner' AND data ? 'nextRunAt'"""
            % {"stamps": STAMPS})
    admin.q("CREATE INDEX ON slot_rows (user_id, record_id, objective)")
    admin.q("ANALYZE slot_rows")
    unattributed = admin.q("""
SELECT r.id, r.user_id, r.record_id, r.rationale,
       (SELECT count(*) FROM slot_rows w WHERE w.user_id = r.user_id AND w.record_id = r.record_id
           AND w.objective = r.rationale)
  FROM runner r
 WHERE (SELECT count(*) FROM slot_rows w WHERE w.user_id = r.user_id AND w.record_id = r.record_id
           AND w.objective = r.rationale) <> 1
 LIMIT 1""")
    if unattributed:
        raise Fail("runner row %s of %s/%s: its rationale %r matches %s writer rows, not one"
                   % unattributed[0])
    if SEED:
        plan_seed(admin)
    else:
        plan_current(admin)
    dup = admin.q("""
SELECT p.user_id, p.record_id, p.slot, p.by_runner, string_agg(p.id::text || ' at ' || p.created_at, ', ' ORDER BY p.created_at)
  FROM planned p GROUP BY p.user_id, p.record_id, p.src, p.slot, p.by_runner HAVING count(*) > 1
 ORDER BY min(p.created_at) LIMIT 1""")
    if dup:
        raise Fail("mission %s/%s got two iterations for the slot %s (set by %s): runner rows %s"
                   % (dup[0][0], dup[0][1], dup[0][2], "the runner" if dup[0][3] == "t" else "a writer", dup[0][4]))
    early = admin.q("SELECT id, user_id, record_id, slot, created_at FROM planned"
                    " WHERE slot IS NULL OR mana_ai.iso_timestamp(slot) > created_at ORDER BY created_at LIMIT 1")
    if early:
        raise Fail("runner row %s of %s/%s planned the slot %s, which was not due at %s" % early[0])
    n = admin.v("SELECT count(DISTINCT src) || ' due slots planned (' || count(DISTINCT src) FILTER (WHERE by_runner)"
                " || ' of them the runner''s own next slot)' FROM planned")
    if SEED:
        kept = admin.q("SELECT user_id, mission_id FROM mana_ai.mission_slots LIMIT 1")
        if kept:
            raise Fail("mana_ai.mission_slots holds a slot state for %s/%s in the seed format" % kept[0])
        return "%s, each by exactly one iteration, each due when planned" % n
    check_slot_state(admin)
    return ("%s, each by exactly one iteration (no slot instant of a mission twice), each"
            " due when planned, and each the slot the mana_ai.mission_slots state its write-back left names" % n)


def plan_seed(admin):
    """planned: the slot of each runner row, the newest-stamped nextRunAt its replay saw."""
    admin.q("""
CREATE TEMP TABLE planned AS
SELECT r.id, r.user_id, r.record_id, r.created_at, c.src, c.slot, c.by_runner
  FROM runner r
 CROSS JOIN LATERAL (
       SELECT src, slot, by_runner FROM (
              SELECT w.id AS src, w.slot, w.stamp, w.created_at, false AS by_runner FROM slot_rows w
               WHERE w.user_id = r.user_id AND w.record_id = r.record_id AND w.objective = r.rationale
              UNION ALL
              SELECT p.id, p.data ->> 'nextRunAt', mana_ai.iso_timestamp(p.stamps ->> 'nextRunAt'),
                     p.created_at, true FROM runner p
               WHERE p.user_id = r.user_id AND p.record_id = r.record_id AND p.k < r.k) cand
        ORDER BY stamp DESC, created_at DESC, src DESC LIMIT 1) c""")


def plan_current(admin):
    """planned: the slot of each runner row by the current format's rule, walked from the first.

    Row k's replay saw the record's nextRunAt of the writer row its
    rationale names (R).  It planned R if R is later than the slot row k-1
    planned (or it is the first), else the next slot that row k-1 kept
    (the state row k found, in the slot log).  claimed: the slot the state
    row k left says it planned (what row k+1 found, or for the last row
    mana_ai.mission_slots now).
    """
    admin.q("""
CREATE TEMP TABLE walk_base AS
SELECT r.id, r.user_id, r.record_id, r.k, r.created_at, w.id AS wsrc, w.slot AS wslot,
       l.runner_row IS NOT NULL AS logged, coalesce(l.has_state, false) AS found_state,
       l.next_slot AS found_next,
       CASE WHEN r2.id IS NULL THEN s.planned_slot ELSE n.planned_slot END AS claimed
  FROM runner r
  JOIN slot_rows w ON w.user_id = r.user_id AND w.record_id = r.record_id AND w.objective = r.rationale
  LEFT JOIN public.soak_slot_log l ON l.runner_row = r.id
  LEFT JOIN runner r2 ON r2.user_id = r.user_id AND r2.record_id = r.record_id AND r2.k = r.k + 1
  LEFT JOIN public.soak_slot_log n ON n.runner_row = r2.id
  LEFT JOIN mana_ai.mission_slots s ON s.user_id = r.user_id AND s.mission_id = r.record_id""")
    admin.q("CREATE INDEX ON walk_base (user_id, record_id, k)")
    admin.q("ANALYZE walk_base")
    admin.q("""
CREATE TEMP TABLE planned AS
WITH RECURSIVE walk AS (
    SELECT b.id, b.user_id, b.record_id, b.k, b.created_at, b.wsrc AS src, b.wslot AS slot,
           false AS by_runner, b.claimed
      FROM walk_base b WHERE b.k = 1
    UNION ALL
    SELECT b.id, b.user_id, b.record_id, b.k, b.created_at,
           CASE WHEN x.theirs THEN b.wsrc ELSE p.id END,
           CASE WHEN x.theirs THEN b.wslot ELSE b.found_next END,
           NOT x.theirs, b.claimed
      FROM walk p
      JOIN walk_base b ON b.user_id = p.user_id AND b.record_id = p.record_id AND b.k = p.k + 1
     CROSS JOIN LATERAL (
           SELECT b.wslot IS NULL OR p.slot IS NULL
                  OR mana_ai.iso_timestamp(b.wslot) > mana_ai.iso_timestamp(p.slot) AS theirs) x)
SELECT id, user_id, record_id, k, created_at, src, slot, by_runner, claimed FROM walk""")
    walked = admin.v("SELECT (SELECT count(*) FROM runner) - (SELECT count(*) FROM planned)")
    if walked != "0":
        raise Fail("%s runner rows are not in the walk of their mission's write-backs" % walked)


def check_slot_state(admin):
    """Current format: the slot state each write-back left names the slot it planned, once per instant."""
    unlogged = admin.q("SELECT id, user_id, record_id FROM walk_base WHERE NOT logged ORDER BY created_at LIMIT 1")
    if unlogged:
        raise Fail("runner row %s of %s/%s was not inserted through the soak's slot log" % unlogged[0])
    found = admin.q("SELECT id, user_id, record_id, k, found_state FROM walk_base"
                    " WHERE found_state <> (k > 1) ORDER BY created_at LIMIT 1")
    if found:
        raise Fail("runner row %s of %s/%s (its write-back %s) found %s" % (found[0][:4] + (
            "a slot state in mana_ai.mission_slots before the mission's first write-back" if found[0][4] == "t"
            else "no slot state in mana_ai.mission_slots after earlier write-backs (a slot state lost)",)))
    wrong = admin.q("""
SELECT id, user_id, record_id, coalesce(claimed::text, 'none'), slot,
       CASE WHEN by_runner THEN 'the next slot kept before it' ELSE 'the nextRunAt of writer row ' || src END
  FROM planned WHERE mana_ai.iso_timestamp(slot) IS DISTINCT FROM claimed ORDER BY created_at LIMIT 1""")
    if wrong:
        raise Fail("runner row %s of %s/%s: the slot state it left says it planned %s, but by the log and the"
                   " slot states before it, it planned %s (%s)" % wrong[0])
    twice = admin.q("""
SELECT user_id, record_id, claimed, string_agg(id::text || ' at ' || created_at, ', ' ORDER BY created_at)
  FROM planned GROUP BY user_id, record_id, claimed HAVING count(*) > 1 ORDER BY min(created_at) LIMIT 1""")
    if twice:
        raise Fail("mission %s/%s got two iterations for the slot %s: runner rows %s" % twice[0])
    orphan = admin.q("SELECT s.user_id, s.mission_id, s.planned_slot FROM mana_ai.mission_slots s"
                     " WHERE NOT EXISTS (SELECT 1 FROM runner r WHERE r.user_id = s.user_id"
                     "                      AND r.record_id = s.mission_id) LIMIT 1")
    if orphan:
        raise Fail("mana_ai.mission_slots says mission %s/%s planned %s, but it has no write-back" % orphan[0])


def check_due(admin, quiet_id, quiet_at):
    """Nothing due, active and ungated at the last quiet tick is left unplanned."""
    left = admin.q(DUE_AT, (quiet_at,))
    if left:
        raise Fail("mission %s/%s (nextRunAt %s, agent %r) is due, active and not gated at the last quiet tick"
                   " %s (started %s), but has no iteration for that slot" % (left[0][:4] + (quiet_id, quiet_at)))
    n = admin.v("SELECT count(*) FROM mana_ai.missions m WHERE m.state = 'active' AND NOT m.deleted"
                " AND m.next_run_at <= $1::timestamptz", (quiet_at,))
    return ("tick %s (the last quiet tick) left no due, active, ungated mission unplanned (%s due ones gated)"
            % (quiet_id, n))


def check_refresh_idle(admin):
    applied = admin.v("SELECT sum(rows_applied) FROM mana_ai.refresh_snapshots()")
    if applied != "0":
        raise Fail("a refresh after the quiet tick applied %s rows (nothing was new)" % applied)
    return "a refresh after the quiet tick applies nothing"


def inject(admin, fault, cp):
    """SOAK_INJECT=fault,...: plant a counter-example, to see the checks fail."""
    for f in filter(None, fault.split(",")):
        log("injecting fault %r" % f)
        if f == "lost-row":
            admin.q("DELETE FROM public.sync_changes WHERE id = (SELECT id FROM public.sync_changes"
                    " WHERE client_id LIKE 'soak-w%' AND table_name = 'notes' LIMIT 1)")
        elif f == "snapshot":
            admin.q("UPDATE mana_ai.mission_snapshots SET record = record || '{\"title\": \"x\"}'"
                    " WHERE mission_id = (SELECT min(mission_id) FROM mana_ai.mission_snapshots)")
        elif f == "dup-slot":    # a second write-back of a slot that did not see the first
            # (current format: the slot log records the slot state it would have left, the copied row's)
            extra = "" if SEED else ", origin, space_id"
            admin.q("""
INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, %(stamps)s, client_id, actor%(extra)s)
SELECT app_id, table_name, record_id, user_id, op,
       jsonb_set(data, '{iterations}', (data -> 'iterations') - (-1) || jsonb_build_array(jsonb_build_object('id', 'dup'))),
       %(stamps)s, client_id, actor || '{"iterationId": "dup"}'%(extra)s
  FROM public.sync_changes WHERE client_id = 'mana-ai-runner' ORDER BY created_at DESC LIMIT 1"""
                    % {"stamps": STAMPS, "extra": extra})
        elif f == "due":        # a past nextRunAt (and, current format, a past next slot) left unplanned
            pick = admin.q("SELECT user_id, mission_id FROM mana_ai.missions"
                           " WHERE state = 'active' AND NOT deleted AND agent_id IS NULL LIMIT 1")
            if not pick:
                raise Fail("SOAK_INJECT=due: no active mission without an agent to plant it in")
            u, m = pick[0]
            admin.q("""UPDATE mana_ai.mission_snapshots SET record = record || '{"nextRunAt": "2026-01-01T00:00:00.000Z"}'
                        WHERE user_id = $1 AND mission_id = $2""", (u, m))
            admin.q("UPDATE mana_ai.mission_slots SET next_slot = '2026-01-01T00:00:00.000Z'"
                    " WHERE user_id = $1 AND mission_id = $2", (u, m))
        elif f == "slot-state":     # a slot state that is not the one its write-back left
            if SEED:
                admin.q("INSERT INTO mana_ai.mission_slots (user_id, mission_id, planned_slot)"
                        " SELECT user_id, mission_id, now() FROM mana_ai.mission_snapshots LIMIT 1")
            else:
                admin.q("UPDATE mana_ai.mission_slots SET planned_slot = planned_slot - interval '1 ms'"
                        " WHERE (user_id, mission_id) = (SELECT user_id, mission_id FROM mana_ai.mission_slots"
                        "                                  ORDER BY updated_at DESC LIMIT 1)")
        elif f == "shape":      # a runner row off its format's shape
            admin.q("UPDATE public.sync_changes SET %s WHERE id = (SELECT id FROM public.sync_changes"
                    " WHERE client_id = 'mana-ai-runner' ORDER BY created_at DESC, id DESC LIMIT 1)"
                    % ("schema_version = 2" if SEED else "origin = NULL"))
        elif f == "refresh":    # a row that came after the quiet tick's refresh
            admin.q("INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, %s, client_id)"
                    " SELECT 'ai', 'agents', agent_id, user_id, 'update', '{\"name\": \"Injected\"}',"
                    "        jsonb_build_object('name', mana_ai.iso_text(clock_timestamp())), 'soak-inject'"
                    "   FROM mana_ai.agent_snapshots ORDER BY user_id, agent_id LIMIT 1" % STAMPS)
        elif f == "running":
            admin.q("INSERT INTO mana_ai.tick_runs (source, status) VALUES ('worker', 'running')")
        elif f == "metrics":
            admin.q("DELETE FROM mana_ai.tick_runs WHERE id = (SELECT max(id) FROM mana_ai.tick_runs"
                    " WHERE status = 'ok' AND id > $1)", (cp["tick"],))
        else:
            raise Fail("unknown SOAK_INJECT fault %r" % f)


def check_tick_runs(admin, chaos):
    """Nothing left running; a failed run is a crash's; each ok run's counts are its rows."""
    running = admin.q("SELECT id, backend_pid, started_at FROM mana_ai.tick_runs WHERE status = 'running' LIMIT 1")
    if running:
        raise Fail("tick run %s (pid %s, started %s) is still 'running' with the worker paused" % running[0])
    other = admin.q("SELECT id, errors::text FROM mana_ai.tick_runs WHERE status = 'failed'"
                    " AND NOT errors ? 'server restarted' ORDER BY id LIMIT 1")
    if other:
        raise Fail("tick run %s failed for another reason than a crash: %s" % other[0])
    crashed = int(admin.v("SELECT count(*) FROM mana_ai.tick_runs WHERE status = 'failed'"))
    if crashed > len(chaos.kills) + chaos.restarts:
        raise Fail("%d tick runs marked 'server restarted' after only %d kills and %d restarts"
                   % (crashed, len(chaos.kills), chaos.restarts))
    bad = admin.q("""
SELECT t.id, t.plans_written_back, (t.result ->> 'failedIterations')::int, w.plans, w.failed
  FROM mana_ai.tick_runs t
 CROSS JOIN LATERAL (
       SELECT count(*) FILTER (WHERE r.data -> 'iterations' -> -1 ->> 'overallStatus' IS DISTINCT FROM 'failed') AS plans,
              count(*) FILTER (WHERE r.data -> 'iterations' -> -1 ->> 'overallStatus' = 'failed') AS failed
         FROM runner r WHERE r.created_at BETWEEN t.started_at AND t.finished_at) w
 WHERE t.status = 'ok' AND (t.plans_written_back <> w.plans OR (t.result ->> 'failedIterations')::int <> w.failed)
 ORDER BY t.id LIMIT 1""")
    if bad:
        raise Fail("tick run %s says %s plans and %s failed iterations written, its window holds %s and %s rows"
                   % bad[0])
    ok = admin.v("SELECT count(*) FROM mana_ai.tick_runs WHERE status = 'ok'")
    orphans = admin.q("""
SELECT r.id, r.created_at FROM runner r
 WHERE NOT EXISTS (SELECT 1 FROM mana_ai.tick_runs t WHERE r.created_at BETWEEN t.started_at
                   AND coalesce(t.finished_at, 'infinity')) LIMIT 1""")
    if orphans:
        raise Fail("runner row %s (created %s) lies in no tick run" % orphans[0])
    return ("no tick run left running; the %d failed ones all 'server restarted'; the counts of each of"
            " the %s ok runs equal the rows in its window" % (crashed, ok))


def check_metrics(admin, cp):
    """Since the checkpoint (no crash after it) the counters moved exactly with the rows."""
    m1 = metrics(admin)
    d = lambda name, labels="{}": m1.get((name, labels), 0) - cp["metrics"].get((name, labels), 0)  # noqa: E731
    t = admin.q("""
SELECT count(*), coalesce(sum(plans_produced), 0), coalesce(sum(plans_written_back), 0),
       coalesce(sum(parse_failures), 0),
       coalesce(sum((SELECT count(*) FROM jsonb_array_elements_text(errors) e WHERE e LIKE 'mission %')), 0),
       coalesce(max(jsonb_array_length(errors)), 0)
  FROM mana_ai.tick_runs WHERE id > $1 AND source = 'worker' AND status = 'ok'""", (cp["tick"],))[0]
    ticks, produced, written, parse, errors, most = (int(x) for x in t)
    rows = int(admin.v("SELECT count(*) FROM public.sync_changes WHERE app_id = 'ai'"
                       " AND table_name IN ('aiMissions', 'agents')")) - cp["rows"]
    want = [("mana_ai_ticks_total", "{}", ticks, "ok worker ticks"),
            ("mana_ai_tick_duration_seconds_count", "{}", ticks, "ok worker ticks"),
            ("mana_ai_plans_produced_total", "{}", produced, "sum of tick_runs.plans_produced"),
            ("mana_ai_plans_written_back_total", "{}", written, "sum of tick_runs.plans_written_back"),
            ("mana_ai_parse_failures_total", "{}", parse, "sum of tick_runs.parse_failures"),
            ("mana_ai_snapshot_rows_applied_total", "{}", rows, "aiMissions and agents rows written")]
    if most < 50:       # tick_runs keeps at most 50 errors per run
        want.append(("mana_ai_mission_errors_total", "{}", errors, "mission errors in tick_runs.errors"))
    for table, status, name in (("notes", "ok", "mana_ai_decrypts_total"), ("tasks", "ok", "mana_ai_decrypts_total"),
                                ("journal", "scope-violation", "mana_ai_grant_scope_violations_total")):
        n = int(admin.v("SELECT count(*) FROM mana_ai.decrypt_audit WHERE id > $1 AND table_name = $2 AND status = $3",
                        (cp["audit"], table, status)))
        want.append((name, json.dumps({"table": table}), n, "decrypt_audit rows %s/%s" % (table, status)))
    have_hist = any(k[0] == "mana_ai_tick_duration_seconds_count" for k in m1)
    for name, labels, n, what in want:
        if name.endswith("_count") and not have_hist:
            continue
        got = d(name, labels)
        if got != n:
            raise Fail("metric %s%s rose by %g since the checkpoint, but %s: %d"
                       % (name, "" if labels == "{}" else labels, got, what, n))
    return ("%d metrics moved exactly with the rows over the %d ticks (%d plans) since the checkpoint"
            " after the last crash" % (len(want), ticks, written))


