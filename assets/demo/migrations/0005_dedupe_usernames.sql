-- Fix for the failed unique-username release: suffix duplicates with the user id first.
UPDATE users SET username = username || '_' || id
WHERE username IS NOT NULL
  AND id NOT IN (SELECT min(id) FROM users WHERE username IS NOT NULL GROUP BY username);
