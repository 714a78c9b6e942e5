-- The customer table of a pet business: the demo's, the end-to-end tests' and the benchmark's.
-- `notes` is never mapped, so a change to it alone must not reach Mailchimp.
create table public.customers (
    id              bigint primary key,
    email           text,
    first_name      text,
    last_name       text,
    store           text,
    customer_type   text,
    consent_contact boolean,
    notes           text,
    deleted_at      timestamptz,
    -- An interest group each: the pet (one interest named by the value), and newsletters.
    pet_type        text,
    wants_news      boolean,
    wants_offers    boolean
);
