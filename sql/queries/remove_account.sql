select chimpsync.remove_account($1::text)
