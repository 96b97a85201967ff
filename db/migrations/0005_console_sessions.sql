-- Console sessions kept on the server: the signed cookie carries only an id whose hash is stored here, so a
-- session can be ended for good (logout, password reset, `ppu users revoke`) and expires where we decide.
CREATE TABLE console_sessions (
    session_hash text PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES console_users ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX console_sessions_user ON console_sessions (user_id) WHERE revoked_at IS NULL;
