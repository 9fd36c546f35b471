#!/usr/bin/env bash
# demo.sh (make demo): the whole loop on a throwaway cluster.
# Installs what is missing, builds and installs mana_ai, starts a cluster
# with the worker preloaded (ticking every 2 s as an ordinary role, paused
# by mana_ai.enabled = off until the world is loaded) and tells the story
# of tests/lib/demo_story.sh: the world, the worker's ticks, then, with the
# worker paused again, what it planned, for whom, with which tools, why
# the other missions did not run, what the grant decrypted and what the
# metrics say.  tests/worker/demo_story.sh checks that story.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
bash tests/deps.sh
make -s -j2 >/dev/null
make -s install >/dev/null          # the real install, as a DBA would
bash tests/lib/stage.sh             # and the staged copy the cluster loads

exec bash tests/lib/with_cluster.sh --preload -o mana_ai.tick_interval=2 -o mana_ai.role=mana_runner \
    -o mana_ai.enabled=off -- bash tests/lib/demo_story.sh
