-- Likes on items, for the "popular" feed.
CREATE TABLE likes (
  user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  item_id  INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
  liked_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (user_id, item_id)
);
CREATE INDEX idx_likes_item ON likes(item_id);
ALTER TABLE items ADD COLUMN like_count INTEGER NOT NULL DEFAULT 0;
