-- The second factor a session's login also gave: `totp`, `recovery_code` or `passkey` (a passkey
-- answering after the passphrase; `sessions.passkey` then names it, and its removal ends the
-- session); NULL: none asked, or a passkey login alone (two factors in one).
ALTER TABLE sessions ADD COLUMN second_factor TEXT;
