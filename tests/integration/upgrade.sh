#!/usr/bin/env bash
# upgrade.sh: ALTER EXTENSION mana_ai UPDATE from every released version
# gives the same catalog as a fresh install of the current one, and keeps
# every row (as pg_cron tests its upgrade chain).
#  - install a released version (0.1.0, then 0.2.0) and fill it: snapshots, audit rows,
#    tick_runs and failed iterations from a tick, a DBA-added tool;
#  - ALTER EXTENSION mana_ai UPDATE;
#  - tests/fixtures/catalog_shape.sql (tables, columns, indexes, policies,
#    triggers, views, functions with their bodies and privileges, comments,
#    shipped tools) prints the same lines as in a fresh database;
#  - every row of every table that existed before is still there, and the
#    DBA's tool is unchanged.
# Runs inside with_cluster.sh (no preload), cwd = repo root.  Without
# UPGRADE_FROM it runs once from each released version (0.1.0, 0.2.0).
set -euo pipefail
. tests/lib/common.sh
if [ -z "${UPGRADE_FROM:-}" ]; then
    for release in 0.1.0 0.2.0; do
        echo "# from $release"
        UPGRADE_FROM=$release bash "$0"
    done
    exit 0
fi
from=$UPGRADE_FROM
old=mana_up_old_${from//./_}; new=mana_up_new_${from//./_}
current=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" mana_ai.control)
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT

# The released versions know only the seed sync format: the old database
# starts in it and, in the current format's run, is migrated in place after
# the upgrade (the order the README's upgrade note asks for).
for db in $old $new; do
    fmt=$FORMAT; [ $db = $old ] && fmt=seed
    q postgres -c "CREATE DATABASE $db" >/dev/null
    FORMAT=$fmt psql -X -q -v ON_ERROR_STOP=1 -d $db -f tests/fixtures/sync_changes.sql >/dev/null
    FORMAT=$fmt psql -X -q -v ON_ERROR_STOP=1 -d $db -f tests/fixtures/tick_world.sql >/dev/null
done
q $old -c "CREATE EXTENSION mana_ai VERSION '$from'" >/dev/null
[ "$(q $old -c "SELECT extversion FROM pg_extension WHERE extname = 'mana_ai'")" = "$from" ] || fail "$from did not install"

# fill the old database the way a running installation would be
q $old >/dev/null <<'SQL'
SELECT * FROM mana_ai.refresh_snapshots();
SELECT mana_ai.audit_decrypt('user-a', 'mission-1', NULL, 'notes', 'note-1', 'ok');
SELECT mana_ai.audit_decrypt('user-a', 'mission-1', NULL, 'tasks', 'task-1', 'scope-violation', 'not in grant');
INSERT INTO mana_ai.tools (name, module, description, parameters)
VALUES ('dba_archive_note', 'notes', 'Archiviert eine Notiz.',
        '[{"name": "noteId", "type": "string", "required": true, "description": "ID der Notiz"}]');
SQL
# the tick's LLM is a closed loopback port: every due mission fails fast
q postgres -c "LOAD 'mana_ai'" -c "ALTER SYSTEM SET mana_ai.llm_url = 'http://127.0.0.1:9'" -c "SELECT pg_reload_conf()" >/dev/null
q $old -c "SELECT mana_ai_tick()" >/dev/null

# row counts of every table, and the DBA's tool, before and after
counts() {
    q "$1" -c "SELECT string_agg(format('%s=%s', c.relname,
                   (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM mana_ai.%I', c.relname), false, true, '')))[1]::text),
                   ' ' ORDER BY c.relname)
                 FROM pg_class c WHERE c.relnamespace = 'mana_ai'::regnamespace AND c.relkind = 'r'
                  AND c.relname = ANY (string_to_array('$2', ' '))"
}
tables=$(q $old -c "SELECT string_agg(relname, ' ') FROM pg_class WHERE relnamespace = 'mana_ai'::regnamespace AND relkind = 'r' AND relname <> 'tools'")
before=$(counts $old "$tables")
tool_before=$(q $old -c "SELECT to_jsonb(t) FROM mana_ai.tools t WHERE name = 'dba_archive_note'")
echo "before: $before"
for t in tick_runs decrypt_audit mission_snapshots mission_attempts; do
    echo "$before" | grep -Eq "(^| )$t=[1-9]" || fail "the $from fill left $t empty: $before"
done

q $old -c "ALTER EXTENSION mana_ai UPDATE" >/dev/null
[ "$(q $old -c "SELECT extversion FROM pg_extension WHERE extname = 'mana_ai'")" = "$current" ] \
    || fail "ALTER EXTENSION did not reach $current"
echo "ok - $from updated to $current"

after=$(counts $old "$tables")
[ "$before" = "$after" ] || fail "rows changed by the upgrade: before '$before', after '$after'"
echo "ok - every row kept: $after"
[ "$(q $old -c "SELECT to_jsonb(t) FROM mana_ai.tools t WHERE name = 'dba_archive_note'")" = "$tool_before" ] \
    || fail "the DBA-added tool changed in the upgrade"
echo "ok - the DBA-added tool kept"

q $new -c "CREATE EXTENSION mana_ai" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d $old -f tests/fixtures/catalog_shape.sql > "$out/upgraded"
psql -X -q -v ON_ERROR_STOP=1 -d $new -f tests/fixtures/catalog_shape.sql > "$out/fresh"
[ "$(wc -l < "$out/fresh")" -gt 100 ] || fail "catalog_shape.sql printed too little: $(wc -l < "$out/fresh") lines"
if ! diff -u "$out/fresh" "$out/upgraded" > "$out/diff"; then
    head -n 60 "$out/diff" >&2
    fail "the upgraded catalog differs from a fresh $current install (- fresh, + upgraded)"
fi
echo "ok - upgraded catalog = fresh $current catalog ($(wc -l < "$out/fresh") facts)"

# The upgraded extension on the current format: the sync server migrates
# the table in place; the refresh and a tick run on it, and the tick's
# writes are the current format's.
if [ "$FORMAT" = current ]; then
    q $old >/dev/null <<'SQL'
ALTER TABLE public.sync_changes RENAME COLUMN field_timestamps TO field_meta;
ALTER TABLE public.sync_changes ADD COLUMN origin text, ADD COLUMN space_id text;
SQL
    [ "$(q $old -c "SELECT mana_ai.sync_format()")" = current ] || fail "the migrated table is not seen as the current format"
    q $old -c "SELECT count(*) FROM mana_ai.refresh_snapshots()" >/dev/null || fail "the refresh failed on the migrated table"
    # the attempts' backoff is over: every failing mission is due again and
    # fails for good (max_attempts 1), which writes a failed iteration
    q $old -c "UPDATE mana_ai.mission_attempts SET next_attempt_at = now() - interval '1 s'" >/dev/null
    q postgres -c "LOAD 'mana_ai'" -c "ALTER SYSTEM SET mana_ai.max_attempts = 1" -c "SELECT pg_reload_conf()" >/dev/null
    tick=$(q $old -c "SELECT mana_ai_tick()")
    case $tick in *field_timestamps*) fail "the upgraded tick still names field_timestamps: $tick" ;; esac
    [ "$(q $old -c "SELECT count(*) > 0 AND bool_and(data - 'iterations' = '{}' AND origin = 'agent')
                    FROM sync_changes WHERE client_id = 'mana-ai-runner' AND field_meta IS NOT NULL AND origin IS NOT NULL")" = t ] \
        || fail "no current-format write-back after the migration: $tick"
    q postgres -c "LOAD 'mana_ai'" -c "ALTER SYSTEM RESET mana_ai.max_attempts" -c "SELECT pg_reload_conf()" >/dev/null
    echo "ok - $from upgraded, then migrated to the current sync format: the tick writes its rows"
fi
