-- What a login session was opened with (the client's User-Agent, shortened), for the member's list
-- of where they are logged in.
ALTER TABLE sessions ADD COLUMN user_agent TEXT;
