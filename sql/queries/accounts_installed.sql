-- Whether this database has chimpsync's accounts (migration 0009).
select to_regclass('chimpsync.accounts') is not null
