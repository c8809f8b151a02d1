-- Rename games.title to games.name with the classic table rebuild.
-- (On D1, DROP TABLE games deletes every game first, and ON DELETE CASCADE follows it.)
CREATE TABLE games_new (
  id   INTEGER PRIMARY KEY,
  slug TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL
);
INSERT INTO games_new (id, slug, name) SELECT id, slug, title FROM games;
DROP TABLE games;
ALTER TABLE games_new RENAME TO games;
