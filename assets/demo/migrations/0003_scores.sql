-- Games in the mini-app and their scores, for the leaderboards.
CREATE TABLE games (
  id    INTEGER PRIMARY KEY,
  slug  TEXT NOT NULL UNIQUE,
  title TEXT NOT NULL
);
INSERT INTO games (id, slug, title) VALUES
  (1, 'tap-race', 'Tap Race'),
  (2, 'stack', 'Stack'),
  (3, 'quiz', 'Daily Quiz'),
  (4, 'merge-2048', 'Merge 2048');

CREATE TABLE scores (
  id          INTEGER PRIMARY KEY,
  user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  game_id     INTEGER NOT NULL REFERENCES games(id) ON DELETE CASCADE,
  score       INTEGER NOT NULL,
  achieved_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX idx_scores_game_score ON scores(game_id, score DESC);
CREATE INDEX idx_scores_user ON scores(user_id);

-- Keep a per-user best score up to date.
CREATE TABLE best_scores (
  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  game_id INTEGER NOT NULL REFERENCES games(id) ON DELETE CASCADE,
  score   INTEGER NOT NULL,
  PRIMARY KEY (user_id, game_id)
);
CREATE TRIGGER scores_best AFTER INSERT ON scores
BEGIN
  INSERT INTO best_scores(user_id, game_id, score) VALUES (NEW.user_id, NEW.game_id, NEW.score)
    ON CONFLICT(user_id, game_id) DO UPDATE SET score = max(score, excluded.score);
END;
