select chimpsync.update_account($1::text, $2::text, $3::text)
