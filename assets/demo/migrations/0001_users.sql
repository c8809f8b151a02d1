-- Telegram users of the mini-app, keyed by our own id; telegram_id is Telegram's.
CREATE TABLE users (
  id            INTEGER PRIMARY KEY,
  telegram_id   INTEGER NOT NULL UNIQUE,
  username      TEXT,
  first_name    TEXT NOT NULL,
  language_code TEXT NOT NULL DEFAULT 'en',
  is_premium    INTEGER NOT NULL DEFAULT 0,
  legacy_ref    TEXT,
  created_at    TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX idx_users_username ON users(username);
