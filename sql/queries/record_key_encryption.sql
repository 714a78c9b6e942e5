-- Installs (or replaces) the key-encryption key's public half.
insert into chimpsync.key_encryption (public_key, fingerprint)
values ($1, $2)
on conflict (singleton) do update
set public_key = excluded.public_key, fingerprint = excluded.fingerprint, installed_at = now()
