-- A rotation's new ciphertext of one account's key. updated_at moves so that a worker caching
-- the decrypted key reads it again.
update chimpsync.accounts
set api_key = $2, encrypted_for = $3, updated_at = now()
where account = $1
