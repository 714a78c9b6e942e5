-- pgcrypto encrypts account API keys (chimpsync.encrypt_api_key finds it in whatever schema it
-- lives); created where the database puts extensions by default unless it is there already.
create extension if not exists pgcrypto
