-- For the rest of this transaction, chimpsync's triggers do not enqueue: the change comes from
-- Mailchimp and must not echo back to it.
select set_config('chimpsync.origin', 'mailchimp', true)
