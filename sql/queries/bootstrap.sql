create schema if not exists chimpsync;
create table if not exists chimpsync.schema_migrations (
    version    integer     primary key,
    name       text        not null,
    applied_at timestamptz not null default now()
);
comment on table chimpsync.schema_migrations is 'Migrations of the chimpsync schema that `chimpsync setup` has applied.';
