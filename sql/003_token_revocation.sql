-- Token revocation (issue 10, finding 5).
--
-- A token names its user's id, role and token epoch at issue time ("ep").
-- Every change that must invalidate a user's tokens bumps token_epoch: a role
-- change (demotion or promotion), a new password, disabling or enabling, or
-- an explicit `token_epoch = token_epoch + 1` ("log out everywhere"). Workers
-- cache (epoch, role, active) per user and learn of every change through
-- NOTIFY ot_users '<user id>', sent in the same transaction, so a revoked
-- token stops working, and its sockets close, within a second of the commit.

ALTER TABLE users
    ADD COLUMN active      boolean NOT NULL DEFAULT true,
    ADD COLUMN token_epoch bigint  NOT NULL DEFAULT 0;

CREATE FUNCTION ot_users_bump_epoch() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- The epoch only moves forward: a client-side "SET token_epoch = 0" must
    -- not bring old tokens back.
    IF NEW.token_epoch < OLD.token_epoch THEN
        NEW.token_epoch := OLD.token_epoch;
    END IF;
    IF NEW.role IS DISTINCT FROM OLD.role
       -- A rehash at login (same password, stronger scrypt cost: sql/005's
       -- ot_user_rehash marks its transaction) is not a password change.
       OR (NEW.password_hash IS DISTINCT FROM OLD.password_hash
           AND current_setting('ordertrack.rehash', true) IS DISTINCT FROM 'on')
       OR NEW.active IS DISTINCT FROM OLD.active THEN
        NEW.token_epoch := greatest(NEW.token_epoch, OLD.token_epoch + 1);
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER users_bump_epoch
    BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION ot_users_bump_epoch();

-- NOTIFY is transactional: delivered at commit, dropped on rollback, and one
-- payload is sent once per transaction however many rows repeat it. INSERT is
-- announced too, so no worker keeps a "no such user" answer for a new id.
CREATE FUNCTION ot_users_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('ot_users', OLD.id::text);
    ELSIF TG_OP = 'INSERT' OR NEW.token_epoch <> OLD.token_epoch OR NEW.id <> OLD.id THEN
        PERFORM pg_notify('ot_users', NEW.id::text);
        IF TG_OP = 'UPDATE' AND NEW.id <> OLD.id THEN
            PERFORM pg_notify('ot_users', OLD.id::text);
        END IF;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER users_notify
    AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION ot_users_notify();
