-- mana_ai 0.1.0 -> 0.2.0.  Whatever sql/install/*.sql changed since 0.1.0
-- is repeated here, so an upgraded database equals a fresh 0.2.0 install
-- (tests/integration/upgrade.sh compares the two catalogs).
\echo Use "ALTER EXTENSION mana_ai UPDATE TO '0.2.0'" to load this file. \quit
