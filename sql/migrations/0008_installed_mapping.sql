-- chimpsync 0008: what the schema handshake of `chimpsync run` reads of the installation. The
-- worker's role may not read chimpsync.installation itself (it holds the trigger SQL); this
-- function shows it the mapping and the triggers' fingerprint only.

create function chimpsync.installed_mapping()
returns table (mapping jsonb, trigger_catalog text)
language sql stable security definer set search_path = pg_catalog, pg_temp as $chimpsync$
    select i.mapping, i.trigger_catalog from chimpsync.installation i
$chimpsync$;

revoke all on function chimpsync.installed_mapping() from public;

comment on function chimpsync.installed_mapping() is
    'The mapping the last `chimpsync setup` installed and its record of the triggers'' catalog '
    'fingerprint (no row before the first setup). Read by workers to check that the triggers '
    'capture what their mapping file asks for.';
