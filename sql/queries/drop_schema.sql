-- `setup --uninstall`: removes the chimpsync schema and everything in it (queue, record of what
-- Mailchimp holds, trigger functions, migrations table). The customer table is not touched.
drop schema if exists chimpsync cascade
