-- Call timelines no longer keep RTC join tokens (they let whoever reads the
-- log join the channel until the token expires); remove those kept before.
-- sqlite only: timelines of older versions.
UPDATE call_events
SET message = json_set(message,
    (SELECT fullkey FROM json_tree(call_events.message)
     WHERE key = 'token' AND path LIKE '%.join' LIMIT 1), '(removed)')
WHERE EXISTS (SELECT 1 FROM json_tree(call_events.message)
              WHERE key = 'token' AND path LIKE '%.join');
-- sqlite only: timelines of older versions.
UPDATE call_events
SET message = json_set(message,
    (SELECT fullkey FROM json_tree(call_events.message)
     WHERE key = 'token_b64' AND path LIKE '%.join' LIMIT 1), '(removed)')
WHERE EXISTS (SELECT 1 FROM json_tree(call_events.message)
              WHERE key = 'token_b64' AND path LIKE '%.join');
