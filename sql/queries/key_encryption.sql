-- The installed key-encryption key, and how many accounts are encrypted for another one. Locks
-- the key's row, so a rotation and a setup never replace it at the same time.
select k.public_key,
       k.fingerprint,
       (select count(*) from chimpsync.accounts a where a.encrypted_for <> k.fingerprint) as sealed_for_others,
       (select count(*) from chimpsync.accounts a where a.encrypted_for = k.fingerprint) as sealed_for_it
from chimpsync.key_encryption k
for update of k
