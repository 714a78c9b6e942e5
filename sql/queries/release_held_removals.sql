-- Releases held removals after a person has looked: all of them ($1 null) or the listed ids.
select id from chimpsync.release_held_removals($1::bigint[]) as r(id)
