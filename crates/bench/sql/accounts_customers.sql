-- Multi-account scenarios: {{count}} customers from id {{first}}, {{per_account}} per account, the
-- account (the mapping's [source].account column, `store`) named {{prefix}}00000, {{prefix}}00001, ...
-- Otherwise the rows of customers.sql: an address each, one in five without consent.
insert into public.customers (id, email, first_name, last_name, store, customer_type, consent_contact, notes)
select g,
       'customer.' || g || '@' || (array['petmail.test','furmail.test','pawpost.test'])[1 + g % 3],
       (array['Ana','Bruno','Carla','Diogo','Eva','Filipe','Gita','Hugo','Ines','Joao'])[1 + g % 10],
       (array['Silva','Santos','Costa','Pereira','Lima','Sousa','Rocha','Dias'])[1 + (g / 10) % 8],
       '{{prefix}}' || lpad(((g - {{first}}) / {{per_account}})::text, 5, '0'),
       (array['dog owner','cat owner','groomer','breeder','vet clinic'])[1 + (g * 7) % 5],
       (g % 5) <> 0,
       'customer since ' || (2000 + g % 25)
from generate_series({{first}}, {{first}} + {{count}} - 1) g;
analyze public.customers;
