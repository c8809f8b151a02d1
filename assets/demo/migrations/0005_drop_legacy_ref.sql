-- Drop users.legacy_ref with the classic table rebuild.
-- (On D1, DROP TABLE users deletes every row first, and ON DELETE CASCADE follows it.)
CREATE TABLE users_new (
  id            INTEGER PRIMARY KEY,
  telegram_id   INTEGER NOT NULL UNIQUE,
  username      TEXT,
  first_name    TEXT NOT NULL,
  language_code TEXT NOT NULL DEFAULT 'en',
  is_premium    INTEGER NOT NULL DEFAULT 0,
  created_at    TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
INSERT INTO users_new (id, telegram_id, username, first_name, language_code, is_premium, created_at)
  SELECT id, telegram_id, username, first_name, language_code, is_premium, created_at FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;
CREATE INDEX idx_users_username ON users(username);
