-- next_run_at: the next slot of every cadence kind (SPEC 1.2, 4.9).
CREATE EXTENSION mana_ai;
SET TimeZone = 'UTC';

-- manual: never scheduled
SELECT mana_ai.next_run_at('{"kind": "manual"}', '2026-04-15 12:00Z') IS NULL AS manual_is_null;
SELECT mana_ai.next_run_at_in('{"kind": "manual"}', '2026-04-15 12:00Z', 'Europe/Berlin') IS NULL AS manual_is_null_in_zone;
-- STRICT: a NULL argument gives NULL
SELECT mana_ai.next_run_at(NULL, '2026-04-15 12:00Z') IS NULL AS null_cadence,
       mana_ai.next_run_at('{"kind": "daily", "atHour": 9, "atMinute": 0}', NULL) IS NULL AS null_from;

-- interval: from + everyMinutes, sub-second precision kept, zone-free
SELECT c AS cadence, f AS from_ts, mana_ai.next_run_at(c::jsonb, f::timestamptz) AS next
FROM (VALUES
  ('{"kind": "interval", "everyMinutes": 15}', '2026-04-15 12:00:00Z'),
  ('{"kind": "interval", "everyMinutes": 15}', '2026-04-15 12:07:30.25Z'),
  ('{"kind": "interval", "everyMinutes": 60}', '2026-12-31 23:30:00Z'),
  ('{"kind": "interval", "everyMinutes": 1440}', '2028-02-28 06:00:00Z'),
  ('{"kind": "interval", "everyMinutes": 15.0}', '2026-04-15 12:00:00Z')
) AS t(c, f);
-- interval ignores the zone, even across a DST change
SELECT mana_ai.next_run_at_in('{"kind": "interval", "everyMinutes": 60}',
                              '2026-03-29 00:30Z', 'Europe/Berlin') AS interval_over_dst;

-- daily, weekly, cron in UTC (mana_ai.timezone defaults to UTC)
SELECT c AS cadence, f AS from_ts, mana_ai.next_run_at(c::jsonb, f::timestamptz) AS next
FROM (VALUES
  ('{"kind": "daily", "atHour": 9, "atMinute": 30}', '2026-04-15 08:00Z'),  -- later today
  ('{"kind": "daily", "atHour": 9, "atMinute": 30}', '2026-04-15 09:30Z'),  -- at the slot: tomorrow
  ('{"kind": "daily", "atHour": 9, "atMinute": 30}', '2026-04-15 09:29:59.999999Z'),
  ('{"kind": "daily", "atHour": 9, "atMinute": 30}', '2026-01-31 10:00Z'),  -- month boundary
  ('{"kind": "daily", "atHour": 0, "atMinute": 0}', '2026-12-31 23:59:59Z'), -- year boundary
  ('{"kind": "daily", "atHour": 6, "atMinute": 0}', '2028-02-28 07:00Z'),   -- leap day
  ('{"kind": "daily", "atHour": 6, "atMinute": 0}', '2026-02-28 07:00Z'),   -- no leap day
  ('{"kind": "weekly", "dayOfWeek": 1, "atHour": 9}', '2026-04-15 12:00Z'), -- Wed -> Mon 20th
  ('{"kind": "weekly", "dayOfWeek": 3, "atHour": 9}', '2026-04-15 08:59Z'), -- Wed, before the hour
  ('{"kind": "weekly", "dayOfWeek": 3, "atHour": 9}', '2026-04-15 09:00Z'), -- Wed, at the hour: next week
  ('{"kind": "weekly", "dayOfWeek": 0, "atHour": 18}', '2026-12-28 00:00Z'), -- Sunday, over the year end
  ('{"kind": "weekly", "dayOfWeek": 5, "atHour": 7, "atMinute": 45}', '2026-04-15 00:00Z'),
  ('{"kind": "cron", "expression": "*/15 * * * *"}', '2026-04-15 12:07Z'),
  ('{"kind": "cron", "expression": "0 9 * * mon-fri"}', '2026-04-17 09:00Z'), -- Fri -> Mon
  ('{"kind": "cron", "expression": "0 0 1 * *"}', '2026-01-31 00:00Z'),      -- month boundary
  ('{"kind": "cron", "expression": "0 0 1 jan *"}', '2026-06-01 00:00Z'),    -- year boundary
  ('{"kind": "cron", "expression": "0 12 29 2 *"}', '2026-03-01 00:00Z'),    -- next leap day
  ('{"kind": "cron", "expression": "0 0 31 * *"}', '2026-04-01 00:00Z'),     -- April has no 31st
  ('{"kind": "cron", "expression": "0 0 13 * 5"}', '2026-04-15 00:00Z'),     -- 13th OR Friday
  ('{"kind": "cron", "expression": "0 0 */2 * mon"}', '2026-04-15 00:00Z'),  -- odd day AND Monday
  ('{"kind": "cron", "expression": "30 6 * * 7"}', '2026-04-15 00:00Z'),     -- 7 is Sunday
  ('{"kind": "cron", "expression": "@hourly"}', '2026-04-15 00:00Z')
) AS t(c, f);

-- next_run_at reads mana_ai.timezone (UTC here): same as next_run_at_in(..., 'UTC')
SELECT mana_ai.next_run_at(c, '2026-04-15 12:34Z') = mana_ai.next_run_at_in(c, '2026-04-15 12:34Z', 'UTC') AS same_as_utc
FROM (VALUES ('{"kind": "daily", "atHour": 9, "atMinute": 0}'::jsonb),
             ('{"kind": "cron", "expression": "17 */5 * * *"}'::jsonb)) AS t(c);

