-- mana_ai 0.2.0 -> 0.3.0.  Whatever sql/install/*.sql changed since 0.2.0
-- is repeated here, so an upgraded database equals a fresh 0.3.0 install
-- (tests/integration/upgrade.sh compares the two catalogs, from 0.1.0
-- through 0.2.0 and from 0.2.0).  One section per concern, each headed
-- by the issue that brought it.
\echo Use "ALTER EXTENSION mana_ai UPDATE TO '0.3.0'" to load this file. \quit
