-- Store a Mailchimp event before anything is applied; a replay (same dedupe_key) stores nothing.
-- $1 source, $2 type, $3 fired_at, $4 list_id, $5 email, $6 new_email, $7 payload,
-- $8 why it is ignored (null = to be applied), $9 account ('' with one account)
insert into chimpsync.inbound_events
    (source, event_type, fired_at, list_id, email, new_email, payload, status, next_attempt_at, last_error, account)
values ($1, $2, $3, $4, $5, $6, $7,
        case when $8::text is null then 'received' else 'ignored' end,
        case when $8::text is null then now() end,
        $8, $9)
on conflict (dedupe_key) do nothing
returning id
