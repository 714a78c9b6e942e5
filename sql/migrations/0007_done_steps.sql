-- chimpsync 0007: the steps of a row's operation that Mailchimp acknowledged, so that a retry
-- resumes where the failed attempt stopped. A nullable column without a default: no rewrite.

alter table chimpsync.sync_queue add column done_steps jsonb;

comment on column chimpsync.sync_queue.done_steps is
    'Steps of the row''s operation that Mailchimp acknowledged in failed attempts at one version of the row: '
    '{"version", "gone": [addresses no member of the customer lives under any more], "untagged": '
    '[{"email", "tags"}], "upserted": {"email", "body", "tags"}}. The next attempt skips them. Written by '
    'the reschedule (fenced by the lease token), reset by every change of the row, and ignored unless '
    '"version" is the row''s version. An answer that was lost is never a step here (see maybe_applied).';
