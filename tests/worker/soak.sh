#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.role=mana_runner -o max_connections=60
# The soak test (issue 11): four writer sessions play the sync server at
# about 300 rows/s while the worker, as a role without BYPASSRLS, ticks
# every second against the mock LLM (50-500 ms, 5 % errors); the worker is
# killed with kill -9 every 10 s (each a crash restart of the cluster) and
# the server is stopped with -m immediate and started twice.  Then, after
# a last quiet tick: every acknowledged write is there, every snapshot
# equals a full replay, no slot has two iterations and every planned slot
# was due, nothing due and ungated is left, no tick run is left running,
# each run's counts are its rows, and the metrics since the last crash
# moved exactly with the rows.  tests/lib/soak.py does it all and prints
# the figures; bench/soak runs the same for longer.
#   SOAK_SECONDS (default 80) of writes; SOAK_SEED replays a run's choices;
#   SOAK_INJECT=lost-row,snapshot,dup-slot,slot-state,due,running,metrics,shape,refresh
#   plants a counter-example per check (each then fails).
#   FORMAT=current (the default, SPEC 11.1; as every test) or seed (SPEC
#   1.1): the writers write the table's format, and the slot oracle
#   (soak_checks.py) reads the slot each write-back planned from the
#   nextRunAt the runner writes into the log (seed), or walks each
#   mission's write-backs with the slot state mana_ai.mission_slots had at
#   each of their commits (current; a deferred trigger of the soak logs
#   it), and checks that state names the slot the log says it planned.
#   make test runs it in the current format here and in the seed format
#   as seed/worker/soak (tests/run.sh).
set -euo pipefail
exec python3 tests/lib/soak.py --seconds "${SOAK_SECONDS:-80}"
