create or replace function chimpsync.{{function}}() returns trigger
language plpgsql security definer set search_path = pg_catalog, pg_temp as $chimpsync$
begin
    -- Changes written by chimpsync's own inbound path (Mailchimp -> table) must not echo back.
    if current_setting('chimpsync.origin', true) = 'mailchimp' then
        return null;
    end if;
    {{statement}};
    return null;
end
$chimpsync$;
