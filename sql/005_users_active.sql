-- Operator account controls (issue 16): `ordertrack user disable|enable` sets
-- users.active. Issue 10's migration 003 adds the same column together with
-- token epochs; IF NOT EXISTS lets either land first.
ALTER TABLE users ADD COLUMN IF NOT EXISTS active boolean NOT NULL DEFAULT true;

-- Rehash on login after the scrypt cost was raised: same password, stronger
-- hash. Swapped only if the stored hash is still the one just verified, so a
-- concurrent password change is never overwritten. The transaction-local
-- setting marks the change as a rehash for triggers that react to password
-- changes (token revocation must not fire for it).
CREATE FUNCTION ot_user_rehash(uid uuid, old_hash text, new_hash text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('ordertrack.rehash', 'on', true);
    UPDATE users SET password_hash = new_hash WHERE id = uid AND password_hash = old_hash;
    RETURN FOUND;
END;
$$;
