-- An archive for sold-out items (abandoned: the product team chose soft deletes instead).
CREATE TABLE item_archive (
  id          INTEGER PRIMARY KEY,
  item_id     INTEGER NOT NULL,
  archived_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
