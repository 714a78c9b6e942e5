-- Connects accounts as an application's settings page does: $1 accounts, $2 audiences, $3 API keys.
select chimpsync.connect_account(a, aud, k) from unnest($1::text[], $2::text[], $3::text[]) as t(a, aud, k)
