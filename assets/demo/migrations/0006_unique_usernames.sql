-- Usernames must be unique for @mentions (after 0005 de-duplicated them).
CREATE UNIQUE INDEX ux_users_username ON users(username);
