create or replace function chimpsync.enqueue_row() returns trigger
language plpgsql security definer set search_path = pg_catalog, pg_temp as $chimpsync$
begin
    if current_setting('chimpsync.origin', true) = 'mailchimp' then
        return null;
    end if;
    if tg_op = 'INSERT' then
        {{insert}};
    elsif tg_op = 'UPDATE' then
        {{update}};
    else
        {{delete}};
    end if;
    return null;
end
$chimpsync$;
