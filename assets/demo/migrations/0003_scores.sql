-- Game scores for the leaderboard.
CREATE TABLE scores (
  id          INTEGER PRIMARY KEY,
  user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  game        TEXT NOT NULL,
  score       INTEGER NOT NULL,
  achieved_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX idx_scores_game_score ON scores(game, score DESC);

-- Keep a per-user best score up to date.
CREATE TABLE best_scores (
  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  game    TEXT NOT NULL,
  score   INTEGER NOT NULL,
  PRIMARY KEY (user_id, game)
);
CREATE TRIGGER scores_best AFTER INSERT ON scores
BEGIN
  INSERT INTO best_scores(user_id, game, score) VALUES (NEW.user_id, NEW.game, NEW.score)
    ON CONFLICT(user_id, game) DO UPDATE SET score = max(score, excluded.score);
END;
