select chimpsync.sync_contacts($1::text)
