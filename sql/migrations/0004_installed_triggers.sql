-- chimpsync 0004: what `setup` installed on the customer table, so that a re-run whose triggers
-- already match changes nothing and takes no lock on that table.

alter table chimpsync.installation
    add column trigger_sql     text,
    add column trigger_catalog text;

comment on column chimpsync.installation.trigger_sql is 'The trigger and function statements `setup` ran, as generated from the mapping.';
comment on column chimpsync.installation.trigger_catalog is 'A hash of those triggers and functions as the catalog described them after installing; a difference means someone changed, disabled or dropped them.';
