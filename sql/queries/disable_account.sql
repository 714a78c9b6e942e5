select chimpsync.disable_account($1::text)
