select chimpsync.enable_account($1::text)
