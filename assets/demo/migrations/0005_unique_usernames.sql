-- Usernames must be unique for @mentions.
CREATE UNIQUE INDEX ux_users_username ON users(username);
