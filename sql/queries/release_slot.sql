-- Gives a connection slot back. $1 key, $2 slot
select pg_advisory_unlock($1::integer, $2::integer)
