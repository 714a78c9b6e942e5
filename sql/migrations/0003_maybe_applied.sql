-- chimpsync 0003: the one merge of what attempts whose answers were lost may have applied.

create function chimpsync.merge_maybe_applied(known jsonb, more jsonb) returns jsonb
language sql immutable parallel safe set search_path = pg_catalog, pg_temp as $chimpsync$
    select jsonb_build_object(
        'emails', (select coalesce(jsonb_agg(distinct x), '[]'::jsonb)
                   from jsonb_array_elements_text(coalesce(known -> 'emails', '[]'::jsonb)
                                                  || coalesce(more -> 'emails', '[]'::jsonb)) as x),
        'tags', (select coalesce(jsonb_agg(distinct x), '[]'::jsonb)
                 from jsonb_array_elements_text(coalesce(known -> 'tags', '[]'::jsonb)
                                                || coalesce(more -> 'tags', '[]'::jsonb)) as x),
        'consents', (select coalesce(jsonb_agg(distinct x), '[]'::jsonb)
                     from jsonb_array_elements(coalesce(known -> 'consents', '[]'::jsonb)
                                               || coalesce(more -> 'consents', '[]'::jsonb)) as x))
$chimpsync$;

comment on function chimpsync.merge_maybe_applied(jsonb, jsonb) is
    'The union of two maybe_applied values ({"emails", "tags", "consents"}, either may be null), '
    'each list without duplicates. Used when a claim ends without an answer (reschedule) and when '
    'a row is claimed whose last claim ended without recording anything.';
