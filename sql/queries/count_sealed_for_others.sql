-- Accounts whose key is encrypted for another key-encryption key than $1.
select count(*) from chimpsync.accounts where encrypted_for <> $1
