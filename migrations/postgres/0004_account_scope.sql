-- The account:write scope now guards changes to one's own user and keys. Keys that could
-- write links could make those changes before, so they keep the right.
UPDATE api_keys SET scopes = scopes || ' account:write'
WHERE (' ' || scopes || ' ') LIKE '% links:write %'
  AND (' ' || scopes || ' ') NOT LIKE '% account:write %';