-- A non-UTC zone: Europe/Berlin, CET (+01) in winter, CEST (+02) in summer.
-- Spring forward 2026-03-29 02:00 -> 03:00; fall back 2026-10-25 03:00 -> 02:00.
-- Results shown in UTC and in Berlin local time.
SELECT c AS cadence, f AS from_ts, n AS next_utc,
       to_char(n AT TIME ZONE 'Europe/Berlin', 'YYYY-MM-DD HH24:MI') AS next_berlin
FROM (VALUES
  ('{"kind": "daily", "atHour": 9, "atMinute": 0}', '2026-01-15 12:00Z'),   -- winter: 08:00Z
  ('{"kind": "daily", "atHour": 9, "atMinute": 0}', '2026-07-15 12:00Z'),   -- summer: 07:00Z
  ('{"kind": "daily", "atHour": 9, "atMinute": 0}', '2026-03-28 08:00Z'),   -- over spring forward: 23 h later
  ('{"kind": "daily", "atHour": 9, "atMinute": 0}', '2026-10-24 07:00Z'),   -- over fall back: 25 h later
  ('{"kind": "daily", "atHour": 2, "atMinute": 30}', '2026-03-28 12:00Z'),  -- 02:30 does not exist: 03:30 CEST
  ('{"kind": "daily", "atHour": 2, "atMinute": 30}', '2026-03-29 01:30Z'),  -- and the day after is normal again
  ('{"kind": "daily", "atHour": 2, "atMinute": 30}', '2026-10-24 12:00Z'),  -- 02:30 twice: first (CEST)
  ('{"kind": "daily", "atHour": 2, "atMinute": 30}', '2026-10-25 00:30Z'),  -- taken once: next day
  ('{"kind": "daily", "atHour": 2, "atMinute": 30}', '2026-10-25 01:10Z'),  -- from inside the repeated hour: second
  ('{"kind": "cron", "expression": "*/30 * * * *"}', '2026-03-29 00:45Z'),  -- 01:45 CET -> 03:00 CEST
  ('{"kind": "cron", "expression": "*/30 * * * *"}', '2026-10-25 00:45Z'),  -- 02:45 CEST -> 03:00 CET (no rerun)
  ('{"kind": "weekly", "dayOfWeek": 0, "atHour": 2}', '2026-03-28 00:00Z'), -- Sunday 02:00 is the gap itself
  ('{"kind": "cron", "expression": "0 0 1 1 *"}', '2026-12-31 22:59Z'),     -- New Year in Berlin is 23:00Z
  ('{"kind": "cron", "expression": "0 0 1 1 *"}', '2026-12-31 23:00Z')
) AS t(c, f),
LATERAL (SELECT mana_ai.next_run_at_in(c::jsonb, f::timestamptz, 'Europe/Berlin') AS n) AS r;

-- Invalid cadences: an error naming the problem, with a hint
SELECT mana_ai.next_run_at('[]', now());
SELECT mana_ai.next_run_at('"daily"', now());
SELECT mana_ai.next_run_at('{}', now());
SELECT mana_ai.next_run_at('{"kind": "hourly"}', now());
SELECT mana_ai.next_run_at('{"kind": "interval"}', now());
SELECT mana_ai.next_run_at('{"kind": "interval", "everyMinutes": 0}', now());
SELECT mana_ai.next_run_at('{"kind": "interval", "everyMinutes": -5}', now());
SELECT mana_ai.next_run_at('{"kind": "interval", "everyMinutes": 1.5}', now());
SELECT mana_ai.next_run_at('{"kind": "interval", "everyMinutes": "15"}', now());
SELECT mana_ai.next_run_at('{"kind": "interval", "everyMinutes": 99999999999}', now());
SELECT mana_ai.next_run_at('{"kind": "daily", "atHour": 24, "atMinute": 0}', now());
SELECT mana_ai.next_run_at('{"kind": "daily", "atHour": 9}', now());
SELECT mana_ai.next_run_at('{"kind": "daily", "atHour": null, "atMinute": 0}', now());
SELECT mana_ai.next_run_at('{"kind": "weekly", "dayOfWeek": 7, "atHour": 9}', now());
SELECT mana_ai.next_run_at('{"kind": "weekly", "atHour": 9}', now());
SELECT mana_ai.next_run_at('{"kind": "cron"}', now());
SELECT mana_ai.next_run_at('{"kind": "cron", "expression": 5}', now());
SELECT mana_ai.next_run_at('{"kind": "cron", "expression": "61 * * * *"}', now());
SELECT mana_ai.next_run_at('{"kind": "cron", "expression": "* * * *"}', now());
SELECT mana_ai.next_run_at('{"kind": "cron", "expression": "0 9 * * funday"}', now());
SELECT mana_ai.next_run_at('{"kind": "cron", "expression": "*/0 * * * *"}', now());
SELECT mana_ai.next_run_at('{"kind": "cron", "expression": "0 9 5-1 * *"}', now());
SELECT mana_ai.next_run_at('{"kind": "cron", "expression": "0 0 30 2 *"}', '2026-01-01Z');
SELECT mana_ai.next_run_at_in('{"kind": "daily", "atHour": 9, "atMinute": 0}', now(), 'Mars/Olympus_Mons');
SELECT mana_ai.next_run_at('{"kind": "daily", "atHour": 9, "atMinute": 0}', 'infinity');

DROP EXTENSION mana_ai CASCADE;
